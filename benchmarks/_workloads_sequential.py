"""Sequential tasks: N tasks one after the other in one invoke, on every store and durability mode."""

from __future__ import annotations

import functools
import gc
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    RAN,
    Config,
    Row,
    check,
    close_store,
    expected_sum,
    fail_row,
    fresh_dir,
    make_seq,
    make_sqlite,
    plain_seq,
    time_floor_inserts,
    us_per_task_row,
)

from durable import MemoryStore


def run_durable_seq(cfg: Config, make_store: Callable[[Path], Any], n: int, durability: str, **options: Any) -> float:
    """Seconds for one invoke of n sequential tasks on a fresh store (after a 1-task warm-up run).

    ``options`` go to the entrypoint (a serializer, a secret).
    """
    d = fresh_dir(cfg, "seq")
    store = make_store(d / "journal.db")
    seq = make_seq(store, **options)
    try:
        check(seq.invoke(1, thread_id="warmup", durability=durability) == 0, "warm-up result")
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = seq.invoke(n, thread_id="t1", durability=durability)
        dt = time.perf_counter() - t0
        check(out == expected_sum(n), f"seq({n}) returned {out!r}, expected {expected_sum(n)}")
        check(len(RAN) == n, f"seq({n}) ran {len(RAN)} task bodies, expected {n}")
        return dt
    finally:
        close_store(store)
        shutil.rmtree(d, ignore_errors=True)


def bench_sequential(cfg: Config) -> list[Row]:
    sec = "sequential tasks"
    rows: list[Row] = []

    for n in cfg.sizes:  # plain Python: the undecorated function in the same loop
        samples = []
        for _ in range(cfg.reps(n)):
            gc.collect()
            t0 = time.perf_counter()
            check(plain_seq(n) == expected_sum(n), "plain result")
            samples.append(time.perf_counter() - t0)
            RAN.clear()
        rows.append(us_per_task_row(sec, "plain Python call (no durable)", n, samples))

    for n in cfg.sizes:
        row = Row(sec, "MemoryStore, durability=sync", f"{n:,}")
        try:
            samples = [run_durable_seq(cfg, lambda p: MemoryStore(), n, "sync") for _ in range(cfg.reps(n))]
            rows.append(us_per_task_row(sec, row.label, n, samples))
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))

    sqlite_configs = [("sync", "NORMAL"), ("sync", "FULL"), ("async", "NORMAL"), ("exit", "NORMAL")]
    for durability, sync in sqlite_configs:
        label = f"SQLite {sync}, durability={durability}"
        for n in cfg.sizes:
            row = Row(sec, label, f"{n:,}")
            try:
                samples, floors = [], []
                for _ in range(cfg.reps(n)):
                    floors.append(time_floor_inserts(cfg, n, sync))
                    samples.append(
                        run_durable_seq(cfg, functools.partial(make_sqlite, synchronous=sync), n, durability)
                    )
                rows.append(us_per_task_row(sec, label, n, samples, floors))
            except Exception as exc:
                rows.append(fail_row(cfg, row, exc))

    # Reference for the batched modes: all n rows in ONE transaction.
    for n in cfg.sizes:
        samples = [time_floor_inserts(cfg, n, "NORMAL", commit_each=False) for _ in range(cfg.reps(n))]
        rows.append(us_per_task_row(sec, "raw sqlite3, all rows in one COMMIT (NORMAL)", n, samples))
    return rows
