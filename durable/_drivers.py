"""One flow, two thin drivers.

A flow is a generator that yields effects: call a store operation (`Op`), call
the workflow's body (`Body`), wait for the calls a body made (`Drain`). `drive`
carries the effects out with blocking calls; `adrive` with awaits on an async
session. Neither driver knows what the flow is doing, so the sync and async
paths cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import partial
from typing import Any, NamedTuple

from ._context import Scope
from ._flow import acarry, carry
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
    return carry(flow, partial(_do, store))


async def adrive(flow: Flow, session: AsyncSession) -> Any:
    """Carry a flow out with awaits."""
    return await acarry(flow, partial(_ado, session))


def _do(store: Store, effect: Effect) -> Any:
    if isinstance(effect, Op):
        return getattr(store, effect.name)(*effect.args)
    if isinstance(effect, Body):
        return effect.fn(*effect.args, **effect.kwargs)
    return drain(effect.scope)


async def _ado(session: AsyncSession, effect: Effect) -> Any:
    if isinstance(effect, Op):
        return await getattr(session, effect.name)(*effect.args)
    if isinstance(effect, Body):
        return await effect.fn(*effect.args, **effect.kwargs)
    return await adrain(effect.scope)
