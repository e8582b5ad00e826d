"""``@task(timeout=...)``: TaskTimeoutError, an abandoned sync body, a cancelled async body, retries.

Timeouts use real short times (0.2 s). A sync body that times out keeps running in its abandoned thread,
so each one blocks on an Event the test sets afterwards, letting that thread finish.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from durable import MemoryStore, RetryPolicy, TaskTimeoutError, entrypoint, task
from durable.testing import FakeClock

TIMEOUT = 0.2

# (async entrypoint, async task): every way a task body and its run can be sync or async.
MIXES = [(False, False), (True, False), (False, True), (True, True)]
MIX_IDS = ["sync-ep-sync-task", "async-ep-sync-task", "sync-ep-async-task", "async-ep-async-task"]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An Event abandoned sync bodies wait on; set at the end so their threads finish."""
    event = threading.Event()
    yield event
    event.set()


def make_flow(async_ep: bool, fetch: Any) -> Any:
    if async_ep:

        @entrypoint(checkpointer=MemoryStore())
        async def aflow(_: Any) -> Any:
            return await fetch()

        return aflow

    @entrypoint(checkpointer=MemoryStore())
    def flow(_: Any) -> Any:
        return fetch().result()

    return flow


def run(async_ep: bool, ep: Any, input: Any, thread_id: str = "t") -> Any:
    if async_ep:
        return asyncio.run(ep.ainvoke(input, thread_id=thread_id))
    return ep.invoke(input, thread_id=thread_id)


@pytest.mark.parametrize("async_ep", [False, True], ids=["sync-ep", "async-ep"])
@pytest.mark.slow
def test_a_hung_sync_body_times_out_and_is_abandoned(async_ep: bool, release: threading.Event) -> None:
    finished = threading.Event()

    @task(name="hang", timeout=TIMEOUT)
    def hang() -> str:
        release.wait(30)
        finished.set()
        return "late"

    flow = make_flow(async_ep, hang)
    with pytest.raises(TaskTimeoutError) as info:
        run(async_ep, flow, "go")
    err = info.value
    assert err.abandoned is True and err.task == "hang" and err.key == "0" and err.timeout == TIMEOUT
    assert "may still be running" in str(err)
    assert isinstance(err, TimeoutError)
    assert not finished.is_set()  # the body really is still blocked

    state = flow.get_state(thread_id="t")
    assert state.status == "failed" and isinstance(state.error, TaskTimeoutError)
    [entry] = state.entries
    assert (entry.task, entry.status, entry.attempt) == ("hang", "error", 1)
    assert isinstance(entry.error, TaskTimeoutError) and entry.error.abandoned is True

    release.set()
    assert finished.wait(5)  # the abandoned thread ends once released; its late result is not journaled
    assert [e.status for e in flow.get_state(thread_id="t").entries] == ["error"]


@pytest.mark.parametrize("async_ep", [False, True], ids=["sync-ep", "async-ep"])
@pytest.mark.slow
def test_an_async_body_past_its_timeout_is_cancelled(async_ep: bool) -> None:
    seen: list[str] = []

    @task(name="forever", timeout=TIMEOUT)
    async def forever() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")
        return "never"

    flow = make_flow(async_ep, forever)
    with pytest.raises(TaskTimeoutError) as info:
        run(async_ep, flow, "go")
    assert info.value.abandoned is False
    assert "cancelled" in str(info.value) and "may still be running" not in str(info.value)
    assert seen == ["cancelled", "finally"]
    [entry] = flow.get_state(thread_id="t").entries
    assert entry.status == "error" and isinstance(entry.error, TaskTimeoutError)


