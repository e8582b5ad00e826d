"""Workflows for the failure-and-time acceptance tests (run as a script or by `durable worker`, never by pytest).

The store is ``--store`` (a URL: ``sqlite:////abs/path.db`` or ``postgresql://...``), handed to the
entrypoints through ``$DURABLE_URL``. Every task body appends one JSON line to ``$TF_DIR/events.jsonl``
(opened with "a", flushed and fsynced): ``{"what": ..., "pid": ..., "t": <time.time()>, ...}``, so the
tests see which process ran which body, when, and with which `durable.task_context()`.

Flows (``@entrypoint(name=...)``):

* ``tf_retry`` (input ``x``): one task, ``flaky(x)``, with
  ``RetryPolicy(initial_interval=3, jitter=False, retry_on=Flaky)``.
  Its first attempt ever (no ``$TF_DIR/failed-once`` file yet) creates that file and raises; later ones
  return ``2 * x``.
* ``tf_sleep`` (input: seconds): ``mark("A")``, ``durable.sleep(seconds)``, ``mark("B")``.
* ``tf_pay`` (input ``{"order": str, "amount": int}``): ``charge(order, amount)`` calls the fake payment
  service in ``$TF_DIR/ledger.db`` with ``task_context().idempotency_key``; with ``--kill-after-charge``
  (and no ``$TF_DIR/killed-once`` file yet) the body SIGKILLs its process right after the service
  accepted the charge, before the task returns.
* ``tf_steps`` (input ``n``): ``slow_step(i)`` for ``i in range(n)``, each sleeping 0.2 s.

Commands: ``run FLOW`` (``--input JSON`` for a new run, ``--resume`` for ``invoke(None)``), ``state FLOW``,
``cancel FLOW`` and ``submit FLOW``; each prints one JSON object as its last stdout line.
Exit codes: 0 success, 6 `RunCancelledError`, anything else is a crash; -9 when a body killed the process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import durable
from durable import RetryPolicy, RunCancelledError, entrypoint, task

EXIT_CANCELLED = 6
BACKOFF = 3.0
KILL_AFTER_CHARGE = False


class Flaky(RuntimeError):
    """The injected failure of `flaky`'s first attempt."""


def _dir() -> Path:
    return Path(os.environ["TF_DIR"])


def event(what: str, **data: Any) -> None:
    line = json.dumps({"what": what, "pid": os.getpid(), "t": time.time(), **data})
    with open(_dir() / "events.jsonl", "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _context() -> dict[str, Any]:
    ctx = durable.task_context()
    return {"attempt": ctx.attempt, "key": ctx.idempotency_key, "thread": ctx.thread_id}


# -- a crash during a retry backoff ---------------------------------------------------------------


POLICY = RetryPolicy(max_attempts=3, initial_interval=BACKOFF, backoff_factor=1.0, jitter=False, retry_on=Flaky)


@task(name="flaky", retry=POLICY)
def flaky(x: int) -> int:
    event("attempt", **_context())
    marker = _dir() / "failed-once"
    if not marker.exists():
        marker.touch()
        raise Flaky("the first attempt fails")
    return 2 * x


@entrypoint(name="tf_retry")
def retry_flow(x: int) -> int:
    return flaky(x).result()


# -- a crash during a durable sleep ----------------------------------------------------------------


@task(name="mark")
def mark(name: str) -> str:
    event(name)
    return name


@entrypoint(name="tf_sleep")
def sleep_flow(seconds: float) -> list[str]:
    a = mark("A").result()
    durable.sleep(seconds)
    return [a, mark("B").result()]


# -- idempotency keys across a crash ----------------------------------------------------------------


class LedgerConflict(RuntimeError):
    """The payment service saw this idempotency key before, with another request body."""


def ledger_charge(key: str, order: str, amount: int) -> dict[str, Any]:
    """A fake payment API: one charge per idempotency key; a repeat returns it, a different body is refused."""
    conn = sqlite3.connect(_dir() / "ledger.db", timeout=30, isolation_level=None)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, charge_id TEXT, body TEXT)")
        conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT, body TEXT, pid INTEGER, outcome TEXT)")
        body = json.dumps({"order": order, "amount": amount})
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT charge_id, body FROM charges WHERE key = ?", (key,)).fetchone()
        if row is None:
            charge_id, outcome = f"ch_{len(conn.execute('SELECT key FROM charges').fetchall()) + 1}", "charged"
            conn.execute("INSERT INTO charges VALUES (?, ?, ?)", (key, charge_id, body))
        elif row[1] == body:
            charge_id, outcome = row[0], "deduplicated"
        else:
            charge_id, outcome = None, "rejected"
        conn.execute("INSERT INTO calls VALUES (?, ?, ?, ?)", (key, body, os.getpid(), outcome))
        conn.execute("COMMIT")
    finally:
        conn.close()
    if charge_id is None:
        raise LedgerConflict(f"idempotency key {key} was used for another request")
    return {"charge_id": charge_id, "outcome": outcome}


@task(name="charge")
def charge(order: str, amount: int) -> dict[str, Any]:
    ctx = _context()
    receipt = ledger_charge(ctx["key"], order, amount)
    event("charged", **ctx, **receipt)
    marker = _dir() / "killed-once"
    if KILL_AFTER_CHARGE and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)  # the charge is made; the task's result is never journaled
        time.sleep(60)  # never reached
    return {**receipt, "key": ctx["key"]}


@entrypoint(name="tf_pay")
def pay_flow(job: dict[str, Any]) -> dict[str, Any]:
    return charge(job["order"], job["amount"]).result()


# -- cancellation from another process --------------------------------------------------------------


@task(name="slow_step")
def slow_step(i: int) -> int:
    time.sleep(0.2)
    event("step", i=i)
    return i * i


@entrypoint(name="tf_steps")
def steps_flow(n: int) -> list[int]:
    return [slow_step(i).result() for i in range(n)]


FLOWS = {"retry": retry_flow, "sleep": sleep_flow, "pay": pay_flow, "steps": steps_flow}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def state_json(ep: Any, thread: str) -> dict[str, Any]:
    s = ep.get_state(thread_id=thread)
    return {
        "status": s.status,
        "output": _jsonable(s.output),
        "error": None if s.error is None else type(s.error).__name__,
        "error_text": s.error_text,
        "owner": s.owner,
        "wake_at": s.wake_at,
        "recoveries": s.recoveries,
        "entries": [
            {
                "key": e.key,
                "task": e.task,
                "status": e.status,
                "result": _jsonable(e.result),
                "error": None if e.error is None else repr(e.error),
                "attempt": e.attempt,
                "started_at": e.started_at,
                "finished_at": e.finished_at,
            }
            for e in s.entries
        ],
    }


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write("\n" + json.dumps({"pid": os.getpid(), **obj}) + "\n")
    sys.stdout.flush()


def main() -> int:
    global KILL_AFTER_CHARGE
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["run", "state", "cancel", "submit"])
    p.add_argument("flow", choices=sorted(FLOWS))
    p.add_argument("--store", required=True, help="store URL")
    p.add_argument("--thread", required=True)
    p.add_argument("--input", help="JSON input of a new run")
    p.add_argument("--resume", action="store_true", help="invoke(None)")
    p.add_argument("--kill-after-charge", action="store_true")
    args = p.parse_args()
    os.environ["DURABLE_URL"] = args.store
    KILL_AFTER_CHARGE = args.kill_after_charge
    ep = FLOWS[args.flow]

    if args.command == "state":
        emit({"state": state_json(ep, args.thread)})
    elif args.command == "cancel":
        before = time.time()
        cancelled = ep.cancel(thread_id=args.thread)
        emit({"cancelled": cancelled, "t_before": before, "t_after": time.time()})
    elif args.command == "submit":
        ep.submit(json.loads(args.input), thread_id=args.thread)
        emit({"submitted": args.thread})
    else:
        inp = None if args.resume else json.loads(args.input)
        started = time.time()
        try:
            result = ep.invoke(inp, thread_id=args.thread)
        except RunCancelledError as exc:
            emit({"error": type(exc).__name__, "message": str(exc), "t_invoke": started, "t_end": time.time()})
            return EXIT_CANCELLED
        emit({"result": _jsonable(result), "t_invoke": started, "t_end": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
