"""Postgres: µs per task on PostgresStore next to raw psycopg, and worker processes carrying submitted runs.

The server is ``$DURABLE_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``). Every
measurement gets a fresh schema (``durable_bench_<pid>_<n>``), dropped afterwards. Without psycopg 3 and
psycopg_pool, or without a reachable server, the rows are skipped and a line under the table says why.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    RAN,
    REPO,
    Config,
    Row,
    check,
    close_store,
    expected_sum,
    fail_row,
    fresh_dir,
    make_seq,
    median,
    us_per_task_row,
)

from durable import entrypoint, task

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 1.5  # µs/task on PostgresStore (sync) at most 1.5 x one raw autocommit INSERT per task
TARGET_SCALING = 0.8  # worker throughput with k processes >= 0.8 x k x one process's, up to the core count
WORKER_RUNS = 200  # runs submitted up front for the worker rows
WORKER_TASKS = 3  # trivial tasks per run
WORKER_COUNTS = (1, 2, 4)


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


def with_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


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
    store = make_pg_store(schema)
    seq = make_seq(store)
    try:
        check(seq.invoke(1, thread_id="warmup") == 0, "warm-up result")
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = seq.invoke(n, thread_id="t1")
        dt = time.perf_counter() - t0
        check(out == expected_sum(n), f"seq({n}) returned {out!r}, expected {expected_sum(n)}")
        check(len(RAN) == n, f"seq({n}) ran {len(RAN)} task bodies, expected {n}")
        return dt
    finally:
        RAN.clear()
        close_store(store)
        drop_schema(schema)


@task
async def astep(i: int) -> int:
    RAN.append(i)
    return i


def make_aseq(store: Any) -> Any:
    @entrypoint(checkpointer=store)
    async def aseq(n: int) -> int:
        total = 0
        for i in range(n):
            total += await astep(i)
        return total

    return aseq


async def atime_pg_durable(n: int) -> float:
    schema = new_schema()
    store = make_pg_store(schema)
    aseq = make_aseq(store)
    try:
        check(await aseq.ainvoke(1, thread_id="warmup") == 0, "warm-up result")
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = await aseq.ainvoke(n, thread_id="t1")
        dt = time.perf_counter() - t0
        check(out == expected_sum(n), f"aseq({n}) returned {out!r}, expected {expected_sum(n)}")
        check(len(RAN) == n, f"aseq({n}) ran {len(RAN)} task bodies, expected {n}")
        return dt
    finally:
        RAN.clear()
        close_store(store)
        drop_schema(schema)


def pg_sizes(cfg: Config) -> tuple[int, ...]:
    return (100, 300) if cfg.quick else (100, 1_000)


def bench_pg_per_task(cfg: Config, sec: str) -> list[Row]:
    rows: list[Row] = []
    kinds: list[tuple[str, Callable[[int], float], Callable[[int], float]]] = [
        ("PostgresStore, sync [pg]", time_pg_floor, time_pg_durable),
        (
            "PostgresStore, sync, async tasks, ainvoke [pg]",
            lambda n: asyncio.run(atime_pg_floor(n)),
            lambda n: asyncio.run(atime_pg_durable(n)),
        ),
    ]
    for label, floor_fn, durable_fn in kinds:
        for n in pg_sizes(cfg):
            row = Row(sec, f"{label} (target <= {TARGET_RATIO}x)", f"{n:,}")
            try:
                samples, floors = [], []
                for _ in range(cfg.repeat):  # interleaved: floor, durable, floor, durable, ...
                    floors.append(floor_fn(n))
                    samples.append(durable_fn(n))
                r = us_per_task_row(sec, row.label, n, samples, floors)
                rows.append(r)
                if r.ratio is not None:
                    verdict = "met" if r.ratio <= TARGET_RATIO else "NOT met"
                    cfg.notes.append(f"postgres: {label.removesuffix(' [pg]')}, N={n:,}: ratio {r.ratio:.2f}x, "
                                     f"target <= {TARGET_RATIO}x: {verdict}")  # fmt: skip
            except Exception as exc:
                rows.append(fail_row(cfg, row, exc))
    return rows


# ---------------------------------------------------------------------------
# Workers: k OS processes carry WORKER_RUNS submitted runs.
# ---------------------------------------------------------------------------

FLOWS_MODULE = textwrap.dedent(
    f"""
    from durable import entrypoint, task

    @task(name="bench_pg_tiny")
    def tiny(i: int) -> int:
        return i

    @entrypoint(name="bench_pg_short")
    def short(x: int) -> int:
        return sum(tiny(x + j).result() for j in range({WORKER_TASKS}))
    """
)

# A warm worker: builds the Worker, opens its pool, says "ready", waits for "go" on stdin, carries until idle.
WORKER_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from durable import Worker
    import bench_pg_flows

    worker = Worker([bench_pg_flows.short], checkpointer=sys.argv[1], concurrency=1, poll_interval=0.05)
    worker.store.get_thread("not-a-thread")  # connects, opens the pool
    print("ready", flush=True)
    sys.stdin.readline()
    stats = worker.run_once()
    done = time.perf_counter()
    print(json.dumps({"completed": stats.completed, "total": stats.total, "done": done}), flush=True)
    worker.store.close()
    """
)


def make_short(store: Any) -> Any:
    """The parent's twin of bench_pg_flows.short: the same entrypoint name, so the workers find its runs."""

    @entrypoint(checkpointer=store, name="bench_pg_short")
    def short(x: int) -> int:
        raise AssertionError("submitted runs are carried by the worker processes, never here")

    return short


def child_env(flows_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(flows_dir), env.get("PYTHONPATH"), str(REPO)]))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def submit_runs(schema: str) -> None:
    store = make_pg_store(schema)
    try:
        short = make_short(store)
        for i in range(WORKER_RUNS):
            short.submit(i, thread_id=f"run-{i:04d}")
    finally:
        close_store(store)


def verify_runs(schema: str, carried: int) -> None:
    """Every submitted run completed exactly once: one run per thread, WORKER_TASKS first attempts each."""
    import psycopg

    s = f'"{schema}"'
    with psycopg.connect(dsn(), autocommit=True) as conn:
        status = dict(conn.execute(f"SELECT status, count(*) FROM {s}.durable_runs GROUP BY status").fetchall())
        check(status == {"completed": WORKER_RUNS}, f"runs by status: {status}, expected {WORKER_RUNS} completed")
        one = conn.execute(f"SELECT count(*), max(run_id), max(recoveries) FROM {s}.durable_runs").fetchone()
        check(one == (WORKER_RUNS, 1, 0), f"(runs, max run_id, max recoveries) = {one}")
        j = conn.execute(f"SELECT count(*), max(attempt) FROM {s}.durable_journal").fetchone()
        check(j == (WORKER_RUNS * WORKER_TASKS, 1), f"(journal rows, max attempt) = {j}")
        outputs = conn.execute(f"SELECT count(*) FROM {s}.durable_runs WHERE output IS NOT NULL").fetchone()
        check(outputs == (WORKER_RUNS,), f"runs with an output: {outputs}, expected {WORKER_RUNS}")
    check(carried == WORKER_RUNS, f"the workers report {carried} runs completed, expected {WORKER_RUNS}")


def time_warm_workers(d: Path, k: int) -> tuple[float, float]:
    """(seconds from "go" until the last worker is idle, seconds to start k workers until all are ready)."""
    schema = new_schema()
    url = with_query(dsn(), schema=schema)
    procs: list[subprocess.Popen[str]] = []
    try:
        submit_runs(schema)
        env = child_env(d)
        t_start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, str(d / "bench_pg_worker.py"), url],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(k)
        ]
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            check(line.strip() == "ready", f"a worker said {line!r} instead of 'ready'")
        t_ready = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
        t0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.flush()
        reports = []
        for p in procs:
            assert p.stdout is not None
            reports.append(json.loads(p.stdout.readline()))
        for p in procs:
            check(p.wait(timeout=60) == 0, f"a worker exited with {p.returncode}")
        dt = max(r["done"] for r in reports) - t0  # perf_counter is CLOCK_MONOTONIC: shared across processes
        verify_runs(schema, sum(r["completed"] for r in reports))
        return dt, t_ready - t_start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        drop_schema(schema)


