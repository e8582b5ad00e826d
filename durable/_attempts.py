"""A task call's attempts, written once: an I/O-free flow of effects and two thin drivers.

A plain sync task takes `Run._execute`'s short path (the same steps, inline). Every other call (a
retry policy, a timeout, a cache, an async body, or any task of an async run) is carried by `attempts`,
which only decides what happens next and yields it as an effect:

- `Attempt`: run the body once, in its own scope (which `task_context` reads), within its timeout; the
  body's value comes back, or its error is thrown back in;
- `Write`: journal a row (a cache hit, a failed attempt the policy retries, the error, the value);
- `Sleep`: wait (a retry's backoff; with ``stop``, a durable sleep that a lost lease cuts short);
- `Lookup` / `Fill`: ask the task's cache for the call / cache a fresh value.

`drive` carries a flow out with blocking calls (a sync run); `adrive` with awaits on the run's event loop,
the cache's blocking store calls in a worker thread, so nothing blocks the loop. Neither knows what the
flow is doing, so the sync and async paths cannot disagree (`_steps` drives a durable sleep with them too).

The steps of `attempts`:

1. A task with a cache policy asks the cache first: a hit is journaled as the call's outcome.
2. If the journal's latest row for the key is a failed attempt (``RETRY``), a crash interrupted the
   backoff: count the attempts already made and wait out only what is left of the delay (the jitter is
   drawn from the call's identity, so the delay is the same one).
3. Run an attempt. On an error the policy retries, journal it as a ``RETRY`` row, sleep, go again;
   otherwise journal the outcome, as every task does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Generator
from contextvars import copy_context
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _caching, _chunks, _clock, _context, _faults, _versions
from ._context import Scope
from ._flow import acarry, carry
from ._futures import pool
from ._retry import Retry
from ._serde import load_value
from .errors import TaskTimeoutError
from .stores._base import OK, RETRY, JournalRow

if TYPE_CHECKING:
    from ._run import Args, Kwargs, Run, TaskSpec


# -- the effects --------------------------------------------------------------------------------------


class Attempt(NamedTuple):
    """Run the body once (its value, or its error thrown back into the flow)."""

    spec: TaskSpec
    key: str
    attempt: int
    args: Args
    kwargs: Kwargs


class Write(NamedTuple):
    """Journal a row through the run's writer (`Run.write` / `Run.awrite`)."""

    row: JournalRow


class Sleep(NamedTuple):
    """Wait ``seconds``; with ``stop``, only until it is set, and say whether it was."""

    seconds: float
    stop: threading.Event | None = None


class Lookup(NamedTuple):
    """Ask the run's cache for a call: ``(hit, serialized value)`` (see `_caching.lookup`)."""

    spec: TaskSpec
    ckey: str


class Fill(NamedTuple):
    """Cache a freshly computed value's serialized bytes."""

    spec: TaskSpec
    ckey: str
    inner: bytes


Effect = Attempt | Write | Sleep | Lookup | Fill
Flow = Generator[Effect, Any, Any]


# -- the decision ---------------------------------------------------------------------------------------


def attempts(
    run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs
) -> Flow:
    """A task call's attempts to its outcome, each journaled; returns or raises the outcome."""
    ckey = None
    if spec.cache is not None and run.cache is not None:
        ckey = _caching.cache_key(spec.cache, args, kwargs)
        hit, inner = yield Lookup(spec, ckey)
        if hit:  # a cache hit is this call's outcome: journaled, so a resume replays it from the journal
            started = _clock.clock.time()
            yield Write(_hit_row(run, spec, key, attempt, digest, inner))
            return _hit_done(run, spec, key, attempt, inner, started)
    policy = policy_for(run, spec)
    tries, wait = _resume(run, key, attempt, policy)
    if wait > 0:
        yield Sleep(wait)
    while True:
        if _faults._armed is not None:
            _faults.hit("before_body")
        started = _clock.clock.time()
        try:
            value = yield Attempt(spec, key, attempt, args, kwargs)
        except Exception as exc:
            tries += 1
            if policy is not None and policy.should_retry(exc, tries):
                yield Write(_retry_row(run, spec, key, attempt, digest, exc, started))
                delay = policy.delay(tries, _seed(run, key), exc)
                _retrying(run, spec, key, attempt, exc, delay)
                yield Sleep(delay)
                attempt += 1
                continue
            yield Write(run.error_row(spec, key, attempt, digest, exc, started))
            run.failed(spec, key, attempt, started, exc)
            raise
        inner = None
        if ckey is not None:
            inner = run.codec.serialize(value, f"the result of task {spec.name!r} (key {key})")
            yield Fill(spec, ckey, inner)
        yield Write(run.ok_row(spec, key, attempt, digest, value, started, inner))
        run.recorded(spec, key, attempt, started, value)
        return value


