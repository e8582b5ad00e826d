"""A LangGraph Graph-API agent on durable: killed in the middle of a fan-out, resumed, approved by a person.

    python examples/graph_agent.py

The graph is written as a LangGraph ``StateGraph`` would be (only its imports differ): a planner splits
a question into topics, one ``research`` node per topic runs in parallel (``Send``), each calling a
``@task`` (the paid search we must not repeat), a writer joins their notes, and a reviewer waits for a
person with ``interrupt()`` before publishing.

1. A first process runs it on a SQLite journal and is SIGKILLed inside the writer, after the fan-out.
2. A second process resumes the thread with ``invoke(None, config)``: the five searches come back from
   the journal (none is paid for twice); only the writer runs again. The graph then pauses for the reviewer.
3. A third process answers the reviewer with ``Command(resume=...)``, days later as far as durable cares.
"""

from __future__ import annotations

import operator
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from durable import Command, Send, SQLiteStore, interrupt, task
from durable.graph import END, START, StateGraph

TOPICS = ["pricing", "reliability", "latency", "security", "support"]


class State(TypedDict):
    question: str
    notes: Annotated[list[str], operator.add]
    report: str
    published: bool


@task
def search(topic: str) -> str:
    """The side effect: a paid web search. Journaled, so a resumed run never pays for it twice."""
    with Path(os.environ["DEMO_LOG"]).open("a") as out:
        out.write(f"{os.getpid()} {topic}\n")
    return f"{topic}: fine"


def plan(state: State) -> dict[str, Any]:
    return {"notes": [f"question: {state['question']}"]}


def fan_out(state: State) -> list[Send]:
    return [Send("research", {"topic": topic}) for topic in TOPICS]


def research(arg: dict[str, str]) -> dict[str, Any]:
    return {"notes": [search(arg["topic"]).result()]}


def write(state: State) -> dict[str, Any]:
    if os.environ.get("DEMO_CRASH") == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # the machine restarts: no cleanup, no exception handler
    return {"report": "; ".join(sorted(state["notes"][1:]))}


def review(state: State) -> dict[str, Any]:
    approved = interrupt({"report": state["report"], "question": "publish this report?"})
    return {"published": bool(approved)}


def build(db: str) -> Any:
    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("research", research)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["research"])
    builder.add_edge("research", "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=SQLiteStore(db), name="research_agent")


CONFIG = {"configurable": {"thread_id": "report-7"}}


def step(db: str, what: str) -> None:
    graph = build(db)
    if what == "start":
        graph.invoke({"question": "which vendor?", "notes": [], "report": "", "published": False}, CONFIG)
    elif what == "resume":
        out = graph.invoke(None, CONFIG)
        print(f"  paused for a person: {out['__interrupt__'][0].value['question']!r}")
    else:
        out = graph.invoke(Command(resume=True), CONFIG)
        print(f"  published: {out['published']}, report: {out['report']!r}")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="durable-graph-"))
    db, log = str(workdir / "journal.db"), workdir / "searches.log"
    env = {**os.environ, "DEMO_LOG": str(log)}
    me = [sys.executable, os.path.abspath(__file__)]
    print(build(db).get_graph().draw_mermaid())

    print(f"1) a process researches {len(TOPICS)} topics in parallel, then is SIGKILLed while writing ...")
    first = subprocess.run([*me, "--step", db, "start"], env={**env, "DEMO_CRASH": "1"})
    print(f"  exited: {'killed by SIGKILL' if first.returncode == -signal.SIGKILL else first.returncode}")
    print("2) a new process resumes the thread with invoke(None, config) ...")
    if subprocess.run([*me, "--step", db, "resume"], env=env).returncode != 0:
        return 1
    print("3) the reviewer approves, from a third process, with Command(resume=True) ...")
    if subprocess.run([*me, "--step", db, "approve"], env=env).returncode != 0:
        return 1

    searches = [line.split() for line in log.read_text().splitlines()]
    pids = list(dict.fromkeys(pid for pid, _ in searches))
    for n, pid in enumerate(pids, 1):
        print(f"  process {n} searched: {', '.join(t for p, t in searches if p == pid)}")
    topics = sorted(t for _, t in searches)
    print(f"  {len(topics)} searches for {len(TOPICS)} topics: none repeated after the kill")
    history = list(build(db).get_state_history(CONFIG))
    print(f"  {len(history)} checkpoints in the history, rebuilt from the journal")
    return 0 if topics == sorted(TOPICS) and len(pids) == 1 else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--step":
        step(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(main())
