"""Journals of any length: resuming a failed run of N recorded tasks, next to a streaming read of its rows.

A run of N tasks (``step(i)`` returns ``i``) fails after its last task; ``invoke(None)`` then resumes it: the body
runs again from the start, every task comes back from the journal, and the run finishes. The journal is built once
by the real entrypoint (``durability="exit"``, in a child process) and copied for every sample, so it has exactly
the rows durable writes, whatever their format.

- *journal-long*: N = 1,000,000 (100,000 with ``--quick``); each sample is a fresh process on a fresh copy of the
  file, after a one-task warm-up run on another thread of the same store (so importing, opening the store and
  checking the schema are not counted). Measured in the child: the time from just before ``invoke(None)`` until
  the body starts (it records ``time.perf_counter()`` on entry), the whole resume, the replay loop inside the body
  (µs per replayed task), and the growth of the peak RSS (``ru_maxrss``) across the resume. Floor: a fresh process
  on a fresh copy streams the same rows (the thread's row, then ``SELECT key, payload ... ORDER BY`` the primary
  key, ``fetchmany(1000)``, ``pickle.loads`` of each) after the same kind of warm-up (its connection open): its
  time to the first 1,000 rows, its total time and its RSS growth.
- *replay per cached task*, N = 1,000, in this process on SQLite: ``invoke(None)`` of the failed run, µs per task
  (a sample is the mean over 5 such runs, on 5 threads of one file); floor: the thread's row, then one ``SELECT`` of
  the run's rows in key order and ``pickle.loads`` of each, on an open connection, alternating with durable.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import Config, Row, WrongResult, check, close_store, fail_row, fresh_dir, median

import durable
from durable import SQLiteStore, entrypoint, task

LONG, QUICK_LONG = 1_000_000, 100_000  # tasks in the long run
SHORT = 1_000  # tasks in the run of the per-task row
SHORT_RUNS = 5  # such runs per sample (a sample is their mean: one replay takes a few ms)
TARGET_START_MS = 50.0  # the body starts within 50 ms of invoke(None)
TARGET_RSS_MIB = 4.0  # peak RSS grows at most this much more than the streaming floor's ("a few MiB")
TARGET_US = 2.5  # µs per replayed task on SQLite
BATCH = 1_000  # the floor's fetchmany size
EP_NAME, TASK_NAME, THREAD = "bench_journal_long", "bench_journal_step", "long"

# The child: `build PATH N` records a run of N tasks that fails after the last; `resume PATH` resumes it and prints
# its timings; `floor PATH` streams the rows. Each prints one JSON line.
CHILD = textwrap.dedent(
    f"""
    import gc, json, pickle, resource, sqlite3, sys, time

    mode, path = sys.argv[1], sys.argv[2]

    def maxrss():
        # The peak RSS in KiB: VmHWM, the process's own high-water mark (Linux). Not ru_maxrss: after fork + exec
        # it is at least the parent's RSS at the fork, so in a child of a big process it hides any growth.
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def reset_peak():
        # Linux: the peak drops to the current RSS, so a transient peak before (imports, the warm-up) hides nothing.
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    if mode == "floor":
        conn = sqlite3.connect(path)
        conn.execute("SELECT count(*) FROM durable_threads").fetchone()  # warm-up: open, read the schema
        gc.collect()
        reset_peak()
        rss0 = maxrss()
        t0 = time.perf_counter()
        tid, run_id = conn.execute(
            "SELECT tid, last_run FROM durable_threads WHERE thread_id = ?", ({THREAD!r},)
        ).fetchone()
        cur = conn.execute(
            "SELECT key, payload FROM durable_journal WHERE tid = ? AND run_id = ? ORDER BY tid, run_id, key, attempt",
            (tid, run_id),
        )
        first, count, total = None, 0, 0
        loads = pickle.loads
        while rows := cur.fetchmany({BATCH}):
            for key, payload in rows:
                total += loads(payload[1:])  # durable's framing: a one-byte tag, then the pickle
            count += len(rows)
            if first is None:
                first = time.perf_counter()
        t1 = time.perf_counter()
        rss1 = maxrss()
        print(json.dumps({{"first": first - t0, "total": t1 - t0, "rss0": rss0, "rss1": rss1, "rows": count,
                           "sum": total}}))
        sys.exit(0)

    from durable import SQLiteStore, entrypoint, task

    marks = {{}}
    ran = []
    fail = mode == "build"

    @task(name={TASK_NAME!r})
    def step(i: int) -> int:
        ran.append(i)
        return i

    store = SQLiteStore(path, synchronous="NORMAL")

    @entrypoint(checkpointer=store, name={EP_NAME!r})
    def long(n: int) -> int:
        marks["body"] = time.perf_counter()
        total = 0
        for i in range(n):
            total += step(i).result()
        marks["loop"] = time.perf_counter()
        if fail:
            raise RuntimeError("durable-bench: the long run fails after its last task")
        return total

    if mode == "build":
        n = int(sys.argv[3])
        t0 = time.perf_counter()
        try:
            long.invoke(n, thread_id={THREAD!r}, durability="exit")
            raise SystemExit("the long run did not fail")
        except RuntimeError:
            pass
        dt = time.perf_counter() - t0
        store.close()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (rows,) = conn.execute("SELECT count(*) FROM durable_journal").fetchone()
        conn.close()
        print(json.dumps({{"seconds": dt, "rows": rows, "ran": len(ran)}}))
        sys.exit(0)

    assert long.invoke(1, thread_id="warmup") == 0  # warm-up: imports, the store's connection, the schema check
    ran.clear()
    marks.clear()
    gc.collect()
    reset_peak()
    rss0 = maxrss()
    t0 = time.perf_counter()
    out = long.invoke(None, thread_id={THREAD!r})
    t1 = time.perf_counter()
    rss1 = maxrss()
    store.close()
    print(json.dumps({{"body": marks["body"] - t0, "loop": marks["loop"] - marks["body"], "total": t1 - t0,
                       "rss0": rss0, "rss1": rss1, "out": out, "ran": len(ran)}}))
    """
)


def child(script: Path, *args: str) -> dict[str, Any]:
    """Run the child script in a fresh interpreter that imports the same durable as this process."""
    env = dict(os.environ)
    root = str(Path(durable.__file__ or ".").resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    p = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise WrongResult(f"child {args[0]} exited with {p.returncode}: {tail}")
    out: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def copy_db(src: Path, d: Path) -> Path:
    dst = d / "journal.db"
    shutil.copyfile(src, dst)
    return dst


def bench_long(cfg: Config, sec: str, script: Path) -> list[Row]:
    n = QUICK_LONG if cfg.quick else LONG
    nn = f"{n:,}"
    label = f"resume a failed run of {n:,} recorded tasks, invoke(None) [jl]"
    reps = cfg.repeat if cfg.quick else cfg.repeat_big
    try:
        d = fresh_dir(cfg, "journal-long-build")
        built = child(script, "build", str(d / "journal.db"), str(n))
        check(built["rows"] == n and built["ran"] == n, f"the build wrote {built['rows']} rows, expected {n}")
        cfg.notes.append(
            f"journal-long: built the {n:,}-task journal with the real entrypoint (durability=exit) in "
            f"{built['seconds']:.1f} s, {(d / 'journal.db').stat().st_size / 2**20:.0f} MiB"
        )
        src = d / "journal.db"
        ours: list[dict[str, Any]] = []
        floors: list[dict[str, Any]] = []
        for _ in range(reps):  # interleaved: floor, durable, floor, durable, ...
            fd = fresh_dir(cfg, "journal-long-floor")
            f = child(script, "floor", str(copy_db(src, fd)))
            shutil.rmtree(fd, ignore_errors=True)
            check(f["rows"] == n and f["sum"] == n * (n - 1) // 2, f"the floor read {f['rows']} rows")
            floors.append(f)
            od = fresh_dir(cfg, "journal-long")
            o = child(script, "resume", str(copy_db(src, od)))
            shutil.rmtree(od, ignore_errors=True)
            check(o["out"] == n * (n - 1) // 2, f"the resume returned {o['out']!r}")
            check(o["ran"] == 0, f"the resume re-ran {o['ran']} recorded tasks (expected 0)")
            ours.append(o)
        shutil.rmtree(d, ignore_errors=True)
    except Exception as exc:
        return [fail_row(cfg, Row(sec, label, nn), exc)]

    def row(lbl: str, unit: str, xs: list[float], fl: list[float]) -> Row:
        return Row(sec, lbl, nn, median(xs), unit, median(fl), xs, fl)

    mib = 1 / 1024  # VmHWM / ru_maxrss are in KiB
    start = row(f"{label}: until the body starts (target <= {TARGET_START_MS:g} ms)", "ms",
                [o["body"] * 1e3 for o in ours], [f["first"] * 1e3 for f in floors])  # fmt: skip
    total = row("  whole resume", "s", [o["total"] for o in ours], [f["total"] for f in floors])
    per = row(f"  replay loop in the body, per task (target <= {TARGET_US:g})", "µs/task",
              [o["loop"] / n * 1e6 for o in ours], [f["total"] / n * 1e6 for f in floors])  # fmt: skip
    grow, floor_grow = [(o["rss1"] - o["rss0"]) * mib for o in ours], [(f["rss1"] - f["rss0"]) * mib for f in floors]
    rss = row(f"  peak RSS growth (target <= floor + {TARGET_RSS_MIB:g})", "MiB", grow, floor_grow)
    assert start.value is not None and per.value is not None and rss.value is not None and rss.floor is not None
    over = rss.value - rss.floor
    cfg.notes.append(
        f"journal-long: N={n:,}: body starts after {start.value:.1f} ms = {start.value / TARGET_START_MS:.2f}x "
        f"the {TARGET_START_MS:g} ms target ({verdict(start.value <= TARGET_START_MS)}); replay "
        f"{per.value:.2f} µs/task = {per.value / TARGET_US:.2f}x the {TARGET_US:g} µs target "
        f"({verdict(per.value <= TARGET_US)}); peak RSS +{rss.value:.1f} MiB, the floor's "
        f"+{rss.floor:.1f}: {over:+.1f} MiB (target <= +{TARGET_RSS_MIB:g}: {verdict(over <= TARGET_RSS_MIB)})"
    )
    return [start, total, per, rss]


# ---------------------------------------------------------------------------
# Replay per cached task, N = 1,000, in this process
# ---------------------------------------------------------------------------

RAN: list[int] = []
FAIL = {"on": False}


@task(name=TASK_NAME)
def step(i: int) -> int:
    RAN.append(i)
    return i


def make_long(store: Any) -> Any:
    @entrypoint(checkpointer=store, name=EP_NAME)
    def long(n: int) -> int:
        total = 0
        for i in range(n):
            total += step(i).result()
        if FAIL["on"]:
            raise RuntimeError("durable-bench: the run fails after its last task")
        return total

    return long


def floor_read(conn: sqlite3.Connection, thread_id: str) -> int:
    """The thread's row, then its run's rows in key order, each unpickled; returns how many."""
    tid, run_id = conn.execute("SELECT tid, last_run FROM durable_threads WHERE thread_id = ?", (thread_id,)).fetchone()
    rows = conn.execute(
        "SELECT key, payload FROM durable_journal WHERE tid = ? AND run_id = ? ORDER BY tid, run_id, key, attempt",
        (tid, run_id),
    ).fetchall()
    loads = pickle.loads
    values = {key: loads(payload[1:]) for key, payload in rows}
    return len(values)


def time_short(cfg: Config) -> tuple[float, float]:
    """(durable seconds, floor seconds) per run on one fresh file holding SHORT_RUNS failed runs of SHORT tasks (one
    per thread), each read back by the floor then replayed by durable, alternately."""
    d = fresh_dir(cfg, "journal-short")
    store = SQLiteStore(str(d / "journal.db"), synchronous="NORMAL")
    conn: sqlite3.Connection | None = None
    threads = [f"t{i}" for i in range(SHORT_RUNS)]
    try:
        long = make_long(store)
        check(long.invoke(1, thread_id="warmup") == 0, "warm-up result")
        FAIL["on"] = True
        try:
            for t in threads:
                with contextlib.suppress(RuntimeError):
                    long.invoke(SHORT, thread_id=t)
                    raise WrongResult("the run did not fail")
        finally:
            FAIL["on"] = False
        conn = sqlite3.connect(str(d / "journal.db"))
        conn.execute("SELECT count(*) FROM durable_threads").fetchone()
        ours = floor = 0.0
        for t in threads:
            gc.collect()
            t0 = time.perf_counter()
            count = floor_read(conn, t)
            floor += time.perf_counter() - t0
            check(count == SHORT, f"the floor read {count} rows, expected {SHORT}")
            RAN.clear()
            gc.collect()
            t0 = time.perf_counter()
            out = long.invoke(None, thread_id=t)
            ours += time.perf_counter() - t0
            check(out == SHORT * (SHORT - 1) // 2, f"the replay returned {out!r}")
            check(RAN == [], f"the replay re-ran {len(RAN)} recorded tasks (expected 0)")
        return ours / SHORT_RUNS, floor / SHORT_RUNS
    finally:
        RAN.clear()
        if conn is not None:
            conn.close()
        close_store(store)
        shutil.rmtree(d, ignore_errors=True)


def bench_short(cfg: Config, sec: str) -> Row:
    row = Row(sec, f"replay per cached task, SQLite NORMAL (target <= {TARGET_US:g}) [jr]", f"{SHORT:,}")
    try:
        ours, floors = [], []
        for _ in range(2 * cfg.repeat):  # each the mean of SHORT_RUNS replays of a few ms
            o, f = time_short(cfg)
            ours.append(o / SHORT * 1e6)
            floors.append(f / SHORT * 1e6)
        row = Row(sec, row.label, row.n, median(ours), "µs/task", median(floors), ours, floors)
        assert row.value is not None
        cfg.notes.append(
            f"journal-long: replay per cached task at N={SHORT:,}: {row.value:.2f} µs = "
            f"{row.value / TARGET_US:.2f}x the {TARGET_US:g} µs target ({verdict(row.value <= TARGET_US)})"
        )
        return row
    except Exception as exc:
        return fail_row(cfg, row, exc)


def bench_journal_long(cfg: Config) -> list[Row]:
    sec = "journals of any length: a failed run resumed with invoke(None), SQLite NORMAL"
    script = cfg.base / "bench_journal_child.py"
    script.write_text(CHILD)
    rows = [bench_short(cfg, sec)]
    rows.extend(bench_long(cfg, sec, script))
    return rows
