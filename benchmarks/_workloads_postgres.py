"""Postgres: µs per task on PostgresStore next to raw psycopg, and worker processes carrying submitted runs.

The server is ``$DURABLE_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``). Every
measurement gets a fresh schema (``durable_bench_<pid>_<n>``), dropped afterwards. Without psycopg 3 and
psycopg_pool, or without a reachable server, the rows are skipped and a line under the table says why. The rows
themselves are `_server_common.py`'s, the same as Redis's; here is what is Postgres's own: the server, the schemas,
the raw psycopg floor, the store, and how to check the runs the workers carried.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import time
from typing import Any

from _common import Config, Row, check
from _server_common import (
    WORKER_RUNS,
    WORKER_TASKS,
    Backend,
    atime_aseq,
    per_task_rows,
    time_seq,
    with_query,
    worker_rows,
)

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def dsn() -> str:
    return os.environ.get("DURABLE_BENCH_POSTGRES") or DEFAULT_DSN


# ---------------------------------------------------------------------------
# Schemas: one fresh schema per measurement, dropped afterwards.
# ---------------------------------------------------------------------------

_schema_counter = 0


def new_schema() -> str:
    global _schema_counter
    _schema_counter += 1
    return f"durable_bench_{os.getpid()}_{_schema_counter}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def unavailable() -> str | None:
    """Why the Postgres rows cannot run here, or None."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        return f"no Postgres rows ({exc}): `pip install 'durable-exec[postgres]'` and a server adds them"
    try:
        with psycopg.connect(dsn(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no Postgres rows: cannot reach {dsn()} ({first}); set DURABLE_BENCH_POSTGRES to a server's URL"
    return None


# ---------------------------------------------------------------------------
# The floor: raw psycopg, one autocommit INSERT of a row like durable's journal row, on one connection.
# ---------------------------------------------------------------------------

# The columns and types of durable_journal (ints, a short text key, a task name, a 4-byte digest, the pickled
# result, a double), the same primary key; no foreign key and no lease check (those are durable's own costs).
FLOOR_TABLE = """CREATE TABLE {s}.journal (
    tid BIGINT NOT NULL, run_id INTEGER NOT NULL, key TEXT NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
    status SMALLINT NOT NULL, digest BYTEA, payload BYTEA NOT NULL, started_at DOUBLE PRECISION NOT NULL,
    duration_us BIGINT NOT NULL, PRIMARY KEY (tid, run_id, key, attempt))"""
FLOOR_INSERT = (
    "INSERT INTO {s}.journal (tid, run_id, key, attempt, name, status, digest, payload, started_at, duration_us) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def floor_params(i: int) -> tuple[Any, ...]:
    digest, payload = (i & 0xFFFFFFFF).to_bytes(4, "little"), b"P" + pickle.dumps(i, protocol=3)  # durable's sizes
    return (1, 1, str(i), 1, "step_fn", 0, digest, payload, time.time(), 4)


def time_pg_floor(n: int) -> float:
    """Seconds for n raw autocommit INSERTs (each its own implicit COMMIT) on one connection, fresh schema."""
    import psycopg

    schema = new_schema()
    try:
        with psycopg.connect(dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(FLOOR_TABLE.format(s=f'"{schema}"'))
            sql = FLOOR_INSERT.format(s=f'"{schema}"')
            conn.execute(sql, floor_params(-1))  # warm-up, like durable's one-task warm-up run
            gc.collect()
            t0 = time.perf_counter()
            for i in range(n):
                conn.execute(sql, floor_params(i))
            dt = time.perf_counter() - t0
            count = conn.execute(f'SELECT count(*) FROM "{schema}".journal').fetchone()
            check(count is not None and count[0] == n + 1, f"floor wrote {count} rows, expected {n + 1}")
            return dt
    finally:
        drop_schema(schema)


async def atime_pg_floor(n: int) -> float:
    """The same on one psycopg AsyncConnection."""
    import psycopg

    schema = new_schema()
    try:
        async with await psycopg.AsyncConnection.connect(dsn(), autocommit=True) as conn:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.execute(FLOOR_TABLE.format(s=f'"{schema}"'))
            sql = FLOOR_INSERT.format(s=f'"{schema}"')
            await conn.execute(sql, floor_params(-1))
            gc.collect()
            t0 = time.perf_counter()
            for i in range(n):
                await conn.execute(sql, floor_params(i))
            return time.perf_counter() - t0
    finally:
        drop_schema(schema)


# ---------------------------------------------------------------------------
# durable on PostgresStore
# ---------------------------------------------------------------------------


def make_pg_store(schema: str) -> Any:
    from durable import PostgresStore

    return PostgresStore(dsn(), schema=schema)


def time_pg_durable(n: int) -> float:
    """Seconds for one invoke of n sequential tasks (sync durability), after a 1-task warm-up run, fresh schema."""
    schema = new_schema()
    try:
        return time_seq(make_pg_store(schema), n)
    finally:
        drop_schema(schema)


async def atime_pg_durable(n: int) -> float:
    schema = new_schema()
    try:
        return await atime_aseq(make_pg_store(schema), n)
    finally:
        drop_schema(schema)


# ---------------------------------------------------------------------------
# Workers: k processes carry WORKER_RUNS submitted runs (`_server_common.worker_rows`); here, how to check them.
# ---------------------------------------------------------------------------


def verify_runs(schema: str, carried: int) -> None:
    """Every submitted run completed exactly once: one run per thread, WORKER_TASKS first attempts each."""
    import psycopg

    s = f'"{schema}"'
    with psycopg.connect(dsn(), autocommit=True) as conn:
        status: dict[str, int] = dict(
            conn.execute(f"SELECT status, count(*) FROM {s}.durable_runs GROUP BY status").fetchall()
        )
        check(status == {"completed": WORKER_RUNS}, f"runs by status: {status}, expected {WORKER_RUNS} completed")
        one = conn.execute(f"SELECT count(*), max(run_id), max(recoveries) FROM {s}.durable_runs").fetchone()
        check(one == (WORKER_RUNS, 1, 0), f"(runs, max run_id, max recoveries) = {one}")
        j = conn.execute(f"SELECT count(*), max(attempt) FROM {s}.durable_journal").fetchone()
        check(j == (WORKER_RUNS * WORKER_TASKS, 1), f"(journal rows, max attempt) = {j}")
        outputs = conn.execute(f"SELECT count(*) FROM {s}.durable_runs WHERE output IS NOT NULL").fetchone()
        check(outputs == (WORKER_RUNS,), f"runs with an output: {outputs}, expected {WORKER_RUNS}")
    check(carried == WORKER_RUNS, f"the workers report {carried} runs completed, expected {WORKER_RUNS}")


POSTGRES = Backend(
    name="postgres",
    tag="pg",
    new_namespace=new_schema,
    store_url=lambda schema: with_query(dsn(), schema=schema),
    make_store=make_pg_store,
    drop=drop_schema,
    verify_runs=verify_runs,
)


def bench_postgres(cfg: Config) -> list[Row]:
    why = unavailable()
    if why is not None:
        cfg.notes.append(why)
        return []
    rows = per_task_rows(
        cfg,
        "postgres: µs per task (raw psycopg floor)",
        POSTGRES,
        [
            ("PostgresStore, sync [pg]", time_pg_floor, time_pg_durable),
            (
                "PostgresStore, sync, async tasks, ainvoke [pg]",
                lambda n: asyncio.run(atime_pg_floor(n)),
                lambda n: asyncio.run(atime_pg_durable(n)),
            ),
        ],
    )
    sec = f"postgres: {WORKER_RUNS} submitted runs of {WORKER_TASKS} tasks, carried by workers"
    return rows + worker_rows(cfg, sec, POSTGRES)
