"""`RetryPolicy`: attempts and backoff happen inside the task; each failed attempt is journaled, then the outcome."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from durable import ConfigurationError, MemoryStore, RetryPolicy, task

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


def quick(**options: Any) -> RetryPolicy:
    """A policy with no waiting, unless a test asks for it."""
    return RetryPolicy(**{"initial_interval": 0.0, "jitter": False, **options})


def flaky(calls: Any, name: str, failures: int, error: type[Exception] = Transient) -> Any:
    """A body that raises ``error`` on its first ``failures`` calls, then returns how many calls it took."""

    def body() -> int:
        calls.hit(name)
        if calls[name] <= failures:
            raise error(f"{name} attempt {calls[name]}")
        return calls[name]

    body.__qualname__ = name
    return body


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"initial_interval": -1.0},
        {"max_interval": -0.1},
        {"backoff_factor": 0.5},
    ],
    ids=["max_attempts", "initial_interval", "max_interval", "backoff_factor"],
)
def test_policy_rejects_impossible_settings(options: dict[str, Any]) -> None:
    """A RetryPolicy with fewer than one attempt, negative intervals or a shrinking backoff is refused."""
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)


def test_delay_grows_by_the_backoff_factor_up_to_the_cap() -> None:
    """Without jitter the delay before attempt n+1 is initial * factor**(n-1), capped at max_interval."""
    policy = RetryPolicy(initial_interval=1.0, backoff_factor=2.0, max_interval=5.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_scales_the_delay_between_half_and_one_and_a_half() -> None:
    """With jitter every delay lies in [0.5, 1.5) times the un-jittered one."""
    policy = RetryPolicy(initial_interval=1.0, backoff_factor=3.0, jitter=True)
    delays = [policy.delay(2) for _ in range(200)]
    assert all(1.5 <= d < 4.5 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("retry_on", "error", "retried"),
    [
        (Exception, Transient("x"), True),
        (Transient, Transient("x"), True),
        (Transient, Fatal("x"), False),
        ((Fatal, Transient), Transient("x"), True),
        ([Fatal], Transient("x"), False),
        (lambda e: "again" in str(e), Fatal("try again"), True),
        (lambda e: "again" in str(e), Fatal("give up"), False),
    ],
    ids=["default", "type", "other-type", "tuple", "list", "predicate-yes", "predicate-no"],
)
def test_should_retry_follows_retry_on(retry_on: Any, error: Exception, retried: bool) -> None:
    """``retry_on`` is a type, a sequence of types, or a predicate on the exception."""
    assert RetryPolicy(retry_on=retry_on).should_retry(error, 1) is retried


def test_should_retry_stops_at_max_attempts_and_never_retries_base_exceptions() -> None:
    """No retry after the last attempt, nor for a BaseException that is not an Exception."""
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(Transient(), 2)
    assert not policy.should_retry(Transient(), 3)
    assert not policy.should_retry(KeyboardInterrupt(), 1)


def test_a_flaky_task_succeeds_within_its_attempts(flavor: Flavor, calls: Any) -> None:
    """A task failing twice with max_attempts=3 succeeds on its third attempt: two retried errors, then ok."""
    f = flavor
    fetch = f.task(retry=quick(max_attempts=3))(flaky(calls, "fetch", failures=2))

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        return (yield fetch())

    assert f.invoke(flow, "go", thread_id="t") == 3
    assert calls["fetch"] == 3
    entries = flow.get_state(thread_id="t").entries
    assert [(e.key, e.status, e.result, e.attempt) for e in entries] == [
        ("0", "retry", None, 1),
        ("0", "retry", None, 2),
        ("0", "ok", 3, 3),
    ]
    assert [str(e.error) for e in entries[:2]] == ["fetch attempt 1", "fetch attempt 2"]


def test_a_task_that_keeps_failing_records_every_attempt_and_its_final_error(flavor: Flavor, calls: Any) -> None:
    """After max_attempts failures the last error is final, and the run fails with it; every attempt is journaled."""
    f = flavor
    fetch = f.task(retry=quick(max_attempts=3))(flaky(calls, "fetch", failures=100))

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        return (yield fetch())

    with pytest.raises(Transient, match="fetch attempt 3"):
        f.invoke(flow, "go", thread_id="t")
    assert calls["fetch"] == 3
    state = flow.get_state(thread_id="t")
    assert state.status == "failed"
    assert [(e.key, e.status, str(e.error), e.attempt) for e in state.entries] == [
        ("0", "retry", "fetch attempt 1", 1),
        ("0", "retry", "fetch attempt 2", 2),
        ("0", "error", "fetch attempt 3", 3),
    ]


def test_resume_gives_a_failed_task_a_fresh_set_of_attempts(flavor: Flavor, calls: Any) -> None:
    """A task that exhausted its attempts runs again with its whole policy when the run is resumed;
    its attempt numbers go on from where they were."""
    f = flavor
    fetch = f.task(retry=quick(max_attempts=2))(flaky(calls, "fetch", failures=3))

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        return (yield fetch())

    with pytest.raises(Transient):
        f.invoke(flow, "go", thread_id="t")
    assert f.invoke(flow, None, thread_id="t") == 4
    assert calls["fetch"] == 4
    assert [(e.status, e.attempt) for e in flow.get_state(thread_id="t").entries] == [
        ("retry", 1), ("error", 2), ("retry", 3), ("ok", 4),
    ]  # fmt: skip


def test_errors_outside_retry_on_are_not_retried(flavor: Flavor, calls: Any) -> None:
    """An error that ``retry_on`` does not cover is final at its first attempt."""
    f = flavor
    fetch = f.task(retry=quick(max_attempts=5, retry_on=Transient))(flaky(calls, "fetch", failures=1, error=Fatal))

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        return (yield fetch())

    with pytest.raises(Fatal):
        f.invoke(flow, "go", thread_id="t")
    assert calls["fetch"] == 1


def test_retry_on_predicate_decides_per_error(flavor: Flavor, calls: Any) -> None:
    """A predicate ``retry_on`` sees each error and retries only those it accepts."""
    f = flavor
    seen: list[str] = []

    def transient_only(exc: BaseException) -> bool:
        seen.append(str(exc))
        return isinstance(exc, Transient)

    fetch = f.task(retry=quick(max_attempts=5, retry_on=transient_only))(flaky(calls, "fetch", failures=2))

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        return (yield fetch())

    assert f.invoke(flow, "go", thread_id="t") == 3
    assert seen == ["fetch attempt 1", "fetch attempt 2"]


def test_attempts_are_spaced_by_the_backoff(flavor: Flavor) -> None:
    """Attempts wait initial_interval, then initial_interval * backoff_factor, between them."""
    f = flavor
    stamps: list[float] = []

    def body() -> str:
        stamps.append(time.monotonic())
        if len(stamps) < 3:
            raise Transient("again")
        return "ok"

    fetch = f.task(retry=RetryPolicy(max_attempts=3, initial_interval=0.02, backoff_factor=2.0, jitter=False))(body)

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        return (yield fetch())

    assert f.invoke(flow, "go", thread_id="t") == "ok"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(gaps) == 2
    assert gaps[0] >= 0.019
    assert gaps[1] >= 0.039


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_retry_applies_outside_a_run(is_async: bool, calls: Any) -> None:
    """Outside any run a task with a RetryPolicy still retries before its error is final."""
    body = flaky(calls, "fetch", failures=2)
    if is_async:

        async def abody() -> int:
            return body()

        fetch = task(retry=quick(max_attempts=3))(abody)
    else:
        fetch = task(retry=quick(max_attempts=3))(body)
    assert fetch().result() == 3
    assert calls["fetch"] == 3
