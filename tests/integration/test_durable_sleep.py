"""`durable.now`/`uuid4`/`random` replayed from the journal, and `durable.sleep`/`asleep` journaling their wake-up.

Time is `durable.testing.FakeClock`. A crash during a sleep is simulated by a clock whose sleep raises a
`BaseException` (the process "dies" there); ``clock.advance`` is the time it lay dead before the resume.
A worker carrying a run suspends a long sleep instead of sleeping; those tests run on every store.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import pytest

import durable
from durable import ConfigurationError, MemoryStore, Store, UsageError, Worker, entrypoint, task
from durable.testing import FakeClock

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Transient(Exception):
    pass


def flaky(calls: Any, name: str, failures: int) -> Any:
    def body() -> int:
        calls.hit(name)
        if calls[name] <= failures:
            raise Transient(f"{name} attempt {calls[name]}")
        return calls[name]

    body.__qualname__ = body.__name__ = name
    return body


def sleeper(is_async: bool, store: Store, seconds: float, after: Any, name: str = "sleeper") -> Any:
    """An entrypoint that sleeps durably ``seconds``, then waits for the task ``after()``."""
    if is_async:

        @entrypoint(checkpointer=store, name=name)
        async def aflow(_: Any) -> Any:
            await durable.asleep(seconds)
            return await after()

        return aflow

    @entrypoint(checkpointer=store, name=name)
    def flow(_: Any) -> Any:
        durable.sleep(seconds)
        return after().result()

    return flow


def counter(calls: Any, name: str, is_async: bool) -> Any:
    if is_async:

        @task(name=name)
        async def acount() -> int:
            calls.hit(name)
            return calls[name]

        return acount

    @task(name=name)
    def count() -> int:
        calls.hit(name)
        return calls[name]

    return count


def invoke(is_async: bool, ep: Any, input: Any, thread_id: str = "t") -> Any:
    return asyncio.run(ep.ainvoke(input, thread_id=thread_id)) if is_async else ep.invoke(input, thread_id=thread_id)


# -- now / uuid4 / random --------------------------------------------------------------------------


def test_now_uuid4_and_random_are_journaled_and_replayed(flavor: Flavor, calls: Any) -> None:
    seen: list[tuple[float, uuid.UUID, float]] = []
    fetch = flavor.task(name="fetch")(flaky(calls, "fetch", failures=1))

    def flow(_: Any) -> Any:
        values = (durable.now(), durable.uuid4(), durable.random())
        seen.append(values)
        yield fetch()
        return values

    ep = flavor.entrypoint(checkpointer=MemoryStore())(flow)
    with FakeClock() as clock:
        with pytest.raises(Transient):
            flavor.invoke(ep, "go", thread_id="t")
        clock.advance(50.0)
        result = flavor.invoke(ep, None, thread_id="t")
    assert len(seen) == 2 and seen[0] == seen[1]
    now, uid, rnd = seen[0]
    assert isinstance(uid, uuid.UUID) and uid.version == 4
    assert isinstance(now, float) and isinstance(rnd, float) and 0.0 <= rnd < 1.0
    assert now == clock.now - 50.0  # the first run's time, not the resumed one's
    assert tuple(result) == seen[0]
    entries = ep.get_state(thread_id="t").entries
    assert [(e.key, e.task, e.status) for e in entries[:3]] == [
        ("0", "durable.now", "ok"),
        ("1", "durable.uuid4", "ok"),
        ("2", "durable.random", "ok"),
    ]
    assert entries[0].result == now and str(entries[1].result) == str(uid) and entries[2].result == rnd


def test_two_runs_get_fresh_values(flavor: Flavor) -> None:
    def flow(_: Any) -> Any:
        return str(durable.uuid4()), durable.random()

    ep = flavor.entrypoint(checkpointer=MemoryStore())(flow)
    a = flavor.invoke(ep, "go", thread_id="a")
    b = flavor.invoke(ep, "go", thread_id="b")
    assert a[0] != b[0] and a[1] != b[1]


def test_outside_a_run_they_return_fresh_values() -> None:
    assert durable.uuid4() != durable.uuid4()
    assert durable.random() != durable.random()
    with FakeClock(start=1000.0) as clock:
        assert durable.now() == 1000.0
        clock.advance(5)
        assert durable.now() == 1005.0


# -- sleep / asleep --------------------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_first_run_sleeps_the_whole_time_and_journals_the_wake_up(is_async: bool, calls: Any) -> None:
    ep = sleeper(is_async, MemoryStore(), 90.0, counter(calls, "after", is_async))
    with FakeClock(start=1000.0) as clock:
        assert invoke(is_async, ep, "go") == 1
    assert clock.slept == [90.0]
    entries = ep.get_state(thread_id="t").entries
    assert [(e.key, e.task, e.status, e.result) for e in entries] == [
        ("0", "durable.sleep", "ok", 1090.0),
        ("1", "after", "ok", 1),
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("dead_for", "left"), [(30.0, 70.0), (100.0, None), (250.0, None)])
def test_a_run_that_crashed_mid_sleep_sleeps_only_what_is_left(
    crashing_clock: Any, is_async: bool, calls: Any, dead_for: float, left: float | None
) -> None:
    ep = sleeper(is_async, MemoryStore(), 100.0, counter(calls, "after", is_async))
    with crashing_clock(at=100.0) as clock:
        with pytest.raises(crashing_clock.Crash):
            invoke(is_async, ep, "go")
        assert calls["after"] == 0 and clock.slept == []
        assert ep.get_state(thread_id="t").status == "failed"
        clock.advance(dead_for)
        assert invoke(is_async, ep, None) == 1
    assert clock.slept == ([] if left is None else [pytest.approx(left)])
    assert [e.task for e in ep.get_state(thread_id="t").entries] == ["durable.sleep", "after"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_sleep_that_finished_before_a_failure_is_not_slept_again(is_async: bool, calls: Any) -> None:
    if is_async:

        @task(name="after")
        async def after() -> int:
            return flaky(calls, "after", failures=1)()

    else:

        @task(name="after")
        def after() -> int:
            return flaky(calls, "after", failures=1)()

    ep = sleeper(is_async, MemoryStore(), 60.0, after)
    with FakeClock() as clock:
        with pytest.raises(Transient):
            invoke(is_async, ep, "go")
        assert clock.slept == [60.0]
        assert invoke(is_async, ep, None) == 2
    assert clock.slept == [60.0]


def test_sync_sleep_in_an_async_entrypoint_is_refused() -> None:
    @entrypoint(checkpointer=MemoryStore())
    async def flow(_: Any) -> Any:
        durable.sleep(1)
        return "slept"

    with FakeClock() as clock, pytest.raises(UsageError, match=r"asleep"):
        asyncio.run(flow.ainvoke("go", thread_id="t"))
    assert clock.slept == []


@pytest.mark.parametrize("bad", [-1, -0.5, "5", None, True, math.nan], ids=repr)
def test_sleep_needs_a_number_of_seconds(bad: Any) -> None:
    with FakeClock() as clock:
        with pytest.raises(ConfigurationError, match="sleep"):
            durable.sleep(bad)
        with pytest.raises(ConfigurationError, match="sleep"):
            asyncio.run(durable.asleep(bad))
    assert clock.slept == []


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_sleep_needs_a_number_of_seconds_inside_a_run_too(is_async: bool, calls: Any) -> None:
    ep = sleeper(is_async, MemoryStore(), -3, counter(calls, "after", is_async))
    with pytest.raises(ConfigurationError):
        invoke(is_async, ep, "go")
    assert ep.get_state(thread_id="t").entries == () and calls["after"] == 0


def test_outside_a_run_sleep_and_asleep_just_sleep() -> None:
    with FakeClock() as clock:
        durable.sleep(5)
        asyncio.run(durable.asleep(7))
        durable.sleep(0)
    assert clock.slept == [5.0, 7.0]


# -- workers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_worker_suspends_a_long_sleep_instead_of_sleeping(store: Store, is_async: bool, calls: Any) -> None:
    ep = sleeper(is_async, store, 3600.0, counter(calls, "after", is_async))
    ep.submit("go", thread_id="s")
    with FakeClock() as clock:
        start = clock.now
        stats = Worker([ep], poll_interval=0.05).run_once()
        assert (stats.sleeping, stats.total) == (1, 1)
        assert clock.slept == [] and calls["after"] == 0
        state = ep.get_state(thread_id="s")
        assert (state.status, state.owner) == ("running", None)
        assert state.wake_at == pytest.approx(start + 3600.0)
        assert [(e.task, e.result) for e in state.entries] == [("durable.sleep", pytest.approx(start + 3600.0))]

        # Not due: the next poll leaves it alone.
        assert Worker([ep], poll_interval=0.05).run_once().total == 0
        assert calls["after"] == 0

        # Resumed once the time has come (here by hand), it does not sleep again.
        clock.advance(3600.0)
        assert invoke(is_async, ep, None, thread_id="s") == 1
    assert clock.slept == [] and calls["after"] == 1
    state = ep.get_state(thread_id="s")
    assert state.status == "completed" and state.wake_at is None


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_worker_resumes_a_sleeping_run_once_the_fake_clock_says_it_is_due(
    store: Store, is_async: bool, calls: Any
) -> None:
    ep = sleeper(is_async, store, 3600.0, counter(calls, "after", is_async))
    ep.submit("go", thread_id="s")
    with FakeClock() as clock:
        assert Worker([ep], poll_interval=0.05).run_once().sleeping == 1
        clock.advance(3600.0)
        stats = Worker([ep], poll_interval=0.05).run_once()
        assert stats.completed == 1
    assert clock.slept == [] and calls["after"] == 1
    assert ep.get_state(thread_id="s").status == "completed"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_worker_sleeps_a_short_sleep_in_process(is_async: bool, calls: Any) -> None:
    """A sleep shorter than the worker's suspend threshold (max(1 s, 2 polls)) is slept where it is."""
    ep = sleeper(is_async, MemoryStore(), 0.5, counter(calls, "after", is_async))
    ep.submit("go", thread_id="s")
    with FakeClock() as clock:
        stats = Worker([ep], poll_interval=0.05).run_once()
    assert (stats.completed, stats.sleeping) == (1, 0)
    assert clock.slept == [0.5] and calls["after"] == 1


def test_invoke_sleeps_a_long_sleep_in_process(calls: Any) -> None:
    """Without a worker there is nobody to wake the run: invoke sleeps the whole time itself."""
    ep = sleeper(False, MemoryStore(), 3600.0, counter(calls, "after", False))
    with FakeClock() as clock:
        assert ep.invoke("go", thread_id="t") == 1
    assert clock.slept == [3600.0]
