"""A deploy under running workflows: `durable verify` catches what would break them, then the fix ships.

    python examples/deploy_safety.py

Release 1 of a small order workflow (``shop.py``, written into a scratch directory) starts three orders in
separate processes: one crashes (SIGKILL) while charging the card, one waits for a manager's approval, one
finishes. Then release 2 is written over it in two attempts:

1. The ``Order`` model gains a ``currency`` field and the approval question is renamed. `durable verify` runs the
   two unfinished orders against it, running no task, reports that their recorded orders no longer read, and
   exits 1. Nothing was run or written.
2. ``load_order`` gets a version and an upgrade for the orders recorded by release 1: now `verify` finds that the
   paused order's question is asked under another id, so its answer would reach nothing.
3. The question keeps its id, and a new handling fee for big orders goes behind ``durable.patched(...)``:
   `durable verify` exits 0. `durable plan` says what resuming the crashed order would do, and the resume does
   exactly that. The paused order is answered and finishes without the fee (its journal is past that point); a
   new big order pays it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RELEASE_1 = """
import os, signal
from pydantic import BaseModel
from durable import entrypoint, interrupt, task

class Order(BaseModel):
    id: str
    cents: int

def log(event):
    with open("events.log", "a") as f:
        f.write(event + "\\n")

@task
def load_order(order_id: str) -> Order:
    log(f"load {order_id}")
    return Order(id=order_id, cents=1999)

@task
def charge(order: Order) -> str:
    log(f"charge {order.id} {order.cents}")
    if os.environ.get("CRASH_IN_CHARGE"):
        os.kill(os.getpid(), signal.SIGKILL)   # the machine dies mid-charge
    return f"receipt-{order.id}-{order.cents}"

@entrypoint(checkpointer="sqlite:///shop.db")
def fulfil(order_id: str) -> str:
    order = load_order(order_id).result()
    if order_id.startswith("big"):
        if not interrupt({"approve": order.id, "cents": order.cents}, id="approve"):
            return "rejected"
    return charge(order).result()
"""

BROKEN_RELEASE_2 = (
    RELEASE_1.replace("    cents: int\n", "    cents: int\n    currency: str\n")
    .replace('id="approve"', 'id="manager-approval"')
    .replace("Order(id=order_id, cents=1999)", 'Order(id=order_id, cents=1999, currency="EUR")')
)

UPGRADED_RELEASE_2 = BROKEN_RELEASE_2.replace(
    "@task\ndef load_order",
    '@task(version=2, upgrade={1: lambda old: Order(id=old.id, cents=old.cents, currency="USD")})\ndef load_order',
)

FIXED_RELEASE_2 = (
    UPGRADED_RELEASE_2.replace('id="manager-approval"', 'id="approve"')
    .replace(
        '    if order_id.startswith("big"):\n',
        '    if order_id.startswith("big"):\n'
        '        if durable.patched("handling-fee"):  # big orders started from now on pay a fee\n'
        "            order = order.model_copy(update={'cents': round(order.cents * 1.2)})\n",
    )
    .replace("import os, signal\n", "import os, signal\nimport durable\n")
)


def sh(workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run a command in the scratch directory (the shop module importable there) and return its output."""
    here = str(Path(__file__).resolve().parents[1])
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([here, str(workdir)]), **(env or {})}
    result = subprocess.run(args, cwd=workdir, env=full, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def invoke(workdir: Path, thread: str, value: str, **env: str) -> str:
    code = f"import durable, shop; print(shop.fulfil.invoke({value}, thread_id={thread!r}))"
    return sh(workdir, sys.executable, "-c", code, env=env, check=not env).strip()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="durable-deploy-"))
    shop = workdir / "shop.py"
    events = workdir / "events.log"

    print("== release 1: three orders")
    shop.write_text(RELEASE_1)
    invoke(workdir, "order-1", "'order-1'", CRASH_IN_CHARGE="1")
    print("order-1: the process was killed while charging the card")
    print("big-2:  ", invoke(workdir, "big-2", "'big-2'"))
    print("order-3:", invoke(workdir, "order-3", "'order-3'"))

    print("\n== release 2, first attempt: durable verify shop")
    shop.write_text(BROKEN_RELEASE_2)
    before = events.read_text()
    verdict = sh(workdir, sys.executable, "-m", "durable", "verify", "shop", check=False)
    print(verdict.rstrip())
    assert verdict.count("undecodable") == 2 and "2 would not replay cleanly" in verdict
    print("(exit 1: the deploy is stopped; no task ran, nothing was written)")

    print("\n== second attempt: load_order gets a version and an upgrade for release 1's orders")
    shop.write_text(UPGRADED_RELEASE_2)
    verdict = sh(workdir, sys.executable, "-m", "durable", "verify", "shop", check=False)
    print(verdict.rstrip())
    assert "diverges           big-2" in verdict and "1 would not replay cleanly" in verdict
    assert events.read_text() == before, "verify ran no task"

    print("\n== third attempt: the question keeps its id; a new fee goes behind a patch")
    shop.write_text(FIXED_RELEASE_2)
    print(sh(workdir, sys.executable, "-m", "durable", "verify", "shop").rstrip())
    plan = json.loads(sh(workdir, sys.executable, "-m", "durable", "plan", "shop:fulfil", "order-1", "--json"))
    print(
        f"plan for order-1: replay keys {plan['replayed']}, then run {plan['next']['task']!r} ({plan['next']['why']})"
    )

    print("\n== deploy and carry on")
    print("order-1:", invoke(workdir, "order-1", "None"))
    print("big-2:  ", invoke(workdir, "big-2", "durable.Command(resume=True)"))
    print("big-4:  ", invoke(workdir, "big-4", "'big-4'"))
    print("big-4:  ", invoke(workdir, "big-4", "durable.Command(resume=True)"))
    log = events.read_text().splitlines()
    after_fix = log[len(before.splitlines()) :]
    print("\ntask bodies run after the deploy:", after_fix)
    assert after_fix[0] == "charge order-1 1999", "the plan said charge runs next; load_order is not run again"
    assert "charge big-2 1999" in after_fix, "big-2 was past the patch point under release 1: no fee"
    assert "charge big-4 2399" in after_fix, "a run started after the deploy takes the patched branch"


if __name__ == "__main__":
    main()
