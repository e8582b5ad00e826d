"""What signing and the JSON serializer cost: sequential tasks on SQLite NORMAL, durability sync."""

from __future__ import annotations

import functools
from typing import Any

from _common import Config, Row, fail_row, make_sqlite, time_floor_inserts, us_per_task_row
from _workloads_sequential import run_durable_seq

from durable import JsonSerializer

N = 1_000
KEY = b"benchmark-key-32-bytes-long....."
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("pickle, unsigned (the default)", {}),
    ("pickle, signed (HMAC-SHA256)", {"secret": KEY}),
    ("JSON serializer, unsigned", {"serializer": JsonSerializer()}),
    ("JSON serializer, signed", {"serializer": JsonSerializer(), "secret": KEY}),
]


def bench_codec(cfg: Config) -> list[Row]:
    sec = f"serializer and signing ({N:,} sequential tasks, SQLite NORMAL, durability=sync)"
    rows: list[Row] = []
    for label, options in VARIANTS:
        row = Row(sec, label, f"{N:,}")
        try:
            samples, floors = [], []
            for _ in range(cfg.reps(N)):
                floors.append(time_floor_inserts(cfg, N, "NORMAL"))
                samples.append(
                    run_durable_seq(cfg, functools.partial(make_sqlite, synchronous="NORMAL"), N, "sync", **options)
                )
            rows.append(us_per_task_row(sec, label, N, samples, floors))
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows
