"""The `task` decorator: a call inside a run is journaled by its key; outside a run it just runs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

import wrapt

from . import _attempts, _context, _versions
from ._caching import CachePolicy
from ._futures import TaskFuture
from ._retry import RetryPolicy, call_with_retry, call_with_retry_async, retry_option
from ._run import TaskSpec
from .errors import ConfigurationError

P = ParamSpec("P")
Q = ParamSpec("Q")
S = TypeVar("S")
R = TypeVar("R")


# -- task -------------------------------------------------------------------------------------------


class Task(Protocol[P, R]):
    """A decorated task: calling it returns a `TaskFuture` at once. The plain function is ``__wrapped__``."""

    __wrapped__: Callable[..., Any]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[R]: ...

    @property
    def name(self) -> str:
        """The name the journal records it under."""
        ...

    @property
    def timeout(self) -> float | None: ...

    def clear_cache(self, cache: Any) -> int:
        """Forget its cached results in ``cache``."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Task[P, R]: ...
    @overload
    def __get__(self: Task[Concatenate[S, Q], R], instance: S, owner: type[Any] | None = None) -> Task[Q, R]: ...
    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Any:
        """A task defined in a class binds like a method (``obj.task(...)`` passes ``obj`` first)."""
        ...


class _TaskDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


RetryOption = RetryPolicy | Sequence[RetryPolicy] | None


@overload
def task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    retry_policy: RetryOption = None,
    cache_policy: CachePolicy[Any] | None = None,
    timeout: float | timedelta | None = None,
    retry: RetryOption = None,
    version: int | None = None,
    upgrade: Mapping[int, Callable[[Any], Any]] | None = None,
) -> _TaskDecorator: ...
def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry_policy: RetryOption = None,
    cache_policy: CachePolicy[Any] | None = None,
    timeout: float | timedelta | None = None,
    retry: RetryOption = None,
    version: int | None = None,
    upgrade: Mapping[int, Callable[[Any], Any]] | None = None,
) -> Any:
    """Mark a function whose result is recorded in the journal.

    Inside a run, a call returns a `TaskFuture` at once and is keyed by its
    call order; on replay a recorded call returns its recorded result (or
    raises its recorded error) without running. Outside a run the function
    just runs. ``name`` (default: the function's ``__name__``, as LangGraph
    names it) is what the journal records and checks on replay.
    ``retry_policy`` (one `RetryPolicy` or a list: the first whose ``retry_on``
    covers an error applies; ``retry=`` is an alias) retries it before its
    error is final, each failed attempt journaled. ``cache_policy`` caches its
    results across runs and threads in the entrypoint's ``cache``.
    ``timeout`` (seconds or a ``timedelta``) bounds each attempt with
    `TaskTimeoutError`: an async body is cancelled; a sync body runs in a
    thread of its own, which is abandoned (Python cannot stop a thread), so
    make a hung sync call time out by itself where you can.

    ``version`` is the version of what the task returns, journaled with each value; ``upgrade`` maps an older
    version ``n`` to a function turning a version-``n`` value into a version-``n + 1`` one. A resume reads a
    value recorded by an older version through those functions, so runs started under old code go on under new
    code (``@task(version=2, upgrade={1: lambda old: Order(**old.__dict__, currency="EUR")})``). A value that
    cannot be read as the code needs it raises `RecordedValueError`; ``durable verify`` finds those before a
    deploy.
    """
    policy = retry_option(retry_policy, retry)
    version, steps = _versions.checked(version, upgrade)
    seconds = _timeout(timeout)
    if cache_policy is not None and not isinstance(cache_policy, CachePolicy):
        raise ConfigurationError(f"cache_policy={cache_policy!r}: pass a CachePolicy(...)")

    def decorate(func: Callable[..., Any]) -> Any:
        if not callable(func):
            raise ConfigurationError(f"@task decorates a function, not {func!r}")
        default, aliases = task_name(func)
        spec = TaskSpec(
            name=name or default,
            fn=func,
            is_async=_is_async(func),
            retry=policy,
            timeout=seconds,
            aliases=() if name else aliases,
            cache=cache_policy,
            version=version,
            upgrade=tuple(sorted(steps.items())),
        )
        # A bound method (``task(obj.method)``) already carries its instance: do not pass it again.
        bound = inspect.ismethod(func)
        return _TaskWrapper(func, partial(_call_bound if bound else _call_task, spec), spec)

    return decorate if fn is None else decorate(fn)


