"""Redis: µs per task on RedisStore next to raw redis-py, and worker processes carrying submitted runs.

The server is ``$DURABLE_BENCH_REDIS`` (default ``redis://127.0.0.1:6379/0``). Every measurement gets a fresh key
prefix (``durable_bench_<pid>_<n>``) whose keys are deleted afterwards (``SCAN`` + ``UNLINK``). Without redis-py, or
without a server that answers, the rows are skipped and a line under the table says why. The rows themselves are
`_server_common.py`'s, the same as Postgres's; here is what is Redis's own: the server and its persistence, the key
prefixes, the raw redis-py floor, the store, and how to check its journal and the runs the workers carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pickle
import struct
import time
import warnings
from collections.abc import Iterator
from typing import Any

from _common import Config, Row, check, close_store
from _server_common import (
    WORKER_RUNS,
    WORKER_TASKS,
    Backend,
    atime_aseq,
    per_task_rows,
    run_thread,
    time_seq,
    with_query,
    worker_rows,
)

from durable.errors import VolatileJournalWarning

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def url() -> str:
    return os.environ.get("DURABLE_BENCH_REDIS") or DEFAULT_URL


# ---------------------------------------------------------------------------
# Prefixes: one fresh key prefix per measurement, its keys deleted afterwards.
# ---------------------------------------------------------------------------

_prefix_counter = 0


def new_prefix() -> str:
    global _prefix_counter
    _prefix_counter += 1
    return f"durable_bench_{os.getpid()}_{_prefix_counter}"


def drop_prefix(prefix: str) -> None:
    """Delete every key under ``prefix:`` (SCAN + UNLINK, in batches)."""
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)


def keys_under(prefix: str, pattern: str = "*") -> list[bytes]:
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        return list(client.scan_iter(match=f"{prefix}:{pattern}", count=1000))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No VolatileJournalWarning per fresh store: the server's persistence is reported once, under the table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VolatileJournalWarning)
        yield


def unavailable() -> str | None:
    """Why the Redis rows cannot run here, or None."""
    try:
        import redis
    except ImportError as exc:
        return f"no Redis rows ({exc}): `pip install 'durable-exec[redis]'` and a server adds them"
    try:
        with redis.Redis.from_url(url(), socket_connect_timeout=3, socket_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no Redis rows: cannot reach {url()} ({first}); set DURABLE_BENCH_REDIS to a server's URL"
    return None


def server_note() -> str:
    """The server's version and persistence: what a write waits for (nothing on disk: no fsync at all)."""
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        version = client.info("server").get("redis_version", "?")
        try:
            aof = client.config_get("appendonly").get("appendonly")
            fsync = client.config_get("appendfsync").get("appendfsync")
            save = client.config_get("save").get("save")
        except redis.ResponseError:
            return f"redis: server {version} at {url()} (CONFIG disabled: persistence unknown)"
    disk = f"appendonly {aof}" + (f", appendfsync {fsync}" if aof == "yes" else "") + f", save {save!r}"
    if aof != "yes" and not save:
        disk += ": nothing on disk, so no write waits for a disk (durable's VolatileJournalWarning silenced here)"
    return f"redis: server {version} at {url()}, {disk}"


# ---------------------------------------------------------------------------
# The floor: raw redis-py, one RPUSH per task of a value the size of durable's journal row, on one client.
# ---------------------------------------------------------------------------

# The layout of RedisStore's encoded journal row (`_redis_ops.encode_row`): a 31-byte head (status, attempt, two
# doubles, three lengths), the key, the task name, a 4-byte digest, the pickled result after its one-byte tag.
_HEAD = struct.Struct("<BiddIHi")
SYNC_NAME, ASYNC_NAME = b"step_fn", b"astep"  # the task names durable records for `step` and `astep`


def floor_value(i: int, name: bytes = SYNC_NAME) -> bytes:
    key, now = str(i).encode(), time.time()
    head = _HEAD.pack(0, 1, now, now, len(key), len(name), 4)
    return b"".join((head, key, name, (i & 0xFFFFFFFF).to_bytes(4, "little"), b"P" + pickle.dumps(i, protocol=3)))


def time_redis_floor(n: int) -> float:
    """Seconds for n raw RPUSHes (one round trip each) onto one list, on one blocking client, fresh prefix."""
    import redis

    prefix = new_prefix()
    try:
        with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
            key = f"{prefix}:j:1:1"
            client.rpush(key, floor_value(0))  # warm-up (the connection), like durable's one-task warm-up run
            gc.collect()
            t0 = time.perf_counter()
            for i in range(n):
                client.rpush(key, floor_value(i))
            dt = time.perf_counter() - t0
            count = client.llen(key)
            check(count == n + 1, f"floor pushed {count} values, expected {n + 1}")
            return dt
    finally:
        drop_prefix(prefix)


async def atime_redis_floor(n: int) -> float:
    """The same on one redis.asyncio client."""
    import redis.asyncio

    prefix = new_prefix()
    try:
        client = redis.asyncio.Redis.from_url(url(), socket_connect_timeout=3)
        try:
            key = f"{prefix}:j:1:1"
            await client.rpush(key, floor_value(0, ASYNC_NAME))
            gc.collect()
            t0 = time.perf_counter()
            for i in range(n):
                await client.rpush(key, floor_value(i, ASYNC_NAME))
            dt = time.perf_counter() - t0
            count = await client.llen(key)
            check(count == n + 1, f"floor pushed {count} values, expected {n + 1}")
            return dt
        finally:
            await client.aclose()
    finally:
        drop_prefix(prefix)


# ---------------------------------------------------------------------------
# durable on RedisStore
# ---------------------------------------------------------------------------


def make_redis_store(prefix: str) -> Any:
    from durable import RedisStore

    return RedisStore(url(), prefix=prefix)


def check_journal(prefix: str, n: int, name: bytes) -> None:
    """The journal holds the warm-up's row and the n rows, each exactly as long as the floor's value."""
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        lists = keys_under(prefix, "j:*")
        rows = [blob for key in lists for blob in client.lrange(key, 0, -1)]
    check(len(rows) == n + 1, f"the journal holds {len(rows)} rows, expected {n + 1}")
    durable_bytes = sum(map(len, rows))
    floor_bytes = len(floor_value(0, name)) + sum(len(floor_value(i, name)) for i in range(n))
    check(durable_bytes == floor_bytes, f"journal rows {durable_bytes} bytes, the floor's values {floor_bytes}")


def time_redis_durable(n: int) -> float:
    """Seconds for one invoke of n sequential tasks (sync durability), after a 1-task warm-up run, fresh prefix."""
    prefix = new_prefix()
    try:
        with quiet():
            dt = time_seq(make_redis_store(prefix), n)
        check_journal(prefix, n, SYNC_NAME)
        return dt
    finally:
        drop_prefix(prefix)


async def atime_redis_durable(n: int) -> float:
    prefix = new_prefix()
    try:
        with quiet():
            dt = await atime_aseq(make_redis_store(prefix), n)
        check_journal(prefix, n, ASYNC_NAME)
        return dt
    finally:
        drop_prefix(prefix)


# ---------------------------------------------------------------------------
# Workers: k processes carry WORKER_RUNS submitted runs (`_server_common.worker_rows`); here, how to check them.
# ---------------------------------------------------------------------------


def verify_runs(prefix: str, carried: int) -> None:
    """Every submitted run completed exactly once: one run per thread, WORKER_TASKS first attempts each."""
    with quiet():
        store = make_redis_store(prefix)
        try:
            status: dict[str, int] = {}
            runs = recovered = rows = retried = outputs = 0
            for i in range(WORKER_RUNS):
                thread_id = run_thread(i)
                found = store.list_runs(thread_id)
                runs += len(found)
                for run in found:
                    status[run.status] = status.get(run.status, 0) + 1
                    recovered += run.recoveries
                    outputs += run.output is not None
                thread = store.get_thread(thread_id)
                check(thread is not None, f"thread {thread_id!r} is gone")
                journal = store.load_journal(thread.tid, 1)
                rows += len(journal)
                retried += sum(r.attempt != 1 for r in journal)
        finally:
            close_store(store)
    check(status == {"completed": WORKER_RUNS}, f"runs by status: {status}, expected {WORKER_RUNS} completed")
    check((runs, recovered) == (WORKER_RUNS, 0), f"(runs, recoveries) = {(runs, recovered)}")
    check((rows, retried) == (WORKER_RUNS * WORKER_TASKS, 0), f"(journal rows, retried rows) = {(rows, retried)}")
    check(outputs == WORKER_RUNS, f"runs with an output: {outputs}, expected {WORKER_RUNS}")
    check(carried == WORKER_RUNS, f"the workers report {carried} runs completed, expected {WORKER_RUNS}")


# What a warm worker process runs first: it is as quiet about the server's persistence as this one (a `durable
# worker` process prints its VolatileJournalWarning to stderr, which the row shows only if a worker fails).
WORKER_SETUP = """
import warnings
from durable.errors import VolatileJournalWarning
warnings.simplefilter("ignore", VolatileJournalWarning)
"""

REDIS = Backend(
    name="redis",
    tag="redis",
    new_namespace=new_prefix,
    store_url=lambda prefix: with_query(url(), prefix=prefix),
    make_store=make_redis_store,
    drop=drop_prefix,
    verify_runs=verify_runs,
    quiet=quiet,
    worker_setup=WORKER_SETUP,
)


def bench_redis(cfg: Config) -> list[Row]:
    why = unavailable()
    if why is not None:
        cfg.notes.append(why)
        return []
    cfg.notes.append(server_note())
    rows = per_task_rows(
        cfg,
        "redis: µs per task (raw redis-py floor)",
        REDIS,
        [
            ("RedisStore, sync [redis]", time_redis_floor, time_redis_durable),
            (
                "RedisStore, sync, async tasks, ainvoke [redis]",
                lambda n: asyncio.run(atime_redis_floor(n)),
                lambda n: asyncio.run(atime_redis_durable(n)),
            ),
        ],
    )
    sec = f"redis: {WORKER_RUNS} submitted runs of {WORKER_TASKS} tasks, carried by workers"
    return rows + worker_rows(cfg, sec, REDIS)
