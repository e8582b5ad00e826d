"""Tasks with a retry policy or a timeout: every attempt journaled, a backoff resumed after a crash.

A task without either takes `Run._execute`'s short path. These functions take
over otherwise, for the blocking driver (`execute`) and the async one
(`aexecute`), with the same steps:

1. If the journal's latest row for the key is a failed attempt (``RETRY``), a
   crash interrupted the backoff: count the attempts already made and wait out
   only what is left of the delay (the jitter is drawn from the call's identity,
   so the delay is the same one).
2. Run an attempt in its own scope (which `task_context` reads), within ``timeout``.
3. On an error the policy retries, journal it as a ``RETRY`` row, sleep, go again;
   otherwise journal the outcome, as every task does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from contextvars import copy_context
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _caching, _chunks, _clock, _context, _faults
from ._context import Scope
from ._futures import pool
from ._retry import Retry
from ._serde import load_value
from .errors import TaskTimeoutError
from .stores._base import OK, RETRY, JournalRow

if TYPE_CHECKING:
    from ._run import Args, Kwargs, Run, TaskSpec


def policy_for(run: Run, spec: TaskSpec) -> Retry | None:
    if spec.retry is not None:
        return spec.retry
    return run.default_retry if spec.inherit_retry else None


def _resume(run: Run, spec: TaskSpec, key: str, attempt: int, policy: Retry | None) -> tuple[int, float]:
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


def _retry_row(
    run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, exc: Exception, started: float
) -> JournalRow:
    payload = run.codec.dump_error(exc, run.run_id, key, spec.name, attempt=attempt, status=RETRY, digest=digest)
    return JournalRow(key, attempt, spec.name, RETRY, digest, payload, started, _clock.clock.time())


def _cached(run: Run, spec: TaskSpec, args: Args, kwargs: Kwargs) -> tuple[str | None, bytes | None]:
    """For a task with a cache policy in a run with a cache: its cache key, and the cached value if any."""
    if spec.cache is None or run.cache is None:
        return None, None
    ckey = _caching.cache_key(spec.cache, args, kwargs)
    hit, inner = _caching.lookup(run, spec, ckey)
    return ckey, inner if hit else None


def _hit_row(run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, inner: bytes) -> JournalRow:
    """A cache hit is this call's outcome: journaled, so a resume replays it from the journal."""
    now = _clock.clock.time()
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


def _fill(run: Run, spec: TaskSpec, ckey: str | None, value: Any) -> None:
    if ckey is not None:
        _caching.store(run, spec, ckey, run.codec.serialize(value, f"the result of task {spec.name!r}"))


def execute(run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs) -> Any:
    """Run a task's attempts to its outcome, in a blocking run; journal each; return or raise the outcome."""
    ckey, inner = _cached(run, spec, args, kwargs)
    if inner is not None:
        started = _clock.clock.time()
        run.write(_hit_row(run, spec, key, attempt, digest, inner))
        return _hit_done(run, spec, key, attempt, inner, started)
    policy = policy_for(run, spec)
    tries, wait = _resume(run, spec, key, attempt, policy)
    _clock.clock.sleep(wait)
    while True:
        if _faults._armed is not None:
            _faults.hit("before_body")
        started = _clock.clock.time()
        try:
            value = _attempt(run, spec, key, attempt, args, kwargs, bounded=True)
        except Exception as exc:
            tries += 1
            if policy is not None and policy.should_retry(exc, tries):
                run.write(_retry_row(run, spec, key, attempt, digest, exc, started))
                delay = policy.delay(tries, _seed(run, key), exc)
                _retrying(run, spec, key, attempt, exc, delay)
                _clock.clock.sleep(delay)
                attempt += 1
                continue
            run.write(run._error_row(spec, key, attempt, digest, exc, started))
            if run.observer is not None:
                run.observer.task(spec.name, key, attempt, started, exc)
            if run.sink is not None:
                _chunks.call_failed(run.sink, spec, key, exc)
            raise
        _fill(run, spec, ckey, value)
        return run._record_ok(spec, key, attempt, digest, value, started)


async def aexecute(
    run: Run, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs
) -> Any:
    """`execute` for an async run: on the loop, with async writes and sleeps."""
    ckey, inner = _cached(run, spec, args, kwargs)
    if inner is not None:
        started = _clock.clock.time()
        await run.awrite(_hit_row(run, spec, key, attempt, digest, inner))
        return _hit_done(run, spec, key, attempt, inner, started)
    policy = policy_for(run, spec)
    tries, wait = _resume(run, spec, key, attempt, policy)
    if wait > 0:
        await _clock.clock.asleep(wait)
    while True:
        _faults.hit("before_body")
        started = _clock.clock.time()
        try:
            if spec.is_async:
                value = await _aattempt(run, spec, key, attempt, args, kwargs)
            else:
                value = await _sync_attempt_in_loop(run, spec, key, attempt, args, kwargs)
        except Exception as exc:
            tries += 1
            if policy is not None and policy.should_retry(exc, tries):
                await run.awrite(_retry_row(run, spec, key, attempt, digest, exc, started))
                delay = policy.delay(tries, _seed(run, key), exc)
                _retrying(run, spec, key, attempt, exc, delay)
                await _clock.clock.asleep(delay)
                attempt += 1
                continue
            await run.awrite(run._error_row(spec, key, attempt, digest, exc, started))
            if run.observer is not None:
                run.observer.task(spec.name, key, attempt, started, exc)
            if run.sink is not None:
                _chunks.call_failed(run.sink, spec, key, exc)
            raise
        row = run._ok_row(spec, key, attempt, digest, value, started)
        _fill(run, spec, ckey, value)
        _faults.hit("after_body")
        await run.awrite(row)
        if run.observer is not None:
            run.observer.task(spec.name, key, attempt, started, None)
        run.replay.note_recorded(key)
        _faults.hit("after_commit")
        if run.sink is not None:
            _chunks.call_done(run.sink, spec, key, value)
        return value


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
