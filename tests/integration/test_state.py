"""`get_state`: the thread's latest run, its status, output or error, and its journal entries."""

from __future__ import annotations

import time
from typing import Any

import pytest

from durable import JournalEntry, Store, ThreadState

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Outage(Exception):
    pass


def two_step(f: Flavor, store: Store, down: list[bool]) -> Any:
    @f.task(name="fetch")
    def fetch(x: int) -> dict[str, int]:
        return {"x": x}

    @f.task(name="llm")
    def llm(doc: dict[str, int]) -> str:
        if down[0]:
            raise Outage(f"llm down for {doc['x']}")
        return f"answer {doc['x']}"

    @f.entrypoint(checkpointer=store, name="two_step")
    def flow(x: int) -> Any:
        doc = yield fetch(x)
        return (yield llm(doc))

    return flow


def test_state_of_a_completed_run(store: Store, flavor: Flavor) -> None:
    """A completed thread shows its run, output, ok entries with results and ordered timestamps, and no owner."""
    flow = two_step(flavor, store, [False])
    t0 = time.time()
    flavor.invoke(flow, 7, thread_id="t")
    t1 = time.time()

    state = flow.get_state(thread_id="t")
    assert isinstance(state, ThreadState)
    assert (state.thread_id, state.status, state.run_id, state.entrypoint) == ("t", "completed", 1, "two_step")
    assert (state.output, state.error, state.error_text) == ("answer 7", None, None)
    assert state.interrupts == ()
    assert (state.owner, state.lease_expires) == (None, None)
    assert all(isinstance(e, JournalEntry) for e in state.entries)
    assert [(e.key, e.task, e.status, e.result, e.error, e.attempt) for e in state.entries] == [
        ("0", "fetch", "ok", {"x": 7}, None, 1),
        ("1", "llm", "ok", "answer 7", None, 1),
    ]
    assert state.finished_at is not None
    first, second = state.entries
    assert t0 <= state.started_at <= first.started_at <= first.finished_at <= second.started_at
    assert second.started_at <= second.finished_at <= state.finished_at <= t1
    assert first.duration == first.finished_at - first.started_at >= 0


def test_state_of_a_failed_run(store: Store, flavor: Flavor) -> None:
    """A failed thread shows status "failed", the error and its traceback text, and the failed entry's error."""
    flow = two_step(flavor, store, [True])
    with pytest.raises(Outage):
        flavor.invoke(flow, 7, thread_id="t")

    state = flow.get_state(thread_id="t")
    assert (state.status, state.run_id, state.output) == ("failed", 1, None)
    assert isinstance(state.error, Outage)
    assert str(state.error) == "llm down for 7"
    assert state.error_text is not None
    assert "Traceback" in state.error_text and "Outage: llm down for 7" in state.error_text
    assert state.finished_at is not None
    ok, failed = state.entries
    assert (ok.key, ok.status, ok.result, ok.error) == ("0", "ok", {"x": 7}, None)
    assert (failed.key, failed.task, failed.status, failed.result) == ("1", "llm", "error", None)
    assert isinstance(failed.error, Outage) and str(failed.error) == "llm down for 7"


def test_state_after_a_resume_shows_every_attempt(store: Store, flavor: Flavor) -> None:
    """After a successful resume the run is completed and the journal holds the error and the retry."""
    down = [True]
    flow = two_step(flavor, store, down)
    with pytest.raises(Outage):
        flavor.invoke(flow, 7, thread_id="t")
    down[0] = False
    flavor.invoke(flow, None, thread_id="t")
    state = flow.get_state(thread_id="t")
    assert (state.status, state.run_id, state.output, state.error, state.error_text) == (
        "completed",
        1,
        "answer 7",
        None,
        None,
    )
    assert [(e.key, e.status, e.attempt) for e in state.entries] == [("0", "ok", 1), ("1", "error", 1), ("1", "ok", 2)]


def test_state_shows_only_the_latest_run(store: Store, flavor: Flavor) -> None:
    """After a second run on a thread, ``get_state`` shows that run and its own entries only."""
    flow = two_step(flavor, store, [False])
    flavor.invoke(flow, 1, thread_id="t")
    flavor.invoke(flow, 2, thread_id="t")
    state = flow.get_state(thread_id="t")
    assert (state.run_id, state.output) == (2, "answer 2")
    assert [e.result for e in state.entries] == [{"x": 2}, "answer 2"]


def test_state_is_shared_by_every_entrypoint_on_the_store(store: Store, flavor: Flavor) -> None:
    """Another entrypoint object on the same store reads the same thread state."""
    flow = two_step(flavor, store, [False])
    other = two_step(flavor, store, [False])
    flavor.invoke(flow, 3, thread_id="t")
    assert other.get_state(thread_id="t") == flow.get_state(thread_id="t")
    assert flavor.invoke(other, None, thread_id="t") == "answer 3"
