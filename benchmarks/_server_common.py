"""What the rows of the server-backed stores share: `_workloads_postgres.py` and `_workloads_redis.py`.

Both have the same two groups of rows, here once, parameterized by a `Backend`: how to make a fresh namespace on the
server (a schema, a key prefix), a store or a store URL on it, how to drop it, how to check the submitted runs.

- µs per task: `per_task_rows` interleaves the backend's raw-client floor with durable (`time_seq`, `atime_aseq`:
  one invoke of N sequential tasks on a fresh store, after a one-task warm-up run).
- workers: `worker_rows` has k OS processes carry WORKER_RUNS runs submitted up front, warm (started and connected
  before the clock starts) and as `durable worker --until-idle` (start-up counted).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    RAN,
    REPO,
    Config,
    Row,
    check,
    close_store,
    expected_sum,
    fail_row,
    fresh_dir,
    make_aseq,
    make_seq,
    median,
    us_per_task_row,
)

from durable import entrypoint

TARGET_RATIO = 1.5  # µs/task on the store (durability sync) at most 1.5 x the floor: one raw write per task
TARGET_SCALING = 0.8  # worker throughput with k processes >= 0.8 x k x one process's, up to the core count
WORKER_RUNS = 200  # runs submitted up front for the worker rows
WORKER_TASKS = 3  # trivial tasks per run
WORKER_COUNTS = (1, 2, 4)


@dataclass(frozen=True)
class Backend:
    """What differs between the server-backed stores' rows."""

    name: str  # "postgres": starts its lines under the table
    tag: str  # "pg": names what the worker rows generate (bench_pg_flows, bench_pg_short) and ends the row labels
    new_namespace: Callable[[], str]  # a fresh, empty namespace on the server (a schema, a key prefix)
    store_url: Callable[[str], str]  # the URL of a store on a namespace, as a worker process is given it
    make_store: Callable[[str], Any]  # a store on a namespace, in this process
    drop: Callable[[str], None]  # deletes a namespace and everything in it
    verify_runs: Callable[[str, int], None]  # (namespace, runs the workers report): each submitted run done once
    quiet: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext  # around this process's use of a store
    worker_setup: str = ""  # lines a warm worker process runs before it builds its Worker


def with_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


# ---------------------------------------------------------------------------
# µs per task: durable next to the backend's raw-client floor.
# ---------------------------------------------------------------------------


def time_seq(store: Any, n: int) -> float:
    """Seconds for one invoke of n sequential tasks (sync durability) after a 1-task warm-up run; closes the store."""
    seq = make_seq(store)
    try:
        check(seq.invoke(1, thread_id="warmup") == 0, "warm-up result")
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = seq.invoke(n, thread_id="t1")
        dt = time.perf_counter() - t0
        check(out == expected_sum(n), f"seq({n}) returned {out!r}, expected {expected_sum(n)}")
        check(len(RAN) == n, f"seq({n}) ran {len(RAN)} task bodies, expected {n}")
        return dt
    finally:
        RAN.clear()
        close_store(store)


async def atime_aseq(store: Any, n: int) -> float:
    """The same with async tasks and ainvoke."""
    aseq = make_aseq(store)
    try:
        check(await aseq.ainvoke(1, thread_id="warmup") == 0, "warm-up result")
        RAN.clear()
        gc.collect()
        t0 = time.perf_counter()
        out = await aseq.ainvoke(n, thread_id="t1")
        dt = time.perf_counter() - t0
        check(out == expected_sum(n), f"aseq({n}) returned {out!r}, expected {expected_sum(n)}")
        check(len(RAN) == n, f"aseq({n}) ran {len(RAN)} task bodies, expected {n}")
        return dt
    finally:
        RAN.clear()
        close_store(store)


PerTaskKind = tuple[str, Callable[[int], float], Callable[[int], float]]  # (label, floor seconds, durable seconds)


