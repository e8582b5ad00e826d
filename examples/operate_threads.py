"""Find, inspect, fork, export and import threads, from Python and from the `durable` command.

    python examples/operate_threads.py

It runs a small order pipeline on three threads in a SQLite file (one completes,
one fails at its shipping step, one waits for an approval), then:

- lists them and shows the failed one's journal;
- forks the failed thread before its shipping step, overriding the bad address
  the lookup step returned, and resumes the fork: the steps before it replay,
  the rest runs;
- exports the paused thread, imports it into a second store, and answers its
  question there;
- runs ``durable threads`` and ``durable show`` on the same file, as an operator would.

The journal is signed (a key in ``DURABLE_SECRET``, which the application and the
``durable`` command both read): the tools unpickle only values that verify under
the key. Without one they would show each pickled value by its type, size and digest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from durable import Command, Interrupted, Threads, entrypoint, interrupt, task

# A demo key. In production, keep one in a secret store: os.urandom(32), given as DURABLE_SECRET=base64:...
os.environ.setdefault("DURABLE_SECRET", "example-key-not-for-production")
DB = Path(tempfile.mkdtemp()) / "orders.db"
URL = f"sqlite:///{DB}"
RAN: list[str] = []


@task
def price(order: dict[str, object]) -> int:
    RAN.append("price")
    return 12 * int(str(order["qty"]))


@task
def address(order: dict[str, object]) -> str:
    RAN.append("address")
    return "" if order["customer"] == "bob" else f"{order['customer']}, 1 Main St"


@task
def ship(where: str) -> str:
    RAN.append("ship")
    if not where:
        raise ValueError("no shipping address")
    return f"shipped to {where}"


@entrypoint(checkpointer=URL, name="order")
def order(o: dict[str, object]) -> dict[str, object]:
    total = price(o).result()
    where = address(o).result()
    if total > 100 and not interrupt({"approve": total}):
        return {"total": total, "status": "rejected"}
    return {"total": total, "status": ship(where).result()}


def main() -> None:
    order.invoke({"customer": "ann", "qty": 2}, thread_id="order-ann")
    try:
        order.invoke({"customer": "bob", "qty": 1}, thread_id="order-bob")
    except ValueError as exc:
        print(f"order-bob failed: {exc}")
    assert isinstance(order.invoke({"customer": "cy", "qty": 10}, thread_id="order-cy"), Interrupted)

    threads = order.threads
    print("\nthreads, newest first:")
    for t in threads.list():
        print(f"  {t.thread_id:<10} {t.status:<12} run #{t.run_id}")
    for e in threads.state("order-bob").entries:
        print(f"  order-bob key {e.key} {e.task:<8} {e.status:<6} {e.result if e.error is None else e.error!r}")

    # Keys 0 (price) and 1 (address) are kept, address overridden; key 2 (ship) runs again.
    RAN.clear()
    fork = threads.fork("order-bob", at=2, new_thread_id="order-bob-fixed", overrides={"1": "bob, 9 Elm St"})
    print(f"\nforked {fork}: {order.invoke(None, thread_id=fork)}; ran only {RAN}")
    print(f"differences from the original: {[d.key for d in threads.diff('order-bob', fork)]}")

    bundle = json.loads(json.dumps(threads.export("order-cy")))
    elsewhere = Path(tempfile.mkdtemp()) / "elsewhere.db"
    Threads(f"sqlite:///{elsewhere}").import_bundle(bundle)
    moved = order.using(f"sqlite:///{elsewhere}")
    answered = moved.invoke(Command(resume=True), thread_id="order-cy")
    print(f"\norder-cy moved to {elsewhere.name}, answered there: {answered}")

    env = {**os.environ, "DURABLE_URL": URL}
    for command in (["threads"], ["show", "order-bob-fixed"]):
        print(f"\n$ durable {' '.join(command)}")
        out = subprocess.run([sys.executable, "-m", "durable", *command], env=env, capture_output=True, text=True)
        print(out.stdout.rstrip() or out.stderr.rstrip())
        if out.returncode != 0:
            sys.exit(f"durable {command[0]} failed")


if __name__ == "__main__":
    main()
