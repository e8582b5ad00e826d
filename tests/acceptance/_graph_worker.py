"""Worker process for the graph acceptance tests (run as ``python _graph_worker.py ...``, never imported by pytest).

It runs one `StateGraph` on one thread of a real SQLite journal and prints one JSON object as the last line
of stdout. The graph::

    START -> a -> (b, c, d in parallel, plus Send("s", i) for i in range(5)) -> e (joins b, c, d) -> f -> END

Each node appends ``"<pid> <node>\\n"`` (a Send's task as ``s<i>``) to the side-effect log (opened with "a",
flushed and fsynced) when it runs, then writes its name to the state's ``log`` key (an ``operator.add``
reducer), so the tests can count how often each node really ran and check the final state.

``--kill-in NODE`` makes that node SIGKILL its own process right after writing its line, the first time
only: it creates ``<log>.killed`` first, and a run that finds the file goes on. ``--ask`` makes node ``e``
call ``interrupt("approve?")`` after writing its line and write ``e:<answer>``; ``--answer X`` resumes with
``Command(resume=X)``; ``--die-after`` SIGKILLs the process once the result is printed (a process that
dies while its run is paused). ``--resume`` resumes with ``invoke(None, config)``; ``--state`` only prints
``get_state()``. ``--durability sync|async|exit`` is passed to ``invoke``.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from durable import Command, Send, SQLiteStore, interrupt
from durable.graph import END, START, StateGraph

PARALLEL = ("b", "c", "d")
FAN_OUT = 5


class State(TypedDict):
    log: Annotated[list[str], operator.add]


class _Config:
    log_file: str = ""
    kill_in: str | None = None
    ask: bool = False


CFG = _Config()


def _record(name: str) -> None:
    """Append this process's pid and the node's name to the side-effect log, durably; die there if asked."""
    with open(CFG.log_file, "a") as f:
        f.write(f"{os.getpid()} {name}\n")
        f.flush()
        os.fsync(f.fileno())
    marker = Path(CFG.log_file + ".killed")
    if name == CFG.kill_in and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # never reached: SIGKILL cannot be caught


def node(name: str) -> Any:
    def run(state: State) -> dict[str, list[str]]:
        _record(name)
        return {"log": [name]}

    run.__name__ = name
    return run


def fan(state: State) -> list[Any]:
    return [*PARALLEL, *(Send("s", i) for i in range(FAN_OUT))]


def s(i: int) -> dict[str, list[str]]:
    _record(f"s{i}")
    return {"log": [f"s{i}"]}


def e(state: State) -> dict[str, list[str]]:
    _record("e")
    if CFG.ask:
        return {"log": [f"e:{interrupt('approve?')}"]}
    return {"log": ["e"]}


def build(checkpointer: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("a", node("a"))
    for name in PARALLEL:
        builder.add_node(name, node(name))
    builder.add_node("s", s)
    builder.add_node("e", e)
    builder.add_node("f", node("f"))
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", fan)
    builder.add_edge(list(PARALLEL), "e")
    builder.add_edge("e", "f")
    builder.add_edge("f", END)
    return builder.compile(checkpointer=checkpointer)


def _state(graph: Any, config: dict[str, Any]) -> dict[str, Any]:
    state = graph.get_state(config)
    return {
        "status": state.status,
        "values": state.values,
        "next": list(state.next),
        "interrupts": [[i.id, i.value] for i in state.interrupts],
        "entries": [[e.key, e.task, e.status] for e in state.entries],
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True, help="SQLite file")
    p.add_argument("--thread", required=True)
    p.add_argument("--log", required=True, help="side-effect log the nodes append to")
    p.add_argument("--durability", choices=["sync", "async", "exit"], default="sync")
    p.add_argument("--kill-in", help="node that SIGKILLs its process (once) after writing its line")
    p.add_argument("--ask", action="store_true", help="node e asks interrupt('approve?')")
    p.add_argument("--resume", action="store_true", help="invoke(None, config)")
    p.add_argument("--answer", help="invoke(Command(resume=ANSWER), config)")
    p.add_argument("--die-after", action="store_true", help="SIGKILL the process once the result is printed")
    p.add_argument("--state", action="store_true", help="only print get_state()")
    args = p.parse_args()

    CFG.log_file, CFG.kill_in, CFG.ask = args.log, args.kill_in, args.ask
    graph = build(SQLiteStore(str(Path(args.db).resolve())))
    config: dict[str, Any] = {"configurable": {"thread_id": args.thread}}
    if args.state:
        out: dict[str, Any] = {"pid": os.getpid(), "state": _state(graph, config)}
    else:
        given: Any = {"log": []}
        if args.answer is not None:
            given = Command(resume=args.answer)
        elif args.resume:
            given = None
        result = graph.invoke(given, config, durability=args.durability)
        paused = [[i.id, i.value] for i in result.pop("__interrupt__", [])]
        out = {"pid": os.getpid(), "result": result, "paused": paused, "state": _state(graph, config)}
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()
    if args.die_after:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
