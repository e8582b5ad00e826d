"""Journaled stand-ins for the clock, randomness and sleeping, for use in entrypoint bodies.

An entrypoint body runs again on every resume, so anything it reads that can
change (the time, a random number, a fresh UUID) must come from the journal
the second time. Each of these is keyed by call order like a task: the first
run records the value, every replay returns it. Outside a run they just
return the real thing.

`sleep` journals when it wakes, not how long it sleeps: a run that crashes
two days into a three-day sleep sleeps one more day after its resume. Run by
a worker, a long sleep releases the run instead, and a worker wakes it when due.
A sleep in progress ends early if the run loses its lease (it was cancelled, or
another executor took it over): the heartbeat notices within a third of the
lease term. `sleep` and `asleep` are one flow (`_sleeping`), carried out by
`_attempts`' blocking and async drivers.

In an async run, `now`/`uuid4`/`random` called on the event loop cannot
await their write, and must not block the loop on it: the row goes to the
run's writer at once (`Run.post`) and is committed with the run's next write
(a task's outcome, a durable sleep), ahead of it, or at the run's end.
"""

from __future__ import annotations

import random as _random
import uuid as _uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _attempts, _clock, _context
from ._interrupts import Suspend
from .errors import ConfigurationError, UsageError
from .stores._base import OK, JournalRow

if TYPE_CHECKING:
    from ._context import Scope
    from ._run import Run

NOW, UUID4, RANDOM, SLEEP = "durable.now", "durable.uuid4", "durable.random", "durable.sleep"


def now() -> float:
    """The time (seconds since the epoch), recorded on first run and the same on every replay."""
    scope = _context.current.get()
    if scope is None:
        return _clock.clock.time()
    return float(_step(scope, NOW, _clock.clock.time))


def uuid4() -> _uuid.UUID:
    """A random UUID, recorded on first run and the same on every replay."""
    scope = _context.current.get()
    if scope is None:
        return _uuid.uuid4()
    return _uuid.UUID(_step(scope, UUID4, lambda: str(_uuid.uuid4())))


def random() -> float:
    """A random float in [0, 1), recorded on first run and the same on every replay."""
    scope = _context.current.get()
    if scope is None:
        return _random.random()
    return float(_step(scope, RANDOM, _random.random))


def sleep(seconds: float) -> None:
    """Sleep durably: the wake-up time is journaled, so a resume sleeps only what is left.

    In an async entrypoint use ``await durable.asleep(...)``.
    """
    _check_seconds(seconds)
    scope = _context.current.get()
    if scope is None:
        _clock.clock.sleep(seconds)
        return
    if scope.run.on_loop():
        raise UsageError("durable.sleep() would block the event loop of an async run: use await durable.asleep(...)")
    _attempts.drive(_sleeping(scope, seconds), scope.run)


async def asleep(seconds: float) -> None:
    """`sleep` for async code: ``await durable.asleep(3 * 86400)``."""
    _check_seconds(seconds)
    scope = _context.current.get()
    if scope is None:
        await _clock.clock.asleep(seconds)
        return
    await _attempts.adrive(_sleeping(scope, seconds), scope.run)


def _sleeping(scope: Scope, seconds: float) -> _attempts.Flow:
    """A durable sleep, for `sleep` and `asleep` to carry out: journal the wake-up time (or read it back),
    then wait until then, unless the run loses its lease first (cancelled, or taken over)."""
    run = scope.run
    wake, row = _recorded(scope, SLEEP, lambda: _clock.clock.time() + seconds)
    if row is not None:
        yield _attempts.Write(row)
    if (yield _attempts.Sleep(_left(run, wake), run.stopped)):
        assert run.lost is not None
        raise run.lost


def _left(run: Run, wake: float) -> float:
    """Seconds until ``wake``; raises `Suspend` when the run should leave a long sleep to a worker."""
    left = float(wake) - _clock.clock.time()
    if run.suspend_after is not None and left >= run.suspend_after:
        raise Suspend(float(wake))
    return left


def _step(scope: Scope, name: str, make: Callable[[], Any]) -> Any:
    """The value journaled at the next key, or a fresh one from ``make``, journaled now.

    On an async run's event loop the row goes to the writer without blocking (`Run.post`): it is
    committed with the run's next write, before any later row, or at the run's end.
    """
    value, row = _recorded(scope, name, make)
    if row is not None:
        run = scope.run
        if run.on_loop():
            run.post(row)
        else:
            run.write(row)
    return value


def _recorded(scope: Scope, name: str, make: Callable[[], Any]) -> tuple[Any, JournalRow | None]:
    """The value at the next key: the journaled one (and no row), or a fresh one and the row to journal."""
    run = scope.run
    key = scope.next_key()
    row, attempt = run.replay.lookup(key, name, None)
    if row is not None:
        return run._replayed(row, name).result(), None
    value = make()
    return value, _row(run, key, attempt, name, value)


def _row(run: Run, key: str, attempt: int, name: str, value: Any) -> JournalRow:
    inner = run.codec.serialize(value, f"the value of {name}() (key {key})")
    payload = run.codec.seal(inner, run.run_id, key, name, attempt, OK)
    at = _clock.clock.time()
    return JournalRow(key, attempt, name, OK, None, payload, at, at)


def _check_seconds(seconds: float) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ConfigurationError(f"sleep({seconds!r}): pass a number of seconds, 0 or more")
