"""LangGraph side by side with durable: the same workloads on LangGraph's Functional API and its SqliteSaver.

run.py imports this module only if `import langgraph` works (`pip install durable-exec[bench]`); importing it
without langgraph, langgraph-checkpoint-sqlite, or with a langgraph too old for `durability=`, raises ImportError.

Every row's value is LangGraph's and its "floor" is durable's number for the same workload, measured in the
same run, alternating (durable, LangGraph, durable, ...) in sibling directories of the same temp dir, so the ratio
is LangGraph / durable. Both sides: a fresh SQLite file per repetition after a one-task warm-up run on it, WAL +
synchronous=NORMAL, durability="sync", the same task body (`step_fn`, which counts its executions in RAN).

The interrupt rows time a round trip instead (`invoke(x)` pauses at `interrupt(...)` after one task,
`invoke(Command(resume=...))` runs one more task and finishes), in ms, with `langgraph.types.interrupt` and
`langgraph.types.Command` on LangGraph's side.

SqliteSaver's own setup sets only `journal_mode=WAL`, so synchronous would stay at SQLite's default (FULL):
`lg_connect` sets NORMAL on the connection itself, as durable's SQLiteStore does, and every run checks it held.
"""

from __future__ import annotations

import gc
import inspect
import shutil
import sqlite3
import time
from importlib.metadata import version
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
    expected_sum,
    fail_row,
    fresh_dir,
    median,
    step_fn,
    us_per_task_row,
)
from _workloads_interrupt import (
    ANSWER,
    QUESTION,
    SAMPLES_PER_REP,
    X,
    check_finished,
    check_ran_before_resume,
    expected_value,
    time_durable_round_trip,
)
from _workloads_resume import FAIL_AT, N, check_resumed, run_failing, sqlite_normal, time_durable_resume
from _workloads_sequential import run_durable_seq
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.func import entrypoint as lg_entrypoint
from langgraph.func import task as lg_task
from langgraph.pregel import Pregel
from langgraph.types import Command as LgCommand
from langgraph.types import interrupt as lg_interrupt

if "durability" not in inspect.signature(Pregel.stream).parameters:  # invoke(**kwargs) passes it on to stream
    raise ImportError(f"langgraph {version('langgraph')} is too old: durability= came in langgraph 0.6")

SYNCHRONOUS = "NORMAL"
DURABILITY = "sync"  # LangGraph's spelling too: Durability = Literal["sync", "async", "exit"], default "async"
BUDGET_S = 60.0  # when all repetitions of a LangGraph row would take longer than this, it gets one repetition

lg_step = lg_task(step_fn)  # the very body durable's `step` wraps


def make_lg_seq(saver: SqliteSaver) -> Any:
    """durable's `make_seq`, line for line, on LangGraph."""

    @lg_entrypoint(checkpointer=saver)
    def seq(n: int) -> int:
        total = 0
        for i in range(n):
            total += lg_step(i).result()
        if FAIL["end"]:
            raise RuntimeError(f"{MARKER} at the end")
        return total

    return seq


def make_lg_approval(saver: SqliteSaver) -> Any:
    """durable's `make_approval` (the interrupt round trip), line for line, on LangGraph."""

    @lg_entrypoint(checkpointer=saver)
    def approval(x: int) -> int:
        a = lg_step(x).result()
        answer = lg_interrupt(QUESTION)
        b = lg_step(x + 1).result()
        return a + b + answer

    return approval


def lg_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False)  # SqliteSaver serializes access with its own lock
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    return conn


def check_pragmas(conn: sqlite3.Connection) -> None:
    """After a run: SqliteSaver kept WAL and did not reset synchronous."""
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    check(str(mode).lower() == "wal" and sync == 1, f"LangGraph's connection: journal_mode={mode}, synchronous={sync}")


def lg_config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def time_lg_seq(cfg: Config, n: int) -> float:
    """Seconds for one invoke of n sequential LangGraph tasks on a fresh SqliteSaver file (after a warm-up run)."""
    d = fresh_dir(cfg, "lg-seq")
    conn = lg_connect(d / "langgraph.db")
    try:
        seq = make_lg_seq(SqliteSaver(conn))
        check(seq.invoke(1, lg_config("warmup"), durability=DURABILITY) == 0, "LangGraph warm-up result")
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = seq.invoke(n, lg_config("t1"), durability=DURABILITY)
        dt = time.perf_counter() - t0
        check(out == expected_sum(n), f"LangGraph seq({n}) returned {out!r}, expected {expected_sum(n)}")
        check(len(RAN) == n, f"LangGraph seq({n}) ran {len(RAN)} task bodies, expected {n}")
        check_pragmas(conn)
        return dt
    finally:
        conn.close()
        shutil.rmtree(d, ignore_errors=True)


