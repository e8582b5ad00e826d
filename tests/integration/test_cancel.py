"""`Entrypoint.cancel`: a running, paused, submitted or sleeping run is failed with RunCancelledError; resumable.

Every test runs on every store and on sync and async entrypoints (the ``store`` and ``flavor`` fixtures).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from durable import (
    Command,
    Interrupted,
    RunCancelledError,
    Store,
    ThreadNotFoundError,
    Worker,
    interrupt,
)
from durable.testing import FakeClock

Flavor = Any  # the `flavor` fixture from tests/conftest.py


def counted(f: Flavor, calls: Any, name: str) -> Any:
    def body(x: Any) -> Any:
        calls.hit(name)
        return x

    return f.task(name=name)(body)


def assert_cancelled(ep: Any, thread_id: str, run_id: int = 1) -> None:
    state = ep.get_state(thread_id=thread_id)
    assert state.status == "failed"
    assert isinstance(state.error, RunCancelledError)
    assert (state.error.thread_id, state.error.run_id) == (thread_id, run_id)
    assert (state.error_text or "").startswith("RunCancelledError")
    assert state.owner is None and state.wake_at is None


def test_cancelling_a_running_run_stops_it_at_its_next_write(store: Store, flavor: Flavor, calls: Any) -> None:
    started, release = threading.Event(), threading.Event()
    fast = counted(flavor, calls, "fast")

    def slow_body(x: int) -> Any:
        calls.hit("slow")
        if calls["slow"] == 1:
            started.set()
            assert (yield flavor.blocking(release.wait, 10))
        return x * 10

    slow = flavor.task(name="slow")(slow_body)
    after = counted(flavor, calls, "after")

    def flow(x: int) -> Any:
        a = yield fast(x)
        b = yield slow(a)
        c = yield after(b)
        return c

    ep = flavor.entrypoint(checkpointer=store)(flow)
    outcome: list[BaseException | Any] = []

    def run() -> None:
        try:
            outcome.append(flavor.invoke(ep, 2, thread_id="t"))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert started.wait(10)
        assert ep.cancel(thread_id="t") is True
        assert_cancelled(ep, "t")
    finally:
        release.set()
        runner.join(10)
    assert not runner.is_alive()
    [error] = outcome
    assert isinstance(error, RunCancelledError) and error.thread_id == "t"
    assert calls["after"] == 0  # nothing ran past the boundary
    assert_cancelled(ep, "t")
    assert [(e.key, e.task, e.status) for e in ep.get_state(thread_id="t").entries] == [("0", "fast", "ok")]

    # The journal is kept: a resume replays "fast" and runs the rest.
    assert flavor.invoke(ep, None, thread_id="t") == 20
    assert (calls["fast"], calls["slow"], calls["after"]) == (1, 2, 1)
    state = ep.get_state(thread_id="t")
    assert state.status == "completed"
    assert [(e.task, e.status) for e in state.entries] == [("fast", "ok"), ("slow", "ok"), ("after", "ok")]


def test_cancelling_a_paused_run(store: Store, flavor: Flavor, calls: Any) -> None:
    fast = counted(flavor, calls, "fast")

    def flow(x: int) -> Any:
        a = yield fast(x)
        answer = interrupt("ok?")
        return a, answer

    ep = flavor.entrypoint(checkpointer=store)(flow)
    assert isinstance(flavor.invoke(ep, 1, thread_id="t"), Interrupted)
    assert ep.cancel(thread_id="t") is True
    assert_cancelled(ep, "t")

    paused = flavor.invoke(ep, None, thread_id="t")  # resumed: it asks again
    assert isinstance(paused, Interrupted)
    assert tuple(flavor.invoke(ep, Command(resume="yes"), thread_id="t")) == (1, "yes")
    assert calls["fast"] == 1
    assert ep.get_state(thread_id="t").status == "completed"


def test_cancelling_a_submitted_run_keeps_workers_off_it(store: Store, flavor: Flavor, calls: Any) -> None:
    fast = counted(flavor, calls, "fast")

    def flow(x: int) -> Any:
        return (yield fast(x))

    ep = flavor.entrypoint(checkpointer=store)(flow)
    ep.submit(7, thread_id="job")
    assert ep.cancel(thread_id="job") is True
    assert_cancelled(ep, "job")
    assert Worker([ep], poll_interval=0.05).run_once().total == 0
    assert calls["fast"] == 0
    assert_cancelled(ep, "job")

    assert flavor.invoke(ep, None, thread_id="job") == 7
    assert calls["fast"] == 1 and ep.get_state(thread_id="job").status == "completed"


def test_cancelling_a_sleeping_run(store: Store, flavor: Flavor, calls: Any) -> None:
    import durable

    after = counted(flavor, calls, "after")
    if flavor.async_entrypoint:

        @durable.entrypoint(checkpointer=store, name="sleepy")
        async def ep(x: int) -> Any:
            await durable.asleep(3600)
            return await after(x)

    else:

        @durable.entrypoint(checkpointer=store, name="sleepy")
        def ep(x: int) -> Any:
            durable.sleep(3600)
            return after(x).result()

    ep.submit(3, thread_id="s")
    with FakeClock() as clock:
        assert Worker([ep], poll_interval=0.05).run_once().sleeping == 1
        assert ep.get_state(thread_id="s").wake_at is not None
        assert ep.cancel(thread_id="s") is True
        assert_cancelled(ep, "s")
        clock.advance(3600)
        assert flavor.invoke(ep, None, thread_id="s") == 3
    assert clock.slept == [] and calls["after"] == 1


def test_cancel_returns_false_when_there_is_nothing_to_cancel(store: Store, flavor: Flavor, calls: Any) -> None:
    fast = counted(flavor, calls, "fast")

    def flow(x: int) -> Any:
        return (yield fast(x))

    ep = flavor.entrypoint(checkpointer=store)(flow)
    assert flavor.invoke(ep, 1, thread_id="done") == 1
    assert ep.cancel(thread_id="done") is False
    state = ep.get_state(thread_id="done")
    assert (state.status, state.output, state.error) == ("completed", 1, None)

    ep.submit(2, thread_id="twice")
    assert ep.cancel(thread_id="twice") is True
    assert ep.cancel(thread_id="twice") is False  # failed already
    assert_cancelled(ep, "twice")

    with pytest.raises(ThreadNotFoundError):
        ep.cancel(thread_id="nobody")