def policy_for(run: Run, spec: TaskSpec) -> Retry | None:
    if spec.retry is not None:
        return spec.retry
    return run.default_retry if spec.inherit_retry else None


def _resume(run: Run, key: str, attempt: int, policy: Retry | None) -> tuple[int, float]:
    """(attempts already spent in this round, seconds of backoff still to wait) for a call about to run."""
    if attempt == 1:
        return 0, 0.0
    tries, last = run.replay.pending_retry(key)
    if last is None or policy is None:
        return tries, 0.0
    return tries, last.finished_at + policy.delay(tries, _seed(run, key)) - _clock.clock.time()


def _retrying(run: Run, spec: TaskSpec, key: str, attempt: int, exc: Exception, delay: float) -> None:
    from ._observe import retrying  # logging is imported on the first retry, not with durable

    retrying(run.observer, spec.name, key, attempt, exc, delay)


def _seed(run: Run, key: str) -> str:
    return f"{run.thread_id}\x00{run.run_id}\x00{key}"


def _hit_row(run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, inner: bytes) -> JournalRow:
    now = _clock.clock.time()
    if spec.version is not None:
        inner = _versions.stamp(spec.version, inner)
    payload = run.codec.seal(inner, run.run_id, key, spec.name, attempt, OK, digest)
    return JournalRow(key, attempt, spec.name, OK, digest, payload, now, now)


def _hit_done(run: Run, spec: TaskSpec, key: str, attempt: int, inner: bytes, started: float) -> Any:
    value = load_value(run.serde, inner, f"the cached result of task {spec.name!r}")
    if run.observer is not None:
        run.observer.task(spec.name, key, attempt, started, None)
    run.replay.note_recorded(key)
    if run.sink is not None:
        _chunks.call_done(run.sink, spec, key, value, cached=True)
    return value


def _retry_row(
    run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, exc: Exception, started: float
) -> JournalRow:
    payload = run.codec.dump_error(exc, run.run_id, key, spec.name, attempt=attempt, status=RETRY, digest=digest)
    return JournalRow(key, attempt, spec.name, RETRY, digest, payload, started, _clock.clock.time())


# -- the drivers ----------------------------------------------------------------------------------------


def execute(run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs) -> Any:
    """A task call's attempts, in a blocking run."""
    return drive(attempts(run, spec, key, attempt, digest, args, kwargs), run)


def aexecute(
    run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs
) -> Coroutine[Any, Any, Any]:
    """A task call's attempts, on an async run's event loop (a coroutine for the loop to run)."""
    return adrive(attempts(run, spec, key, attempt, digest, args, kwargs), run)


def drive(flow: Flow, run: Run) -> Any:
    """Carry a flow out with blocking calls."""
    return carry(flow, partial(_do, run))


async def adrive(flow: Flow, run: Run) -> Any:
    """Carry a flow out with awaits, on the run's event loop: nothing here blocks it."""
    return await acarry(flow, partial(_ado, run))


def _do(run: Run, effect: Effect) -> Any:
    if isinstance(effect, Attempt):
        return _attempt(run, *effect, bounded=True)
    if isinstance(effect, Write):
        return run.write(effect.row)
    if isinstance(effect, Sleep):
        if effect.stop is None:
            return _clock.clock.sleep(effect.seconds)
        return _clock.clock.wait(effect.stop, effect.seconds)
    if isinstance(effect, Lookup):
        return _caching.lookup(run, *effect)
    return _caching.store(run, *effect)


