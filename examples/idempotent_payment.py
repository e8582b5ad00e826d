"""Charging a card exactly once, even when the process dies right after the charge.

    python examples/idempotent_payment.py

A checkout workflow asks a flaky exchange-rate API for a price (a task with a
RetryPolicy: each failed attempt is journaled, see the table at the end), then
charges the card through a fake payment API that, like Stripe's, deduplicates
requests by idempotency key. The task passes ``durable.task_context().idempotency_key``.
The first process is killed with SIGKILL right after the payment API accepted
the charge, before the task's result reached the journal. A second process
resumes the run: the charge task runs again with the *same* key, so the API
answers with the existing charge instead of charging twice.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import durable
from durable import RetryPolicy, SQLiteStore, entrypoint, task

WORKDIR = Path(os.environ.get("DEMO_DIR", "."))


class PaymentAPI:
    """A stand-in for a payment provider, kept in a SQLite file so both processes see the same one."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.execute("CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, id TEXT, body TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS requests (pid INTEGER, key TEXT, answer TEXT)")

    def charge(self, idempotency_key: str, card: str, cents: int) -> str:
        body = json.dumps([card, cents])
        self.conn.execute("BEGIN IMMEDIATE")
        row = self.conn.execute("SELECT id, body FROM charges WHERE key = ?", (idempotency_key,)).fetchone()
        if row is None:
            charge_id, answer = f"ch_{os.urandom(4).hex()}", "charged"
            self.conn.execute("INSERT INTO charges VALUES (?, ?, ?)", (idempotency_key, charge_id, body))
        elif row[1] == body:
            charge_id, answer = row[0], "already charged: same charge returned"
        else:
            charge_id, answer = "", "rejected: key reused for another request"
        self.conn.execute("INSERT INTO requests VALUES (?, ?, ?)", (os.getpid(), idempotency_key, answer))
        self.conn.execute("COMMIT")
        if not charge_id:
            raise ValueError(answer)
        return charge_id


# A timeout is an OSError, which the default retry_on (LangGraph's: not programming errors) leaves alone: say it.
@task(retry=RetryPolicy(max_attempts=4, initial_interval=0.1, jitter=True, retry_on=TimeoutError))
def price_in_eur(cents_usd: int) -> int:
    """A flaky API: its first two calls time out."""
    calls = WORKDIR / "rate-calls"
    n = len(calls.read_text()) if calls.exists() else 0
    calls.write_text("x" * (n + 1))
    if n < 2:
        raise TimeoutError(f"exchange-rate API timed out (call {n + 1})")
    return round(cents_usd * 0.92)


@task
def charge_card(card: str, cents: int) -> str:
    key = durable.task_context().idempotency_key
    charge_id = PaymentAPI(WORKDIR / "payments.db").charge(key, card, cents)
    if os.environ.get("DEMO_CRASH") == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # dies after the charge, before its result is journaled
    return charge_id


def make_checkout(db: Path) -> Any:
    @entrypoint(checkpointer=SQLiteStore(db), name="checkout")
    def checkout(order: dict[str, Any]) -> dict[str, Any]:
        cents = price_in_eur(order["cents_usd"]).result()
        return {"order": order["id"], "charged_eur_cents": cents, "charge": charge_card(order["card"], cents).result()}

    return checkout


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="durable-payment-"))
    db = workdir / "journal.db"
    me = [sys.executable, os.path.abspath(__file__), "--worker", str(db)]
    env = {**os.environ, "DEMO_DIR": str(workdir)}

    print("1) process 1 runs the checkout and is SIGKILLed right after the payment API charged the card ...")
    first = subprocess.run(me, env={**env, "DEMO_CRASH": "1"})
    print(f"   process 1 exited with {first.returncode} (-9: SIGKILL)")
    print("2) process 2 resumes the run with invoke(None, thread_id='order-17') ...")
    second = subprocess.run([*me, "--resume"], env=env)
    if second.returncode != 0:
        return 1

    payments = sqlite3.connect(workdir / "payments.db")
    requests = payments.execute("SELECT pid, key, answer FROM requests ORDER BY rowid").fetchall()
    charges = payments.execute("SELECT count(*) FROM charges").fetchone()[0]
    payments.close()
    print("\nwhat the payment API saw:")
    for pid, key, answer in requests:
        print(f"   pid {pid}  Idempotency-Key: {key}  -> {answer}")
    print(f"   charges made: {charges}")

    state = make_checkout(db).get_state(thread_id="order-17")
    print(f"\nthe run's journal ({state.status}):")
    for e in state.entries:
        what = repr(e.result) if e.status == "ok" else f"{type(e.error).__name__}: {e.error}"
        print(f"   key {e.key}  {e.task:<12} attempt {e.attempt}  {e.status:<5}  {what}")
    print(f"\noutput: {state.output}")
    same_key = len(requests) == 2 and requests[0][1] == requests[1][1]
    retried = [e.attempt for e in state.entries if e.task == "price_in_eur"] == [1, 2, 3]
    print(f"same idempotency key twice, charged once: {same_key and charges == 1}; flaky call retried: {retried}")
    return 0 if first.returncode == -signal.SIGKILL and same_key and charges == 1 and retried else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        order = None if "--resume" in sys.argv else {"id": "order-17", "card": "4242-4242", "cents_usd": 1999}
        out = make_checkout(Path(sys.argv[2])).invoke(order, thread_id="order-17")
        print(f"   process {os.getpid()} finished: {out}")
    else:
        sys.exit(main())
