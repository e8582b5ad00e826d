"""Benchmark suite for `durable`: one command, one table.

    python benchmarks/run.py            # full run (about 30 s; must stay under 3 min on 2 cores)
    python benchmarks/run.py --quick    # smoke run (< 20 s)
    python benchmarks/run.py --repeat 7 --json results.json

Every workload is a small function that returns `Row`s; `print_table` prints
them all. To add a workload (say a LangGraph comparison), write a function
`bench_xxx(cfg) -> list[Row]` and add it to `WORKLOADS`.

Conventions (see benchmarks/README.md):
- each measurement is repeated and the median is shown; every repetition gets a
  fresh database file in a fresh directory, and `gc.collect()` runs before it;
- a durable measurement and its raw-sqlite3 floor are taken interleaved
  (floor, durable, floor, durable, ...) in sibling directories on the same disk,
  so drift in the machine hits both alike;
- "ratio" is durable / floor: it is what transfers between machines.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import pickle
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # Benchmark the checkout even when it is not pip-installed; an installed or
    # PYTHONPATH copy still wins because it comes earlier on sys.path.
    sys.path.append(str(REPO))

import durable  # noqa: E402
from durable import MemoryStore, SQLiteStore, entrypoint, task  # noqa: E402

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


def make_seq(store: Any) -> Any:
    @entrypoint(checkpointer=store)
    def seq(n: int) -> int:
        total = 0
        for i in range(n):
            total += step(i).result()
        if FAIL["end"]:
            raise RuntimeError(f"{MARKER} at the end")
        return total

    return seq


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


# ---------------------------------------------------------------------------
# Workloads. Each returns a list of Rows.
# ---------------------------------------------------------------------------


def run_durable_seq(cfg: Config, make_store: Callable[[Path], Any], n: int, durability: str) -> float:
    """Seconds for one invoke of n sequential tasks on a fresh store (after a 1-task warm-up run)."""
    d = fresh_dir(cfg, "seq")
    store = make_store(d / "journal.db")
    seq = make_seq(store)
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


def us_per_task_row(sec: str, label: str, n: int, secs: list[float], floor_secs: list[float] | None = None) -> Row:
    us = [s / n * 1e6 for s in secs]
    fl = [s / n * 1e6 for s in floor_secs] if floor_secs else []
    return Row(sec, label, f"{n:,}", median(us), "µs/task", median(fl) if fl else None, us, fl)


def bench_resume(cfg: Config) -> list[Row]:
    sec = "resume (1,000-task run, SQLite NORMAL, sync)"
    n = 1000
    rows: list[Row] = []

    def failed_at_500(store: Any) -> tuple[Any, Callable[[], Any]]:
        seq = make_seq(store)
        FAIL["at"] = 500
        try:
            seq.invoke(n, thread_id="t1")
            raise WrongResult("the run did not fail at task 500")
        except RuntimeError as exc:
            check(MARKER in str(exc), f"unexpected error from the failing run: {exc!r}")
        finally:
            FAIL["at"] = None

        def resume() -> None:
            RAN.clear()
            out = seq.invoke(None, thread_id="t1")
            check(out == expected_sum(n), f"resume returned {out!r}")
            check(sorted(RAN) == list(range(500, n)), f"resume ran {len(RAN)} task bodies, expected tasks 500..999")

        return seq, resume

    def failed_at_end(store: Any) -> tuple[Any, Callable[[], Any]]:
        seq = make_seq(store)
        FAIL["end"] = True
        try:
            seq.invoke(n, thread_id="t1")
            raise WrongResult("the run did not fail at the end")
        except RuntimeError as exc:
            check(MARKER in str(exc), f"unexpected error from the failing run: {exc!r}")
        finally:
            FAIL["end"] = False

        def resume() -> None:
            RAN.clear()
            out = seq.invoke(None, thread_id="t1")
            check(out == expected_sum(n), f"replay returned {out!r}")
            check(RAN == [], f"replay re-ran {len(RAN)} finished tasks (expected 0)")

        return seq, resume

    def measure(make_store: Callable[[Path], Any], prepare: Callable[[Any], tuple[Any, Callable[[], Any]]]) -> float:
        d = fresh_dir(cfg, "resume")
        store = make_store(d / "journal.db")
        try:
            seq = make_seq(store)
            seq.invoke(1, thread_id="warmup")
            _, resume = prepare(store)
            gc.collect()
            t0 = time.perf_counter()
            resume()
            return time.perf_counter() - t0
        finally:
            close_store(store)
            shutil.rmtree(d, ignore_errors=True)

    def sqlite_normal(path: Path) -> Any:
        return make_sqlite(path, "NORMAL")

    def memory(path: Path) -> Any:
        return MemoryStore()

    def resume_floor() -> float:
        return time_floor_replay(cfg, 500) + time_floor_inserts(cfg, 500, "NORMAL")

    def replay_floor() -> float:
        return time_floor_replay(cfg, n)

    specs: list[tuple[str, Any, Callable[[Path], Any], Callable[[], float] | None, str]] = [
        ("resume after failure at task 500: 500 replayed + 500 run", failed_at_500, sqlite_normal, resume_floor, "ms"),
        ("  same, per task (1,000 tasks)", failed_at_500, sqlite_normal, resume_floor, "µs/task"),
        (
            "replay alone: 1,000 recorded tasks, entrypoint failed after",
            failed_at_end,
            sqlite_normal,
            replay_floor,
            "µs/task",
        ),
        ("replay alone, MemoryStore", failed_at_end, memory, None, "µs/task"),
    ]
    cache: dict[tuple[int, int], tuple[list[float], list[float]]] = {}  # the two failed_at_500 rows share one run
    for label, prepare, make_store, floor, unit in specs:
        row = Row(sec, label, f"{n:,}")
        try:
            key = (id(prepare), id(make_store))
            if key not in cache:
                samples, floors = [], []
                for _ in range(cfg.repeat):
                    if floor:
                        floors.append(floor())
                    samples.append(measure(make_store, prepare))
                cache[key] = samples, floors
            samples, floors = cache[key]
            scale = 1e3 if unit == "ms" else 1e6 / n
            vals = [s * scale for s in samples]
            fl = [s * scale for s in floors]
            rows.append(
                Row(sec, label, f"{n:,}", median(vals), unit, median(fl) if fl else None, vals, fl, "[r]" if fl else "")
            )
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows


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


def db_bytes(path: Path) -> tuple[int, bool]:
    """Size of the database file after folding the WAL into it; (bytes, checkpoint_was_complete)."""
    conn = sqlite3.connect(str(path))
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return os.path.getsize(path), True
        # Another connection blocks the checkpoint: count the pages the db would have.
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return page_count * page_size, False
    finally:
        conn.close()


def bench_bytes(cfg: Config) -> list[Row]:
    sec = "journal size: SQLite file growth per task (after wal_checkpoint(TRUNCATE))"
    n = 1000
    rows: list[Row] = []
    for label, make_ep, value in [
        ("result = small int", make_seq, lambda i: i),
        ("result = 10 KB bytes", make_blob_seq, lambda i: PAYLOAD_10K),
    ]:
        row = Row(sec, label, f"{n:,}")
        try:
            d = fresh_dir(cfg, "bytes")
            db = d / "journal.db"
            store = make_sqlite(db, "NORMAL")
            ep = make_ep(store)
            ep.invoke(1, thread_id="warmup")
            before, ok1 = db_bytes(db)
            ep.invoke(n, thread_id="t1")
            after, ok2 = db_bytes(db)
            close_store(store)
            shutil.rmtree(d, ignore_errors=True)

            d = fresh_dir(cfg, "bytes-floor")
            conn = floor_connect(d / "floor.db", "NORMAL")
            floor_inserts(conn, 1, value)
            conn.close()
            f_before, _ = db_bytes(d / "floor.db")
            conn = sqlite3.connect(str(d / "floor.db"))
            conn.execute("DELETE FROM journal")
            floor_inserts(conn, n, value)
            conn.close()
            f_after, _ = db_bytes(d / "floor.db")
            shutil.rmtree(d, ignore_errors=True)

            per = (after - before) / n
            fper = (f_after - f_before) / n
            row = Row(sec, label, f"{n:,}", per, "bytes/task", fper, [per], [fper])
            if not (ok1 and ok2):
                row.note = "[c]"
            rows.append(row)
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(REPO)]))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


CHILD_DURABLE = textwrap.dedent(
    """
    import sys
    from durable import SQLiteStore, entrypoint, task

    @task
    def step(i: int) -> int:
        return i

    @entrypoint(checkpointer=SQLiteStore(sys.argv[1], synchronous="NORMAL"))
    def seq(n: int) -> int:
        total = 0
        for i in range(n):
            total += step(i).result()
        return total

    assert seq.invoke(1000, thread_id="t1") == 499500
    """
)

CHILD_FLOOR = textwrap.dedent(
    """
    import pickle, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1])
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute('''CREATE TABLE journal (thread TEXT NOT NULL, run TEXT NOT NULL, key TEXT NOT NULL,
        name TEXT NOT NULL, payload BLOB, PRIMARY KEY (thread, run, key))''')
    conn.commit()
    for i in range(1000):
        conn.execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?)", ("t1", "r1", str(i), "step", pickle.dumps(i)))
        conn.commit()
    """
)


def importtime_ms(env: dict[str, str]) -> tuple[float, list[tuple[float, str]]]:
    """(cumulative ms of `import durable`, the biggest outside imports it pulls in) from -X importtime.

    -X importtime prints a module when its import finishes, after its children,
    which are indented one level deeper; a stack rebuilds who imported whom.
    """
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import durable"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cumulative = None
    stack: list[tuple[int, str, float]] = []  # (depth, module, cumulative ms) still waiting for their parent
    outside: list[tuple[float, str]] = []  # non-durable modules imported directly by a durable module
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if not m:
            continue
        cum_ms, depth, name = int(m[2]) / 1e3, len(m[3]) // 2, m[4]
        while stack and stack[-1][0] > depth:
            child_depth, child, child_ms = stack.pop()
            if child_depth == depth + 1 and name.startswith("durable") and not child.startswith("durable"):
                outside.append((child_ms, child))
        stack.append((depth, name, cum_ms))
        if name == "durable":
            cumulative = cum_ms
    if cumulative is None:
        raise RuntimeError("no 'durable' line in -X importtime output")
    return cumulative, sorted(outside, reverse=True)[:6]


def bench_process(cfg: Config) -> list[Row]:
    sec = "process (subprocess wall time)"
    env = child_env()
    rows: list[Row] = []
    reps = 5 if cfg.quick else 9

    row = Row(sec, "import durable (minus `python -c pass`)")
    try:
        base, imp = [], []
        for _ in range(reps):  # interleaved
            base.append(wall([sys.executable, "-c", "pass"], env) * 1e3)
            imp.append(wall([sys.executable, "-c", "import durable"], env) * 1e3)
        deltas = [a - b for a, b in zip(imp, base, strict=True)]
        rows.append(Row(sec, "python -c pass (interpreter start)", "", median(base), "ms", None, base))
        rows.append(Row(sec, row.label, "", median(deltas), "ms", None, deltas))
    except Exception as exc:
        rows.append(fail_row(cfg, row, exc))

    row = Row(sec, "import durable, -X importtime cumulative")
    try:
        cums: list[float] = []
        heavy: list[tuple[float, str]] = []
        for _ in range(reps):
            c, heavy = importtime_ms(env)
            cums.append(c)
        rows.append(Row(sec, row.label, "", median(cums), "ms", None, cums))
        cfg.heaviest_imports = heavy
    except Exception as exc:
        rows.append(fail_row(cfg, row, exc))

    row = Row(sec, "whole process: 1,000 tasks, SQLite NORMAL, sync", "1,000")
    try:
        samples, floors = [], []
        for _ in range(cfg.repeat):
            d = fresh_dir(cfg, "proc")
            (d / "child.py").write_text(CHILD_DURABLE)
            (d / "floor.py").write_text(CHILD_FLOOR)
            floors.append(wall([sys.executable, str(d / "floor.py"), str(d / "floor.db")], env) * 1e3)
            samples.append(wall([sys.executable, str(d / "child.py"), str(d / "journal.db")], env) * 1e3)
            shutil.rmtree(d, ignore_errors=True)
        rows.append(Row(sec, row.label, row.n, median(samples), "ms", median(floors), samples, floors))
    except Exception as exc:
        rows.append(fail_row(cfg, row, exc))
    return rows


# A probe task: how many journal rows can another connection see when task i starts?
PROBE: dict[str, Any] = {"db": None, "seen": []}


@task
def probe_step(i: int) -> int:
    conn = sqlite3.connect(f"file:{PROBE['db']}?mode=ro", uri=True)
    try:
        PROBE["seen"].append(conn.execute("SELECT count(*) FROM durable_journal").fetchone()[0])
    finally:
        conn.close()
    return i


def make_probe_seq(store: Any) -> Any:
    @entrypoint(checkpointer=store)
    def probe_seq(n: int) -> int:
        return sum(probe_step(i).result() for i in range(n))

    return probe_seq


def check_commit_visibility(cfg: Config, durability: str, n: int = 50) -> str:
    """Sanity check that 'sync' really commits each result before the next task starts
    (and that 'exit' really defers): count the rows a second connection sees."""
    d = fresh_dir(cfg, "probe")
    db = d / "journal.db"
    store = make_sqlite(db, "NORMAL")
    try:
        ep = make_probe_seq(store)
        PROBE["db"], PROBE["seen"] = str(db), []
        ep.invoke(1, thread_id="warmup", durability=durability)
        conn = sqlite3.connect(str(db))
        try:
            base = conn.execute("SELECT count(*) FROM durable_journal").fetchone()[0]
        except sqlite3.OperationalError as exc:
            return f"durability={durability}: skipped ({exc}; the check reads the durable_journal table)"
        finally:
            conn.close()
        PROBE["seen"] = []
        ep.invoke(n, thread_id="t1", durability=durability)
        behind = [i for i, seen in enumerate(PROBE["seen"]) if seen - base < i]
        early = [i for i, seen in enumerate(PROBE["seen"]) if seen - base > 0]
        if durability == "sync":
            if behind:
                raise WrongResult(
                    f"durability=sync: when task {behind[0]} started, another connection saw only "
                    f"{PROBE['seen'][behind[0]] - base} of its {behind[0]} predecessors' results"
                )
            return f"durability=sync: every result was visible to another connection before the next task ({n}/{n})"
        if durability == "exit":
            return f"durability=exit: {len(early)}/{n} tasks saw earlier results on disk during the run" + (
                " (expected 0)" if early else " (as expected)"
            )
        return f"durability={durability}: {n - len(early)}/{n} tasks started before any result of this run was on disk"
    finally:
        close_store(store)
        shutil.rmtree(d, ignore_errors=True)


def bench_checks(cfg: Config) -> list[Row]:
    for durability in ("sync", "async", "exit"):
        try:
            cfg.checks.append(check_commit_visibility(cfg, durability))
        except Exception as exc:
            fail_row(cfg, Row("checks", f"commit-visibility check, durability={durability}"), exc)
    return []


# Add new workloads here: each takes the Config and returns Rows.
WORKLOADS: list[tuple[str, Callable[[Config], list[Row]]]] = [
    ("sequential", bench_sequential),
    ("resume", bench_resume),
    ("fanout", bench_fanout),
    ("bytes", bench_bytes),
    ("process", bench_process),
    ("checks", bench_checks),
]


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def print_table(rows: list[Row], cfg: Config, header: str) -> None:
    cols = ["benchmark", "N", "durable", "unit", "sqlite3 floor", "ratio", "spread"]
    body: list[list[str] | str] = []
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            body.append(section)
        body.append(
            [
                "  " + r.label + (f" {r.note}" if r.note else ""),
                r.n,
                fmt(r.value),
                r.unit,
                fmt(r.floor) if r.floor is not None else ("n/a" if r.value is None else ""),
                f"{r.ratio:.2f}x" if r.ratio is not None else "",
                f"{r.spread * 100:.0f}%" if r.spread is not None else "",
            ]
        )
    table = [cols] + [b for b in body if isinstance(b, list)]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    left = {0, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    total = sum(widths) + 2 * (len(widths) - 1)
    print(header)
    print("=" * total)
    print(line(cols))
    print("-" * total)
    for b in body:
        if isinstance(b, str):
            print(b)
        else:
            print(line(b))
    print("-" * total)
    print("durable = median over repetitions; floor = raw sqlite3, one INSERT+COMMIT per row, same PRAGMAs, same disk;")
    print("ratio = durable / floor; spread = (max - min) / median of the durable samples.")
    if any(r.note == "[r]" for r in rows):
        print("[r] replay floor = ONE SELECT of the recorded rows + pickle.loads each (the least a replay can read);")
        print("    for the resume rows, plus one INSERT+COMMIT per freshly run task.")
    if any(r.note == "[c]" for r in rows):
        print("[c] checkpoint was blocked by an open connection; size = page_count * page_size instead.")
    heavy = cfg.heaviest_imports
    for c in cfg.checks:
        print(f"check: {c}")
    if heavy:
        print("biggest imports pulled in by durable (cumulative ms): " + ", ".join(f"{n} {ms:.1f}" for ms, n in heavy))
    for i, err in enumerate(cfg.errors, 1):
        print(f"[{i}] {err['row']}: {err['error']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 100 and 1,000, 3 repetitions")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions per measurement (default 5, 3 for N=10,000)")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="also dump raw numbers (to FILE, or stdout)")
    ap.add_argument("--tmpdir", default=None, help="where the databases go (default: the system temp dir)")
    ap.add_argument("--only", default=None, help="comma-separated workloads: " + ",".join(n for n, _ in WORKLOADS))
    ap.add_argument("--traceback", action="store_true", help="print full tracebacks of failed rows")
    args = ap.parse_args(argv)

    if args.quick:
        repeat = args.repeat or 3
        cfg_sizes: tuple[int, ...] = (100, 1_000)
    else:
        repeat = args.repeat or 5
        cfg_sizes = (100, 1_000, 10_000)
    base = Path(tempfile.mkdtemp(prefix="durable-bench-", dir=args.tmpdir))
    cfg = Config(args.quick, repeat, args.repeat or min(repeat, 3), cfg_sizes, base)

    selected = [w for w in WORKLOADS if not args.only or w[0] in args.only.split(",")]
    t_start = time.perf_counter()
    rows: list[Row] = []
    try:
        for name, fn in selected:
            t0 = time.perf_counter()
            rows.extend(fn(cfg))
            print(f"... {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    elapsed = time.perf_counter() - t_start

    header = (
        f"durable benchmarks  ({'quick' if cfg.quick else 'full'}, repeat {cfg.repeat}"
        f"{f', {cfg.repeat_big} for N=10,000' if 10_000 in cfg.sizes else ''}; {elapsed:.0f} s)\n"
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"sqlite {sqlite3.sqlite_version}; durable from {Path(durable.__file__ or '?').parent}; "
        f"databases in {base.parent}"
    )
    print_table(rows, cfg, header)
    if args.traceback:
        for err in cfg.errors:
            print(f"\n--- {err['row']}\n{err['traceback']}", file=sys.stderr)

    if args.json:
        data = {
            "meta": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "sqlite": sqlite3.sqlite_version,
                "durable": durable.__file__,
                "quick": cfg.quick,
                "repeat": cfg.repeat,
                "repeat_big": cfg.repeat_big,
                "seconds": elapsed,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            "rows": [dict(asdict(r), ratio=r.ratio, spread=r.spread) for r in rows],
            "errors": cfg.errors,
        }
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 1 if cfg.errors else 0


if __name__ == "__main__":
    sys.exit(main())
