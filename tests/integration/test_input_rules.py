"""What an input means on a thread: new run, resume, stored value, or a clear error that changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from durable import ConfigurationError, Store, ThreadNotFoundError, UnfinishedRunError
from durable.stores._base import ThreadFilter

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


def doubling_flow(f: Flavor, store: Store, calls: Any, failing: list[bool] | None = None) -> Any:
    """An entrypoint returning 2 * input + 1 through one task, which raises Boom while ``failing[0]``."""

    @f.task
    def double(x: int) -> int:
        calls.hit("double")
        if failing and failing[0]:
            raise Boom("down")
        return 2 * x

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        calls.hit("flow")
        return (yield double(x)) + 1

    return flow


def test_new_input_on_an_unknown_thread_starts_a_run(store: Store, flavor: Flavor, calls: Any) -> None:
    """New input on a thread the store has never seen starts run 1 and returns its value."""
    flow = doubling_flow(flavor, store, calls)
    assert flavor.invoke(flow, 3, thread_id="t") == 7
    state = flow.get_state(thread_id="t")
    assert (state.status, state.run_id, state.output) == ("completed", 1, 7)
    assert calls.as_dict() == {"flow": 1, "double": 1}


def test_new_input_on_a_finished_thread_starts_a_new_run(store: Store, flavor: Flavor, calls: Any) -> None:
    """New input after a finished run starts the next run, which runs its tasks afresh."""
    flow = doubling_flow(flavor, store, calls)
    flavor.invoke(flow, 3, thread_id="t")
    assert flavor.invoke(flow, 3, thread_id="t") == 7
    assert flavor.invoke(flow, 10, thread_id="t") == 21
    state = flow.get_state(thread_id="t")
    assert (state.status, state.run_id, state.output) == ("completed", 3, 21)
    assert [(e.key, e.result, e.attempt) for e in state.entries] == [("0", 20, 1)]
    assert calls.as_dict() == {"flow": 3, "double": 3}


def test_none_on_a_finished_thread_returns_its_value_without_running(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """None on a finished thread returns the stored value; nothing runs and the journal is unchanged."""
    flow = doubling_flow(flavor, store, calls)
    flavor.invoke(flow, 3, thread_id="t")
    before = journal.snapshot(flow, "t")
    assert flavor.invoke(flow, None, thread_id="t") == 7
    assert flavor.invoke(flow, None, thread_id="t") == 7
    assert calls.as_dict() == {"flow": 1, "double": 1}
    assert journal.snapshot(flow, "t") == before


def test_none_on_an_unknown_thread_raises_thread_not_found(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """None on an unknown thread raises ThreadNotFoundError, runs nothing and creates no thread."""
    flow = doubling_flow(flavor, store, calls)
    with pytest.raises(ThreadNotFoundError, match="'nobody'"):
        flavor.invoke(flow, None, thread_id="nobody")
    assert calls.total() == 0
    assert journal.snapshot(flow, "nobody") is None
    # The thread was not half-created: new input still starts its run 1.
    assert flavor.invoke(flow, 1, thread_id="nobody") == 3
    assert flow.get_state(thread_id="nobody").run_id == 1


def test_none_resumes_a_failed_run(store: Store, flavor: Flavor, calls: Any) -> None:
    """None on a failed thread resumes the failed run with its own input."""
    failing = [True]
    flow = doubling_flow(flavor, store, calls, failing)
    with pytest.raises(Boom):
        flavor.invoke(flow, 5, thread_id="t")
    failing[0] = False
    assert flavor.invoke(flow, None, thread_id="t") == 11
    state = flow.get_state(thread_id="t")
    assert (state.status, state.run_id, state.output) == ("completed", 1, 11)


@pytest.mark.parametrize("new_input", [5, 6], ids=["same-input", "other-input"])
def test_new_input_on_an_unfinished_run_raises_and_changes_nothing(
    store: Store, flavor: Flavor, calls: Any, journal: Any, new_input: int
) -> None:
    """New input while the last run failed raises UnfinishedRunError; the journal and the pending run are kept."""
    failing = [True]
    flow = doubling_flow(flavor, store, calls, failing)
    with pytest.raises(Boom):
        flavor.invoke(flow, 5, thread_id="t")
    before, ran = journal.snapshot(flow, "t"), calls.as_dict()

    with pytest.raises(UnfinishedRunError, match=r"invoke\(None, thread_id='t'\)") as info:
        flavor.invoke(flow, new_input, thread_id="t")
    assert (info.value.run_id, info.value.status) == (1, "failed")
    assert journal.snapshot(flow, "t") == before
    assert calls.as_dict() == ran

    # The refused input was not recorded: resuming runs the original input.
    failing[0] = False
    assert flavor.invoke(flow, None, thread_id="t") == 11


def test_thread_id_can_be_given_in_a_config(store: Store, flavor: Flavor, calls: Any) -> None:
    """``config={"configurable": {"thread_id": ...}}`` names the same thread as ``thread_id=``."""
    flow = doubling_flow(flavor, store, calls)
    config = {"configurable": {"thread_id": "t"}}
    assert flavor.invoke(flow, 1, config=config) == 3
    assert flavor.invoke(flow, None, thread_id="t") == 3
    assert flow.get_state(config=config).output == 3
    assert flavor.invoke(flow, 2, config=config, thread_id="t") == 5


def test_a_uuid_thread_id_names_the_same_thread_as_its_string(store: Store, flavor: Flavor, calls: Any) -> None:
    """A UUID thread id and its string form are the same thread."""
    flow = doubling_flow(flavor, store, calls)
    tid = uuid.uuid4()
    assert flavor.invoke(flow, 1, thread_id=tid) == 3
    assert flavor.invoke(flow, None, thread_id=str(tid)) == 3
    assert flow.get_state(thread_id=tid).thread_id == str(tid)


NO_THREAD = {
    "no-thread-id": {},
    "empty-config": {"config": {}},
    "config-without-thread-id": {"config": {"configurable": {}}},
}
BAD_OPTIONS = {
    "empty-thread-id": {"thread_id": ""},
    "thread-id-outside-configurable": {"config": {"thread_id": "t"}},
    "disagreeing-thread-ids": {"thread_id": "t", "config": {"configurable": {"thread_id": "u"}}},
    "bad-durability": {"thread_id": "t", "durability": "fast"},
}
CASES = [pytest.param(o, None, id=f"resume-{k}") for k, o in (NO_THREAD | BAD_OPTIONS).items()] + [
    pytest.param(o, 9, id=f"new-input-{k}") for k, o in BAD_OPTIONS.items()
]


@pytest.mark.parametrize(("options", "input"), CASES)
def test_bad_options_raise_configuration_error_and_change_nothing(
    store: Store, flavor: Flavor, calls: Any, journal: Any, options: dict[str, Any], input: int | None
) -> None:
    """A conflicting, empty or misplaced thread id, a resume naming no thread, or an unknown durability, raises
    ConfigurationError; nothing runs."""
    failing = [True]
    flow = doubling_flow(flavor, store, calls, failing)
    with pytest.raises(Boom):
        flavor.invoke(flow, 5, thread_id="t")
    failing[0] = False
    before, ran = journal.snapshot(flow, "t"), calls.as_dict()

    with pytest.raises(ConfigurationError):
        flavor.invoke(flow, input, **options)
    assert journal.snapshot(flow, "t") == before
    assert journal.snapshot(flow, "u") is None
    assert calls.as_dict() == ran


@pytest.mark.parametrize("options", NO_THREAD.values(), ids=NO_THREAD.keys())
def test_new_input_naming_no_thread_runs_on_a_thread_of_its_own(
    store: Store, flavor: Flavor, calls: Any, options: dict[str, Any]
) -> None:
    """New input with no thread id runs on a new thread (as a LangGraph program without a checkpointer runs),
    a different one each time; nothing else is touched."""
    flow = doubling_flow(flavor, store, calls)
    assert flavor.invoke(flow, 4, **options) == 9
    assert flavor.invoke(flow, 4, **options) == 9
    made = [s.thread_id for s in store.list_threads(ThreadFilter())]
    assert len(made) == 2 and len(set(made)) == 2
    assert calls.total() == 4


def test_bad_durability_on_a_new_thread_creates_nothing(store: Store, flavor: Flavor, calls: Any, journal: Any) -> None:
    """An unknown durability mode is refused before the thread is created."""
    flow = doubling_flow(flavor, store, calls)
    with pytest.raises(ConfigurationError, match="durability"):
        flavor.invoke(flow, 1, thread_id="t", durability="eventually")
    assert journal.snapshot(flow, "t") is None
    assert calls.total() == 0


@pytest.mark.parametrize("options", [{}, {"config": {"configurable": {}}}], ids=["nothing", "empty-configurable"])
def test_get_state_without_a_thread_id_raises_configuration_error(
    store: Store, flavor: Flavor, calls: Any, options: dict[str, Any]
) -> None:
    """``get_state`` needs a thread id too."""
    flow = doubling_flow(flavor, store, calls)
    with pytest.raises(ConfigurationError):
        flow.get_state(**options)


def test_get_state_of_an_unknown_thread_raises_thread_not_found(store: Store, flavor: Flavor, calls: Any) -> None:
    """``get_state`` on a thread with no journal raises ThreadNotFoundError."""
    flow = doubling_flow(flavor, store, calls)
    with pytest.raises(ThreadNotFoundError):
        flow.get_state(thread_id="nobody")
