"""Submitting runs and carrying them with workers, in-process, on every store and flavor.

The crash-and-takeover cases across real processes (SIGKILL, SIGSTOP, a terminated
connection) are in tests/acceptance/test_acceptance_postgres_workers.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from durable import (
    Command,
    ConfigurationError,
    DeadLetteredError,
    Interrupted,
    MemoryStore,
    Store,
    ThreadBusyError,
    UnfinishedRunError,
    UsageError,
    Worker,
    entrypoint,
    interrupt,
    task,
)
from durable.stores import Lease

Flavor = Any  # the `flavor` fixture from tests/conftest.py
GHOST = "ghost.invalid:4242:0badf00d"  # an executor on another machine, never judged dead from here


def summing(f: Flavor, store: Store, calls: Any, name: str | None = None) -> Any:
    @f.task
    def double(x: int) -> int:
        calls.hit("double")
        return 2 * x

    def flow(n: int) -> Any:
        values = yield [double(i) for i in range(n)]
        return sum(values)

    return f.entrypoint(checkpointer=store, name=name)(flow) if name else f.entrypoint(checkpointer=store)(flow)


def plain_summing(store: Store, calls: Any, name: str) -> Any:
    """`summing` as a plain sync entrypoint, for tests about the worker rather than the flavors."""

    @task(name=f"{name}.double")
    def double(x: int) -> int:
        calls.hit("double")
        return 2 * x

    @entrypoint(checkpointer=store, name=name)
    def flow(n: int) -> int:
        return sum(f.result() for f in [double(i) for i in range(n)])

    return flow


def test_submit_records_a_run_that_a_worker_carries(store: Store, flavor: Flavor, calls: Any) -> None:
    """submit() runs nothing; the worker resumes the run by its entrypoint's name and finishes it."""
    flow = summing(flavor, store, calls)
    assert flow.submit(4, thread_id="job") == "job"
    state = flow.get_state(thread_id="job")
    assert (state.status, state.owner, state.entries, calls.total()) == ("running", None, (), 0)

    stats = Worker([flow], poll_interval=0.01).run_once()
    assert (stats.completed, stats.total) == (1, 1)
    assert calls["double"] == 4
    assert flow.invoke(None, thread_id="job") == 12  # finished: the value, nothing runs again
    assert calls["double"] == 4 and flow.get_state(thread_id="job").recoveries == 0


def test_submit_without_a_thread_id_makes_one(store: Store, flavor: Flavor, calls: Any) -> None:
    flow = summing(flavor, store, calls)
    ids = {flow.submit(1) for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)
    assert Worker([flow], poll_interval=0.01).run_once().completed == 3


async def test_asubmit(store: Store, calls: Any) -> None:
    @task
    async def double(x: int) -> int:
        calls.hit("double")
        return 2 * x

    @entrypoint(checkpointer=store)
    async def flow(n: int) -> int:
        return sum(await asyncio.gather(*(double(i) for i in range(n))))

    tid = await flow.asubmit(3)
    assert flow.get_state(thread_id=tid).status == "running" and calls.total() == 0
    stats = await asyncio.get_running_loop().run_in_executor(None, Worker([flow], poll_interval=0.01).run_once)
    assert stats.completed == 1 and await flow.ainvoke(None, thread_id=tid) == 6


def test_submit_follows_the_input_rules(store: Store, flavor: Flavor, calls: Any) -> None:
    """Only new input; never over an unfinished run; never while another executor holds the thread."""
    flow = summing(flavor, store, calls)
    for bad in (None, Command(resume=1)):
        with pytest.raises(UsageError, match="new input"):
            flow.submit(bad, thread_id="t")
    assert store.get_thread("t") is None

    flow.submit(2, thread_id="t")
    with pytest.raises(UnfinishedRunError):
        flow.submit(3, thread_id="t")
    store.claim("t", GHOST)  # someone is running it now
    with pytest.raises(ThreadBusyError):
        flow.submit(3, thread_id="t")
    assert flow.get_state(thread_id="t").run_id == 1 and calls.total() == 0


def test_a_second_submit_after_a_finished_run_gets_previous(store: Store, calls: Any) -> None:
    @entrypoint(checkpointer=store)
    def counter(step: int, *, previous: int | None = None) -> int:
        return (previous or 0) + step

    counter.submit(5, thread_id="c")
    Worker([counter], poll_interval=0.01).run_once()
    counter.submit(2, thread_id="c")
    Worker([counter], poll_interval=0.01).run_once()
    assert counter.invoke(None, thread_id="c") == 7
    assert counter.get_state(thread_id="c").run_id == 2


def die_in(store: Store, lease: Lease, seconds: float) -> None:
    """The executor holding ``lease`` renews it one last time, for ``seconds``, and dies: return once that lease
    has expired in the store. The store's lease term stays as it was, so the leases of the test's own workers and
    invokes are not at the mercy of a loaded machine."""
    term = store.lease_seconds
    store.lease_seconds = seconds
    try:
        assert store.renew(lease), "the dying executor had lost its lease already"
    finally:
        store.lease_seconds = term
    # Every store dates a lease by this host's clock (the process's, or the server's on this machine): sleeping past
    # the expiry cannot end too early, and a late wake-up only leaves the lease expired for longer.
    time.sleep(seconds * 2)


def test_a_worker_recovers_a_run_whose_executor_died(store: Store, flavor: Flavor, calls: Any) -> None:
    """A run held by an executor that stopped renewing is carried once its lease expires, and counted."""
    flow = summing(flavor, store, calls)
    flow.submit(3, thread_id="t")
    store.lease_seconds = 60.0  # live for the whole test, however slow the machine, until it is let expire below
    [lease] = store.reserve(GHOST, [flow.name], 1)  # a worker on another machine took it
    worker = Worker([flow], poll_interval=0.01)
    assert worker.run_once().total == 0  # its lease is still live: nobody may take it
    assert (flow.get_state(thread_id="t").owner, calls.total()) == (GHOST, 0)
    die_in(store, lease, 0.02)  # then died
    assert worker.run_once().completed == 1
    state = flow.get_state(thread_id="t")
    assert (state.status, state.output, state.recoveries) == ("completed", 6, 1)


def test_a_run_whose_executors_keep_dying_is_dead_lettered(store: Store, flavor: Flavor, calls: Any) -> None:
    """After dead_letter_after dead executors the run is failed with DeadLetteredError, not run again."""
    flow = summing(flavor, store, calls)
    flow.submit(3, thread_id="poison")
    store.lease_seconds = 60.0  # the workers' and the invoke's leases below outlast any pause of a loaded machine
    for _ in range(2):  # two workers take it and die
        [lease] = store.reserve(GHOST, [flow.name], 1)
        die_in(store, lease, 0.02)
    stats = Worker([flow], poll_interval=0.01, dead_letter_after=2).run_once()
    assert (stats.dead_lettered, stats.total, calls.total()) == (1, 1, 0)
    state = flow.get_state(thread_id="poison")
    assert state.status == "failed" and isinstance(state.error, DeadLetteredError)
    assert state.error.crashes == 2 and "invoke(None" in str(state.error)
    assert Worker([flow], poll_interval=0.01).run_once().total == 0  # failed runs wait for a person

    # The person fixes the cause and resumes it by hand; its count starts over.
    assert flavor.invoke(flow, None, thread_id="poison") == 6
    assert flow.get_state(thread_id="poison").recoveries == 0