def per_task_rows(cfg: Config, sec: str, backend: Backend, kinds: list[PerTaskKind]) -> list[Row]:
    """A µs/task row per kind and N, floor and durable interleaved; a line under the table per row on the target."""
    rows: list[Row] = []
    for label, floor_fn, durable_fn in kinds:
        for n in (100, 300) if cfg.quick else (100, 1_000):
            row = Row(sec, f"{label} (target <= {TARGET_RATIO}x)", f"{n:,}")
            try:
                samples, floors = [], []
                for _ in range(cfg.repeat):  # interleaved: floor, durable, floor, durable, ...
                    floors.append(floor_fn(n))
                    samples.append(durable_fn(n))
                r = us_per_task_row(sec, row.label, n, samples, floors)
                rows.append(r)
                if r.ratio is not None:
                    verdict = "met" if r.ratio <= TARGET_RATIO else "NOT met"
                    cfg.notes.append(f"{backend.name}: {label.removesuffix(f' [{backend.tag}]')}, N={n:,}: "
                                     f"ratio {r.ratio:.2f}x, target <= {TARGET_RATIO}x: {verdict}")  # fmt: skip
            except Exception as exc:
                rows.append(fail_row(cfg, row, exc))
    return rows


# ---------------------------------------------------------------------------
# Workers: k OS processes carry WORKER_RUNS submitted runs.
# ---------------------------------------------------------------------------


def flows_module(tag: str) -> str:
    """bench_<tag>_flows: the entrypoint the workers carry, WORKER_TASKS trivial tasks a run."""
    return textwrap.dedent(
        f"""
        from durable import entrypoint, task

        @task(name="bench_{tag}_tiny")
        def tiny(i: int) -> int:
            return i

        @entrypoint(name="bench_{tag}_short")
        def short(x: int) -> int:
            return sum(tiny(x + j).result() for j in range({WORKER_TASKS}))
        """
    )


# A warm worker: builds the Worker, connects, says "ready", waits for "go" on stdin, carries until idle.
WORKER_CHILD = """
import json, sys, time
from durable import Worker
import bench_{tag}_flows
{setup}
worker = Worker([bench_{tag}_flows.short], checkpointer=sys.argv[1], concurrency=1, poll_interval=0.05)
worker.store.get_thread("not-a-thread")  # connects (opens the pool, if the store has one)
print("ready", flush=True)
sys.stdin.readline()
stats = worker.run_once()
done = time.perf_counter()
print(json.dumps({{"completed": stats.completed, "total": stats.total, "done": done}}), flush=True)
worker.store.close()
"""


def make_short(store: Any, tag: str) -> Any:
    """The parent's twin of bench_<tag>_flows.short: the same entrypoint name, so the workers find its runs."""

    @entrypoint(checkpointer=store, name=f"bench_{tag}_short")
    def short(x: int) -> int:
        raise AssertionError("submitted runs are carried by the worker processes, never here")

    return short


def run_thread(i: int) -> str:
    """The thread of the i-th submitted run."""
    return f"run-{i:04d}"


def child_env(flows_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(flows_dir), env.get("PYTHONPATH"), str(REPO)]))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def submit_runs(backend: Backend, namespace: str) -> None:
    with backend.quiet():
        store = backend.make_store(namespace)
        try:
            short = make_short(store, backend.tag)
            for i in range(WORKER_RUNS):
                short.submit(i, thread_id=run_thread(i))
        finally:
            close_store(store)


def time_warm_workers(backend: Backend, d: Path, k: int) -> tuple[float, float]:
    """(seconds from "go" until the last worker is idle, seconds to start k workers until all are ready)."""
    namespace = backend.new_namespace()
    procs: list[subprocess.Popen[str]] = []
    try:
        submit_runs(backend, namespace)
        env = child_env(d)
        t_start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, str(d / f"bench_{backend.tag}_worker.py"), backend.store_url(namespace)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(k)
        ]
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            check(line.strip() == "ready", f"a worker said {line!r} instead of 'ready'")
        t_ready = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
        t0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.flush()
        reports = []
        for p in procs:
            assert p.stdout is not None
            reports.append(json.loads(p.stdout.readline()))
        for p in procs:
            check(p.wait(timeout=60) == 0, f"a worker exited with {p.returncode}")
        dt = max(r["done"] for r in reports) - t0  # perf_counter is CLOCK_MONOTONIC: shared across processes
        backend.verify_runs(namespace, sum(r["completed"] for r in reports))
        return dt, t_ready - t_start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        backend.drop(namespace)


