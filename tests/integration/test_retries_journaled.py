"""Retries inside runs: every failed attempt journaled, backoff by the clock, a backoff resumed after a crash.

Time is `durable.testing.FakeClock`: a backoff "sleeps" instantly and ``clock.slept`` lists each wait.
A crash during a backoff is simulated in-process by a clock whose sleep raises a `BaseException`
(like a KeyboardInterrupt would): the run stops there and is failed, and ``invoke(None)`` resumes it.
"""

from __future__ import annotations

from typing import Any

import pytest

from durable import MemoryStore, NonRetryableError, RetryPolicy, Store
from durable.testing import FakeClock

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Transient(Exception):
    pass


class Declined(NonRetryableError):
    pass


def flaky(calls: Any, name: str, failures: int, error: type[Exception] = Transient) -> Any:
    """A body raising ``error`` on its first ``failures`` calls, then returning how many calls it took."""

    def body() -> int:
        calls.hit(name)
        if calls[name] <= failures:
            raise error(f"{name} attempt {calls[name]}")
        return calls[name]

    body.__qualname__ = body.__name__ = name
    return body


def one_task_flow(f: Flavor, store: Store, task: Any, **options: Any) -> Any:
    def flow(_: Any) -> Any:
        return (yield task())

    return f.entrypoint(checkpointer=store, **options)(flow)


def rows(ep: Any, thread_id: str) -> list[tuple[str, str, int, str | None]]:
    """(key, status, attempt, error text) of every journal entry."""
    return [
        (e.key, e.status, e.attempt, None if e.error is None else str(e.error))
        for e in ep.get_state(thread_id=thread_id).entries
    ]


def test_every_failed_attempt_is_a_retry_row_on_every_store(store: Store, flavor: Flavor, calls: Any) -> None:
    fetch = flavor.task(retry=RetryPolicy(max_attempts=4, initial_interval=0.0, jitter=False))(
        flaky(calls, "fetch", failures=2)
    )
    flow = one_task_flow(flavor, store, fetch)
    with FakeClock():
        assert flavor.invoke(flow, "go", thread_id="t") == 3
    assert rows(flow, "t") == [
        ("0", "retry", 1, "fetch attempt 1"),
        ("0", "retry", 2, "fetch attempt 2"),
        ("0", "ok", 3, None),
    ]
    entries = flow.get_state(thread_id="t").entries
    assert all(isinstance(e.error, Transient) for e in entries[:2])
    assert entries[2].result == 3


def test_exhausted_attempts_end_with_an_error_row(store: Store, flavor: Flavor, calls: Any) -> None:
    fetch = flavor.task(retry=RetryPolicy(max_attempts=2, initial_interval=0.0, jitter=False))(
        flaky(calls, "fetch", failures=9)
    )
    flow = one_task_flow(flavor, store, fetch)
    with FakeClock(), pytest.raises(Transient, match="attempt 2"):
        flavor.invoke(flow, "go", thread_id="t")
    assert rows(flow, "t") == [("0", "retry", 1, "fetch attempt 1"), ("0", "error", 2, "fetch attempt 2")]
    state = flow.get_state(thread_id="t")
    assert state.status == "failed" and isinstance(state.error, Transient)


def test_backoff_without_jitter_sleeps_exactly_the_policy_delays(flavor: Flavor, calls: Any) -> None:
    """initial * factor**(n-1), capped by max_interval, one wait between each two attempts."""
    policy = RetryPolicy(max_attempts=5, initial_interval=1.0, backoff_factor=3.0, max_interval=10.0, jitter=False)
    fetch = flavor.task(retry=policy)(flaky(calls, "fetch", failures=4))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with FakeClock() as clock:
        assert flavor.invoke(flow, "go", thread_id="t") == 5
    assert clock.slept == [1.0, 3.0, 9.0, 10.0]


def test_jittered_delays_differ_between_threads_and_are_reproducible_for_the_same_call(
    flavor: Flavor, calls: Any
) -> None:
    policy = RetryPolicy(max_attempts=4, initial_interval=1.0, backoff_factor=2.0, jitter=True)

    def slept(store: Store, thread_id: str) -> list[float]:
        fetch = flavor.task(name="fetch", retry=policy)(flaky(calls, f"fetch-{id(store)}-{thread_id}", failures=9))
        flow = one_task_flow(flavor, store, fetch)
        with FakeClock() as clock, pytest.raises(Transient):
            flavor.invoke(flow, "go", thread_id=thread_id)
        return clock.slept

    first = MemoryStore()
    a, b = slept(first, "a"), slept(first, "b")
    again = slept(MemoryStore(), "a")  # the same thread, run and key, on another journal
    assert len(a) == len(b) == 3
    for delays in (a, b):
        assert all(0.5 * base <= d < 1.5 * base for d, base in zip(delays, [1.0, 2.0, 4.0], strict=True))
    assert a != b
    assert again == a


def test_a_jittered_backoff_resumed_after_a_crash_waits_the_same_delay(
    crashing_clock: Any, flavor: Flavor, calls: Any
) -> None:
    """The crash happens before any time passes: the resumed call waits its whole (same) jittered delay."""
    policy = RetryPolicy(max_attempts=3, initial_interval=100.0, jitter=True)
    fetch = flavor.task(name="fetch", retry=policy)(flaky(calls, "fetch", failures=1))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with crashing_clock(at=1.0) as clock:
        with pytest.raises(crashing_clock.Crash):
            flavor.invoke(flow, "go", thread_id="t")
        assert flavor.invoke(flow, None, thread_id="t") == 2
    assert len(clock.asked) == 2 and 50.0 <= clock.asked[0] < 150.0
    assert clock.slept == [pytest.approx(clock.asked[0])]


@pytest.mark.parametrize("error", [NonRetryableError, Declined], ids=["NonRetryableError", "subclass"])
def test_non_retryable_errors_are_never_retried(flavor: Flavor, calls: Any, error: type[Exception]) -> None:
    fetch = flavor.task(retry=RetryPolicy(max_attempts=5, initial_interval=1.0))(
        flaky(calls, "fetch", failures=9, error=error)
    )
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with FakeClock() as clock, pytest.raises(error):
        flavor.invoke(flow, "go", thread_id="t")
    assert calls["fetch"] == 1 and clock.slept == []
    assert rows(flow, "t") == [("0", "error", 1, "fetch attempt 1")]


def test_non_retryable_error_wins_over_a_matching_retry_on(flavor: Flavor, calls: Any) -> None:
    policy = RetryPolicy(max_attempts=5, initial_interval=0.0, retry_on=lambda exc: True)
    fetch = flavor.task(retry=policy)(flaky(calls, "fetch", failures=9, error=Declined))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with FakeClock(), pytest.raises(Declined):
        flavor.invoke(flow, "go", thread_id="t")
    assert calls["fetch"] == 1


def test_the_entrypoint_policy_applies_to_tasks_without_their_own(flavor: Flavor, calls: Any) -> None:
    default = RetryPolicy(max_attempts=3, initial_interval=7.0, jitter=False)
    own = RetryPolicy(max_attempts=2, initial_interval=1.0, jitter=False)
    plain = flavor.task(name="plain")(flaky(calls, "plain", failures=2))
    picky = flavor.task(name="picky", retry=own)(flaky(calls, "picky", failures=9))

    def flow(_: Any) -> Any:
        a = yield plain()
        try:
            yield picky()
        except Transient as exc:
            return a, str(exc)
        raise AssertionError("picky cannot succeed")

    ep = flavor.entrypoint(checkpointer=MemoryStore(), retry=default)(flow)
    with FakeClock() as clock:
        assert flavor.invoke(ep, "go", thread_id="t") == (3, "picky attempt 2")
    assert calls["plain"] == 3  # the entrypoint's 3 attempts
    assert calls["picky"] == 2  # its own policy's 2, not the entrypoint's 3
    assert clock.slept == [7.0, 14.0, 1.0]
    assert [(e.task, e.status, e.attempt) for e in ep.get_state(thread_id="t").entries] == [
        ("plain", "retry", 1), ("plain", "retry", 2), ("plain", "ok", 3),
        ("picky", "retry", 1), ("picky", "error", 2),
    ]  # fmt: skip


def test_without_any_policy_a_failing_task_is_tried_once(flavor: Flavor, calls: Any) -> None:
    fetch = flavor.task(name="fetch")(flaky(calls, "fetch", failures=1))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with pytest.raises(Transient):
        flavor.invoke(flow, "go", thread_id="t")
    assert calls["fetch"] == 1 and rows(flow, "t") == [("0", "error", 1, "fetch attempt 1")]


def test_a_sub_entrypoint_call_does_not_inherit_the_callers_policy(flavor: Flavor, calls: Any) -> None:
    """The sub-entrypoint's own body failing is not retried by the calling entrypoint's policy."""
    store = MemoryStore()

    def inner_body(x: int) -> int:
        calls.hit("inner")
        if calls["inner"] == 1:
            raise Transient("inner failed")
        return x + 1

    inner = flavor.entrypoint(checkpointer=store, name="inner")(inner_body)

    def outer_body(x: int) -> Any:
        return (yield flavor.sub(inner, x))

    outer = flavor.entrypoint(
        checkpointer=store, name="outer", retry=RetryPolicy(max_attempts=3, initial_interval=0.0)
    )(outer_body)
    with FakeClock(), pytest.raises(Transient, match="inner failed"):
        flavor.invoke(outer, 1, thread_id="t")
    assert calls["inner"] == 1
    assert [(e.task, e.status) for e in outer.get_state(thread_id="t").entries] == [("inner", "error")]


