"""Where a task's time goes on PostgresStore: a ladder from the raw psycopg floor up to durable.

    python benchmarks/profile_postgres.py [N] [REPEAT]     # default 1000 tasks, 5 repetitions, interleaved

Each step adds one thing durable's journal write does, all on the same server, medians of interleaved runs:

  floor         one autocommit INSERT per row into a bare table like durable_journal (the [pg] floor)
  +FK           the same INSERT into durable's own durable_journal (its foreign key to durable_runs, which
                share-locked the run's row, was dropped after this ladder showed its cost: the step now
                measures durable's table alone)
  +lease        durable's fenced statement: INSERT ... SELECT ... WHERE EXISTS (the thread's row FOR KEY SHARE)
  +pool         the same, each through `with pool.connection()` (psycopg_pool) instead of one held connection
  durable       PostgresStore + the engine: `step(i).result()` in a sequential entrypoint, durability="sync"

It prints wall µs and client CPU µs (this process's time.process_time) per row. Set DURABLE_BENCH_POSTGRES to
point it at another server; append `?options=-c%20synchronous_commit%3Doff` to take the WAL flush (fsync) out
of every step and see the CPU and round-trip costs alone.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _workloads_postgres as pgw
from _common import make_seq


def ladder_step(mode: str, n: int) -> tuple[float, float]:
    """(wall s, client CPU s) for n journal rows written the way ``mode`` says, on a fresh schema."""
    import psycopg
    import psycopg_pool

    from durable import PostgresStore
    from durable.stores._base import NewRun

    schema = pgw.new_schema()
    store = PostgresStore(pgw.dsn(), schema=schema)
    try:
        make_seq(store).invoke(1, thread_id="warmup")  # creates the tables
        lease = store.claim("t1", "bench", None, NewRun("seq", b"x", None, 1, None))  # a held lease on run 1 of t1
        store.close()
        q = store._sql
        fenced = mode != "+FK"

        def params(i: int) -> tuple[Any, ...]:
            row = (lease.tid, 1, str(i), 1, "step_fn", 0, i.to_bytes(4, "little"), b"P" + i.to_bytes(4, "little"))
            row += (time.time(), 4)
            return row + ((lease.tid, lease.fence, lease.owner) if fenced else ())

        sql = q.append if fenced else q.insert
        if mode == "+pool":
            pool = psycopg_pool.ConnectionPool(pgw.dsn(), min_size=1, max_size=10, kwargs={"autocommit": True})
            pool.wait()
            with pool.connection() as conn:
                conn.execute(sql, params(n))  # warm-up
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(n):
                with pool.connection() as conn:
                    conn.execute(sql, params(i))
            out = time.perf_counter() - t0, time.process_time() - c0
            pool.close()
            return out
        with psycopg.connect(pgw.dsn(), autocommit=True) as conn:
            conn.execute(sql, params(n))
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(n):
                conn.execute(sql, params(i))
            return time.perf_counter() - t0, time.process_time() - c0
    finally:
        pgw.drop_schema(schema)


def with_cpu(fn: Callable[[int], float], n: int) -> tuple[float, float]:
    c0 = time.process_time()
    wall = fn(n)
    return wall, time.process_time() - c0  # includes the schema set-up: an upper bound


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if (why := pgw.unavailable()) is not None:
        sys.exit(why)
    steps: dict[str, Callable[[int], tuple[float, float]]] = {
        "floor": lambda n: with_cpu(pgw.time_pg_floor, n),
        "+FK": lambda n: ladder_step("+FK", n),
        "+lease": lambda n: ladder_step("+lease", n),
        "+pool": lambda n: ladder_step("+pool", n),
        "durable": lambda n: with_cpu(pgw.time_pg_durable, n),
    }
    walls: dict[str, list[float]] = {k: [] for k in steps}
    cpus: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeat):
        for name, fn in steps.items():
            wall, cpu = fn(n)
            walls[name].append(wall / n * 1e6)
            cpus[name].append(cpu / n * 1e6)
    print(f"{n} rows per run, {repeat} interleaved runs, server {pgw.dsn()}")
    print(f"{'step':10s} {'wall µs/row':>12s} {'client CPU µs/row':>18s}   wall samples")
    for name in steps:
        samples = " ".join(f"{x:.0f}" for x in walls[name])
        print(f"{name:10s} {statistics.median(walls[name]):12.1f} {statistics.median(cpus[name]):18.1f}   {samples}")


if __name__ == "__main__":
    main()
