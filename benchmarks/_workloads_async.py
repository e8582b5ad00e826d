"""Async at scale: 1,000 concurrent ``ainvoke``s, each 10 async tasks, on one store, next to a raw floor.

Each run is an ``async def`` entrypoint awaiting 10 ``async def`` tasks one after the other (each task
``await asyncio.sleep(0)`` and returns a small int); all runs start together (``asyncio.gather``) on one store:
SQLiteStore (``synchronous=NORMAL``) and PostgresStore (a fresh schema per sample), ``durability="sync"``.

The floors write the same rows a run writes (a thread row, a run row, 10 journal rows, the run's final update)
from the same number of coroutines, committing each row before going on, as ``sync`` must:
- SQLite: ONE sqlite3 connection in ONE worker thread (``loop.run_in_executor`` on a single-thread executor),
  one hop and one COMMIT per row;
- Postgres: a psycopg ``AsyncConnectionPool`` of 10 connections, one autocommit statement (one transaction) per
  row.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Config, Row, check, close_store, fail_row, fresh_dir, median

from durable import SQLiteStore, entrypoint, task

RUNS, QUICK_RUNS = 1_000, 200  # concurrent ainvokes per sample
TASKS = 10  # async tasks per run, one after the other
TARGET_THROUGHPUT = 0.5  # durable runs/s >= 0.5 x the floor's
TARGET_TAIL = 10.0  # p99 latency <= 10 x the median
SAMPLE_EVERY = 0.002  # seconds between two looks at threading.active_count()

RAN: list[tuple[int, int]] = []  # (run, task) of every task body that ran


@task(name="bench_async_step")
async def astep(k: int, i: int) -> int:
    await asyncio.sleep(0)
    RAN.append((k, i))
    return i


def make_flow(store: Any) -> Any:
    @entrypoint(checkpointer=store, name="bench_async_many")
    async def many(k: int) -> int:
        total = 0
        for i in range(TASKS):
            total += await astep(k, i)
        return total

    return many


EXPECTED = sum(range(TASKS))


@dataclass
class Sample:
    seconds: float  # from the first ainvoke's start until the last one's end
    latencies: list[float]  # each run's, seconds (all start together: queueing included)
    threads: int  # threading.active_count() at its peak during the load
    errors: list[BaseException] = field(default_factory=list)

    @property
    def runs_per_s(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def p50(self) -> float:
        return median(self.latencies)

    @property
    def p99(self) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]


async def load(runs: int, one: Callable[[int], Awaitable[Any]], *, exclude: frozenset[int] = frozenset()) -> Sample:
    """Start `runs` coroutines `one(k)` together; time each and all; sample the thread count meanwhile.

    `exclude` threads are not counted: a floor's count is of the threads it uses, not of those an earlier durable
    sample left in the process (durable's heartbeat thread lives as long as the process)."""

    def count() -> int:
        if not exclude:
            return threading.active_count()
        return sum(t.ident not in exclude for t in threading.enumerate())

    peak = count()
    done = False

    async def sampler() -> None:
        nonlocal peak
        while not done:
            peak = max(peak, count())
            await asyncio.sleep(SAMPLE_EVERY)

    latencies: list[float] = []
    errors: list[BaseException] = []

    async def timed(k: int) -> None:
        t0 = time.perf_counter()
        try:
            out = await one(k)
            check(out == EXPECTED, f"run {k} returned {out!r}, expected {EXPECTED}")
        except Exception as exc:
            errors.append(exc)
            return
        latencies.append(time.perf_counter() - t0)

    watch = asyncio.create_task(sampler())
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    await asyncio.gather(*(timed(k) for k in range(runs)))
    dt = time.perf_counter() - t0
    done = True
    await watch
    peak = max(peak, count())
    return Sample(dt, latencies, peak, errors)


async def durable_load(store: Any, runs: int) -> Sample:
    """One warm-up run, then `runs` concurrent ainvokes, each on its own thread; checks every task ran once."""
    flow = make_flow(store)
    check(await flow.ainvoke(-1, thread_id="warmup", durability="sync") == EXPECTED, "warm-up result")
    RAN.clear()
    gc.collect()
    s = await load(runs, lambda k: flow.ainvoke(k, thread_id=f"run-{k:05d}", durability="sync"))
    if not s.errors:
        check(len(RAN) == runs * TASKS, f"{len(RAN)} task bodies ran, expected {runs * TASKS}")
        check(len(set(RAN)) == len(RAN), "a task body ran twice")
    RAN.clear()
    return s


# ---------------------------------------------------------------------------
# The floors: a run's rows, one commit each.
# ---------------------------------------------------------------------------

# Like durable's tables (the same kinds of columns), without its foreign keys, leases or indexes.
SQLITE_TABLES = (
    """CREATE TABLE threads (tid INTEGER PRIMARY KEY, thread_id TEXT NOT NULL UNIQUE, owner TEXT,
        lease_expires REAL, fence INTEGER NOT NULL, last_run INTEGER NOT NULL, created_at REAL NOT NULL,
        updated_at REAL NOT NULL)""",
    """CREATE TABLE runs (tid INTEGER NOT NULL, run_id INTEGER NOT NULL, entrypoint TEXT NOT NULL,
        status TEXT NOT NULL, input BLOB NOT NULL, output BLOB, started_at REAL NOT NULL, finished_at REAL,
        PRIMARY KEY (tid, run_id)) WITHOUT ROWID""",
    """CREATE TABLE journal (tid INTEGER NOT NULL, run_id INTEGER NOT NULL, key TEXT NOT NULL,
        attempt INTEGER NOT NULL, name TEXT NOT NULL, status INTEGER NOT NULL, digest BLOB, payload BLOB NOT NULL,
        started_at REAL NOT NULL, duration_us INTEGER NOT NULL, PRIMARY KEY (tid, run_id, key, attempt))
        WITHOUT ROWID""",
)
PG_TABLES = (
    """CREATE TABLE {s}.threads (tid BIGSERIAL PRIMARY KEY, thread_id TEXT NOT NULL UNIQUE, owner TEXT,
        lease_expires DOUBLE PRECISION, fence INTEGER NOT NULL, last_run INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE {s}.runs (tid BIGINT NOT NULL, run_id INTEGER NOT NULL, entrypoint TEXT NOT NULL,
        status TEXT NOT NULL, input BYTEA NOT NULL, output BYTEA, started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION, PRIMARY KEY (tid, run_id))""",
    """CREATE TABLE {s}.journal (tid BIGINT NOT NULL, run_id INTEGER NOT NULL, key TEXT NOT NULL,
        attempt INTEGER NOT NULL, name TEXT NOT NULL, status SMALLINT NOT NULL, digest BYTEA, payload BYTEA NOT NULL,
        started_at DOUBLE PRECISION NOT NULL, duration_us BIGINT NOT NULL, PRIMARY KEY (tid, run_id, key, attempt))""",
)
INSERT_THREAD = (
    "INSERT INTO {s}threads (thread_id, owner, lease_expires, fence, last_run, created_at, updated_at) "
    "VALUES (?, ?, ?, 1, 1, ?, ?) RETURNING tid"
)
INSERT_RUN = (
    "INSERT INTO {s}runs (tid, run_id, entrypoint, status, input, started_at) VALUES (?, 1, ?, 'running', ?, ?)"
)
INSERT_ROW = (
    "INSERT INTO {s}journal (tid, run_id, key, attempt, name, status, digest, payload, started_at, duration_us) "
    "VALUES (?, 1, ?, 1, 'bench_async_step', 0, ?, ?, ?, 3)"
)
FINISH_RUN = "UPDATE {s}runs SET status = 'completed', output = ?, finished_at = ? WHERE tid = ? AND run_id = 1"


def not_main() -> frozenset[int]:
    """The threads alive now other than the main one."""
    main = threading.main_thread()
    return frozenset(t.ident for t in threading.enumerate() if t is not main and t.ident is not None)


def small_pickle(i: int) -> bytes:
    return b"P\x80\x03K" + bytes([i & 0xFF]) + b"."  # durable's framing of a small int: 6 bytes


Write = Callable[[str, tuple[Any, ...]], Awaitable[Any]]  # one row, committed; returns the thread's tid if asked


async def floor_run(write: Write, k: int) -> int:
    """The rows of one run, each committed before the next, with the run's awaits in between."""
    now = time.time()
    tid = await write(INSERT_THREAD, (f"run-{k:05d}", "owner", now + 60, now, now))
    await write(INSERT_RUN, (tid, "bench_async_many", small_pickle(k), now))
    total = 0
    for i in range(TASKS):
        await asyncio.sleep(0)
        total += i
        await write(INSERT_ROW, (tid, str(i), (k * TASKS + i).to_bytes(4, "little", signed=True), small_pickle(i),
                                 time.time()))  # fmt: skip
    await write(FINISH_RUN, (small_pickle(total), time.time(), tid))
    return total


def sqlite_floor(path: Path, runs: int) -> Sample:
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for ddl in SQLITE_TABLES:
        conn.execute(ddl)
    conn.commit()
    sql = {q: q.format(s="") for q in (INSERT_THREAD, INSERT_RUN, INSERT_ROW, FINISH_RUN)}

    def execute(q: str, params: tuple[Any, ...]) -> Any:
        row = conn.execute(sql[q], params).fetchone()
        conn.commit()
        return row[0] if row else None

    async def main() -> Sample:
        others = not_main()  # not the floor's
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as pool:

            def write(q: str, params: tuple[Any, ...]) -> Awaitable[Any]:
                return loop.run_in_executor(pool, execute, q, params)

            await floor_run(write, -1)  # warm-up: the worker thread exists before the load
            gc.collect()
            return await load(runs, lambda k: floor_run(write, k), exclude=others)

    try:
        s = asyncio.run(main())
        (count,) = conn.execute("SELECT count(*) FROM journal").fetchone()
        check(count == (runs + 1) * TASKS, f"the floor wrote {count} journal rows, expected {(runs + 1) * TASKS}")
        return s
    finally:
        conn.close()


def sqlite_serial_floor(path: Path, runs: int) -> float:
    """Runs/s for the same rows written by one thread with no event loop: run after run, one COMMIT per row."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for ddl in SQLITE_TABLES:
        conn.execute(ddl)
    conn.commit()
    sql = {q: q.format(s="") for q in (INSERT_THREAD, INSERT_RUN, INSERT_ROW, FINISH_RUN)}

    def execute(q: str, params: tuple[Any, ...]) -> Any:
        row = conn.execute(sql[q], params).fetchone()
        conn.commit()
        return row[0] if row else None

    async def direct(q: str, params: tuple[Any, ...]) -> Any:
        return execute(q, params)

    def one(k: int) -> None:  # floor_run's rows, its coroutine stepped by hand: it never suspends
        coro = floor_run(direct, k)
        try:
            while True:
                coro.send(None)
        except StopIteration:
            pass

    try:
        one(-1)
        gc.collect()
        t0 = time.perf_counter()
        for k in range(runs):
            one(k)
        return runs / (time.perf_counter() - t0)
    finally:
        conn.close()


def pg_floor(runs: int) -> Sample:
    import psycopg
    from _workloads_postgres import drop_schema, dsn, new_schema
    from psycopg_pool import AsyncConnectionPool

    schema = new_schema()
    s_ = f'"{schema}".'
    sql = {q: q.format(s=s_).replace("?", "%s") for q in (INSERT_THREAD, INSERT_RUN, INSERT_ROW, FINISH_RUN)}

    async def main() -> Sample:
        others = not_main()  # not the floor's
        async with await psycopg.AsyncConnection.connect(dsn(), autocommit=True) as conn:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            for ddl in PG_TABLES:
                await conn.execute(ddl.format(s=f'"{schema}"'))
        async with AsyncConnectionPool(dsn(), min_size=10, max_size=10, kwargs={"autocommit": True},
                                       open=False) as pool:  # fmt: skip
            await pool.wait()

            async def write(q: str, params: tuple[Any, ...]) -> Any:
                async with pool.connection() as conn:
                    cur = await conn.execute(sql[q], params)
                    row = await cur.fetchone() if cur.description else None
                    return row[0] if row else None

            await floor_run(write, -1)
            gc.collect()
            s = await load(runs, lambda k: floor_run(write, k), exclude=others)
            async with pool.connection() as conn:
                cur = await conn.execute(f"SELECT count(*) FROM {s_}journal")
                row = await cur.fetchone()
            check(row is not None and row[0] == (runs + 1) * TASKS, f"the floor wrote {row} journal rows")
            return s

    try:
        return asyncio.run(main())
    finally:
        drop_schema(schema)


# ---------------------------------------------------------------------------
# durable
# ---------------------------------------------------------------------------


def sqlite_durable(path: Path, runs: int) -> Sample:
    store = SQLiteStore(str(path), synchronous="NORMAL")
    try:
        return asyncio.run(durable_load(store, runs))
    finally:
        close_store(store)


def pg_durable(runs: int) -> Sample:
    from _workloads_postgres import drop_schema, make_pg_store, new_schema

    schema = new_schema()
    store = make_pg_store(schema)
    try:
        return asyncio.run(durable_load(store, runs))
    finally:
        close_store(store)
        drop_schema(schema)


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------


def stat_rows(sec: str, label: str, n: str, ours: list[Sample], floors: list[Sample], serial: list[float]) -> list[Row]:
    def row(lbl: str, unit: str, f: Callable[[Sample], float]) -> Row:
        xs, fl = [f(s) for s in ours], [f(s) for s in floors]
        return Row(sec, lbl, n, median(xs), unit, median(fl), xs, fl)

    errors = sum(len(s.errors) for s in ours)
    threads = int(median([float(s.threads) for s in ours]))
    floor_threads = int(median([float(s.threads) for s in floors]))
    head = (
        f"{label}: runs/s (target >= {TARGET_THROUGHPUT}x) [am]; {errors} errors, {threads} vs {floor_threads} threads"
    )
    rows = [
        row(head, "runs/s", lambda s: s.runs_per_s),
        row("  median latency per run", "ms", lambda s: s.p50 * 1e3),
        row("  p99 latency per run", "ms", lambda s: s.p99 * 1e3),
        row(f"  p99 / median (target <= {TARGET_TAIL:g})", "x", lambda s: s.p99 / s.p50),
        row("  OS threads at peak (threading.active_count)", "threads", lambda s: float(s.threads)),
    ]
    if serial:
        xs = [s.runs_per_s for s in ours]
        rows.append(Row(sec, "  runs/s vs the same rows from one thread, no event loop", n, median(xs), "runs/s",
                        median(serial), xs, serial))  # fmt: skip
    return rows


def verdicts(cfg: Config, what: str, rows: list[Row], ours: list[Sample]) -> None:
    head, tail = rows[0], rows[3]
    errors = sum(len(s.errors) for s in ours)
    if head.ratio is not None and tail.value is not None:
        ok_tp = head.ratio >= TARGET_THROUGHPUT
        ok_tail = tail.value <= TARGET_TAIL
        cfg.notes.append(
            f"async-many: {what}: throughput {head.ratio:.2f}x the floor's (target >= {TARGET_THROUGHPUT}x): "
            f"{'met' if ok_tp else 'NOT met'}; p99/median {tail.value:.1f} (target <= {TARGET_TAIL:g}): "
            f"{'met' if ok_tail else 'NOT met'}; {errors} errors (target 0); "
            f"{int(median([float(s.threads) for s in ours]))} OS threads at peak"
        )
    if errors:
        first = next(e for s in ours for e in s.errors)
        text = str(first).splitlines()[0][:120] if str(first) else ""
        total = sum(len(s.latencies) + len(s.errors) for s in ours)
        msg = f"{errors} of {total} runs failed, first: {type(first).__name__}: {text}"
        cfg.errors.append({"row": f"async-many {what}", "error": msg, "traceback": repr(first)})
        head.note = f"[{len(cfg.errors)}]"


def bench_async_many(cfg: Config) -> list[Row]:
    runs = QUICK_RUNS if cfg.quick else RUNS
    sec = f"async at scale: {runs:,} concurrent ainvokes x {TASKS} async tasks, one store, durability=sync"
    n = f"{runs:,}x{TASKS}"
    rows: list[Row] = []

    def sqlite_pair() -> tuple[Sample, Sample, float | None]:
        d = fresh_dir(cfg, "async-many")
        try:
            for sub in ("floor", "serial", "durable"):
                (d / sub).mkdir()
            floor = sqlite_floor(d / "floor" / "floor.db", runs)
            serial = sqlite_serial_floor(d / "serial" / "floor.db", runs)
            ours = sqlite_durable(d / "durable" / "journal.db", runs)
            return ours, floor, serial
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def pg_pair() -> tuple[Sample, Sample, float | None]:
        floor = pg_floor(runs)
        return pg_durable(runs), floor, None

    kinds: list[tuple[str, str, Callable[[], tuple[Sample, Sample, float | None]]]] = [
        ("SQLite NORMAL", "SQLiteStore", sqlite_pair),
        ("Postgres", "PostgresStore", pg_pair),
    ]
    for label, what, pair in kinds:
        if label == "Postgres":
            from _workloads_postgres import unavailable

            why = unavailable()
            if why:
                cfg.notes.append(f"async-many: {why}")
                continue
        try:
            ours: list[Sample] = []
            floors: list[Sample] = []
            serial: list[float] = []
            for _ in range(cfg.repeat):  # interleaved: floor, durable, floor, durable, ...
                o, f, one_thread = pair()
                ours.append(o)
                floors.append(f)
                if one_thread is not None:
                    serial.append(one_thread)
                if not o.latencies:  # every run failed: no figures to show, only the error
                    raise o.errors[0]
            got = stat_rows(sec, label, n, ours, floors, serial)
            verdicts(cfg, what, got, ours)
            rows.extend(got)
        except Exception as exc:
            rows.append(fail_row(cfg, Row(sec, f"{label}: runs/s [am]", n), exc))
    return rows
