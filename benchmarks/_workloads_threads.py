"""Stores with many threads: what an operator and a worker do, at 100,000 threads next to 1,000.

One SQLite file holds N threads of one entrypoint, each a finished run (1 in 100 failed, the rest completed), made
by the real entrypoint (``durability="exit"``). Each row times one operation, the median over its samples (a sample
is the mean of ``CALLS`` calls): at N = 100,000 (the value) and at N = 1,000 (the floor), so the ratio is how much the
operation grows with the number of threads: ~1 is flat.

- list first page: ``Threads.list(limit=50)`` (newest first); by status: ``list(status="failed", limit=50)``;
  page 2: the page after the first one's cursor;
- worker poll: ``store.reserve(owner, [the entrypoint], 10)`` with nothing to do (every run has finished), which is
  what an idle worker runs every poll, inside the store's write transaction;
- prune, nothing due: ``store.prune(finished_before=0, ...)``: a prune that finds nothing (it runs periodically);
- get_state: ``get_state(thread_id=...)`` of one thread.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Config, Row, check, close_store, fail_row, fresh_dir, median

from durable import SQLiteStore, Threads, entrypoint

MANY, FEW = 100_000, 1_000
CALLS = 50  # calls per sample
EP_NAME = "bench_threads"


def _build(path: Path, n: int) -> tuple[SQLiteStore, Any]:
    store = SQLiteStore(path)

    @entrypoint(checkpointer=store, name=EP_NAME)
    def work(i: int) -> int:
        if i % 100 == 99:
            raise ValueError(f"thread {i} fails")
        return i

    for i in range(n):
        with contextlib.suppress(ValueError):
            work.invoke(i, thread_id=f"t{i:06d}", durability="exit")
    return store, work


def _ops(store: SQLiteStore, work: Any, n: int) -> dict[str, Callable[[], Any]]:
    threads = Threads(store)
    first = threads.list(limit=50)
    check(len(first.threads) == 50 and first.next_cursor is not None, f"a first page of 50 threads of {n}")
    failed = threads.list(status="failed", limit=50)
    check(len(failed.threads) == min(50, n // 100), "failed threads listed by status")
    check(store.reserve("bench-idle", [EP_NAME], 10) == [], "an idle poll takes nothing")
    last = f"t{n - 1:06d}"
    return {
        "list first page": lambda: threads.list(limit=50),
        "list by status": lambda: threads.list(status="failed", limit=50),
        "list page 2": lambda: threads.list(limit=50, cursor=first.next_cursor),
        "worker poll (idle)": lambda: store.reserve("bench-idle", [EP_NAME], 10),
        "prune, nothing due": lambda: store.prune(0.0, ("completed", "failed"), 100),
        "get_state": lambda: work.get_state(thread_id=last),
    }


def _time(op: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    for _ in range(CALLS):
        op()
    return (time.perf_counter() - t0) / CALLS


def bench_threads(cfg: Config) -> list[Row]:
    sec = f"Stores with many threads: SQLite, {MANY:,} threads vs {FEW:,} (floor) [th]"
    rows: list[Row] = []
    try:
        built = {n: _build(fresh_dir(cfg, f"threads-{n}") / "t.db", n) for n in (FEW, MANY)}
        ops = {n: _ops(store, work, n) for n, (store, work) in built.items()}
        for name in ops[MANY]:
            many: list[float] = []
            few: list[float] = []
            for _ in range(cfg.repeat):  # alternate, so drift hits both alike
                many.append(_time(ops[MANY][name]) * 1e3)
                few.append(_time(ops[FEW][name]) * 1e3)
            rows.append(Row(sec, name, f"{MANY:,}", median(many), "ms", median(few), many, few, note="[th]"))
        for store, _ in built.values():
            close_store(store)
    except Exception as exc:
        rows.append(fail_row(cfg, Row(sec, "threads", f"{MANY:,}", note="[th]"), exc))
    return rows