async def _ado(run: Run, effect: Effect) -> Any:
    import asyncio  # loaded already: this runs only in async code

    if isinstance(effect, Attempt):
        if effect.spec.is_async:
            return await _aattempt(run, *effect)
        return await _sync_attempt_in_loop(run, *effect)
    if isinstance(effect, Write):
        return await run.awrite(effect.row)
    if isinstance(effect, Sleep):
        if effect.stop is None:
            return await _clock.clock.asleep(effect.seconds)
        return await _clock.clock.await_(effect.stop, effect.seconds)
    if isinstance(effect, Lookup):  # the cache's rows are a store's: its blocking calls go to a thread
        return await asyncio.to_thread(_caching.lookup, run, *effect)
    return await asyncio.to_thread(_caching.store, run, *effect)


# -- one attempt ----------------------------------------------------------------------------------------


def _attempt(run: Run, spec: TaskSpec, key: str, attempt: int, args: Args, kwargs: Kwargs, *, bounded: bool) -> Any:
    """One attempt of a body (sync, or async on a loop of its own), in its scope and task context.

    ``bounded``: enforce the timeout here (the async driver enforces it around the call instead).
    """
    from ._run import drain

    scope = Scope(run, key + ".", spec.name, attempt)
    token = _context.current.set(scope)
    timed_out = False
    try:
        if spec.is_async:
            import asyncio

            return asyncio.run(_bounded(spec, key, spec.fn(*args, **kwargs)))
        if bounded and spec.timeout is not None:
            return _in_thread(spec, key, partial(spec.fn, *args, **kwargs))
        return spec.fn(*args, **kwargs)
    except TaskTimeoutError:
        timed_out = True
        raise
    finally:
        if not timed_out:  # an abandoned body may still be starting children: do not wait for them
            drain(scope)
        _context.current.reset(token)


async def _aattempt(run: Run, spec: TaskSpec, key: str, attempt: int, args: Args, kwargs: Kwargs) -> Any:
    from ._run import adrain

    scope = Scope(run, key + ".", spec.name, attempt)
    token = _context.current.set(scope)
    try:
        return await _bounded(spec, key, spec.fn(*args, **kwargs))
    finally:
        await adrain(scope)
        _context.current.reset(token)


async def _sync_attempt_in_loop(run: Run, spec: TaskSpec, key: str, attempt: int, args: Args, kwargs: Kwargs) -> Any:
    """A sync body in an async run: in the pool, or in a thread of its own when it has a timeout."""
    import asyncio

    body = partial(_attempt, run, spec, key, attempt, args, kwargs, bounded=False)
    loop = asyncio.get_running_loop()
    if spec.timeout is None:
        return await loop.run_in_executor(pool(), copy_context().run, body)
    done = _start_thread(key, body)
    finished, _ = await asyncio.wait({asyncio.wrap_future(done)}, timeout=spec.timeout)
    if not finished:
        raise TaskTimeoutError(spec.name, key, spec.timeout, abandoned=True)
    return done.result()


async def _bounded(spec: TaskSpec, key: str, coro: Coroutine[Any, Any, Any]) -> Any:
    """Await a body, cancelling it at the timeout (told apart from a TimeoutError the body raises itself)."""
    if spec.timeout is None:
        return await coro
    import asyncio

    job = asyncio.ensure_future(coro)
    finished, _ = await asyncio.wait({job}, timeout=spec.timeout)
    if not finished:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        raise TaskTimeoutError(spec.name, key, spec.timeout, abandoned=False)
    return job.result()


def bounded_call(spec: TaskSpec, *args: Any, **kwargs: Any) -> Any:
    """The task's function within its timeout, outside any run (a coroutine for an async task)."""
    if spec.is_async:
        return _bounded(spec, "", spec.fn(*args, **kwargs))
    return _in_thread(spec, "", partial(spec.fn, *args, **kwargs))


def _in_thread(spec: TaskSpec, key: str, fn: Callable[[], Any]) -> Any:
    from concurrent.futures import TimeoutError as WaitTimeout

    done = _start_thread(key, fn)
    try:
        return done.result(timeout=spec.timeout)
    except WaitTimeout:
        if done.done():  # the body's own TimeoutError, or it finished just as the wait gave up
            return done.result()
        assert spec.timeout is not None
        raise TaskTimeoutError(spec.name, key, spec.timeout, abandoned=True) from None


def _start_thread(key: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a daemon thread of its own (a hung body must not hold a pool thread, or the exit)."""
    from concurrent.futures import Future

    done: Future[Any] = Future()
    context = copy_context()

    def target() -> None:
        try:
            done.set_result(context.run(fn))
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=target, name=f"durable-task-{key}", daemon=True).start()
    return done