def time_cli_workers(backend: Backend, d: Path, k: int) -> float:
    """Seconds from starting k `python -m durable worker --until-idle` processes until the last one exits."""
    namespace = backend.new_namespace()
    try:
        submit_runs(backend, namespace)
        argv = [sys.executable, "-m", "durable", "worker", f"bench_{backend.tag}_flows"]
        argv += ["--url", backend.store_url(namespace), "--until-idle", "--concurrency", "1", "--poll-interval", "0.05"]
        env = child_env(d)
        gc.collect()
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(argv, env=env, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(k)
        ]
        outs = [p.communicate(timeout=120) for p in procs]  # stderr: a store's warning, if any; shown on failure
        dt = time.perf_counter() - t0
        codes = [p.returncode for p in procs]
        check(all(c == 0 for c in codes), f"worker exit codes {codes}: {[err[-300:] for _, err in outs]}")
        carried = 0
        for out, _ in outs:
            for line in out.splitlines():
                if line.startswith("durable worker: done ("):
                    carried += int(line.split("(")[1].split()[0])
        backend.verify_runs(namespace, carried)
        return dt
    finally:
        backend.drop(namespace)


def worker_rows(cfg: Config, sec: str, backend: Backend) -> list[Row]:
    """Runs/s of k warm workers (and their start-up, ms), then of k `durable worker --until-idle` processes."""
    rows: list[Row] = []
    d = fresh_dir(cfg, f"{backend.tag}-workers")
    (d / f"bench_{backend.tag}_flows.py").write_text(flows_module(backend.tag))
    (d / f"bench_{backend.tag}_worker.py").write_text(WORKER_CHILD.format(tag=backend.tag, setup=backend.worker_setup))
    cores = os.cpu_count() or 1
    reps = 2 if cfg.quick else cfg.repeat
    one_worker: float | None = None  # median runs/s of one process

    for k in WORKER_COUNTS[:2] if cfg.quick else WORKER_COUNTS:
        label = f"{k} worker process{'es' if k > 1 else ''}, warm [w]"
        if k > cores:
            label += f" (> {cores} cores: cannot be linear)"
        elif k > 1:
            label += f" (target >= {TARGET_SCALING}x linear)"
        row = Row(sec, label, f"{WORKER_RUNS}")
        try:
            rates, starts = [], []
            for _ in range(reps):
                gc.collect()
                dt, start = time_warm_workers(backend, d, k)
                rates.append(WORKER_RUNS / dt)
                starts.append(start * 1e3)
            rate = median(rates)
            if k == 1:
                one_worker = rate
            floor = k * one_worker if (k > 1 and one_worker) else None
            r = Row(sec, label, f"{WORKER_RUNS}", rate, "runs/s", floor, rates, [])
            rows.append(r)
            start_label = f"  start-up: {k} process{'es' if k > 1 else ''} until connected"
            rows.append(Row(sec, start_label, "", median(starts), "ms", None, starts))
            if k > 1 and r.ratio is not None:
                if k > cores:
                    verdict = f"reported only ({k} processes on {cores} cores)"
                else:
                    verdict = "met" if r.ratio >= TARGET_SCALING else "NOT met"
                cfg.notes.append(f"{backend.name}: {k} workers scale {r.ratio:.2f}x of linear, target >= "
                                 f"{TARGET_SCALING}x: {verdict}")  # fmt: skip
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))

    for k in (1,) if cfg.quick else WORKER_COUNTS:
        label = f"`durable worker --until-idle` x {k}, with start-up [w]"
        row = Row(sec, label, f"{WORKER_RUNS}")
        try:
            rates = [WORKER_RUNS / time_cli_workers(backend, d, k) for _ in range(min(reps, 3))]
            rows.append(Row(sec, label, f"{WORKER_RUNS}", median(rates), "runs/s", None, rates))
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows
