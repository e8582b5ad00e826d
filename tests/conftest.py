"""Shared fixtures for tests/unit and tests/integration.

Two axes are parametrized here instead of copying tests:

* ``store``: every behaviour holds on `MemoryStore`, `SQLiteStore` (a file in ``tmp_path``), `PostgresStore`
  and `RedisStore` (a schema or a key prefix of their own; skipped without a server, failed under ``CI=true``).
* ``flavor``: every behaviour holds for sync and for async entrypoints. A test writes its workflow once,
  with plain functions, and the flavor turns them into sync or async ones:

  - a body (of an entrypoint or a task) is a plain function, or a generator function that *yields* what it
    waits for: ``x = yield fetch(1)`` waits for one task (``.result()`` when sync, ``await`` when async),
    ``xs = yield [fetch(i) for i in range(3)]`` waits for several (a list comprehension / ``asyncio.gather``),
    ``y = yield flavor.sub(inner, 1)`` runs a sub-entrypoint in the caller's run (``inner.invoke`` /
    ``inner.ainvoke``), and ``ok = yield flavor.blocking(event.wait, 5)`` makes a blocking call (directly when
    sync; in a worker thread when async, so the event loop keeps running the other tasks).
    A task's error is thrown back into the body at its ``yield``, so ``try/except`` works as usual.
  - ``flavor.task(fn, name=..., retry=...)`` and ``flavor.entrypoint(body, checkpointer=..., ...)`` decorate
    a sync or an async wrapper of the body with the real `durable.task` / `durable.entrypoint`; the wrapper
    keeps the body's name and signature, so task names and the ``previous`` parameter behave as written.
  - ``flavor.invoke(ep, input, thread_id=...)`` calls ``ep.invoke`` (sync) or ``asyncio.run(ep.ainvoke(...))``.

The ``flavor`` fixture covers "sync" (sync entrypoint, sync tasks) and "async" (async entrypoint, async tasks);
``any_flavor`` adds the two mixes (an async entrypoint calling sync tasks and the reverse) for the engine tests.

Helpers reach tests through fixtures (``flavor``, ``calls``, ``journal``), not imports: `tests/` is not a
package, and other folders have their own ``conftest`` module. This file imports `durable` only when a fixture
is used, so the acceptance tests' pytest process (which runs `durable` in subprocesses only) stays free of it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

if TYPE_CHECKING:
    from durable import Entrypoint, Store

# -- markers: what a test needs, so a fast loop can leave it out ----------------------------------
#
# Registered (with --strict-markers) in pyproject.toml. The fast loop is
#     python -m pytest -m "not (postgres or redis or browser or subprocess or slow)"
# and a plain ``python -m pytest`` still runs everything. Most marks are applied here rather than by hand:
#
# * ``postgres`` / ``redis``: a test using a server fixture (``pg_schema``, ``postgres_url``; ``redis_prefix``,
#   ``redis_server``), directly or through another fixture, or parametrized with the value "postgres" / "redis"
#   (the ``store`` fixture, ``new_store(kind)`` tests, ...). A test that reaches a server some other way is marked
#   in its file; the server fixtures fail a test that uses them without its mark, so none goes unmarked.
# * ``subprocess``: everything under tests/acceptance and tests/cli (real worker processes, SIGKILL, ``python -m
#   durable``) and every test using ``redis_server``; other tests that run code in another process are marked in
#   their file (a throwaway ``python -c`` whose only use is the pid of a dead process does not count).
# * ``slow``: marked in the test files (a test that waits out real time-to-live expiries, leases, deadlines or
#   timeouts, runs a thousand runs, a LangGraph comparison matrix...), except two groups marked here: the
#   `StoreConformance` tests that wait out expiries (they are the library's own, in durable/conformance.py), and
#   the compatibility suite's LangGraph runs (``lib`` is "langgraph": they run LangGraph itself, the reference the
#   durable runs are held to, so they check the expectations, never durable).

SERVICE_FIXTURES = {
    "postgres": frozenset({"pg_schema", "postgres_url"}),
    "redis": frozenset({"redis_prefix", "redis_server"}),
}
SUBPROCESS_FIXTURES = frozenset({"redis_server"})
SUBPROCESS_DIRS = ("acceptance", "cli")  # under tests/
# StoreConformance tests that sleep past real expiries (about a second each, on every store).
SLOW_CONFORMANCE = frozenset({"test_kv_refresh_extends_a_row_by_its_ttl", "test_kv_rows_expire_after_their_ttl"})
TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        values = {v for v in params.values() if isinstance(v, str)}
        for service, names in SERVICE_FIXTURES.items():
            if fixtures & names or service in values:
                item.add_marker(service)
        try:
            where = item.path.resolve().relative_to(TESTS).parts
        except ValueError:
            where = ()
        if fixtures & SUBPROCESS_FIXTURES or (len(where) > 1 and where[0] in SUBPROCESS_DIRS):
            item.add_marker("subprocess")
        bases = {b.__name__ for b in getattr(getattr(item, "cls", None), "__mro__", ())}
        if getattr(item, "originalname", None) in SLOW_CONFORMANCE and "StoreConformance" in bases:
            item.add_marker("slow")
        if where[:1] == ("compat",) and params.get("lib") == "langgraph":
            item.add_marker("slow")


def _require_mark(request: pytest.FixtureRequest, service: str) -> None:
    """Fail a test that reaches ``service`` without its mark (one getting a fixture by name at run time, say):
    ``-m "not postgres"`` would run it anyway, and the fast loop would wait on the server."""
    if request.node.get_closest_marker(service) is None:
        pytest.fail(
            f"{request.node.nodeid} uses the {service} server but is not marked {service}: add "
            f"@pytest.mark.{service} (tests/conftest.py marks tests using its fixtures or a {service!r} parameter)",
            pytrace=False,
        )


# -- stores ---------------------------------------------------------------------------------------

# The Postgres the tests use: $DURABLE_TEST_POSTGRES, else libpq's PG* variables, else the local server.
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_dsn() -> str:
    """The test server's DSN, or skip (outside CI) / fail (under ``CI=true``) when none answers."""
    dsn = os.environ.get("DURABLE_TEST_POSTGRES")
    if dsn is None:
        dsn = "" if any(k.startswith("PG") and k[2:].isupper() for k in os.environ) else LOCAL_POSTGRES
    reason = _postgres_unreachable(dsn)
    if reason is not None:
        message = (
            f"no Postgres answers at {dsn or 'the PG* environment'} ({reason}); set DURABLE_TEST_POSTGRES "
            f"to a server's URL to run the Postgres tests"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the Postgres tests must run)", pytrace=False)
        pytest.skip(message)
    return dsn


@functools.cache
def _postgres_unreachable(dsn: str) -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -e '.[dev]'"
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """The test server's DSN (skipped, or failed under CI, when none answers)."""
    _require_mark(request, "postgres")
    return postgres_dsn()


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A DSN and a schema of its own for one test, dropped afterwards: ``(dsn, schema)``."""
    import psycopg

    _require_mark(request, "postgres")
    dsn = postgres_dsn()
    schema = f"durable_test_{uuid.uuid4().hex[:12]}"
    yield dsn, schema
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# The Redis the tests use: $DURABLE_TEST_REDIS, else the local server. Each test gets a key prefix of its own,
# whose keys are deleted afterwards.
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def redis_server_url() -> str:
    """The test server's URL, or skip (outside CI) / fail (under ``CI=true``) when none answers."""
    url = os.environ.get("DURABLE_TEST_REDIS") or LOCAL_REDIS
    reason = _redis_unreachable(url)
    if reason is not None:
        message = (
            f"no Redis answers at {url} ({reason}); set DURABLE_TEST_REDIS to a server's URL to run the Redis tests"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the Redis tests must run)", pytrace=False)
        pytest.skip(message)
    return url


@functools.cache
def _redis_unreachable(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed: pip install -e '.[dev]'"
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    return None


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A server URL and a key prefix of its own for one test, its keys deleted afterwards: ``(url, prefix)``."""
    import redis

    _require_mark(request, "redis")
    url = redis_server_url()
    prefix = f"durable-test-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    with redis.Redis.from_url(url) as client:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.unlink(key)


class RedisServer(NamedTuple):
    """A ``redis-server`` process of a test's own (its files in a temporary directory)."""

    url: str
    process: subprocess.Popen[bytes]
    port: int


@pytest.fixture
def redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``redis_server(*options, port=None, name="redis")``: start a ``redis-server`` with these command-line options
    (``"--appendonly", "yes"``, ...) in a directory of its own, on a free port (or ``port``: a restart on the same
    files); it answers PING before this returns and is killed after the test."""
    import redis

    _require_mark(request, "redis")
    binary = shutil.which("redis-server")
    if binary is None:
        message = "no redis-server binary on PATH (apt-get install redis-server): the Redis crash tests need one"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true)", pytrace=False)
        pytest.skip(message)
    started: list[subprocess.Popen[bytes]] = []

    def start(*options: str, port: int | None = None, name: str = "redis") -> RedisServer:
        where = tmp_path / name
        where.mkdir(exist_ok=True)
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(where), "--save", "", *options]
        log = open(where / "server.log", "ab")  # noqa: SIM115 - the server writes it until it is killed
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(process)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
                    client.ping()
                return RedisServer(url, process, port)
            except redis.RedisError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"redis-server did not start: {(where / 'server.log').read_text()}") from None
                time.sleep(0.05)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest | None = None, **options: Any) -> Store:
    from durable import MemoryStore, PostgresStore, RedisStore, SQLiteStore

    if kind == "memory":
        return MemoryStore(**options)
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "journal.db", **options)
    if kind == "postgres":
        assert request is not None, "a Postgres store needs the test's request for its schema"
        dsn, schema = request.getfixturevalue("pg_schema")
        return PostgresStore(dsn, schema=schema, **options)
    if kind == "redis":
        assert request is not None, "a Redis store needs the test's request for its key prefix"
        url, prefix = request.getfixturevalue("redis_prefix")
        return RedisStore(url, prefix=prefix, **options)
    raise AssertionError(kind)


STORE_KINDS = ["memory", "sqlite", "postgres", "redis"]


@pytest.fixture
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Store]:
    """``new_store(kind, **options)``: a fresh store of that kind for this test (one journal per kind)."""
    return functools.partial(make_store, tmp_path=tmp_path, request=request)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each kind."""
    with make_store(request.param, tmp_path, request) as s:
        yield s


# -- writing a workflow once, running it sync or async --------------------------------------------


class Sub(NamedTuple):
    """What a body yields to run a sub-entrypoint as part of the current run."""

    ep: Entrypoint[Any, Any]
    input: Any


class Blocking(NamedTuple):
    """What a body yields to make a blocking call (waiting on an Event or a Barrier)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


# Runs the blocking calls of async bodies; large enough for every test's concurrent waiters.
_BLOCKING_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="test-blocking")


def _wait(step: Any) -> Any:
    from durable import TaskFuture

    if isinstance(step, Blocking):
        return step.fn(*step.args)
    if isinstance(step, Sub):
        return step.ep.invoke(step.input)
    if isinstance(step, list):
        return [f.result() for f in step]
    assert isinstance(step, TaskFuture), f"a body yielded {step!r}: yield a TaskFuture, a list of them, sub or blocking"
    return step.result()


async def _await(step: Any) -> Any:
    from durable import TaskFuture

    if isinstance(step, Blocking):
        return await asyncio.get_running_loop().run_in_executor(_BLOCKING_POOL, step.fn, *step.args)
    if isinstance(step, Sub):
        return await step.ep.ainvoke(step.input)
    if isinstance(step, list):
        return list(await asyncio.gather(*step))
    assert isinstance(step, TaskFuture), f"a body yielded {step!r}: yield a TaskFuture, a list of them, sub or blocking"
    return await step


def drive(result: Any) -> Any:
    """Run a generator body to its end, waiting for what it yields (a plain body's value passes through)."""
    if not inspect.isgenerator(result):
        return result
    gen: Generator[Any, Any, Any] = result
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = gen.send(value) if error is None else gen.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            value = _wait(step)
        except Exception as exc:
            error = exc


async def adrive(result: Any) -> Any:
    """`drive` for async code: what the body yields is awaited."""
    if not inspect.isgenerator(result):
        return result
    gen: Generator[Any, Any, Any] = result
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = gen.send(value) if error is None else gen.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            value = await _await(step)
        except Exception as exc:
            error = exc


def _body(fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """A sync or async function running the generator body ``fn`` (keeping its name and signature)."""
    if is_async:

        @functools.wraps(fn)
        async def abody(*args: Any, **kwargs: Any) -> Any:
            return await adrive(fn(*args, **kwargs))

        return abody

    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        return drive(fn(*args, **kwargs))

    return body


@dataclass(frozen=True)
class Flavor:
    """Sync or async entrypoints and tasks, built from one body (see the module docstring)."""

    name: str
    async_entrypoint: bool
    async_tasks: bool

    def __repr__(self) -> str:
        return f"Flavor({self.name})"

    def task(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        import durable

        def build(fn: Callable[..., Any]) -> Any:
            return durable.task(**options)(_body(fn, self.async_tasks))

        return build if fn is None else build(fn)

    def entrypoint(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        import durable

        def build(fn: Callable[..., Any]) -> Entrypoint[Any, Any]:
            return durable.entrypoint(**options)(_body(fn, self.async_entrypoint))

        return build if fn is None else build(fn)

    @staticmethod
    def sub(ep: Entrypoint[Any, Any], input: Any) -> Sub:
        """For a body to yield: run ``ep`` on ``input`` as part of the current run."""
        return Sub(ep, input)

    @staticmethod
    def blocking(fn: Callable[..., Any], *args: Any) -> Blocking:
        """For a body to yield: call ``fn(*args)``, which blocks, without blocking an event loop."""
        return Blocking(fn, args)

    def invoke(self, ep: Entrypoint[Any, Any], input: Any, **kwargs: Any) -> Any:
        """``ep.invoke(...)`` for the sync flavor, ``asyncio.run(ep.ainvoke(...))`` for the async one."""
        if self.async_entrypoint:
            return asyncio.run(ep.ainvoke(input, **kwargs))
        return ep.invoke(input, **kwargs)


SYNC = Flavor("sync", async_entrypoint=False, async_tasks=False)
ASYNC = Flavor("async", async_entrypoint=True, async_tasks=True)
ASYNC_EP_SYNC_TASKS = Flavor("async-ep-sync-tasks", async_entrypoint=True, async_tasks=False)
SYNC_EP_ASYNC_TASKS = Flavor("sync-ep-async-tasks", async_entrypoint=False, async_tasks=True)


@pytest.fixture(params=[SYNC, ASYNC], ids=lambda f: f.name)
def flavor(request: pytest.FixtureRequest) -> Flavor:
    """Sync entrypoint with sync tasks, and async entrypoint with async tasks."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=[SYNC, ASYNC, ASYNC_EP_SYNC_TASKS, SYNC_EP_ASYNC_TASKS], ids=lambda f: f.name)
def any_flavor(request: pytest.FixtureRequest) -> Flavor:
    """`flavor` plus the two mixes: an async entrypoint calling sync tasks, a sync one calling async tasks."""
    return request.param  # type: ignore[no-any-return]


# -- observing what ran and what was journaled -----------------------------------------------------


class Calls:
    """Counts task-body executions, safely from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def hit(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


@pytest.fixture
def calls() -> Calls:
    return Calls()


@dataclass(frozen=True)
class Snapshot:
    """What a refused input must leave as it was: the latest run's id, status, output and journal."""

    run_id: int
    status: str
    output: Any
    entries: tuple[tuple[Any, ...], ...]


class Journal:
    """Reads a thread's journal through `Entrypoint.get_state`, as plain comparable data."""

    @staticmethod
    def snapshot(ep: Entrypoint[Any, Any], thread_id: str) -> Snapshot | None:
        """The thread's latest run and entries, or ``None`` if the store does not know the thread."""
        from durable import ThreadNotFoundError

        try:
            state = ep.get_state(thread_id=thread_id)
        except ThreadNotFoundError:
            return None
        entries = tuple(
            (e.key, e.task, e.status, e.result, repr(e.error), e.attempt, e.started_at, e.finished_at)
            for e in state.entries
        )
        return Snapshot(state.run_id, state.status, state.output, entries)

    @staticmethod
    def by_key(ep: Entrypoint[Any, Any], thread_id: str) -> dict[str, list[Any]]:
        """key -> the entries recorded under it (several when it ran again on resume), in journal order."""
        out: dict[str, list[Any]] = {}
        for e in ep.get_state(thread_id=thread_id).entries:
            out.setdefault(e.key, []).append(e)
        return out

    @staticmethod
    def keys(ep: Entrypoint[Any, Any], thread_id: str) -> list[str]:
        """The distinct keys of the latest run's journal, sorted by their numeric parts."""
        keys = {e.key for e in ep.get_state(thread_id=thread_id).entries}
        return sorted(keys, key=lambda k: [int(p) for p in k.split(".")])


@pytest.fixture
def journal() -> Journal:
    return Journal()


# -- a clock that dies -------------------------------------------------------------------------------


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so no retry policy and no body catches it."""


@pytest.fixture
def crashing_clock() -> type[Any]:
    """``crashing_clock(at=s)``: a `FakeClock` whose first sleep of ``at`` seconds or more raises
    ``crashing_clock.Crash`` without sleeping (the process dying in a backoff or a durable sleep).
    ``.asked`` lists every positive sleep asked for, the crashing one included."""
    from durable.testing import FakeClock

    class CrashingClock(FakeClock):
        Crash = Crash

        def __init__(self, at: float) -> None:
            super().__init__()
            self.at = at
            self.crashed = False
            self.asked: list[float] = []

        def sleep(self, seconds: float) -> None:
            if seconds > 0:
                self.asked.append(seconds)
            if not self.crashed and seconds >= self.at:
                self.crashed = True
                raise Crash(f"died before sleeping {seconds} s")
            super().sleep(seconds)

    return CrashingClock
