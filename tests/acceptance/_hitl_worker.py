"""Worker process for the human-in-the-loop acceptance tests (run as ``python _hitl_worker.py ...``).

It runs one entrypoint on one thread of a real SQLite journal and prints one JSON object as the last line
of stdout. The entrypoint, for input ``n``:

* fans out ``prepare(i)`` for ``i in range(n)`` (keys ``"0"`` .. ``"n-1"``);
* then fans out ``review(i)`` (keys ``"n"`` .. ``"2n-1"``): each calls its child ``draft(i)`` (key ``"<k>.0"``),
  then ``interrupt({"review": i, "draft": ...})`` (default id ``"<k>.1"``), so all ``n`` questions pause together;
* then calls ``publish(verdicts)`` (key ``"2n"``) and returns its value.

Every task body appends ``"<pid> <task> <i>\\n"`` to the count file (flushed and fsynced) when it starts, so
the tests can count how often each body really ran, and in which process.

Actions: ``--n N`` starts a run; ``--none`` invokes with ``None``; ``--resume JSON`` invokes with
``Command(resume=<the JSON value>)``; ``--state`` prints ``get_state()`` only. ``--kill-after`` makes the
process print its result and then SIGKILL itself (the journal and the pause are already committed).

Exit codes: 0 success, 4 a `DurableError` (the JSON names the type); -9 when ``--kill-after`` killed it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from durable import Command, DurableError, Interrupted, SQLiteStore, entrypoint, interrupt, task

EXIT_DURABLE_ERROR = 4
COUNT_FILE: str | None = None


def _record(name: str, i: int) -> None:
    assert COUNT_FILE is not None
    with open(COUNT_FILE, "a") as f:
        f.write(f"{os.getpid()} {name} {i}\n")
        f.flush()
        os.fsync(f.fileno())


@task(name="prepare")
def prepare(i: int) -> dict[str, Any]:
    _record("prepare", i)
    return {"i": i, "pid": os.getpid()}


@task(name="draft")
def draft(i: int) -> str:
    _record("draft", i)
    return f"draft {i} by {os.getpid()}"


@task(name="review")
def review(i: int) -> dict[str, Any]:
    _record("review", i)
    text = draft(i).result()
    verdict = interrupt({"review": i, "draft": text})
    return {"i": i, "draft": text, "verdict": verdict}


@task(name="publish")
def publish(reviews: list[dict[str, Any]]) -> dict[str, Any]:
    _record("publish", 0)
    return {"verdicts": [r["verdict"] for r in reviews], "drafts": [r["draft"] for r in reviews]}


def build(db: str) -> Any:
    @entrypoint(checkpointer=SQLiteStore(db), name="hitl")
    def hitl(n: int) -> dict[str, Any]:
        prepared = [f.result() for f in [prepare(i) for i in range(n)]]
        reviews = [f.result() for f in [review(p["i"]) for p in prepared]]
        return publish(reviews).result()

    return hitl


def result_to_json(result: Any) -> dict[str, Any]:
    if isinstance(result, Interrupted):
        return {
            "interrupted": True,
            "thread_id": result.thread_id,
            "ids": [i.id for i in result.interrupts],
            "values": [i.value for i in result.interrupts],
        }
    return {"interrupted": False, "value": result}


def state_to_json(state: Any) -> dict[str, Any]:
    return {
        "status": state.status,
        "run_id": state.run_id,
        "output": state.output,
        "interrupts": [[i.id, i.value] for i in state.interrupts],
        "entries": sorted([e.key, e.task, e.status, e.attempt] for e in state.entries),
        "answers": sorted([e.key, e.result] for e in state.entries if e.status == "answer"),
    }


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write("\n" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    global COUNT_FILE
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True, help="SQLite file")
    p.add_argument("--count", required=True, help="count file the task bodies append to")
    p.add_argument("--thread", required=True)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--n", type=int, help="start a run with this input")
    action.add_argument("--none", action="store_true", help="invoke(None)")
    action.add_argument("--resume", help="invoke(Command(resume=<this JSON value>))")
    action.add_argument("--state", action="store_true", help="only print get_state()")
    p.add_argument("--durability", choices=["sync", "async", "exit"], default="sync")
    p.add_argument("--kill-after", action="store_true", help="print the result, then SIGKILL this process")
    args = p.parse_args()
    COUNT_FILE = args.count
    hitl = build(str(Path(args.db).resolve()))

    try:
        if args.state:
            _emit({"pid": os.getpid(), "state": state_to_json(hitl.get_state(thread_id=args.thread))})
            return 0
        if args.resume is not None:
            inp: Any = Command(resume=json.loads(args.resume))
        else:
            inp = None if args.none else args.n
        result = hitl.invoke(inp, thread_id=args.thread, durability=args.durability)
        _emit({"pid": os.getpid(), "result": result_to_json(result)})
        if args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # never reached
        return 0
    except DurableError as e:
        _emit({"pid": os.getpid(), "error": type(e).__name__, "message": str(e)})
        return EXIT_DURABLE_ERROR


if __name__ == "__main__":
    sys.exit(main())
