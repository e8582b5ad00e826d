"""Sanity checks (no timings): does `sync` commit each result before the next task starts?"""

from __future__ import annotations

import shutil
import sqlite3
from typing import Any

from _common import (
    Config,
    Row,
    WrongResult,
    close_store,
    fail_row,
    fresh_dir,
    make_sqlite,
)

from durable import entrypoint, task

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
