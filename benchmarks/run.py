"""Benchmark suite for `durable`: one command, one table.

    python benchmarks/run.py            # full run (about 8 min on 2 cores, with LangGraph and Postgres)
    python benchmarks/run.py --quick    # smoke run (about 2.5 min: the threads workload builds 100,000 threads)
    python benchmarks/run.py --repeat 7 --json results.json

This file is the CLI and the table. The workloads live next to it: `_common.py` (the workload code, Config/Row,
the raw sqlite3 floors), `_workloads_<name>.py` (one group of rows each), and `langgraph_workloads.py` (the
LangGraph comparison, run only when `import langgraph` works). A workload is a function `bench_xxx(cfg) ->
list[Row]`; to add one, add it to `WORKLOADS`.

Conventions (see benchmarks/README.md):
- each measurement is repeated and the median is shown; every repetition gets a
  fresh database file in a fresh directory, and `gc.collect()` runs before it;
- a durable measurement and its raw-sqlite3 floor are taken interleaved
  (floor, durable, floor, durable, ...) in sibling directories on the same disk,
  so drift in the machine hits both alike;
- "ratio" is durable / floor: it is what transfers between machines. The LangGraph
  rows put LangGraph in the durable column and durable in the floor column.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `python benchmarks/run.py` puts it there; runpy or an import may not
    sys.path.insert(0, str(HERE))

from _common import Config, Row  # noqa: E402  (first: it puts the checkout on sys.path for durable)
from _workloads_async import bench_async_many  # noqa: E402
from _workloads_bytes import bench_bytes  # noqa: E402
from _workloads_checks import bench_checks  # noqa: E402
from _workloads_codec import bench_codec  # noqa: E402
from _workloads_fanout import bench_fanout  # noqa: E402
from _workloads_graph import bench_graph_chat_bytes, bench_graph_fanout, bench_graph_linear  # noqa: E402
from _workloads_interrupt import bench_interrupt  # noqa: E402
from _workloads_journal import bench_journal_long  # noqa: E402
from _workloads_postgres import bench_postgres  # noqa: E402
from _workloads_process import bench_process  # noqa: E402
from _workloads_redis import bench_redis  # noqa: E402
from _workloads_resume import bench_resume  # noqa: E402
from _workloads_sequential import bench_sequential  # noqa: E402
from _workloads_threads import bench_threads  # noqa: E402
from _workloads_values import bench_values  # noqa: E402

import durable  # noqa: E402

BENCH_EXTRA = "pip install durable-exec[bench]"


def bench_langgraph(cfg: Config) -> list[Row]:
    """The LangGraph rows, if langgraph is installed; imported only now, so the rows above run without it loaded."""
    try:
        import langgraph_workloads
    except ImportError as exc:
        cfg.notes.append(f"no LangGraph rows ({exc}): `{BENCH_EXTRA}` adds them")
        return []
    return langgraph_workloads.bench_langgraph(cfg)


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


# Add new workloads here: each takes the Config and returns Rows.
WORKLOADS: list[tuple[str, Callable[[Config], list[Row]]]] = [
    ("sequential", bench_sequential),
    ("resume", bench_resume),
    ("fanout", bench_fanout),
    ("interrupt", bench_interrupt),
    ("codec", bench_codec),
    ("bytes", bench_bytes),
    ("process", bench_process),
    ("checks", bench_checks),
    ("postgres", bench_postgres),
    ("redis", bench_redis),
    ("async-many", bench_async_many),
    ("journal-long", bench_journal_long),
    ("threads", bench_threads),
    ("values", bench_values),
    ("langgraph", bench_langgraph),
    # The Graph API rows import langgraph (if installed) when they run: after the durable-only rows above.
    ("graph-linear", bench_graph_linear),
    ("graph-fanout", bench_graph_fanout),
    ("graph-chat-bytes", bench_graph_chat_bytes),
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
    if any(r.note == "[i]" for r in rows):
        print("[i] interrupt floor = one INSERT+COMMIT per fact that must outlive the process (task 0, the pause,")
        print("    the answer, task 1, the output) + on resume ONE SELECT of the run's rows, pickle.loads each.")
    if any(r.note == "[c]" for r in rows):
        print("[c] checkpoint was blocked by an open connection; size = page_count * page_size instead.")
    if any("[pg]" in r.label for r in rows):
        print("[pg] Postgres floor = raw psycopg on one connection, one autocommit INSERT (its own COMMIT) per task")
        print("    of a row like durable's journal row (same columns, types, primary key; no foreign key, no lease")
        print("    check). durable column: PostgresStore, durability=sync. Same server, fresh schema each sample.")
    if any("[redis]" in r.label for r in rows):
        print("[redis] Redis floor = raw redis-py on one client, one RPUSH (one round trip) per task of a value the")
        print("    size of durable's journal row onto one list; no lease check, no slot set. durable column:")
        print("    RedisStore, durability=sync (one EVALSHA per task). Same server, fresh key prefix each sample.")
    if any("[w]" in r.label for r in rows):
        print("[w] worker rows: runs/s from 'go' (runs submitted, k processes started and connected) until the last")
        print("    worker is idle; floor = k x one process's runs/s (linear scaling), so ratio = scaling. The CLI rows")
        print("    time `python -m durable worker --until-idle` from process start to exit (start-up included).")
    if any("[am]" in r.label for r in rows):
        print("[am] async-many: all runs start together on one store (SQLite NORMAL / Postgres, durability=sync);")
        print("    latency = each ainvoke's own, queueing included; threads = threading.active_count() at the peak.")
        print("    Floor: the same rows (thread, run, 10 journal rows, the run's update) from as many coroutines, a")
        print("    COMMIT per row: SQLite through ONE connection in ONE executor thread (a hop per row), Postgres")
        print("    through a psycopg AsyncConnectionPool of 10 (autocommit). Ratio = durable runs/s / floor's.")
    if any("[jl]" in r.label or "[jr]" in r.label for r in rows):
        print("[jl] journal-long: each sample a fresh process (after a 1-task warm-up run) resuming a failed run of")
        print("    N recorded tasks; floor = a fresh process streaming its rows (SELECT key, payload in key order,")
        print("    fetchmany(1000), pickle.loads each): first 1,000 rows / whole read / per row / peak RSS growth.")
        print("[jr] replay per cached task: invoke(None) of a failed 1,000-task run, in-process; floor = the thread's")
        print("    row + ONE SELECT of the run's rows in key order + pickle.loads each, on an open connection.")
    if any(r.note == "[th]" for r in rows):
        print("[th] threads: one operation at 100,000 threads (value) and at 1,000 (floor), ms per call: ratio")
        print("    ~1 is flat in the number of threads. Made by the real entrypoint: 1 in 100 failed.")
    if any(r.note == "[lv]" for r in rows):
        print("[lv] values: write = invoke of a run whose one task returns the value (durability sync); replay =")
        print("    invoke(None) of a failed run that recorded it. Floor: pickle.dumps + INSERT + COMMIT / SELECT +")
        print("    pickle.loads of the same bytes on raw sqlite3 (WAL, NORMAL).")
    if any(r.note == "[lg]" for r in rows):
        print("[lg] LangGraph rows: the durable column is LangGraph's median (spread: of its samples), the floor")
        print("    column durable's own median for the same workload, measured alternately in the same run;")
        print("    ratio = LangGraph / durable. Both: SQLite WAL, synchronous=NORMAL, durability=sync.")
    if any(r.note == "[gb]" for r in rows):
        print("[gb] graph chat bytes: the durable column is LangGraph's bytes per step, the floor column durable's,")
        print("    ratio = LangGraph / durable; one run each. File = page_count x page_size after VACUUM (durable's")
        print("    pages are 1 KB, LangGraph's SQLite's default 4 KB); blobs = sum of length() over every BLOB column;")
        print("    both minus the same after a one-superstep warm-up run, divided by the steps so far.")
    heavy = cfg.heaviest_imports
    for c in cfg.checks:
        print(f"check: {c}")
    if heavy:
        print("biggest imports pulled in by durable (cumulative ms): " + ", ".join(f"{n} {ms:.1f}" for ms, n in heavy))
    for note in cfg.notes:
        print(note)
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
                "langgraph": package_version("langgraph"),
                "langgraph-checkpoint-sqlite": package_version("langgraph-checkpoint-sqlite"),
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
