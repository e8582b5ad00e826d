"""One executor per thread: a second invoke while a run is executing raises ThreadBusyError, runs nothing."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from durable import Command, Store, ThreadBusyError, entrypoint, task

Flavor = Any  # the `flavor` fixture from tests/conftest.py

WAIT = 10.0


def held_flow(f: Flavor, store: Store, calls: Any) -> tuple[Any, threading.Event, threading.Event]:
    """A run that signals ``entered`` from inside its second task, then waits for ``release``."""
    entered, release = threading.Event(), threading.Event()

    @f.task
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.task
    def hold(x: int) -> Any:
        calls.hit("hold")
        entered.set()
        assert (yield f.blocking(release.wait, WAIT)), "the test never released the run"
        return x * 10

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        a = yield fetch(x)
        return (yield hold(a))

    return flow, entered, release


@pytest.mark.parametrize("second_input", [None, 1], ids=["resume", "same-input"])
def test_a_second_invoke_from_another_thread_raises_thread_busy(
    store: Store, flavor: Flavor, calls: Any, journal: Any, second_input: int | None
) -> None:
    """While one Python thread runs a thread's run, an invoke from another raises ThreadBusyError."""
    f = flavor
    flow, entered, release = held_flow(f, store, calls)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(f.invoke, flow, 1, thread_id="t")
        try:
            assert entered.wait(WAIT), "the first run never reached its task"
            before = journal.snapshot(flow, "t")
            assert before.status == "running"
            with pytest.raises(ThreadBusyError, match="'t'"):
                f.invoke(flow, second_input, thread_id="t")
            assert journal.snapshot(flow, "t") == before
            assert calls.as_dict() == {"fetch": 1, "hold": 1}
        finally:
            release.set()
        assert first.result(WAIT) == 20

    assert calls.as_dict() == {"fetch": 1, "hold": 1}
    state = flow.get_state(thread_id="t")
    assert (state.status, state.run_id, state.output) == ("completed", 1, 20)
    assert sorted((e.key, e.attempt) for e in state.entries) == [("0", 1), ("1", 1)]


