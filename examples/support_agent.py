"""A LangGraph-style support agent on durable: long-term memory, run context, streaming, a cache, a person.

    python examples/support_agent.py

Written as a LangGraph Functional-API program would be (its imports rewritten: see
docs/porting-from-langgraph.md), it answers two tickets from the same customer on two threads:

- the customer's preferences live in `Memory` (LangGraph's long-term store), kept in the journal's own
  SQLite file, so the second thread knows what the first one learned;
- the agent receives `config`, `writer`, `store` and `runtime` (with `context=`: who is on duty) as
  parameters, as in LangGraph;
- the slow knowledge-base lookup has a `CachePolicy`: the second ticket asking the same thing is served
  from the cache (streamed with ``{"__metadata__": {"cached": True}}``), and the hit is journaled;
- a refund over the limit waits for a person (`interrupt`), answered with `Command(resume=...)` by id.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durable import (
    Cache,
    CachePolicy,
    Command,
    Interrupted,
    Memory,
    RetryPolicy,
    Runtime,
    SQLiteStore,
    entrypoint,
    interrupt,
    task,
)

JOURNAL = SQLiteStore(Path(tempfile.mkdtemp()) / "support.db")
LOOKUPS: list[str] = []


@dataclass(frozen=True)
class OnDuty:
    agent: str
    refund_limit: int


@task(cache_policy=CachePolicy(ttl=3600))
def search_kb(question: str) -> str:
    """The slow part (a vector search, an LLM call): cached across threads for an hour."""
    LOOKUPS.append(question)
    return {"refund": "Refunds go back to the card within 5 days.", "shipping": "Ships in 2 days."}.get(
        question.split()[0], "Let me find out."
    )


@task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, retry_on=ConnectionError))
def send_reply(customer: str, text: str) -> str:
    return f"to {customer}: {text}"


@entrypoint(checkpointer=JOURNAL, store=Memory(), cache=Cache(), context_schema=OnDuty)
def support(ticket: dict[str, Any], *, config: Any, writer: Any, store: Any, runtime: Runtime[OnDuty]) -> str:
    customer, topic = ticket["customer"], ticket["topic"]
    prefs = store.get(("customers", customer), "prefs")
    tone = prefs.value["tone"] if prefs else "formal"
    writer(f"{runtime.context.agent} picks up {config['configurable']['thread_id']} ({tone})")
    answer = search_kb(f"{topic} policy").result()
    if ticket.get("refund", 0) > runtime.context.refund_limit:
        approved = interrupt({"refund": ticket["refund"], "customer": customer}, id="refund")
        answer += " Refund approved." if approved else " Refund declined."
    store.put(("customers", customer), "prefs", {"tone": ticket.get("tone", tone)})
    return send_reply(customer, answer).result()


def main() -> None:
    duty = OnDuty(agent="sam", refund_limit=50)
    first = {"configurable": {"thread_id": "ticket-1"}}
    for chunk in support.stream({"customer": "ann", "topic": "refund", "tone": "casual"}, first,
                                context=duty, stream_mode=["custom", "updates"]):  # fmt: skip
        print("ticket-1", chunk)

    second = {"configurable": {"thread_id": "ticket-2"}}
    paused = support.invoke({"customer": "ann", "topic": "refund", "refund": 80}, second, context=duty)
    assert isinstance(paused, Interrupted) and "__interrupt__" in paused
    print("ticket-2 waits for a person:", paused["__interrupt__"][0].value)
    for chunk in support.stream(Command(resume={"refund": True}), second, context=duty):
        print("ticket-2", chunk)

    print("knowledge-base lookups run:", LOOKUPS)  # once: the second ticket's was a cache hit
    print("ann's preferences:", support.store.get(("customers", "ann"), "prefs").value)
    assert LOOKUPS == ["refund policy"]


if __name__ == "__main__":
    main()