def test_failed_and_paused_runs_end_as_they_would_in_invoke(store: Store, calls: Any) -> None:
    """A failing run is journaled failed (not retried by workers); a pausing one waits for its Command."""

    @entrypoint(checkpointer=store, name="fails")
    def fails(x: int) -> int:
        raise ValueError(f"bad {x}")

    @entrypoint(checkpointer=store, name="asks")
    def asks(x: int) -> int:
        return x + int(interrupt("how much?"))

    fails.submit(1, thread_id="f")
    asks.submit(1, thread_id="a")
    worker = Worker([fails, asks], poll_interval=0.01)
    stats = worker.run_once()
    assert (stats.failed, stats.interrupted) == (1, 1)
    assert fails.get_state(thread_id="f").status == "failed"
    assert "bad 1" in (fails.get_state(thread_id="f").error_text or "")
    assert isinstance(asks.invoke(None, thread_id="a"), Interrupted)
    assert worker.run_once().total == 0
    assert asks.invoke(Command(resume="41"), thread_id="a") == 42


def test_a_worker_carries_only_its_own_entrypoints(store: Store, calls: Any) -> None:
    mine = plain_summing(store, calls, "mine")
    theirs = plain_summing(store, calls, "theirs")
    mine.submit(1, thread_id="m")
    theirs.submit(1, thread_id="t")
    assert Worker([mine], poll_interval=0.01).run_once().completed == 1
    assert theirs.get_state(thread_id="t").status == "running"
    assert theirs.get_state(thread_id="t").owner is None


def test_run_until_stopped(store: Store, flavor: Flavor, calls: Any) -> None:
    """run() keeps polling and carries what arrives; stop() ends it once in-flight runs are done."""
    flow = summing(flavor, store, calls)
    worker = Worker([flow], poll_interval=0.02, concurrency=2)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        for i in range(5):
            flow.submit(i, thread_id=f"t{i}")
        deadline = time.monotonic() + 20
        while worker.stats.completed < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
        runner.join(20)
    assert not runner.is_alive()
    assert worker.stats.completed == 5
    assert [flow.invoke(None, thread_id=f"t{i}") for i in range(5)] == [0, 0, 2, 6, 12]


def test_worker_configuration_errors(store: Store, calls: Any) -> None:
    flow = plain_summing(store, calls, "flow")
    twin = plain_summing(store, calls, "flow")
    with pytest.raises(ConfigurationError, match="at least one"):
        Worker([])
    with pytest.raises(ConfigurationError, match="two entrypoints are named 'flow'"):
        Worker([flow, twin])
    with pytest.raises(ConfigurationError, match="not an entrypoint"):
        Worker([flow, len])  # type: ignore[list-item]
    for bad in ({"concurrency": 0}, {"poll_interval": 0}, {"dead_letter_after": 0}, {"durability": "never"}):
        with pytest.raises(ConfigurationError):
            Worker([flow], **bad)
    elsewhere = plain_summing(MemoryStore(), calls, "elsewhere")
    with pytest.raises(ConfigurationError, match="different stores"):
        Worker([flow, elsewhere])
    assert Worker([flow, elsewhere], checkpointer=store).store is store


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_an_idle_worker_hears_of_a_submit_at_once(kind: str, new_store: Callable[..., Store], calls: Any) -> None:
    """A release of unfinished work is announced (Postgres's NOTIFY, Redis's PUBLISH): a worker polling every minute
    picks it up in moments."""
    store = new_store(kind)
    flow = plain_summing(store, calls, "notified")
    worker = Worker([flow], poll_interval=60.0)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        time.sleep(0.5)  # past its first look at an empty store: from here on it waits a minute between polls
        submitted = time.monotonic()
        flow.submit(3, thread_id="n")
        while worker.stats.completed < 1 and time.monotonic() - submitted < 20:
            time.sleep(0.02)
        took = time.monotonic() - submitted
    finally:
        worker.stop()
        runner.join(30)
        store.close()
    assert worker.stats.completed == 1, "the worker never picked the run up"
    assert took < 10, f"picked up after {took:.1f} s: the notice did not wake the worker"
    assert flow.invoke(None, thread_id="n") == 6
