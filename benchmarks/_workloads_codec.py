"""What signing and the JSON serializer cost: sequential tasks on SQLite NORMAL, durability sync."""

from __future__ import annotations

import gc
import shutil
import time
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
    make_sqlite,
    step,
    time_floor_inserts,
    us_per_task_row,
)

from durable import JsonSerializer, entrypoint

N = 1_000
KEY = b"benchmark-key-32-bytes-long....."
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("pickle, unsigned (the default)", {}),
    ("pickle, signed (HMAC-SHA256)", {"secret": KEY}),
    ("JSON serializer, unsigned", {"serializer": JsonSerializer()}),
    ("JSON serializer, signed", {"serializer": JsonSerializer(), "secret": KEY}),
]


def run_variant(cfg: Config, options: dict[str, Any], n: int) -> float:
    d = fresh_dir(cfg, "codec")
    store = make_sqlite(d / "journal.db", synchronous="NORMAL")

    @entrypoint(checkpointer=store, **options)
    def seq(k: int) -> int:
        return sum(step(i).result() for i in range(k))

    try:
        check(seq.invoke(1, thread_id="warmup") == 0, "warm-up result")
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = seq.invoke(n, thread_id="t1")
        dt = time.perf_counter() - t0
        check(out == expected_sum(n), f"seq({n}) returned {out!r}")
        check(len(RAN) == n, f"seq({n}) ran {len(RAN)} task bodies, expected {n}")
        return dt
    finally:
        close_store(store)
        shutil.rmtree(d, ignore_errors=True)


def bench_codec(cfg: Config) -> list[Row]:
    sec = f"serializer and signing ({N:,} sequential tasks, SQLite NORMAL, durability=sync)"
    rows: list[Row] = []
    for label, options in VARIANTS:
        row = Row(sec, label, f"{N:,}")
        try:
            samples, floors = [], []
            for _ in range(cfg.reps(N)):
                floors.append(time_floor_inserts(cfg, N, "NORMAL"))
                samples.append(run_variant(cfg, options, N))
            rows.append(us_per_task_row(sec, label, N, samples, floors))
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows
