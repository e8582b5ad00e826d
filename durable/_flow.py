"""Carrying out a flow: a generator that yields effects and is sent each effect's result.

The engine's run lifecycle (`_drivers`) and a task call's attempts (`_attempts`) are both written as flows that
only decide what happens next; each has a blocking and an async way to carry an effect out. The loop that feeds
results (and errors) back is written once, here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

E = TypeVar("E")


def carry(flow: Generator[E, Any, Any], do: Callable[[E], Any]) -> Any:
    """Run ``flow`` to its end, each effect carried out by ``do`` (blocking); an effect's error is thrown back in."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            value = do(effect)
        except BaseException as exc:  # the flow decides what it means
            error = exc


async def acarry(flow: Generator[E, Any, Any], do: Callable[[E], Awaitable[Any]]) -> Any:
    """`carry`, each effect awaited."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            value = await do(effect)
        except BaseException as exc:
            error = exc
