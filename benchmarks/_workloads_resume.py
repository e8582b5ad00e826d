"""Resume: a 1,000-task run failed at task 500 (or after its last task), then invoke(None)."""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    FAIL,
    MARKER,
    RAN,
    Config,
    Row,
    WrongResult,
    check,
    close_store,
    expected_sum,
    fail_row,
    fresh_dir,
    make_seq,
    make_sqlite,
    median,
    time_floor_inserts,
    time_floor_replay,
)

from durable import MemoryStore

N = 1000  # tasks in the run that fails and is resumed
FAIL_AT = 500  # the failing task; tasks 0..499 are recorded before it


def run_failing(run: Callable[[], Any], at_end: bool) -> None:
    """Call `run` (one invoke of the N-task workflow on thread t1) with a failure injected at task FAIL_AT,
    or after the last task when `at_end`; check that it failed with the injected error."""
    if at_end:
        FAIL["end"] = True
    else:
        FAIL["at"] = FAIL_AT
    try:
        run()
        raise WrongResult("the run did not fail " + ("at the end" if at_end else f"at task {FAIL_AT}"))
    except RuntimeError as exc:
        check(MARKER in str(exc), f"unexpected error from the failing run: {exc!r}")
    finally:
        FAIL["at"], FAIL["end"] = None, False


def check_resumed(out: Any, at_end: bool) -> None:
    """The resume's result is right, and it ran only the tail: no task body when the run failed after its last
    task, tasks FAIL_AT..N-1 (the failed one again, then the rest) when it failed at FAIL_AT."""
    check(out == expected_sum(N), f"{'replay' if at_end else 'resume'} returned {out!r}")
    if at_end:
        check(RAN == [], f"replay re-ran {len(RAN)} finished tasks (expected 0)")
    else:
        check(
            sorted(RAN) == list(range(FAIL_AT, N)),
            f"resume ran {len(RAN)} task bodies, expected tasks {FAIL_AT}..{N - 1}",
        )


def time_durable_resume(cfg: Config, make_store: Callable[[Path], Any], at_end: bool) -> float:
    """Seconds for `invoke(None)` on a fresh store whose N-task run failed (after a 1-task warm-up run)."""
    d = fresh_dir(cfg, "resume")
    store = make_store(d / "journal.db")
    try:
        seq = make_seq(store)
        seq.invoke(1, thread_id="warmup")
        run_failing(lambda: seq.invoke(N, thread_id="t1"), at_end)
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = seq.invoke(None, thread_id="t1")
        dt = time.perf_counter() - t0
        check_resumed(out, at_end)
        return dt
    finally:
        close_store(store)
        shutil.rmtree(d, ignore_errors=True)


def sqlite_normal(path: Path) -> Any:
    return make_sqlite(path, "NORMAL")


def memory(path: Path) -> Any:
    return MemoryStore()


def bench_resume(cfg: Config) -> list[Row]:
    sec = "resume (1,000-task run, SQLite NORMAL, sync)"
    rows: list[Row] = []

    def resume_floor() -> float:
        return time_floor_replay(cfg, N - FAIL_AT) + time_floor_inserts(cfg, N - FAIL_AT, "NORMAL")

    def replay_floor() -> float:
        return time_floor_replay(cfg, N)

    # (label, failed after the last task?, store, floor, unit)
    specs: list[tuple[str, bool, Callable[[Path], Any], Callable[[], float] | None, str]] = [
        ("resume after failure at task 500: 500 replayed + 500 run", False, sqlite_normal, resume_floor, "ms"),
        ("  same, per task (1,000 tasks)", False, sqlite_normal, resume_floor, "µs/task"),
        ("replay alone: 1,000 recorded tasks, entrypoint failed after", True, sqlite_normal, replay_floor, "µs/task"),
        ("replay alone, MemoryStore", True, memory, None, "µs/task"),
    ]
    cache: dict[tuple[bool, Any], tuple[list[float], list[float]]] = {}  # the two failed-at-500 rows share one run
    for label, at_end, make_store, floor, unit in specs:
        row = Row(sec, label, f"{N:,}")
        try:
            key = (at_end, make_store)
            if key not in cache:
                samples, floors = [], []
                for _ in range(cfg.repeat):
                    if floor:
                        floors.append(floor())
                    samples.append(time_durable_resume(cfg, make_store, at_end))
                cache[key] = samples, floors
            samples, floors = cache[key]
            scale = 1e3 if unit == "ms" else 1e6 / N
            vals = [s * scale for s in samples]
            fl = [s * scale for s in floors]
            rows.append(
                Row(sec, label, f"{N:,}", median(vals), unit, median(fl) if fl else None, vals, fl, "[r]" if fl else "")
            )
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows
