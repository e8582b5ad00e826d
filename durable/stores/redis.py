"""The store for teams that run Redis: one Redis server (or a primary with replicas) shared by many processes.

Every operation is one Lua script or one command (`_redis_lua`, `_redis_kv`), so it is atomic on the server; the
operations are written once (`_redis_ops`) and run (`_redis_drive`) by redis-py's blocking client and by its asyncio
client (one per event loop, shared by the async runs on it). Leases run on the server's clock (``TIME``).

What survives what depends on how the server persists, not on this store (see the README's "Redis"):

- ``appendonly yes`` with ``appendfsync always``: every write is on disk before the server answers it; a crash of
  the server or of its machine loses nothing a task's future resolved in ``durability="sync"``.
- ``appendfsync everysec`` (Redis's default with an append-only file): a crash of the server process normally
  loses nothing (the file is written before the answer), except while a slow disk is still syncing, when Redis
  answers and postpones the write by up to 2 s; a crash of the machine may lose the last seconds. ``wait_aof=True``
  waits for the fsync (``WAITAOF``, Redis 7.2+) before a journal write returns.
- snapshots only (``save``): everything since the last snapshot is lost in a crash.
- neither: a restart loses every journal; the store warns once (`VolatileJournalWarning`).

``wait_replicas=N`` waits (``WAIT``) for N replicas to acknowledge each journal write, so a failover keeps it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError, JournalNotFoundError, StoreError, UsageError, VolatileJournalWarning
from . import _redis_kv as kv
from . import _redis_ops as ops
from ._base import (
    AsyncSession,
    JournalRow,
    KVRow,
    Lease,
    NewRun,
    RunOutcome,
    RunRow,
    Store,
    ThreadFilter,
    ThreadRow,
    ThreadSummary,
)
from ._redis_drive import adrive, call_script, drive
from ._redis_url import checked_prefix, flag, number, positive, redact, split_url, where
from ._rules import check_version, newer_schema

if TYPE_CHECKING:
    import redis
    import redis.asyncio

T = TypeVar("T")

_ATTEMPTS = 3  # tries of a retryable operation whose connection broke


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ConfigurationError("RedisStore needs redis-py: pip install 'durable-exec[redis]'") from exc
    return redis


class RedisStore(Store):
    """Journal in a Redis server, shared by every process that opens the same server, database and ``prefix``.

    ``url`` is a redis-py URL: ``redis://[[user]:password@]host:6379/0`` or ``rediss://`` for TLS (its query may
    also give this store's options, as ``checkpointer=`` URLs do: ``?prefix=app&lease_seconds=30``; the rest go to
    redis-py). Every key starts with ``prefix`` and ``:``, so several journals can share a database. Leases use
    the server's clock.

    Durability (what a journal write waits for before it returns): ``wait_aof=True`` waits until the server has
    written it to its append-only file on disk (``WAITAOF``: Redis 7.2 or newer, with ``appendonly yes``);
    ``wait_replicas=N`` waits until N replicas have it (``WAIT``). Either gives up after ``wait_timeout`` seconds
    with `StoreError` (the write is on the primary; the run fails and can be resumed). A server that keeps nothing on
    disk gets a `VolatileJournalWarning` on first use.

    With ``read_only=True`` the journal must exist at this version and every write is refused. ``secret`` and
    ``max_result_bytes`` are as for `SQLiteStore`.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        lease_seconds: float | None = None,
        secret: Any = None,
        max_result_bytes: int | None = None,
        wait_replicas: int | None = None,
        wait_aof: bool | None = None,
        wait_timeout: float | None = None,
        connect_timeout: float = 10.0,
        socket_timeout: float = 60.0,
        read_only: bool = False,
    ) -> None:
        url, given = split_url(url)
        self.url = url
        self.prefix = checked_prefix(prefix if prefix is not None else given.get("prefix", "durable"))
        self.lease_seconds = positive("lease_seconds", lease_seconds, given.get("lease_seconds"), 30.0)
        self.wait_replicas = int(number("wait_replicas", wait_replicas, given.get("wait_replicas"), 0))
        self.wait_aof = flag("wait_aof", wait_aof, given.get("wait_aof"))
        self.wait_timeout = positive("wait_timeout", wait_timeout, given.get("wait_timeout"), 1.0)
        self.secret = secret
        self.max_result_bytes = max_result_bytes
        self.connect_timeout = connect_timeout
        self.socket_timeout = socket_timeout
        self.read_only = read_only
        self._keys = ops.Keys(self.prefix + ":")
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._ready = False
        self._loops: dict[asyncio.AbstractEventLoop, list[Any]] = {}  # loop -> [client, sessions open on it]

    def __repr__(self) -> str:
        return f"RedisStore({redact(self.url)!r}, prefix={self.prefix!r})"

    def same_database(self, other: Store) -> bool:
        """The same prefix in the same database of the same server (host, port, database number)."""
        return isinstance(other, RedisStore) and where(other) == where(self)

    # -- the connection, and what its first use checks --------------------------------------------------------

    def _connection_options(self) -> dict[str, Any]:
        return {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.socket_timeout,
            "retry_on_timeout": False,
            "retry": None,  # this store retries what is safe to retry (see `_run`), and nothing else
        }

    def _get_client(self) -> redis.Redis:
        client = self._client
        if client is not None and self._ready:
            return client
        with self._lock:
            if self._client is None:
                self._client = _redis().Redis.from_url(self.url, **self._connection_options())
            if not self._ready:
                self._first_use(self._client)
                self._ready = True
            return self._client

    def _first_use(self, client: redis.Redis) -> None:
        """Check the schema version (creating it unless read-only) and how the server persists, once."""
        redis = _redis()
        try:
            found = int(
                call_script(client, "migrate", (self._keys.prefix, ops.SCHEMA_VERSION, "1" if self.read_only else ""))
            )
            if self.read_only:
                if found == 0:
                    raise JournalNotFoundError(f"prefix {self.prefix!r} of {redact(self.url)}")
                check_version(found, ops.SCHEMA_VERSION)
            elif found > ops.SCHEMA_VERSION:
                raise newer_schema(found, ops.SCHEMA_VERSION)
            self._check_persistence(client)
        except redis.RedisError as exc:
            raise self._error(exc) from exc

    def _check_persistence(self, client: redis.Redis) -> None:
        redis = _redis()
        try:
            aof = client.config_get("appendonly").get("appendonly")
            save = client.config_get("save").get("save")
        except redis.ResponseError:  # CONFIG is disabled (most managed services): nothing to say
            return
        if self.wait_aof:
            version = tuple(int(x) for x in str(client.info("server")["redis_version"]).split(".")[:2])
            if version < (7, 2) or aof != "yes":
                raise ConfigurationError(
                    f"wait_aof=True needs Redis 7.2 or newer with 'appendonly yes'; {redact(self.url)} runs "
                    f"{'.'.join(map(str, version))} with appendonly {aof!r}: turn the append-only file on "
                    f"(appendfsync always makes every write durable without waiting), or drop wait_aof"
                )
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy") or ""
        if policy.startswith("allkeys"):
            warnings.warn(
                f"the Redis server at {redact(self.url)} has maxmemory-policy {policy}: when it runs out of memory it "
                f"evicts any key, the journal's too (a thread then loses rows or runs, or its tasks run again). Set "
                f"maxmemory-policy noeviction (or a volatile-* policy: the journal's keys have no expiry)",
                VolatileJournalWarning,
                stacklevel=4,
            )
        if aof == "no" and not save:
            warnings.warn(
                f"the Redis server at {redact(self.url)} keeps nothing on disk (appendonly no, no save points): a "
                f"restart of it loses every journal. Set 'appendonly yes' (with 'appendfsync always' for "
                f"durability='sync' to mean it) in its configuration",
                VolatileJournalWarning,
                stacklevel=4,
            )

    def _error(self, exc: BaseException) -> StoreError:
        redis = _redis()
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            return StoreError(f"cannot reach the Redis journal at {redact(self.url)}: {exc}")
        return StoreError(f"Redis journal {self!r} failed: {exc}")

    # -- running an operation ----------------------------------------------------------------------------------

    def _run(self, make: Callable[[], ops.Op[T]], *, write: bool = False, retry: bool = True) -> T:
        redis = _redis()
        if write and self.read_only:
            raise UsageError(f"{self!r} was opened read-only: it writes nothing")
        client = self._get_client()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                result, waited = drive(client, self._keys.prefix, make(), self._wait_command())
                self._check_waits(waited)
                return result
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if retry and attempt < _ATTEMPTS:
                    continue
                raise self._error(exc) from exc
            except redis.RedisError as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")

    def _wait_command(self) -> tuple[Any, ...] | None:
        timeout = max(1, int(self.wait_timeout * 1000))
        if self.wait_aof:
            return ("WAITAOF", 1, self.wait_replicas, timeout)
        if self.wait_replicas:
            return ("WAIT", self.wait_replicas, timeout)
        return None

    def _check_waits(self, replies: list[Any]) -> None:
        """Each ``WAIT``/``WAITAOF`` answer of the operation's durable writes must confirm what was asked."""
        for reply in replies:
            local, replicas = (reply[0], reply[1]) if isinstance(reply, list) else (1, reply)
            if local >= 1 and replicas >= self.wait_replicas:
                continue
            raise StoreError(
                f"{self!r}: a journal write was not confirmed within {self.wait_timeout}s (on disk: "
                f"{'yes' if local else 'no'}, replicas: {replicas} of {self.wait_replicas}); it is on the primary, "
                f"which may lose it. Resume the run once the server and its replicas are healthy"
            )

    # -- the interface -----------------------------------------------------------------------------------------

    def get_thread(self, thread_id: str) -> ThreadRow | None:
        return self._run(lambda: ops.get_thread(thread_id))

    def claim(self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None) -> Lease:
        lease_seconds = self.lease_seconds
        return self._run(
            lambda: ops.claim(thread_id, owner, steal_from, new_run, lease_seconds), write=True, retry=False
        )

    def renew(self, lease: Lease) -> bool:
        return self._run(lambda: ops.renew(lease, self.lease_seconds), write=True)

    def release(self, lease: Lease) -> None:
        self._run(lambda: ops.release(lease), write=True)

    def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        return self._run(lambda: ops.load_journal(self._keys, tid, run_id))

    def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        self._run(_appender(lease, run_id, rows, self._keys), write=True)

    def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        self._run(lambda: ops.finish_run(lease, run_id, outcome), write=True, retry=False)

    def cancel_run(self, thread_id: str, run_id: int, outcome: RunOutcome) -> bool:
        return self._run(lambda: ops.cancel_run(thread_id, run_id, outcome), write=True, retry=False)

    def reserve(self, owner: str, entrypoints: Sequence[str], limit: int, now: float | None = None) -> list[Lease]:
        due = time.time() if now is None else now
        return self._run(
            lambda: ops.reserve(owner, entrypoints, limit, due, self.lease_seconds), write=True, retry=False
        )

    def list_threads(self, where: ThreadFilter) -> list[ThreadSummary]:
        return self._run(lambda: ops.list_threads(where))

    def list_runs(self, thread_id: str) -> list[RunRow]:
        return self._run(lambda: ops.list_runs(thread_id))

    def delete_thread(self, thread_id: str) -> bool:
        # Not retried: a delete that landed but whose answer was lost would, tried again, find nothing (or a thread
        # of the same id made since, and delete that).
        return self._run(lambda: ops.delete_thread(thread_id), write=True, retry=False)

    def prune(self, finished_before: float, statuses: Sequence[str], limit: int) -> list[str]:
        return self._run(lambda: ops.prune(self._keys, finished_before, statuses, limit), write=True, retry=False)

    def import_thread(
        self, thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
    ) -> None:
        self._run(lambda: ops.import_thread(thread_id, runs, journal, nonce), write=True, retry=False)

    def rewrite_thread(
        self, thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
    ) -> bool:
        return self._run(lambda: ops.rewrite_thread(self._keys, thread, nonce, runs, journal), write=True, retry=False)

    # Key-value rows: a put, a touch or a delete done twice is done once (retried after a broken connection);
    # a clear's count is not, so it is not retried.

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_seconds: float | None) -> None:
        self._run(lambda: kv.put(namespace, key, value, ttl_seconds), write=True)

    def kv_get(self, namespace: str, key: str, refresh: bool) -> KVRow | None:
        return self._run(lambda: kv.get([(namespace, key)], refresh), write=refresh)[0]

    def kv_touch(self, items: Sequence[tuple[str, str]]) -> None:
        if items:
            self._run(lambda: kv.get(items, True), write=True)

    def kv_delete(self, namespace: str, key: str) -> None:
        self._run(lambda: kv.delete(namespace, key), write=True)

    def kv_search(self, prefix: str, refresh: bool) -> list[KVRow]:
        return self._run(lambda: kv.search(prefix, refresh), write=refresh)

    def kv_namespaces(self, prefix: str) -> list[str]:
        return self._run(lambda: kv.namespaces(prefix))

    def kv_clear(self, prefix: str) -> int:
        return self._run(lambda: kv.clear(prefix), write=True, retry=False)

    # -- workers -----------------------------------------------------------------------------------------------

    def listen_for_work(self, wake: threading.Event) -> Callable[[], None] | None:
        """A thread subscribed to the store's channel sets ``wake`` when a run is left for a worker."""
        from ._listen import listen

        self._get_client()  # the server answers, and the journal is at this version, before a listener relies on it
        redis = _redis()

        @contextmanager
        def subscribe() -> Iterator[Callable[[float], bool]]:
            with redis.Redis.from_url(self.url, **self._connection_options()) as client, client.pubsub() as pubsub:
                pubsub.subscribe(self._keys.channel)
                yield lambda seconds: _heard(pubsub, seconds)

        return listen(self.prefix, subscribe, (redis.RedisError,), wake)

    # -- async runs --------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def asession(self) -> AsyncIterator[AsyncSession]:
        if self.read_only:
            raise UsageError("a read-only RedisStore serves the blocking API only (the operator's tools use it)")
        self._get_client()  # checks the schema once, with the blocking path's error reporting
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._loops.get(loop)
            if entry is None:
                client = _redis().asyncio.Redis.from_url(self.url, **self._connection_options())
                entry = self._loops[loop] = [client, 0]
            entry[1] += 1
        try:
            yield _AsyncRedisSession(self, entry[0])
        finally:
            with self._lock:
                entry[1] -= 1
                last = entry[1] == 0
                if last:
                    del self._loops[loop]
            if last:  # the loop's last session: its connections go with it (a loop may end right after)
                await entry[0].aclose()

    async def _arun(self, client: Any, make: Callable[[], ops.Op[T]], *, retry: bool = True) -> T:
        redis = _redis()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                result, waited = await adrive(client, self._keys.prefix, make(), self._wait_command())
                self._check_waits(waited)
                return result
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if retry and attempt < _ATTEMPTS:
                    continue
                raise self._error(exc) from exc
            except redis.RedisError as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            client, self._client, self._ready = self._client, None, False
        if client is not None:
            client.close()


