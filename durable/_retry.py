"""`RetryPolicy`: attempts and backoff inside a task, before its error is final.

Inside a run the engine drives the attempts (`durable._run`), journaling each
failed one; `call_with_retry` serves task calls made outside any run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _clock
from .errors import ConfigurationError, NonRetryableError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a task retries, with LangGraph's field names.

    The delay before attempt ``n + 1`` is ``initial_interval * backoff_factor ** (n - 1)``,
    capped at ``max_interval``, and with ``jitter`` multiplied by a factor in
    [0.5, 1.5) drawn from the call's identity (the same on a resume, different
    between calls). ``retry_on`` is an exception type, a tuple of them, or a
    predicate taking the exception; a `NonRetryableError` is never retried.
    Inside a run every failed attempt is journaled with its error, and a run
    that crashes during a backoff resumes it: it waits out only what is left,
    and counts the attempts it already made.
    """

    max_attempts: int = 3
    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    jitter: bool = True
    retry_on: type[BaseException] | Sequence[type[BaseException]] | Callable[[BaseException], bool] = Exception

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"RetryPolicy(max_attempts={self.max_attempts}): it must be at least 1")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff_factor < 1:
            raise ConfigurationError(
                "RetryPolicy intervals must be >= 0 and backoff_factor >= 1, "
                f"got initial_interval={self.initial_interval}, backoff_factor={self.backoff_factor}, "
                f"max_interval={self.max_interval}"
            )

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether to try again after ``attempt`` attempts, the last of which raised ``exc``."""
        if attempt >= self.max_attempts or not isinstance(exc, Exception) or isinstance(exc, NonRetryableError):
            return False
        rule = self.retry_on
        if isinstance(rule, type):
            return isinstance(exc, rule)
        if isinstance(rule, Sequence):
            return isinstance(exc, tuple(rule))
        return bool(rule(exc))

    def delay(self, attempt: int, seed: str | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``; ``seed`` makes the jitter reproducible."""
        base = min(self.initial_interval * self.backoff_factor ** (attempt - 1), self.max_interval)
        if not self.jitter:
            return base
        draw = random.Random(f"{seed}:{attempt}").random() if seed is not None else random.random()
        return base * (0.5 + draw)


def call_with_retry(
    policy: RetryPolicy | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if policy is None:
        return fn(*args, **kwargs)
    attempt = 1
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not policy.should_retry(exc, attempt):
                raise
        _clock.clock.sleep(policy.delay(attempt))
        attempt += 1


async def call_with_retry_async(
    policy: RetryPolicy | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:

    attempt = 1
    while True:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if policy is None or not policy.should_retry(exc, attempt):
                raise
        await _clock.clock.asleep(policy.delay(attempt))
        attempt += 1
