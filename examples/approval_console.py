"""Answer a workflow's question from the web console (``durable ui``), in a browser.

    python examples/approval_console.py

It starts an approval run on a SQLite file: a task drafts a refund, then ``interrupt(...)`` asks a person
to approve it, with a ``response_schema`` (a Pydantic model: the console draws a form from it, and refuses
an answer that does not fit before anything is journaled) and a two-day ``timeout`` (then the run goes on
with the default: not approved). The run pauses and this process exits; it prints the command that serves
the console over that journal::

    pip install 'durable-exec[ui]'
    durable ui examples/approval_console.py --url sqlite:///.../refunds.db

Open the address it prints, answer in the inbox, and watch the run finish on the thread's page: the
console was given this file, so it carries answered runs itself (without it, an answer waits for
``durable worker``). ``--answer`` answers from here instead, as the console's API would
(``Threads.answer``), and finishes the run, which is what the test suite runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from durable import JsonSerializer, SQLiteStore, Threads, entrypoint, interrupt, task


class Decision(BaseModel):
    """What the approver answers."""

    approve: bool = Field(description="refund the customer this amount")
    amount: int = Field(ge=0, le=500, description="the amount to refund, in euros (at most 500)")
    reason: Literal["damaged", "late", "goodwill"] = "goodwill"
    note: str = ""


@task
def draft_refund(order: str) -> dict[str, object]:
    """A stand-in for the model that reads the complaint and proposes a refund."""
    return {"order": order, "amount": 42, "why": "the parcel arrived damaged"}


@task
def pay_refund(order: str, amount: int) -> str:
    return f"refunded {amount} EUR on {order}"


@entrypoint(name="refund_approval", serializer=JsonSerializer())
def refund_approval(order: str) -> dict[str, object]:
    proposal = draft_refund(order).result()
    decision = interrupt(
        {"question": f"Refund order {order}?", "proposal": proposal},
        response_schema=Decision,
        timeout=timedelta(days=2),
        default={"approve": False, "amount": 0, "note": "nobody answered in two days"},
    )
    if not decision.approve:
        return {"order": order, "refunded": False, "note": decision.note}
    return {"order": order, "refunded": True, "receipt": pay_refund(order, decision.amount).result()}


def main() -> int:
    folder = Path(os.environ.get("DURABLE_EXAMPLE_DIR") or tempfile.mkdtemp(prefix="durable-console-"))
    db = folder / "refunds.db"
    store = SQLiteStore(db)
    flow = refund_approval.using(store)
    paused = flow.invoke("A-1001", thread_id="refund-A-1001")
    (question,) = paused.interrupts
    print(f"thread refund-A-1001 is waiting for a person: {question.value['question']}")
    print(f"  the form comes from its schema: {sorted(question.response_schema['properties'])}")
    print("answer it in a browser:")
    here = os.path.relpath(__file__)
    print(f"  durable ui {here if not here.startswith('..') else os.path.abspath(__file__)} --url sqlite:///{db}")
    if "--answer" in sys.argv or not sys.stdin.isatty():
        threads = Threads(store)
        threads.answer("refund-A-1001", {question.id: {"approve": True, "amount": 40}}, by="example")
        out = flow.invoke(None, thread_id="refund-A-1001")
        print(f"answered here instead (as the console would): {out}")
        answer = next(e for e in flow.get_state(thread_id="refund-A-1001").entries if e.status == "answer")
        print(f"the journal says who answered: {answer.answered_by}")
        assert out["refunded"] is True
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