class _AsyncRedisSession:
    """The same operations as `RedisStore`, on the asyncio client of the session's event loop."""

    def __init__(self, store: RedisStore, client: Any) -> None:
        self._store = store
        self._client = client

    async def get_thread(self, thread_id: str) -> ThreadRow | None:
        return await self._store._arun(self._client, lambda: ops.get_thread(thread_id))

    async def claim(
        self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None
    ) -> Lease:
        lease_seconds = self._store.lease_seconds
        return await self._store._arun(
            self._client, lambda: ops.claim(thread_id, owner, steal_from, new_run, lease_seconds), retry=False
        )

    async def release(self, lease: Lease) -> None:
        await self._store._arun(self._client, lambda: ops.release(lease))

    async def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        return await self._store._arun(self._client, lambda: ops.load_journal(self._store._keys, tid, run_id))

    async def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        return await self.load_journal(tid, run_id), True

    async def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        return await self._store._arun(self._client, lambda: ops.journal_keys(self._store._keys, tid, run_id, keys))

    async def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        await self._store._arun(self._client, _appender(lease, run_id, rows, self._store._keys))

    async def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        await self._store._arun(self._client, lambda: ops.finish_run(lease, run_id, outcome), retry=False)


def _heard(pubsub: Any, seconds: float) -> bool:
    message = pubsub.get_message(timeout=seconds)
    return message is not None and message.get("type") == "message"


def _appender(lease: Lease, run_id: int, rows: Sequence[JournalRow], keys: ops.Keys) -> Callable[[], ops.Op[None]]:
    """The append, made afresh for each try: after a try whose answer was lost, finding the very same rows
    recorded means that try landed."""
    tries = [0]

    def make() -> ops.Op[None]:
        tries[0] += 1
        return ops.append(lease, run_id, rows, keys if tries[0] > 1 else None)

    return make


__all__ = ["RedisStore"]
