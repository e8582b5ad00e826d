"""Shared pieces of the benchmark suite: the workload code, Config/Row plumbing, raw sqlite3 floors.

Every `_workloads_*.py` module and `langgraph_workloads.py` imports from here; `run.py` is the CLI and the table.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import shutil
import sqlite3
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Benchmark the checkout even when it is not pip-installed; an installed or
    # PYTHONPATH copy still wins because it comes earlier on sys.path.
    sys.path.append(str(REPO))

from durable import SQLiteStore, entrypoint, task  # noqa: E402

# ---------------------------------------------------------------------------
# The workload code: the same tasks and entrypoints for every store.
# ---------------------------------------------------------------------------

FAIL: dict[str, Any] = {"at": None, "end": False}  # failure injection
RAN: list[int] = []  # which task bodies actually executed (list.append is thread-safe)
MARKER = "durable-bench injected failure"


def step_fn(i: int) -> int:
    RAN.append(i)
    if i == FAIL["at"]:
        raise RuntimeError(f"{MARKER} at task {i}")
    return i


step = task(step_fn)
PAYLOAD_10K = os.urandom(10 * 1024)


@task
def blob_step(i: int) -> bytes:
    return PAYLOAD_10K


def make_seq(store: Any, **options: Any) -> Any:
    @entrypoint(checkpointer=store, **options)
    def seq(n: int) -> int:
        total = 0
        for i in range(n):
            total += step(i).result()
        if FAIL["end"]:
            raise RuntimeError(f"{MARKER} at the end")
        return total

    return seq


@task
async def astep(i: int) -> int:
    RAN.append(i)
    return i


def make_aseq(store: Any) -> Any:
    """make_seq's twin with async tasks, for ainvoke."""

    @entrypoint(checkpointer=store)
    async def aseq(n: int) -> int:
        total = 0
        for i in range(n):
            total += await astep(i)
        return total

    return aseq


def make_fanout(store: Any) -> Any:
    @entrypoint(checkpointer=store)
    def fanout(n: int) -> int:
        futures = [step(i) for i in range(n)]
        return sum(f.result() for f in futures)

    return fanout


def make_blob_seq(store: Any) -> Any:
    @entrypoint(checkpointer=store)
    def blob_seq(n: int) -> int:
        size = 0
        for i in range(n):
            size += len(blob_step(i).result())
        return size

    return blob_seq


def plain_seq(n: int) -> int:
    total = 0
    for i in range(n):
        total += step_fn(i)
    return total


def expected_sum(n: int) -> int:
    return n * (n - 1) // 2


# ---------------------------------------------------------------------------
# Plumbing: config, rows, timing, fresh directories.
# ---------------------------------------------------------------------------


@dataclass
class Config:
    quick: bool
    repeat: int
    repeat_big: int  # for N = 10,000
    sizes: tuple[int, ...]
    base: Path  # all databases live in fresh subdirectories of this
    errors: list[dict[str, str]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # sanity checks that the numbers mean what they claim
    heaviest_imports: list[tuple[float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one-line remarks printed under the table

    def reps(self, n: int) -> int:
        return self.repeat_big if n >= 10_000 else self.repeat


@dataclass
class Row:
    section: str
    label: str
    n: str = ""
    value: float | None = None  # median
    unit: str = ""
    floor: float | None = None  # median of the raw sqlite3 floor
    samples: list[float] = field(default_factory=list)
    floor_samples: list[float] = field(default_factory=list)
    note: str = ""  # footnote marker, e.g. "[1]"

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return self.value / self.floor

    @property
    def spread(self) -> float | None:
        """(max - min) / median of the durable samples."""
        if len(self.samples) < 2 or not self.value:
            return None
        return (max(self.samples) - min(self.samples)) / self.value


class WrongResult(AssertionError):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise WrongResult(what)


_dir_counter = 0


def fresh_dir(cfg: Config, tag: str) -> Path:
    global _dir_counter
    _dir_counter += 1
    d = cfg.base / f"{_dir_counter:04d}-{tag}"
    d.mkdir()
    return d


def close_store(store: Any) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def fail_row(cfg: Config, row: Row, exc: BaseException) -> Row:
    """Turn a workload's exception into an 'n/a' row with a footnote."""
    first = f"{type(exc).__name__}: {exc}".splitlines()[0][:160] if str(exc) else type(exc).__name__
    cfg.errors.append({"row": f"{row.label} {row.n}".strip(), "error": first, "traceback": traceback.format_exc()})
    row.value, row.floor, row.samples, row.floor_samples = None, None, [], []
    row.note = f"[{len(cfg.errors)}]"
    return row


def make_sqlite(path: Path, synchronous: Any) -> Any:
    return SQLiteStore(str(path), synchronous=synchronous)


# ---------------------------------------------------------------------------
# Raw sqlite3 floors: the least work any SQLite journal must do.
# ---------------------------------------------------------------------------

FLOOR_SCHEMA = """CREATE TABLE journal (
    thread TEXT NOT NULL, run TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, payload BLOB,
    PRIMARY KEY (thread, run, key))"""
FLOOR_INSERT = "INSERT INTO journal (thread, run, key, name, payload) VALUES (?, ?, ?, ?, ?)"


def floor_connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(FLOOR_SCHEMA)
    conn.commit()
    return conn


def floor_inserts(conn: sqlite3.Connection, n: int, value: Callable[[int], Any], commit_each: bool = True) -> None:
    """n journal rows; one INSERT + COMMIT per row (or one COMMIT at the end)."""
    for i in range(n):
        conn.execute(FLOOR_INSERT, ("t1", "r1", str(i), "step", pickle.dumps(value(i), protocol=5)))
        if commit_each:
            conn.commit()
    conn.commit()


def time_floor_inserts(cfg: Config, n: int, synchronous: str, commit_each: bool = True) -> float:
    """Seconds for n journal rows written the cheapest way."""
    d = fresh_dir(cfg, f"floor-{synchronous}")
    conn = floor_connect(d / "floor.db", synchronous)
    floor_inserts(conn, 1, lambda i: i)  # warm-up, like the durable warm-up run
    conn.execute("DELETE FROM journal")
    conn.commit()
    gc.collect()
    t0 = time.perf_counter()
    floor_inserts(conn, n, lambda i: i, commit_each)
    dt = time.perf_counter() - t0
    conn.close()
    shutil.rmtree(d, ignore_errors=True)
    return dt


def time_floor_replay(cfg: Config, n: int, synchronous: str = "NORMAL") -> float:
    """Seconds to read back a run's n journal rows and unpickle them (one SELECT)."""
    d = fresh_dir(cfg, "floor-replay")
    conn = floor_connect(d / "floor.db", synchronous)
    floor_inserts(conn, n, lambda i: i, commit_each=False)
    conn.close()
    gc.collect()
    t0 = time.perf_counter()
    conn = sqlite3.connect(str(d / "floor.db"))
    rows = conn.execute("SELECT key, name, payload FROM journal WHERE thread = ? AND run = ?", ("t1", "r1")).fetchall()
    values = {k: (name, pickle.loads(p)) for k, name, p in rows}
    dt = time.perf_counter() - t0
    conn.close()
    check(len(values) == n, "floor replay row count")
    shutil.rmtree(d, ignore_errors=True)
    return dt


def us_per_task_row(sec: str, label: str, n: int, secs: list[float], floor_secs: list[float] | None = None) -> Row:
    us = [s / n * 1e6 for s in secs]
    fl = [s / n * 1e6 for s in floor_secs] if floor_secs else []
    return Row(sec, label, f"{n:,}", median(us), "µs/task", median(fl) if fl else None, us, fl)
