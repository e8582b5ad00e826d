"""Workflows for the Postgres worker acceptance tests (imported by `durable worker`, never by pytest).

The store is ``$DURABLE_URL`` (or the worker's ``--url``). How a task body behaves is read from *this*
process's environment when the body runs, so two workers on the same run can behave differently:

* ``PGFLOWS_COUNT``: the count file; every body appends ``"<pid> <tag> <i>\\n"`` to it (opened with "a",
  flushed and fsynced) once it has done its work, so the tests can count how often each body really ran
  and which process ran it.
* ``PGFLOWS_HOLD_AT``: the step index whose body, after writing its line, waits until the file
  ``PGFLOWS_RELEASE`` exists before it returns (so a test can catch a run mid-way, with the steps before
  it journaled and that one running).
* ``PGFLOWS_SLEEP``: seconds every body sleeps before writing its line.

``pg_pipeline`` takes ``{"tag": str, "n": int}`` and calls ``pg_step(tag, i)`` for ``i in range(n)``, one
after the other; it returns ``{"tag": tag, "values": [i*i + 1 ...], "pids": [<pid of the body's process>...]}``.
``pg_poison`` takes the same input; its only step SIGKILLs its own process after writing its line.

Run as a script it is the test's control: ``python -m _pg_flows submit --tag T --n N [--poison]`` records a
run for the workers (thread id ``T``) and ``python -m _pg_flows state --tag T`` prints ``get_state`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from durable import entrypoint, task


def _record(tag: str, i: int) -> None:
    with open(os.environ["PGFLOWS_COUNT"], "a") as f:
        f.write(f"{os.getpid()} {tag} {i}\n")
        f.flush()
        os.fsync(f.fileno())


def _hold(i: int) -> None:
    hold_at = os.environ.get("PGFLOWS_HOLD_AT")
    if hold_at is None or int(hold_at) != i:
        return
    release = os.environ["PGFLOWS_RELEASE"]
    deadline = time.monotonic() + 90.0
    while not os.path.exists(release):
        if time.monotonic() > deadline:
            raise RuntimeError(f"release file {release} never appeared")
        time.sleep(0.01)


@task(name="pg_step")
def step(tag: str, i: int) -> dict[str, int]:
    delay = float(os.environ.get("PGFLOWS_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    _record(tag, i)
    _hold(i)
    return {"i": i, "v": i * i + 1, "pid": os.getpid()}


@entrypoint(name="pg_pipeline")
def pipeline(job: dict[str, Any]) -> dict[str, Any]:
    results = [step(job["tag"], i).result() for i in range(job["n"])]
    return {"tag": job["tag"], "values": [r["v"] for r in results], "pids": [r["pid"] for r in results]}


@task(name="pg_poison_step")
def poison_step(tag: str, i: int) -> int:
    _record(tag, i)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # never reached
    return i


@entrypoint(name="pg_poison")
def poison(job: dict[str, Any]) -> list[int]:
    return [poison_step(job["tag"], i).result() for i in range(job["n"])]


def _state(tag: str) -> dict[str, Any]:
    ep = poison if tag.startswith("poison") else pipeline
    s = ep.get_state(thread_id=tag)
    return {
        "status": s.status,
        "run_id": s.run_id,
        "entrypoint": s.entrypoint,
        "output": s.output,
        "error_type": None if s.error is None else type(s.error).__name__,
        "error": None if s.error is None else str(s.error),
        "error_text": s.error_text,
        "owner": s.owner,
        "entries": [
            {"key": e.key, "task": e.task, "status": e.status, "result": e.result, "attempt": e.attempt}
            for e in s.entries
        ],
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["submit", "state"])
    p.add_argument("--tag", action="append", required=True, help="thread id (repeat to submit several)")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--poison", action="store_true")
    args = p.parse_args()
    if args.command == "submit":
        ep = poison if args.poison else pipeline
        for tag in args.tag:
            ep.submit({"tag": tag, "n": args.n}, thread_id=tag)
        print(json.dumps({"submitted": args.tag}))
    else:
        print(json.dumps({tag: _state(tag) for tag in args.tag}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
