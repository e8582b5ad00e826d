"""Worker process for the acceptance tests (run as ``python _worker.py ...``, never imported by pytest).

It runs one entrypoint on one thread of a real SQLite journal and prints one JSON object as the last
line of stdout. The entrypoint calls ``step(i)`` for ``i in range(n)``, either one after the other
(``--mode seq``: ``step(i).result()``) or all at once (``--mode fan``: every future first, then every
``.result()``). Each ``step`` body appends ``"<pid> <i>\\n"`` to the count file (opened with "a", flushed
and fsynced) before it returns, so the tests can count how often each task body really ran.

``--kill-at k`` makes task ``k`` SIGKILL its own process, ``--kill-when before`` writing its line or
``after`` it. A step's value is ``{"i": i, "v": i*i + 1, "pid": <pid of the process that ran the body>}``;
the ``pid`` part is deliberately non-deterministic, so a replayed value shows which process recorded it.

``--durability sync|async|exit`` (default ``sync``) is passed to ``invoke(..., durability=...)``.
``--barrier PATH`` makes every task ``i >= --barrier-from`` (default 0) wait, after writing its line,
until PATH exists before it returns (so tasks can be held mid-run, or made to finish all at once).
``--fail-at k`` makes task ``k`` raise `StepFailed` after writing its line; ``--raise-at-end`` makes the
entrypoint raise `StepFailed` once every result is gathered; ``--kill-after-gather`` makes the entrypoint
SIGKILL its own process at that point instead.

Exit codes: 0 success, 3 `ThreadBusyError`, 4 any other `DurableError` (the JSON names the type),
5 `StepFailed` (the run failed as asked), anything else is a crash (traceback on stderr); -9 when a task
or the entrypoint killed the process.
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

from durable import DurableError, SQLiteStore, ThreadBusyError, entrypoint, task

EXIT_BUSY = 3
EXIT_DURABLE_ERROR = 4
EXIT_STEP_FAILED = 5


class StepFailed(RuntimeError):
    """The failure ``--fail-at`` / ``--raise-at-end`` inject (transient: a resume without the flag succeeds)."""


class _Config:
    count_file: str | None = None
    kill_at: int = -1
    kill_when: str = "after"
    sleep: float = 0.0
    stagger: float = 0.0
    barrier: str | None = None
    barrier_from: int = 0
    fail_at: int = -1
    raise_at_end: bool = False
    kill_after_gather: bool = False


CFG = _Config()


def _record(i: int) -> None:
    """Append this process's pid and the task index to the count file, durably."""
    assert CFG.count_file is not None
    with open(CFG.count_file, "a") as f:
        f.write(f"{os.getpid()} {i}\n")
        f.flush()
        os.fsync(f.fileno())


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached: SIGKILL cannot be caught


@task
def step(i: int) -> dict[str, int]:
    delay = CFG.sleep + CFG.stagger * i
    if delay:
        time.sleep(delay)
    if i == CFG.kill_at and CFG.kill_when == "before":
        _die()
    _record(i)
    if i == CFG.kill_at and CFG.kill_when == "after":
        _die()
    if CFG.barrier is not None and i >= CFG.barrier_from:
        _wait_for(CFG.barrier)
    if i == CFG.fail_at:
        raise StepFailed(f"task {i} failed")
    return {"i": i, "v": i * i + 1, "pid": os.getpid()}


def _summary(results: list[dict[str, int]]) -> dict[str, list[int]]:
    """The entrypoint's value, once every result is gathered (or a kill / failure at that point)."""
    if CFG.kill_after_gather:
        _die()
    if CFG.raise_at_end:
        raise StepFailed("the entrypoint failed after gathering every result")
    return {
        "indices": [r["i"] for r in results],
        "values": [r["v"] for r in results],
        "pids": [r["pid"] for r in results],
    }


