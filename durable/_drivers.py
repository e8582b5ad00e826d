"""One flow, two thin drivers.

A flow is a generator that yields effects: call a store operation (`Op`), call
the workflow's body (`Body`), wait for the calls a body made (`Drain`). `drive`
carries the effects out with blocking calls; `adrive` with awaits on an async
session. Neither driver knows what the flow is doing, so the sync and async
paths cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from ._context import Scope
from ._run import adrain, drain
from .stores._base import AsyncSession, Store


class Op(NamedTuple):
    """Call a store operation (a method of `Store`, or of `AsyncSession` in the async driver)."""

    name: str
    args: tuple[Any, ...]


class Body(NamedTuple):
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class Drain(NamedTuple):
    scope: Scope


Effect = Op | Body | Drain
Flow = Generator[Effect, Any, Any]


def drive(flow: Flow, store: Store) -> Any:
    """Carry a flow out with blocking calls."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            if isinstance(effect, Op):
                value = getattr(store, effect.name)(*effect.args)
            elif isinstance(effect, Body):
                value = effect.fn(*effect.args, **effect.kwargs)
            else:
                drain(effect.scope)
        except BaseException as exc:
            error = exc


async def adrive(flow: Flow, session: AsyncSession) -> Any:
    """Carry a flow out with awaits."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            if isinstance(effect, Op):
                value = await getattr(session, effect.name)(*effect.args)
            elif isinstance(effect, Body):
                value = await effect.fn(*effect.args, **effect.kwargs)
            else:
                await adrain(effect.scope)
        except BaseException as exc:
            error = exc
