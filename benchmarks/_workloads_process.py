"""Process-level costs: interpreter start, `import durable`, a whole 1,000-task process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

from _common import (
    REPO,
    Config,
    Row,
    fail_row,
    fresh_dir,
    median,
)


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