def test_a_crash_during_a_backoff_resumes_with_the_rest_of_the_delay_and_the_attempts_counted(
    crashing_clock: Any, flavor: Flavor, calls: Any
) -> None:
    policy = RetryPolicy(max_attempts=5, initial_interval=100.0, backoff_factor=2.0, max_interval=1e4, jitter=False)
    fetch = flavor.task(name="fetch", retry=policy)(flaky(calls, "fetch", failures=99))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with crashing_clock(at=100.0) as clock:
        with pytest.raises(crashing_clock.Crash):
            flavor.invoke(flow, "go", thread_id="t")
        state = flow.get_state(thread_id="t")
        assert state.status == "failed" and isinstance(state.error, crashing_clock.Crash)
        assert rows(flow, "t") == [("0", "retry", 1, "fetch attempt 1")]
        assert clock.slept == []

        clock.advance(30.0)  # the process lay dead for 30 of the 100 seconds
        with pytest.raises(Transient, match="attempt 5"):
            flavor.invoke(flow, None, thread_id="t")
    assert clock.slept == [pytest.approx(70.0), 200.0, 400.0, 800.0]
    assert calls["fetch"] == 5  # max_attempts in all, across the crash
    assert rows(flow, "t") == [
        ("0", "retry", 1, "fetch attempt 1"),
        ("0", "retry", 2, "fetch attempt 2"),
        ("0", "retry", 3, "fetch attempt 3"),
        ("0", "retry", 4, "fetch attempt 4"),
        ("0", "error", 5, "fetch attempt 5"),
    ]


def test_a_crash_later_in_the_backoff_still_counts_every_attempt(
    crashing_clock: Any, flavor: Flavor, calls: Any
) -> None:
    """Crash in the third wait (after attempt 3); the resume runs attempts 4 and 5 only."""
    policy = RetryPolicy(max_attempts=5, initial_interval=1.0, backoff_factor=10.0, max_interval=1e4, jitter=False)
    fetch = flavor.task(name="fetch", retry=policy)(flaky(calls, "fetch", failures=99))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with crashing_clock(at=100.0) as clock:
        with pytest.raises(crashing_clock.Crash):
            flavor.invoke(flow, "go", thread_id="t")
        assert clock.slept == [1.0, 10.0] and calls["fetch"] == 3
        clock.advance(40.0)
        with pytest.raises(Transient, match="attempt 5"):
            flavor.invoke(flow, None, thread_id="t")
    assert clock.slept == [1.0, 10.0, pytest.approx(60.0), 1000.0]
    assert calls["fetch"] == 5
    assert [(s, a) for _, s, a, _ in rows(flow, "t")] == [
        ("retry", 1), ("retry", 2), ("retry", 3), ("retry", 4), ("error", 5),
    ]  # fmt: skip


def test_a_backoff_that_elapsed_while_crashed_is_not_waited_again(
    crashing_clock: Any, flavor: Flavor, calls: Any
) -> None:
    policy = RetryPolicy(max_attempts=3, initial_interval=100.0, jitter=False)
    fetch = flavor.task(name="fetch", retry=policy)(flaky(calls, "fetch", failures=1))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with crashing_clock(at=100.0) as clock:
        with pytest.raises(crashing_clock.Crash):
            flavor.invoke(flow, "go", thread_id="t")
        clock.advance(500.0)
        assert flavor.invoke(flow, None, thread_id="t") == 2
    assert clock.slept == []
    assert [(s, a) for _, s, a, _ in rows(flow, "t")] == [("retry", 1), ("ok", 2)]


def test_a_resumed_failed_run_gets_a_fresh_budget_with_the_same_delays(flavor: Flavor, calls: Any) -> None:
    policy = RetryPolicy(max_attempts=2, initial_interval=5.0, jitter=False)
    fetch = flavor.task(name="fetch", retry=policy)(flaky(calls, "fetch", failures=3))
    flow = one_task_flow(flavor, MemoryStore(), fetch)
    with FakeClock() as clock:
        with pytest.raises(Transient):
            flavor.invoke(flow, "go", thread_id="t")
        assert clock.slept == [5.0]
        assert flavor.invoke(flow, None, thread_id="t") == 4
    assert clock.slept == [5.0, 5.0]
    assert [(s, a) for _, s, a, _ in rows(flow, "t")] == [("retry", 1), ("error", 2), ("retry", 3), ("ok", 4)]
