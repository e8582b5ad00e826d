"""Interrupt round trip: a run pauses for a person after one task, then is resumed with Command and finishes."""

from __future__ import annotations

import gc
import pickle
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    FLOOR_INSERT,
    RAN,
    Config,
    Row,
    check,
    close_store,
    fail_row,
    floor_connect,
    fresh_dir,
    make_sqlite,
    median,
    step,
)

from durable import Command, Interrupted, MemoryStore, entrypoint, interrupt

X = 10  # the input: the run's tasks are step(X) and step(X + 1)
ANSWER = 5  # the human's answer
QUESTION = {"question": "go on?"}
TARGET_MS = 0.8  # the round trip's target on SQLite (NORMAL, sync)
SAMPLES_PER_REP = 10  # sub-millisecond and noisy: take 10 x cfg.repeat samples, a fresh database each


def expected_value(x: int = X) -> int:
    return x + (x + 1) + ANSWER


def make_approval(store: Any) -> Any:
    """One task, a question for a person, one more task."""

    @entrypoint(checkpointer=store)
    def approval(x: int) -> int:
        a = step(x).result()
        answer = interrupt(QUESTION)
        b = step(x + 1).result()
        return a + b + answer

    return approval


def check_paused(out: Any, ran: list[int]) -> None:
    check(isinstance(out, Interrupted), f"the first invoke returned {out!r}, not Interrupted")
    check(len(out.interrupts) == 1 and out.interrupts[0].value == QUESTION, f"wrong interrupts {out!r}")
    check_ran_before_resume(ran)


def check_ran_before_resume(ran: list[int], who: str = "durable") -> None:
    check(ran == [X], f"{who}: the first invoke ran task bodies {ran}, expected [{X}]")


def check_finished(out: Any, who: str = "durable") -> None:
    check(out == expected_value(), f"{who}: the resume returned {out!r}, expected {expected_value()}")
    check(RAN == [X, X + 1], f"{who}: the round trip ran task bodies {RAN}, expected [{X}, {X + 1}] (each once)")


def time_durable_round_trip(cfg: Config, make_store: Callable[[Path], Any]) -> tuple[float, float]:
    """(round trip, resume alone) in seconds on a fresh store, after a warm-up round trip on another thread."""
    d = fresh_dir(cfg, "interrupt")
    store = make_store(d / "journal.db")
    try:
        flow = make_approval(store)
        gc.collect()  # before the warm-up, not the timed round trip: see "interrupt round trip" in README.md
        check(isinstance(flow.invoke(0, thread_id="warmup"), Interrupted), "warm-up did not pause")
        check(flow.invoke(Command(resume=ANSWER), thread_id="warmup") == expected_value(0), "warm-up result")
        RAN.clear()
        t0 = time.perf_counter()
        paused = flow.invoke(X, thread_id="t1")
        t1 = time.perf_counter()
        ran_before_resume = list(RAN)  # the checks come after the round trip, untimed
        t2 = time.perf_counter()
        out = flow.invoke(Command(resume=ANSWER), thread_id="t1")
        t3 = time.perf_counter()
        check_paused(paused, ran_before_resume)
        check_finished(out)
        return (t1 - t0) + (t3 - t2), t3 - t2
    finally:
        RAN.clear()
        close_store(store)
        shutil.rmtree(d, ignore_errors=True)


def time_floor_round_trip(cfg: Config, synchronous: str = "NORMAL") -> tuple[float, float]:
    """The least a SQLite journal must do for the round trip, raw sqlite3: one INSERT+COMMIT per fact that has to
    outlive the process (task 0's result; the pause and its question; the answer; task 1's result; the run's
    output), and on resume one SELECT of the run's rows with pickle.loads of each. (round trip, resume alone)."""
    d = fresh_dir(cfg, "floor-interrupt")
    conn = floor_connect(d / "floor.db", synchronous)

    def insert(conn: sqlite3.Connection, thread: str, key: str, name: str, value: Any) -> None:
        conn.execute(FLOOR_INSERT, (thread, "r1", key, name, pickle.dumps(value, protocol=5)))
        conn.commit()

    def round_trip(thread: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        insert(conn, thread, "0", "step", X)
        insert(conn, thread, "pause", "interrupt", QUESTION)
        t1 = time.perf_counter()
        rows = conn.execute("SELECT key, name, payload FROM journal WHERE thread = ? AND run = ?", (thread, "r1"))
        values = {k: (name, pickle.loads(p)) for k, name, p in rows.fetchall()}
        insert(conn, thread, "1", "interrupt", ANSWER)
        insert(conn, thread, "2", "step", X + 1)
        insert(conn, thread, "output", "run", values["0"][1] + (X + 1) + ANSWER)
        t2 = time.perf_counter()
        return t2 - t0, t2 - t1

    try:
        gc.collect()  # like the durable side: before the warm-up
        round_trip("warmup")
        return round_trip("t1")
    finally:
        conn.close()
        shutil.rmtree(d, ignore_errors=True)


def sqlite_normal(path: Path) -> Any:
    return make_sqlite(path, "NORMAL")


def bench_interrupt(cfg: Config) -> list[Row]:
    sec = "interrupt round trip: task, interrupt(), task (durability=sync)"
    rows: list[Row] = []
    labels = (
        "invoke(x) -> Interrupted, then invoke(Command(resume=...)) -> value",
        "  same, the resume alone: invoke(Command(resume=...)) -> value",
    )
    for store_label, make_store, floor in [
        ("SQLite NORMAL", sqlite_normal, True),
        ("MemoryStore", lambda p: MemoryStore(), False),
    ]:
        try:
            trips, resumes, floor_trips, floor_resumes = [], [], [], []
            for _ in range(SAMPLES_PER_REP * cfg.repeat):
                if floor:
                    ft, fr = time_floor_round_trip(cfg)
                    floor_trips.append(ft * 1e3)
                    floor_resumes.append(fr * 1e3)
                trip, resume = time_durable_round_trip(cfg, make_store)
                trips.append(trip * 1e3)
                resumes.append(resume * 1e3)
            for label, vals, fl in [(labels[0], trips, floor_trips), (labels[1], resumes, floor_resumes)]:
                rows.append(
                    Row(
                        sec,
                        label if label.startswith(" ") else f"{store_label}: {label}",
                        "1",
                        median(vals),
                        "ms",
                        median(fl) if fl else None,
                        vals,
                        fl,
                        "[i]" if fl else "",
                    )
                )
            if floor:
                verdict = "met" if median(trips) <= TARGET_MS else "NOT met"
                cfg.notes.append(
                    f"interrupt round trip on SQLite NORMAL: {median(trips):.2f} ms (median of {len(trips)}), "
                    f"target <= {TARGET_MS} ms: {verdict}"
                )
        except Exception as exc:
            rows.append(fail_row(cfg, Row(sec, f"{store_label}: {labels[0]}", "1"), exc))
    return rows
