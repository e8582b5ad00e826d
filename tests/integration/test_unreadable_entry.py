"""One journal entry that cannot be read no longer hides a thread: `get_state` and `durable show` show the others and
describe that one (its type, size and digest, never deserialized), on every store."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

import durable
from durable import SealedValue, Store, Threads


@pytest.fixture
def gone() -> Iterator[type]:
    """A class in a module that can be imported now and not later (a module deleted by a deploy)."""
    module = types.ModuleType("durable_test_gone")
    thing = type("Thing", (), {"__module__": "durable_test_gone"})
    module.Thing = thing  # type: ignore[attr-defined]
    sys.modules["durable_test_gone"] = module
    yield thing
    sys.modules.pop("durable_test_gone", None)


def test_the_other_entries_are_shown_and_the_unreadable_one_described(store: Store, gone: type) -> None:
    @durable.task
    def make() -> object:
        return gone()

    @durable.task
    def count() -> int:
        return 5

    @durable.entrypoint(checkpointer=store)
    def flow(_: int) -> int:
        make().result()
        return count().result()

    assert flow.invoke(1, thread_id="t") == 5
    del sys.modules["durable_test_gone"]
    entries = flow.get_state(thread_id="t").entries
    assert [(e.key, e.task) for e in entries] == [("0", "make"), ("1", "count")]
    unreadable, fine = entries
    assert isinstance(unreadable.result, SealedValue) and unreadable.result.why == "unreadable"
    assert unreadable.result.type_name == "durable_test_gone.Thing" and "durable_test_gone" in unreadable.result.detail
    assert fine.result == 5
    tools = Threads(store, unsafe_unpickle=True).state("t").entries  # the operator's tools too
    assert tools[1].result == 5 and isinstance(tools[0].result, SealedValue)