class _TaskWrapper(wrapt.FunctionWrapper):  # type: ignore[misc]  # wrapt is untyped
    """The decorated function (signature, name, docs and all), with its task options readable as LangGraph's are."""

    def __init__(self, func: Callable[..., Any], wrapper: Callable[..., Any], spec: TaskSpec) -> None:
        super().__init__(func, wrapper)
        self._self_spec = spec

    @property
    def name(self) -> str:
        """The name the journal records this task under."""
        return self._self_spec.name

    @property
    def retry_policy(self) -> Any:
        return self._self_spec.retry

    @property
    def cache_policy(self) -> CachePolicy[Any] | None:
        return self._self_spec.cache

    @property
    def timeout(self) -> float | None:
        return self._self_spec.timeout

    @property
    def version(self) -> int | None:
        """The version its values are journaled under (``None``: unversioned, read as version 1)."""
        return self._self_spec.version

    def clear_cache(self, cache: Any) -> int:
        """Forget this task's cached results in ``cache`` (a `durable.Cache`, or an entrypoint's ``.cache``)."""
        from ._caching import cache_identity

        spec = self._self_spec
        return int(cache.clear(cache_identity(spec.fn, spec.name, spec.version)))


def _timeout(timeout: float | timedelta | None) -> float | None:
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError(f"timeout={timeout!r}: pass a positive number of seconds (or a timedelta)")
    return float(timeout)


def _is_async(func: Callable[..., Any]) -> bool:
    target = func.func if isinstance(func, partial) else func
    # A callable object is async when its __call__ is.
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__)


def task_name(func: Callable[..., Any]) -> tuple[str, tuple[str, ...]]:
    """A function's default task (or entrypoint) name, and the names earlier versions gave it by default.

    The name is ``__name__``, as LangGraph's; a ``functools.partial`` is named after the function it
    wraps (its repr holds a memory address, which would differ in every process); a callable object
    after its class. Until 0.1 the default was ``__qualname__``: journals recorded under it still replay.
    """
    target = func
    while isinstance(target, partial):
        target = target.func
    name = getattr(target, "__name__", None) or type(target).__name__
    old = getattr(target, "__qualname__", None)
    return name, (old,) if old and old != name else ()


def _call_bound(
    spec: TaskSpec, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TaskFuture[Any]:
    return _call_task(spec, wrapped, None, args, kwargs)


def _call_task(
    spec: TaskSpec, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TaskFuture[Any]:
    if instance is not None:
        args = (instance, *args)
    scope = _context.current.get()
    if scope is not None:
        return scope.run.call(spec, scope, args, kwargs)
    return _call_plain(spec, args, kwargs)


def _call_plain(spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[Any]:
    """Outside a run: no journal, the function runs now (or, if async, on the running loop).

    Its retry policy and timeout apply as in a run, so a unit test sees the same behaviour.
    """
    fn = spec.fn if spec.timeout is None else partial(_attempts.bounded_call, spec)
    if spec.is_async:
        import asyncio

        coro = call_with_retry_async(spec.retry, fn, args, kwargs)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            return TaskFuture.wrap(loop.create_task(coro))
        runner: Callable[[], Any] = partial(asyncio.run, coro)
    else:
        runner = partial(call_with_retry, spec.retry, fn, args, kwargs)
    try:
        return TaskFuture.resolved(runner())
    except Exception as exc:
        return TaskFuture.failed(exc)
