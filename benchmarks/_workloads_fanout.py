"""Fan-out: 100 tasks called at once, then all results collected."""

from __future__ import annotations

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
    make_fanout,
    make_sqlite,
    median,
    time_floor_inserts,
)

from durable import MemoryStore


def bench_fanout(cfg: Config) -> list[Row]:
    sec = "fan-out: 100 parallel tasks, one invoke"
    n = 100
    rows: list[Row] = []

    def once(make_store: Callable[[Path], Any]) -> float:
        d = fresh_dir(cfg, "fanout")
        store = make_store(d / "journal.db")
        try:
            fan = make_fanout(store)
            # warm up with the same width: the pool's threads exist before the timed run
            check(fan.invoke(n, thread_id="warmup") == expected_sum(n), "warm-up result")
            RAN.clear()
            gc.collect()
            t0 = time.perf_counter()
            out = fan.invoke(n, thread_id="t1")
            dt = time.perf_counter() - t0
            check(out == expected_sum(n), f"fanout returned {out!r}")
            check(sorted(RAN) == list(range(n)), f"fanout ran {len(RAN)} task bodies, expected {n}")
            return dt
        finally:
            close_store(store)
            shutil.rmtree(d, ignore_errors=True)

    for label, make_store, sync in [
        ("SQLite NORMAL, durability=sync", lambda p: make_sqlite(p, "NORMAL"), "NORMAL"),
        ("SQLite FULL, durability=sync", lambda p: make_sqlite(p, "FULL"), "FULL"),
        ("MemoryStore", lambda p: MemoryStore(), None),
    ]:
        row = Row(sec, label, f"{n:,}")
        try:
            samples, floors = [], []
            for _ in range(3 * cfg.repeat):  # a few ms each and noisy (thread scheduling): take more samples
                if sync:
                    floors.append(time_floor_inserts(cfg, n, sync) * 1e3)
                samples.append(once(make_store) * 1e3)
            rows.append(
                Row(sec, label, f"{n:,}", median(samples), "ms", median(floors) if floors else None, samples, floors)
            )
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows
