"""Durability modes change when results are written, never what is journaled."""

from __future__ import annotations

from typing import Any

import pytest

from durable import Store

Flavor = Any  # the `flavor` fixture from tests/conftest.py

MODES = ["sync", "async", "exit"]


class Outage(Exception):
    pass


def workflow(f: Flavor, store: Store, calls: Any, down: list[bool]) -> Any:
    """Sequential, nested and fanned-out tasks; ``rank`` fails while ``down[0]``."""

    @f.task(name="fetch")
    def fetch(i: int) -> str:
        calls.hit("fetch")
        return f"doc{i}"

    @f.task(name="embed")
    def embed(doc: str) -> Any:
        calls.hit("embed")
        return (yield [fetch(len(doc)), fetch(len(doc) + 1)])

    @f.task(name="rank")
    def rank(docs: list[Any]) -> list[Any]:
        calls.hit("rank")
        if down[0]:
            raise Outage("ranker down")
        return sorted(docs, reverse=True)

    @f.entrypoint(checkpointer=store)
    def flow(n: int) -> Any:
        docs = yield [fetch(i) for i in range(n)]
        vectors = yield [embed(d) for d in docs]
        return (yield rank(vectors))

    return flow


def normalized(ep: Any, thread_id: str) -> list[tuple[Any, ...]]:
    """The journal without timestamps, in key order (the write order may differ between modes)."""
    entries = ep.get_state(thread_id=thread_id).entries
    return sorted((e.key, e.task, e.status, e.result, repr(e.error), e.attempt) for e in entries)


@pytest.mark.parametrize("durability", MODES)
def test_every_mode_journals_the_same_as_sync(store: Store, flavor: Flavor, calls: Any, durability: str) -> None:
    """A successful run leaves the same journal and output in "async" and "exit" modes as in "sync"."""
    flow = workflow(flavor, store, calls, [False])
    expected = flavor.invoke(flow, 3, thread_id="reference", durability="sync")
    assert flavor.invoke(flow, 3, thread_id="t", durability=durability) == expected
    assert normalized(flow, "t") == normalized(flow, "reference")
    assert len(normalized(flow, "t")) == 3 + 3 + 6 + 1
    state = flow.get_state(thread_id="t")
    assert (state.status, state.output) == ("completed", expected)


@pytest.mark.parametrize("durability", MODES)
def test_every_mode_records_a_failure_and_resumes_from_it(
    store: Store, flavor: Flavor, calls: Any, durability: str
) -> None:
    """In every mode a failed run's finished tasks and error are journaled, and the resume reruns only the failure."""
    down = [True]
    flow = workflow(flavor, store, calls, down)
    with pytest.raises(Outage):
        flavor.invoke(flow, 3, thread_id="t", durability=durability)
    state = flow.get_state(thread_id="t")
    assert state.status == "failed"
    assert [(e.key, e.status) for e in state.entries if e.key == "6"] == [("6", "error")]
    assert len(state.entries) == 3 + 3 + 6 + 1
    ran = calls.as_dict()

    down[0] = False
    assert flavor.invoke(flow, None, thread_id="t", durability=durability) == [["doc4", "doc5"]] * 3
    assert calls.as_dict() == {**ran, "rank": ran["rank"] + 1}


@pytest.mark.parametrize(("durability", "visible"), [("sync", True), ("exit", False)])
def test_when_a_result_is_committed(store: Store, flavor: Flavor, durability: str, visible: bool) -> None:
    """In "sync" mode a result is in the store before its future resolves; in "exit" mode only when the run ends."""
    f = flavor
    seen: list[list[str]] = []

    @f.task(name="fetch")
    def fetch(x: int) -> int:
        return x + 1

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        a = yield fetch(x)
        seen.append([e.key for e in flow.get_state(thread_id="t").entries])
        return a

    assert flavor.invoke(flow, 1, thread_id="t", durability=durability) == 2
    assert seen == [["0"] if visible else []]
    assert [e.key for e in flow.get_state(thread_id="t").entries] == ["0"]
