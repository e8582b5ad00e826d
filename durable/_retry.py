"""`RetryPolicy`: attempts and backoff inside a task, before its error is final.

Inside a run the engine drives the attempts (`durable._run`), journaling each
failed one; `call_with_retry` serves task calls made outside any run.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _clock
from .errors import ConfigurationError, NonRetryableError, TaskTimeoutError

_PROGRAMMING_ERRORS = (
    ValueError, TypeError, ArithmeticError, ImportError, LookupError, NameError, SyntaxError, RuntimeError,
    ReferenceError, StopIteration, StopAsyncIteration, OSError,
)  # fmt: skip


def default_retry_on(exc: BaseException) -> bool:
    r"""LangGraph's default: retry what looks transient, not programming errors.

    A connection error, an HTTP 5xx from httpx or requests (when the program uses them) and
    durable's `TaskTimeoutError` are retried; ``ValueError``, ``TypeError``, ``LookupError``,
    ``ArithmeticError``, ``RuntimeError``, other ``OSError``\ s and their kin are not, since
    running the same code again would fail the same way; anything else is retried.
    """
    if isinstance(exc, ConnectionError | TaskTimeoutError):
        return True
    for module, error in (("httpx", "HTTPStatusError"), ("requests", "HTTPError")):
        lib = sys.modules.get(module)  # never imported here: only a program that uses it can raise it
        kind = getattr(lib, error, None) if lib is not None else None
        if kind is not None and isinstance(exc, kind):
            status = getattr(getattr(exc, "response", None), "status_code", None)
            return status is None or 500 <= int(status) < 600
    return not isinstance(exc, _PROGRAMMING_ERRORS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a task retries, with LangGraph's fields, in its order, and its defaults.

    The delay before attempt ``n + 1`` is ``initial_interval * backoff_factor ** (n - 1)``,
    capped at ``max_interval``, and with ``jitter`` multiplied by a factor in
    [0.5, 1.5) drawn from the call's identity (the same on a resume, different
    between calls). ``retry_on`` is an exception type, a sequence of them, or a
    predicate taking the exception; by default `default_retry_on` (programming
    errors are not retried). A `NonRetryableError` is never retried.
    Inside a run every failed attempt is journaled with its error, and a run
    that crashes during a backoff resumes it: it waits out only what is left,
    and counts the attempts it already made.
    """

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True
    retry_on: type[BaseException] | Sequence[type[BaseException]] | Callable[[BaseException], bool] = default_retry_on

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"RetryPolicy(max_attempts={self.max_attempts}): it must be at least 1")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff_factor < 1:
            raise ConfigurationError(
                "RetryPolicy intervals must be >= 0 and backoff_factor >= 1, "
                f"got initial_interval={self.initial_interval}, backoff_factor={self.backoff_factor}, "
                f"max_interval={self.max_interval}"
            )

    def applies_to(self, exc: BaseException) -> bool:
        """Whether ``retry_on`` covers ``exc`` (whatever the attempt count)."""
        if not isinstance(exc, Exception) or isinstance(exc, NonRetryableError):
            return False
        rule = self.retry_on
        if isinstance(rule, type):
            return isinstance(exc, rule)
        if isinstance(rule, Sequence):
            return isinstance(exc, tuple(rule))
        return bool(rule(exc))

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether to try again after ``attempt`` attempts, the last of which raised ``exc``."""
        return attempt < self.max_attempts and self.applies_to(exc)

    def delay(self, attempt: int, seed: str | None = None, exc: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``; ``seed`` makes the jitter reproducible."""
        base = min(self.initial_interval * self.backoff_factor ** (attempt - 1), self.max_interval)
        if not self.jitter:
            return base
        draw = random.Random(f"{seed}:{attempt}").random() if seed is not None else random.random()
        return base * (0.5 + draw)


@dataclass(frozen=True, slots=True)
class RetryPolicies:
    """Several policies, as LangGraph takes them: the first whose ``retry_on`` covers an error decides
    whether and when that error is retried."""

    policies: tuple[RetryPolicy, ...]

    def _for(self, exc: BaseException | None) -> RetryPolicy | None:
        if exc is None:
            return self.policies[0]
        return next((p for p in self.policies if p.applies_to(exc)), None)

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        policy = self._for(exc)
        return policy is not None and attempt < policy.max_attempts

    def delay(self, attempt: int, seed: str | None = None, exc: BaseException | None = None) -> float:
        policy = self._for(exc) or self.policies[0]
        return policy.delay(attempt, seed)


Retry = RetryPolicy | RetryPolicies


def retry_option(
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None, retry: RetryPolicy | Sequence[RetryPolicy] | None
) -> Retry | None:
    """``retry_policy=`` (LangGraph's name: one policy or a list) or its alias ``retry=``, as one `Retry`."""
    if retry_policy is not None and retry is not None and retry_policy != retry:
        raise ConfigurationError("retry_policy= and retry= are the same option: pass one of them")
    given = retry_policy if retry_policy is not None else retry
    if given is None:
        return None
    if isinstance(given, RetryPolicy):
        return given
    if isinstance(given, Sequence) and not isinstance(given, str):
        policies = tuple(given)
        if policies and all(isinstance(p, RetryPolicy) for p in policies):
            return policies[0] if len(policies) == 1 else RetryPolicies(policies)
    raise ConfigurationError(f"retry_policy={given!r}: pass a RetryPolicy(...) or a list of them")


def call_with_retry(policy: Retry | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if policy is None:
        return fn(*args, **kwargs)
    attempt = 1
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not policy.should_retry(exc, attempt):
                raise
            delay = policy.delay(attempt, None, exc)
        _clock.clock.sleep(delay)
        attempt += 1


async def call_with_retry_async(
    policy: Retry | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:

    attempt = 1
    while True:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if policy is None or not policy.should_retry(exc, attempt):
                raise
            delay = policy.delay(attempt, None, exc)
        await _clock.clock.asleep(delay)
        attempt += 1