def time_cli_workers(d: Path, k: int) -> float:
    """Seconds from starting k `python -m durable worker --until-idle` processes until the last one exits."""
    schema = new_schema()
    url = with_query(dsn(), schema=schema)
    try:
        submit_runs(schema)
        argv = [sys.executable, "-m", "durable", "worker", "bench_pg_flows", "--url", url, "--until-idle"]
        argv += ["--concurrency", "1", "--poll-interval", "0.05"]
        env = child_env(d)
        gc.collect()
        t0 = time.perf_counter()
        procs = [subprocess.Popen(argv, env=env, cwd=d, stdout=subprocess.PIPE, text=True) for _ in range(k)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        dt = time.perf_counter() - t0
        check(all(p.returncode == 0 for p in procs), f"worker exit codes {[p.returncode for p in procs]}")
        carried = 0
        for out in outs:
            for line in out.splitlines():
                if line.startswith("durable worker: done ("):
                    carried += int(line.split("(")[1].split()[0])
        verify_runs(schema, carried)
        return dt
    finally:
        drop_schema(schema)


def bench_pg_workers(cfg: Config, sec: str) -> list[Row]:
    rows: list[Row] = []
    d = fresh_dir(cfg, "pg-workers")
    (d / "bench_pg_flows.py").write_text(FLOWS_MODULE)
    (d / "bench_pg_worker.py").write_text(WORKER_CHILD)
    cores = os.cpu_count() or 1
    reps = 2 if cfg.quick else cfg.repeat
    one_worker: float | None = None  # median runs/s of one process

    for k in WORKER_COUNTS[:2] if cfg.quick else WORKER_COUNTS:
        label = f"{k} worker process{'es' if k > 1 else ''}, warm [w]"
        if k > cores:
            label += f" (> {cores} cores: cannot be linear)"
        elif k > 1:
            label += f" (target >= {TARGET_SCALING}x linear)"
        row = Row(sec, label, f"{WORKER_RUNS}")
        try:
            rates, starts = [], []
            for _ in range(reps):
                gc.collect()
                dt, start = time_warm_workers(d, k)
                rates.append(WORKER_RUNS / dt)
                starts.append(start * 1e3)
            rate = median(rates)
            if k == 1:
                one_worker = rate
            floor = k * one_worker if (k > 1 and one_worker) else None
            r = Row(sec, label, f"{WORKER_RUNS}", rate, "runs/s", floor, rates, [])
            rows.append(r)
            start_label = f"  start-up: {k} process{'es' if k > 1 else ''} until connected"
            rows.append(Row(sec, start_label, "", median(starts), "ms", None, starts))
            if k > 1 and r.ratio is not None:
                if k > cores:
                    verdict = f"reported only ({k} processes on {cores} cores)"
                else:
                    verdict = "met" if r.ratio >= TARGET_SCALING else "NOT met"
                cfg.notes.append(f"postgres: {k} workers scale {r.ratio:.2f}x of linear, target >= "
                                 f"{TARGET_SCALING}x: {verdict}")  # fmt: skip
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))

    for k in (1,) if cfg.quick else WORKER_COUNTS:
        label = f"`durable worker --until-idle` x {k}, with start-up [w]"
        row = Row(sec, label, f"{WORKER_RUNS}")
        try:
            rates = [WORKER_RUNS / time_cli_workers(d, k) for _ in range(min(reps, 3))]
            rows.append(Row(sec, label, f"{WORKER_RUNS}", median(rates), "runs/s", None, rates))
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows


def bench_postgres(cfg: Config) -> list[Row]:
    why = unavailable()
    if why is not None:
        cfg.notes.append(why)
        return []
    rows = bench_pg_per_task(cfg, "postgres: µs per task (raw psycopg floor)")
    rows += bench_pg_workers(cfg, f"postgres: {WORKER_RUNS} submitted runs of {WORKER_TASKS} tasks, carried by workers")
    return rows