def build(mode: str, checkpointer: Any) -> Any:
    if mode == "seq":

        @entrypoint(checkpointer=checkpointer)
        def pipeline(n: int) -> dict[str, list[int]]:
            return _summary([step(i).result() for i in range(n)])

    else:

        @entrypoint(checkpointer=checkpointer)
        def pipeline(n: int) -> dict[str, list[int]]:
            futures = [step(i) for i in range(n)]
            return _summary([f.result() for f in futures])

    return pipeline


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def state_to_json(state: Any) -> dict[str, Any]:
    return {
        "thread_id": state.thread_id,
        "status": state.status,
        "run_id": _jsonable(state.run_id),
        "output": _jsonable(state.output),
        "error": None if state.error is None else repr(state.error),
        "entries": [
            {
                "key": repr(e.key),
                "task": e.task,
                "status": e.status,
                "result": _jsonable(e.result),
                "error": None if e.error is None else repr(e.error),
                "attempt": _jsonable(e.attempt),
            }
            for e in state.entries
        ],
    }


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write("\n" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _wait_for(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {path} never appeared")
        time.sleep(0.0005)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True, help="SQLite file")
    p.add_argument("--url", action="store_true", help='pass the checkpointer as the URL "sqlite:////<abs path>"')
    p.add_argument("--thread", required=True)
    p.add_argument("--mode", choices=["seq", "fan"], default="seq")
    p.add_argument("--n", type=int, help="input of a new run")
    p.add_argument("--resume", action="store_true", help="invoke(None): resume / read the stored value")
    p.add_argument("--state", action="store_true", help="only print get_state()")
    p.add_argument("--count", help="count file the task bodies append to")
    p.add_argument("--kill-at", type=int, default=-1)
    p.add_argument("--kill-when", choices=["before", "after"], default="after")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds every task sleeps")
    p.add_argument("--stagger", type=float, default=0.0, help="task i sleeps i times this much more")
    p.add_argument("--ready", help="file to create once set up (before waiting for --go)")
    p.add_argument("--go", help="file to wait for before invoking")
    p.add_argument("--durability", choices=["sync", "async", "exit"], default="sync")
    p.add_argument("--barrier", help="file tasks >= --barrier-from wait for before returning")
    p.add_argument("--barrier-from", type=int, default=0)
    p.add_argument("--fail-at", type=int, default=-1, help="task that raises StepFailed")
    p.add_argument("--raise-at-end", action="store_true", help="the entrypoint raises StepFailed at the end")
    p.add_argument("--kill-after-gather", action="store_true", help="the entrypoint SIGKILLs itself at the end")
    args = p.parse_args()

    CFG.count_file = args.count
    CFG.kill_at = args.kill_at
    CFG.kill_when = args.kill_when
    CFG.sleep = args.sleep
    CFG.stagger = args.stagger
    CFG.barrier = args.barrier
    CFG.barrier_from = args.barrier_from
    CFG.fail_at = args.fail_at
    CFG.raise_at_end = args.raise_at_end
    CFG.kill_after_gather = args.kill_after_gather

    db = str(Path(args.db).resolve())
    # URL form: "sqlite:///" + a path; the path is absolute here, so the URL has four slashes.
    checkpointer: Any = f"sqlite:///{db}" if args.url else SQLiteStore(db)
    pipeline = build(args.mode, checkpointer)

    try:
        if args.state:
            _emit({"pid": os.getpid(), "state": state_to_json(pipeline.get_state(thread_id=args.thread))})
            return 0
        if args.ready:
            Path(args.ready).touch()
        if args.go:
            _wait_for(args.go)
        inp = None if args.resume else args.n
        if inp is None and not args.resume:
            raise SystemExit("give --n N (new run) or --resume")
        result = pipeline.invoke(inp, thread_id=args.thread, durability=args.durability)
        state = pipeline.get_state(thread_id=args.thread)
        _emit({"pid": os.getpid(), "result": _jsonable(result), "state": state_to_json(state)})
        return 0
    except ThreadBusyError as e:
        _emit({"pid": os.getpid(), "error": type(e).__name__, "message": str(e)})
        return EXIT_BUSY
    except DurableError as e:
        _emit({"pid": os.getpid(), "error": type(e).__name__, "message": str(e)})
        return EXIT_DURABLE_ERROR
    except StepFailed as e:
        _emit({"pid": os.getpid(), "error": type(e).__name__, "message": str(e)})
        return EXIT_STEP_FAILED


if __name__ == "__main__":
    sys.exit(main())
