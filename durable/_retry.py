"""`RetryPolicy`: attempts and backoff inside a task, before its error is final."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a task retries, with LangGraph's field names.

    The delay before attempt ``n + 1`` is ``initial_interval * backoff_factor ** (n - 1)``,
    capped at ``max_interval``, and with ``jitter`` multiplied by a random factor
    in [0.5, 1.5). ``retry_on`` is an exception type, a tuple of them, or a
    predicate taking the exception. Only the final error is journaled.
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
        if attempt >= self.max_attempts or not isinstance(exc, Exception):
            return False
        rule = self.retry_on
        if isinstance(rule, type):
            return isinstance(exc, rule)
        if isinstance(rule, Sequence):
            return isinstance(exc, tuple(rule))
        return bool(rule(exc))

    def delay(self, attempt: int) -> float:
        base = min(self.initial_interval * self.backoff_factor ** (attempt - 1), self.max_interval)
        return base * random.uniform(0.5, 1.5) if self.jitter else base


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
        time.sleep(policy.delay(attempt))
        attempt += 1


async def call_with_retry_async(
    policy: RetryPolicy | None, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    import asyncio

    attempt = 1
    while True:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if policy is None or not policy.should_retry(exc, attempt):
                raise
        await asyncio.sleep(policy.delay(attempt))
        attempt += 1