@pytest.mark.parametrize(("async_ep", "async_task"), MIXES, ids=MIX_IDS)
@pytest.mark.slow
def test_a_timeout_is_retried_by_the_retry_policy(async_ep: bool, async_task: bool, release: threading.Event) -> None:
    attempts: list[int] = []
    policy = RetryPolicy(max_attempts=3, initial_interval=2.0, jitter=False)

    if async_task:

        @task(name="slow", timeout=TIMEOUT, retry=policy)
        async def slow() -> int:
            attempts.append(len(attempts) + 1)
            if len(attempts) == 1:
                await asyncio.Event().wait()
            return len(attempts)

        fetch: Any = slow
    else:

        @task(name="slow", timeout=TIMEOUT, retry=policy)
        def sync_slow() -> int:
            attempts.append(len(attempts) + 1)
            if len(attempts) == 1:
                release.wait(30)
            return len(attempts)

        fetch = sync_slow

    flow = make_flow(async_ep, fetch)
    with FakeClock() as clock:
        assert run(async_ep, flow, "go") == 2
    assert clock.slept == [2.0]
    entries = flow.get_state(thread_id="t").entries
    assert [(e.status, e.attempt) for e in entries] == [("retry", 1), ("ok", 2)]
    assert isinstance(entries[0].error, TaskTimeoutError) and entries[0].error.abandoned is (not async_task)


@pytest.mark.parametrize(("async_ep", "async_task"), MIXES, ids=MIX_IDS)
def test_a_bodys_own_timeout_error_is_not_a_task_timeout(async_ep: bool, async_task: bool) -> None:
    if async_task:

        @task(name="mine", timeout=5.0)
        async def amine() -> None:
            raise TimeoutError("the remote API timed out")

        fetch: Any = amine
    else:

        @task(name="mine", timeout=5.0)
        def mine() -> None:
            raise TimeoutError("the remote API timed out")

        fetch = mine

    flow = make_flow(async_ep, fetch)
    with pytest.raises(TimeoutError, match="remote API") as info:
        run(async_ep, flow, "go")
    assert not isinstance(info.value, TaskTimeoutError)
    [entry] = flow.get_state(thread_id="t").entries
    assert type(entry.error) is TimeoutError


@pytest.mark.parametrize(("async_ep", "async_task"), MIXES, ids=MIX_IDS)
def test_a_body_finishing_within_its_timeout_is_journaled_as_usual(async_ep: bool, async_task: bool) -> None:
    if async_task:

        @task(name="quick", timeout=5.0)
        async def aquick(x: int) -> int:
            await asyncio.sleep(0)
            return x * 2

        fetch: Any = aquick
    else:

        @task(name="quick", timeout=5.0)
        def quick(x: int) -> int:
            return x * 2

        fetch = quick

    flow = make_flow(async_ep, lambda: fetch(21))
    assert run(async_ep, flow, "go") == 42
    assert [(e.task, e.status, e.result) for e in flow.get_state(thread_id="t").entries] == [("quick", "ok", 42)]


def test_a_timed_out_task_runs_again_when_the_run_is_resumed(release: threading.Event) -> None:
    attempts: list[int] = []

    @task(name="hang", timeout=TIMEOUT)
    def hang() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            release.wait(30)
        return "done"

    flow = make_flow(False, hang)
    with pytest.raises(TaskTimeoutError):
        flow.invoke("go", thread_id="t")
    assert flow.invoke(None, thread_id="t") == "done"
    assert [(e.status, e.attempt) for e in flow.get_state(thread_id="t").entries] == [("error", 1), ("ok", 2)]


@pytest.mark.parametrize("bad", [0, -1.0, True, "1"], ids=["zero", "negative", "bool", "str"])
def test_timeout_must_be_a_positive_number(bad: Any) -> None:
    from durable import ConfigurationError

    with pytest.raises(ConfigurationError, match="timeout"):
        task(timeout=bad)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.slow
def test_the_timeout_applies_outside_a_run_too(is_async: bool) -> None:
    """A task called outside any run (a unit test) times out as it would in a run, with no key to name."""
    release = threading.Event()

    if is_async:

        @task(timeout=0.2)
        async def hung() -> str:
            await asyncio.sleep(30)
            return "late"

        call = hung
    else:

        @task(timeout=0.2)
        def blocked() -> str:
            release.wait(30)
            return "late"

        call = blocked
    try:
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError, match="called outside a run") as info:
            call().result()
        assert time.monotonic() - started < 5
        assert info.value.abandoned is (not is_async)
    finally:
        release.set()