async def test_a_second_coroutine_invoking_a_running_thread_raises_thread_busy(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """Two coroutines on one event loop: the second ``ainvoke`` of a running thread raises ThreadBusyError."""
    f = flavor
    flow, entered, release = held_flow(f, store, calls)
    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(flow.ainvoke(1, thread_id="t"))
    try:
        assert await loop.run_in_executor(None, entered.wait, WAIT), "the first run never reached its task"
        with pytest.raises(ThreadBusyError):
            await flow.ainvoke(None, thread_id="t")
        assert calls.as_dict() == {"fetch": 1, "hold": 1}
    finally:
        release.set()
    assert await asyncio.wait_for(first, WAIT) == 20
    assert calls.as_dict() == {"fetch": 1, "hold": 1}


def test_the_thread_is_free_again_once_the_run_ends(store: Store, flavor: Flavor, calls: Any) -> None:
    """After a run finishes (or fails), the next invoke on its thread is not busy."""
    f = flavor
    flow, _, release = held_flow(f, store, calls)
    release.set()
    assert f.invoke(flow, 1, thread_id="t") == 20
    assert f.invoke(flow, None, thread_id="t") == 20
    assert f.invoke(flow, 2, thread_id="t") == 30
    state = flow.get_state(thread_id="t")
    assert (state.owner, state.lease_expires) == (None, None)


def test_state_of_a_running_thread(store: Store, flavor: Flavor, calls: Any) -> None:
    """While a run executes, ``get_state`` shows it "running", its owner and lease, and the tasks done so far."""
    f = flavor
    flow, entered, release = held_flow(f, store, calls)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(f.invoke, flow, 1, thread_id="t")
        try:
            assert entered.wait(WAIT), "the first run never reached its task"
            state = flow.get_state(thread_id="t")
        finally:
            release.set()
        first.result(WAIT)
    assert (state.status, state.run_id, state.output, state.finished_at) == ("running", 1, None, None)
    assert state.owner is not None
    assert state.lease_expires is not None and state.lease_expires > time.time() - WAIT
    assert [(e.key, e.status, e.result) for e in state.entries] == [("0", "ok", 2)]


def failed_thread(f: Flavor, store: Store, calls: Any) -> Any:
    """A thread "t" whose run failed in its second task; resuming it succeeds."""
    down = [True]

    @f.task
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.task
    def llm(x: int) -> int:
        calls.hit("llm")
        if down[0]:
            raise RuntimeError("llm down")
        return x * 10

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        return (yield llm((yield fetch(x))))

    with pytest.raises(RuntimeError):
        f.invoke(flow, 1, thread_id="t")
    down[0] = False
    return flow


@pytest.mark.slow
def test_a_live_lease_of_another_host_is_respected_until_it_expires(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """A thread leased by an executor on another machine is busy until the lease expires, then resumable."""
    f = flavor
    flow = failed_thread(f, store, calls)
    ran = calls.as_dict()
    store.lease_seconds = 0.25
    store.claim("t", "another-host.invalid:4242:feedbeef")  # that executor is resuming the run
    before = journal.snapshot(flow, "t")

    with pytest.raises(ThreadBusyError, match=r"another-host\.invalid"):
        f.invoke(flow, None, thread_id="t")
    assert journal.snapshot(flow, "t") == before
    assert calls.as_dict() == ran

    expires = flow.get_state(thread_id="t").lease_expires
    assert expires is not None
    time.sleep(max(0.0, expires - time.time()) + 0.05)  # a lease can only expire with time
    assert f.invoke(flow, None, thread_id="t") == 20
    assert calls.as_dict() == {"fetch": 1, "llm": 2}


def test_a_lease_held_by_a_dead_process_on_this_host_is_taken_over_at_once(
    store: Store, flavor: Flavor, calls: Any
) -> None:
    """A run whose owner process on this machine is dead is resumed without waiting for its lease to expire."""
    f = flavor
    flow = failed_thread(f, store, calls)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.claim("t", f"{socket.gethostname()}:{int(dead.stdout)}:deadbeef")
    assert flow.get_state(thread_id="t").lease_expires > time.time() + 10
    assert f.invoke(flow, None, thread_id="t") == 20
    assert calls.as_dict() == {"fetch": 1, "llm": 2}


def test_a_command_on_a_thread_being_resumed_elsewhere_is_thread_busy(store: Store, flavor: Flavor, calls: Any) -> None:
    """A Command sent while another executor holds the thread raises ThreadBusyError, not ResumeError."""
    f = flavor
    flow = failed_thread(f, store, calls)
    store.claim("t", "another-host.invalid:4242:feedbeef")  # that executor is resuming the failed run
    with pytest.raises(ThreadBusyError, match=r"another-host\.invalid"):
        f.invoke(flow, Command(resume="yes"), thread_id="t")


@pytest.mark.slow
def test_the_heartbeat_keeps_a_long_run_leased(store: Store) -> None:
    """A run outlasting several lease terms keeps its lease: the heartbeat renews it, so no one takes over."""
    store.lease_seconds = 0.3
    release = threading.Event()
    inside = threading.Event()

    @task
    def slow() -> str:
        inside.set()
        release.wait(10)
        return "done"

    @entrypoint(checkpointer=store)
    def flow(_: int) -> str:
        return slow().result()

    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(flow.invoke(1, thread_id="t")))
    runner.start()
    try:
        assert inside.wait(10)
        time.sleep(1.0)  # three lease terms: without renewals the lease would have lapsed
        assert flow.get_state(thread_id="t").lease_expires > time.time()  # type: ignore[operator]
        with pytest.raises(ThreadBusyError):
            flow.invoke(None, thread_id="t")
    finally:
        release.set()
        runner.join(10)
    assert result == ["done"]