def time_lg_resume(cfg: Config, at_end: bool) -> float:
    """Seconds for `invoke(None, config)` on the thread whose N-task run failed at task FAIL_AT (or at the end)."""
    d = fresh_dir(cfg, "lg-resume")
    conn = lg_connect(d / "langgraph.db")
    try:
        seq = make_lg_seq(SqliteSaver(conn))
        seq.invoke(1, lg_config("warmup"), durability=DURABILITY)
        run_failing(lambda: seq.invoke(N, lg_config("t1"), durability=DURABILITY), at_end)
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = seq.invoke(None, lg_config("t1"), durability=DURABILITY)
        dt = time.perf_counter() - t0
        check_resumed(out, at_end)
        check_pragmas(conn)
        return dt
    finally:
        conn.close()
        shutil.rmtree(d, ignore_errors=True)


def check_lg_paused(out: Any, ran: list[int]) -> None:
    """LangGraph's invoke returns {"__interrupt__": [Interrupt(value, id)]} when the run paused."""
    pending = out.get("__interrupt__") if isinstance(out, dict) else None
    check(bool(pending) and len(pending) == 1, f"LangGraph: the first invoke returned {out!r}, not one interrupt")
    check(pending[0].value == QUESTION, f"LangGraph: wrong interrupt {pending!r}")
    check_ran_before_resume(ran, "LangGraph")


def time_lg_round_trip(cfg: Config) -> tuple[float, float]:
    """(round trip, resume alone) in seconds: `invoke(x)` pauses at the interrupt, `invoke(Command(resume=...))`
    finishes; a fresh SqliteSaver file, after a warm-up round trip on another thread."""
    d = fresh_dir(cfg, "lg-interrupt")
    conn = lg_connect(d / "langgraph.db")
    try:
        flow = make_lg_approval(SqliteSaver(conn))
        gc.collect()  # before the warm-up, not the timed round trip: see "interrupt round trip" in README.md
        warm = flow.invoke(0, lg_config("warmup"), durability=DURABILITY)
        check(isinstance(warm, dict) and "__interrupt__" in warm, f"LangGraph warm-up did not pause: {warm!r}")
        warm = flow.invoke(LgCommand(resume=ANSWER), lg_config("warmup"), durability=DURABILITY)
        check(warm == expected_value(0), f"LangGraph warm-up round trip returned {warm!r}")
        RAN.clear()
        t0 = time.perf_counter()
        paused = flow.invoke(X, lg_config("t1"), durability=DURABILITY)
        t1 = time.perf_counter()
        ran_before_resume = list(RAN)
        t2 = time.perf_counter()
        out = flow.invoke(LgCommand(resume=ANSWER), lg_config("t1"), durability=DURABILITY)
        t3 = time.perf_counter()
        check_lg_paused(paused, ran_before_resume)
        check_finished(out, "LangGraph")
        check_pragmas(conn)
        return (t1 - t0) + (t3 - t2), t3 - t2
    finally:
        RAN.clear()
        conn.close()
        shutil.rmtree(d, ignore_errors=True)


def interrupt_rows(cfg: Config, sec: str) -> list[Row]:
    """The interrupt round trip and its resume alone, ms, LangGraph / durable (alternating, fresh files)."""
    labels = (
        "interrupt round trip: invoke -> paused, invoke(Command(resume=...)) -> value",
        "  resume alone: invoke(Command(resume=...)) -> value",
    )
    try:
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for _ in range(SAMPLES_PER_REP * cfg.repeat):
            ours.append(time_durable_round_trip(cfg, sqlite_normal))
            theirs.append(time_lg_round_trip(cfg))
        rows = []
        for i, label in enumerate(labels):
            lg_ms = [t[i] * 1e3 for t in theirs]
            durable_ms = [t[i] * 1e3 for t in ours]
            rows.append(Row(sec, label, "1", median(lg_ms), "ms", median(durable_ms), lg_ms, durable_ms, "[lg]"))
        return rows
    except Exception as exc:
        return [fail_row(cfg, Row(sec, labels[0], "1"), exc)]


