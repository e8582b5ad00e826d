"""Values that cannot be journaled raise SerializationError, and the journal stays consistent."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from durable import ReplayedError, SerializationError, Store

Flavor = Any  # the `flavor` fixture from tests/conftest.py


def test_an_unpicklable_task_result_raises_and_records_nothing_for_its_key(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """A task returning a lock raises SerializationError naming task and type; its key stays unrecorded."""
    f = flavor
    fixed = [False]

    @f.task(name="fetch")
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.task(name="make_handle")
    def make_handle(x: int) -> Any:
        calls.hit("make_handle")
        return f"handle-{x}" if fixed[0] else threading.Lock()

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        a = yield fetch(x)
        return (yield make_handle(a))

    with pytest.raises(SerializationError, match="'make_handle'") as info:
        f.invoke(flow, 1, thread_id="t")
    assert info.value.type_name == "_thread.lock"
    assert "_thread.lock" in str(info.value)
    state = flow.get_state(thread_id="t")
    assert state.status == "failed"
    assert [(e.key, e.task, e.status) for e in state.entries] == [("0", "fetch", "ok")]

    # Nothing was recorded for key "1", so a resume runs it again.
    fixed[0] = True
    assert f.invoke(flow, None, thread_id="t") == "handle-2"
    assert calls.as_dict() == {"fetch": 1, "make_handle": 2}


def test_an_unpicklable_input_on_a_new_thread_raises_and_creates_nothing(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """An input that cannot be pickled raises SerializationError before anything runs or is stored."""
    f = flavor

    @f.entrypoint(checkpointer=store)
    def flow(x: Any) -> str:
        calls.hit("flow")
        return "ran"

    with pytest.raises(SerializationError, match="input") as info:
        f.invoke(flow, threading.Lock(), thread_id="t")
    assert info.value.type_name == "_thread.lock"
    assert calls.total() == 0
    assert journal.snapshot(flow, "t") is None
    assert f.invoke(flow, "ok", thread_id="t") == "ran"
    assert flow.get_state(thread_id="t").run_id == 1


def test_an_unpicklable_input_on_a_finished_thread_changes_nothing(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """An unpicklable input for a thread with a finished run is refused; the thread keeps its last run."""
    f = flavor

    @f.task
    def echo(x: Any) -> Any:
        calls.hit("echo")
        return x

    @f.entrypoint(checkpointer=store)
    def flow(x: Any) -> Any:
        return (yield echo(x))

    f.invoke(flow, "first", thread_id="t")
    before = journal.snapshot(flow, "t")
    with pytest.raises(SerializationError):
        f.invoke(flow, threading.Lock(), thread_id="t")
    assert journal.snapshot(flow, "t") == before
    assert calls["echo"] == 1
    assert f.invoke(flow, None, thread_id="t") == "first"


def test_an_unpicklable_output_fails_the_run_and_keeps_its_tasks(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """An entrypoint returning a lock raises SerializationError; the run is failed with its tasks recorded."""
    f = flavor

    @f.task
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        yield fetch(x)
        return threading.Lock()

    with pytest.raises(SerializationError, match="output"):
        f.invoke(flow, 1, thread_id="t")
    state = flow.get_state(thread_id="t")
    assert state.status == "failed"
    assert [(e.key, e.status, e.result) for e in state.entries] == [("0", "ok", 2)]


class Unpicklable(Exception):
    """An exception whose __init__ takes two arguments and has no __reduce__: it pickles but cannot unpickle."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"{code}: {why}")


def test_a_handled_error_that_cannot_be_pickled_replays_as_replayed_error(
    store: Store, flavor: Flavor, calls: Any
) -> None:
    """A caught task error that cannot round-trip through pickle replays as ReplayedError with its type and text."""
    f = flavor
    finish_down = [True]
    caught: list[BaseException] = []

    @f.task(name="call_api")
    def call_api() -> str:
        calls.hit("call_api")
        raise Unpicklable(418, "teapot")

    @f.task(name="finish")
    def finish(x: str) -> str:
        calls.hit("finish")
        if finish_down[0]:
            raise RuntimeError("finish down")
        return x

    @f.entrypoint(checkpointer=store)
    def flow(_: str) -> Any:
        try:
            answer = yield call_api()
        except Exception as exc:
            caught.append(exc)
            answer = "fallback"
        return (yield finish(answer))

    with pytest.raises(RuntimeError):
        f.invoke(flow, "go", thread_id="t")
    finish_down[0] = False
    assert f.invoke(flow, None, thread_id="t") == "fallback"
    assert calls.as_dict() == {"call_api": 1, "finish": 2}
    first, replayed = caught
    assert isinstance(first, Unpicklable)
    assert isinstance(replayed, ReplayedError)
    assert replayed.type_name.endswith("Unpicklable")
    assert replayed.message == "418: teapot"
    assert "teapot" in replayed.traceback_text