def side_by_side(reps: int, ours: Any, theirs: Any) -> tuple[list[float], list[float], str]:
    """Alternate durable and LangGraph samples, `reps` of each; LangGraph gets one only when `reps` of them
    would pass BUDGET_S. Returns (durable samples, LangGraph samples, a note for the label)."""
    durable_s: list[float] = []
    langgraph_s: list[float] = []
    note = ""
    for _ in range(reps):
        durable_s.append(ours())
        if note:
            continue  # capped
        langgraph_s.append(theirs())
        if len(langgraph_s) == 1 and reps > 1 and langgraph_s[0] * reps > BUDGET_S:
            note = f" (LangGraph: 1 run, not {reps}: {langgraph_s[0]:.0f} s each)"
    return durable_s, langgraph_s, note


def check_lg_visibility(cfg: Config, n: int = 50) -> str:
    """What LangGraph's durability="sync" promises in the Functional API: when task i starts, how many of the i
    earlier results can another connection read? (durable's `sync` passes this for every task.)"""
    d = fresh_dir(cfg, "lg-probe")
    db = d / "langgraph.db"
    seen: list[int] = []

    @lg_task
    def lg_probe(i: int) -> int:
        ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            seen.append(ro.execute("SELECT count(*) FROM writes WHERE thread_id = 't1'").fetchone()[0])
        finally:
            ro.close()
        return i

    conn = lg_connect(db)
    try:

        @lg_entrypoint(checkpointer=SqliteSaver(conn))
        def probe_seq(n: int) -> int:
            return sum(lg_probe(i).result() for i in range(n))

        probe_seq.invoke(1, lg_config("warmup"), durability=DURABILITY)
        seen.clear()
        check(probe_seq.invoke(n, lg_config("t1"), durability=DURABILITY) == expected_sum(n), "LangGraph probe result")
        if len(seen) != n:
            raise WrongResult(f"LangGraph probe ran {len(seen)} tasks, expected {n}")
        all_in = sum(1 for i, s in enumerate(seen) if s - seen[0] >= i)
        return (
            f"LangGraph durability=sync: {all_in}/{n} tasks started with every earlier result visible to another "
            f"connection (it writes task results from a background thread)"
        )
    finally:
        conn.close()
        shutil.rmtree(d, ignore_errors=True)


def bench_langgraph(cfg: Config) -> list[Row]:
    sec = (
        f"LangGraph {version('langgraph')} side by side [lg]: Functional API + SqliteSaver "
        f"{version('langgraph-checkpoint-sqlite')}, SQLite {SYNCHRONOUS}, durability={DURABILITY}"
    )
    rows: list[Row] = []
    for n in cfg.sizes:
        row = Row(sec, "sequential tasks", f"{n:,}")
        try:
            ours, theirs, note = side_by_side(
                cfg.reps(n),
                lambda n=n: run_durable_seq(cfg, sqlite_normal, n, DURABILITY),
                lambda n=n: time_lg_seq(cfg, n),
            )
            r = us_per_task_row(sec, row.label + note, n, theirs, ours)
            r.note = "[lg]"
            rows.append(r)
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))

    for label, at_end in [
        (f"resume after failure at task {FAIL_AT}: {FAIL_AT} replayed + {N - FAIL_AT} run", False),
        (f"replay alone: {N:,} recorded tasks, entrypoint failed after", True),
    ]:
        row = Row(sec, label, f"{N:,}")
        try:
            ours, theirs, note = side_by_side(
                cfg.repeat,
                lambda at_end=at_end: time_durable_resume(cfg, sqlite_normal, at_end),
                lambda at_end=at_end: time_lg_resume(cfg, at_end),
            )
            r = us_per_task_row(sec, label + note, N, theirs, ours)
            r.note = "[lg]"
            rows.append(r)
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))

    rows.extend(interrupt_rows(cfg, sec))

    try:
        cfg.checks.append(check_lg_visibility(cfg))
    except Exception as exc:
        fail_row(cfg, Row("checks", "LangGraph commit-visibility check"), exc)
    return rows
