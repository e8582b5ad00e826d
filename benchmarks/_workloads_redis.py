"""Redis: µs per task on RedisStore next to raw redis-py, and worker processes carrying submitted runs.

The server is ``$DURABLE_BENCH_REDIS`` (default ``redis://127.0.0.1:6379/0``). Every measurement gets a fresh key
prefix (``durable_bench_<pid>_<n>``) whose keys are deleted afterwards (``SCAN`` + ``UNLINK``). Without redis-py, or
without a server that answers, the rows are skipped and a line under the table says why. Modelled on
`_workloads_postgres.py`: the same workloads, the same conventions.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
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
    make_seq,
    median,
    us_per_task_row,
)

from durable import entrypoint, task
from durable.errors import VolatileJournalWarning

DEFAULT_URL = "redis://127.0.0.1:6379/0"
TARGET_RATIO = 1.5  # µs/task on RedisStore (sync) at most 1.5 x one raw RPUSH round trip per task
TARGET_SCALING = 0.8  # worker throughput with k processes >= 0.8 x k x one process's, up to the core count
WORKER_RUNS = 200  # runs submitted up front for the worker rows
WORKER_TASKS = 3  # trivial tasks per run
WORKER_COUNTS = (1, 2, 4)


def url() -> str:
    return os.environ.get("DURABLE_BENCH_REDIS") or DEFAULT_URL


def with_query(base: str, **params: str) -> str:
    sep = "&" if "?" in base else "?"
    return base + sep + "&".join(f"{k}={v}" for k, v in params.items())


# ---------------------------------------------------------------------------
# Prefixes: one fresh key prefix per measurement, its keys deleted afterwards.
# ---------------------------------------------------------------------------

_prefix_counter = 0


def new_prefix() -> str:
    global _prefix_counter
    _prefix_counter += 1
    return f"durable_bench_{os.getpid()}_{_prefix_counter}"


def drop_prefix(prefix: str) -> None:
    """Delete every key under ``prefix:`` (SCAN + UNLINK, in batches)."""
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)


def keys_under(prefix: str, pattern: str = "*") -> list[bytes]:
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        return list(client.scan_iter(match=f"{prefix}:{pattern}", count=1000))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No VolatileJournalWarning per fresh store: the server's persistence is reported once, under the table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VolatileJournalWarning)
        yield


def unavailable() -> str | None:
    """Why the Redis rows cannot run here, or None."""
    try:
        import redis
    except ImportError as exc:
        return f"no Redis rows ({exc}): `pip install 'durable-exec[redis]'` and a server adds them"
    try:
        with redis.Redis.from_url(url(), socket_connect_timeout=3, socket_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no Redis rows: cannot reach {url()} ({first}); set DURABLE_BENCH_REDIS to a server's URL"
    return None


def server_note() -> str:
    """The server's version and persistence: what a write waits for (nothing on disk: no fsync at all)."""
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        version = client.info("server").get("redis_version", "?")
        try:
            aof = client.config_get("appendonly").get("appendonly")
            fsync = client.config_get("appendfsync").get("appendfsync")
            save = client.config_get("save").get("save")
        except redis.ResponseError:
            return f"redis: server {version} at {url()} (CONFIG disabled: persistence unknown)"
    disk = f"appendonly {aof}" + (f", appendfsync {fsync}" if aof == "yes" else "") + f", save {save!r}"
    if aof != "yes" and not save:
        disk += ": nothing on disk, so no write waits for a disk (durable's VolatileJournalWarning silenced here)"
    return f"redis: server {version} at {url()}, {disk}"


# ---------------------------------------------------------------------------
# The floor: raw redis-py, one RPUSH per task of a value the size of durable's journal row, on one client.
# ---------------------------------------------------------------------------

# The layout of RedisStore's encoded journal row (`_redis_ops.encode_row`): a 31-byte head (status, attempt, two
# doubles, three lengths), the key, the task name, a 4-byte digest, the pickled result after its one-byte tag.
_HEAD = struct.Struct("<BiddIHi")
SYNC_NAME, ASYNC_NAME = b"step_fn", b"astep"  # the task names durable records for `step` and `astep`


def floor_value(i: int, name: bytes = SYNC_NAME) -> bytes:
    key, now = str(i).encode(), time.time()
    head = _HEAD.pack(0, 1, now, now, len(key), len(name), 4)
    return b"".join((head, key, name, (i & 0xFFFFFFFF).to_bytes(4, "little"), b"P" + pickle.dumps(i, protocol=3)))


def time_redis_floor(n: int) -> float:
    """Seconds for n raw RPUSHes (one round trip each) onto one list, on one blocking client, fresh prefix."""
    import redis

    prefix = new_prefix()
    try:
        with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
            key = f"{prefix}:j:1:1"
            client.rpush(key, floor_value(0))  # warm-up (the connection), like durable's one-task warm-up run
            gc.collect()
            t0 = time.perf_counter()
            for i in range(n):
                client.rpush(key, floor_value(i))
            dt = time.perf_counter() - t0
            count = client.llen(key)
            check(count == n + 1, f"floor pushed {count} values, expected {n + 1}")
            return dt
    finally:
        drop_prefix(prefix)


async def atime_redis_floor(n: int) -> float:
    """The same on one redis.asyncio client."""
    import redis.asyncio

    prefix = new_prefix()
    try:
        client = redis.asyncio.Redis.from_url(url(), socket_connect_timeout=3)
        try:
            key = f"{prefix}:j:1:1"
            await client.rpush(key, floor_value(0, ASYNC_NAME))
            gc.collect()
            t0 = time.perf_counter()
            for i in range(n):
                await client.rpush(key, floor_value(i, ASYNC_NAME))
            dt = time.perf_counter() - t0
            count = await client.llen(key)
            check(count == n + 1, f"floor pushed {count} values, expected {n + 1}")
            return dt
        finally:
            await client.aclose()
    finally:
        drop_prefix(prefix)


# ---------------------------------------------------------------------------
# durable on RedisStore
# ---------------------------------------------------------------------------


def make_redis_store(prefix: str) -> Any:
    from durable import RedisStore

    return RedisStore(url(), prefix=prefix)


def check_journal(prefix: str, n: int, name: bytes) -> None:
    """The journal holds the warm-up's row and the n rows, each exactly as long as the floor's value."""
    import redis

    with redis.Redis.from_url(url(), socket_connect_timeout=3) as client:
        lists = keys_under(prefix, "j:*")
        rows = [blob for key in lists for blob in client.lrange(key, 0, -1)]
    check(len(rows) == n + 1, f"the journal holds {len(rows)} rows, expected {n + 1}")
    durable_bytes = sum(map(len, rows))
    floor_bytes = len(floor_value(0, name)) + sum(len(floor_value(i, name)) for i in range(n))
    check(durable_bytes == floor_bytes, f"journal rows {durable_bytes} bytes, the floor's values {floor_bytes}")


def time_redis_durable(n: int) -> float:
    """Seconds for one invoke of n sequential tasks (sync durability), after a 1-task warm-up run, fresh prefix."""
    prefix = new_prefix()
    try:
        with quiet():
            store = make_redis_store(prefix)
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
            finally:
                RAN.clear()
                close_store(store)
        check_journal(prefix, n, SYNC_NAME)
        return dt
    finally:
        drop_prefix(prefix)


@task
async def astep(i: int) -> int:
    RAN.append(i)
    return i


def make_aseq(store: Any) -> Any:
    @entrypoint(checkpointer=store)
    async def aseq(n: int) -> int:
        total = 0
        for i in range(n):
            total += await astep(i)
        return total

    return aseq


async def atime_redis_durable(n: int) -> float:
    prefix = new_prefix()
    try:
        with quiet():
            store = make_redis_store(prefix)
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
            finally:
                RAN.clear()
                close_store(store)
        check_journal(prefix, n, ASYNC_NAME)
        return dt
    finally:
        drop_prefix(prefix)


def redis_sizes(cfg: Config) -> tuple[int, ...]:
    return (100, 300) if cfg.quick else (100, 1_000)


def bench_redis_per_task(cfg: Config, sec: str) -> list[Row]:
    rows: list[Row] = []
    kinds: list[tuple[str, Callable[[int], float], Callable[[int], float]]] = [
        ("RedisStore, sync [redis]", time_redis_floor, time_redis_durable),
        (
            "RedisStore, sync, async tasks, ainvoke [redis]",
            lambda n: asyncio.run(atime_redis_floor(n)),
            lambda n: asyncio.run(atime_redis_durable(n)),
        ),
    ]
    for label, floor_fn, durable_fn in kinds:
        for n in redis_sizes(cfg):
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
                    cfg.notes.append(f"redis: {label.removesuffix(' [redis]')}, N={n:,}: ratio {r.ratio:.2f}x, "
                                     f"target <= {TARGET_RATIO}x: {verdict}")  # fmt: skip
            except Exception as exc:
                rows.append(fail_row(cfg, row, exc))
    return rows


# ---------------------------------------------------------------------------
# Workers: k OS processes carry WORKER_RUNS submitted runs.
# ---------------------------------------------------------------------------

FLOWS_MODULE = textwrap.dedent(
    f"""
    from durable import entrypoint, task

    @task(name="bench_redis_tiny")
    def tiny(i: int) -> int:
        return i

    @entrypoint(name="bench_redis_short")
    def short(x: int) -> int:
        return sum(tiny(x + j).result() for j in range({WORKER_TASKS}))
    """
)

# A warm worker: builds the Worker, connects, says "ready", waits for "go" on stdin, carries until idle.
WORKER_CHILD = textwrap.dedent(
    """
    import json, sys, time, warnings
    from durable import Worker
    from durable.errors import VolatileJournalWarning
    import bench_redis_flows

    warnings.simplefilter("ignore", VolatileJournalWarning)
    worker = Worker([bench_redis_flows.short], checkpointer=sys.argv[1], concurrency=1, poll_interval=0.05)
    worker.store.get_thread("not-a-thread")  # connects, checks the schema and loads nothing else
    print("ready", flush=True)
    sys.stdin.readline()
    stats = worker.run_once()
    done = time.perf_counter()
    print(json.dumps({"completed": stats.completed, "total": stats.total, "done": done}), flush=True)
    worker.store.close()
    """
)


def make_short(store: Any) -> Any:
    """The parent's twin of bench_redis_flows.short: the same entrypoint name, so the workers find its runs."""

    @entrypoint(checkpointer=store, name="bench_redis_short")
    def short(x: int) -> int:
        raise AssertionError("submitted runs are carried by the worker processes, never here")

    return short


def child_env(flows_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(flows_dir), env.get("PYTHONPATH"), str(REPO)]))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def submit_runs(prefix: str) -> None:
    with quiet():
        store = make_redis_store(prefix)
        try:
            short = make_short(store)
            for i in range(WORKER_RUNS):
                short.submit(i, thread_id=f"run-{i:04d}")
        finally:
            close_store(store)


def verify_runs(prefix: str, carried: int) -> None:
    """Every submitted run completed exactly once: one run per thread, WORKER_TASKS first attempts each."""
    with quiet():
        store = make_redis_store(prefix)
        try:
            status: dict[str, int] = {}
            runs = recovered = rows = retried = outputs = 0
            for i in range(WORKER_RUNS):
                thread_id = f"run-{i:04d}"
                found = store.list_runs(thread_id)
                runs += len(found)
                for run in found:
                    status[run.status] = status.get(run.status, 0) + 1
                    recovered += run.recoveries
                    outputs += run.output is not None
                thread = store.get_thread(thread_id)
                check(thread is not None, f"thread {thread_id!r} is gone")
                journal = store.load_journal(thread.tid, 1)
                rows += len(journal)
                retried += sum(r.attempt != 1 for r in journal)
        finally:
            close_store(store)
    check(status == {"completed": WORKER_RUNS}, f"runs by status: {status}, expected {WORKER_RUNS} completed")
    check((runs, recovered) == (WORKER_RUNS, 0), f"(runs, recoveries) = {(runs, recovered)}")
    check((rows, retried) == (WORKER_RUNS * WORKER_TASKS, 0), f"(journal rows, retried rows) = {(rows, retried)}")
    check(outputs == WORKER_RUNS, f"runs with an output: {outputs}, expected {WORKER_RUNS}")
    check(carried == WORKER_RUNS, f"the workers report {carried} runs completed, expected {WORKER_RUNS}")


def time_warm_workers(d: Path, k: int) -> tuple[float, float]:
    """(seconds from "go" until the last worker is idle, seconds to start k workers until all are ready)."""
    prefix = new_prefix()
    store_url = with_query(url(), prefix=prefix)
    procs: list[subprocess.Popen[str]] = []
    try:
        submit_runs(prefix)
        env = child_env(d)
        t_start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, str(d / "bench_redis_worker.py"), store_url],
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
        verify_runs(prefix, sum(r["completed"] for r in reports))
        return dt, t_ready - t_start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        drop_prefix(prefix)


def time_cli_workers(d: Path, k: int) -> float:
    """Seconds from starting k `python -m durable worker --until-idle` processes until the last one exits."""
    prefix = new_prefix()
    store_url = with_query(url(), prefix=prefix)
    try:
        submit_runs(prefix)
        argv = [sys.executable, "-m", "durable", "worker", "bench_redis_flows", "--url", store_url, "--until-idle"]
        argv += ["--concurrency", "1", "--poll-interval", "0.05"]
        env = child_env(d)
        gc.collect()
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(argv, env=env, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(k)
        ]
        outs = [p.communicate(timeout=120) for p in procs]  # stderr: the server's VolatileJournalWarning, if any
        dt = time.perf_counter() - t0
        codes = [p.returncode for p in procs]
        check(all(c == 0 for c in codes), f"worker exit codes {codes}: {[err[-300:] for _, err in outs]}")
        carried = 0
        for out, _ in outs:
            for line in out.splitlines():
                if line.startswith("durable worker: done ("):
                    carried += int(line.split("(")[1].split()[0])
        verify_runs(prefix, carried)
        return dt
    finally:
        drop_prefix(prefix)


def bench_redis_workers(cfg: Config, sec: str) -> list[Row]:
    rows: list[Row] = []
    d = fresh_dir(cfg, "redis-workers")
    (d / "bench_redis_flows.py").write_text(FLOWS_MODULE)
    (d / "bench_redis_worker.py").write_text(WORKER_CHILD)
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
                dt, start = time_warm_workers(d, k)
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
                cfg.notes.append(f"redis: {k} workers scale {r.ratio:.2f}x of linear, target >= "
                                 f"{TARGET_SCALING}x: {verdict}")  # fmt: skip
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))

    for k in (1,) if cfg.quick else WORKER_COUNTS:
        label = f"`durable worker --until-idle` x {k}, with start-up [w]"
        row = Row(sec, label, f"{WORKER_RUNS}")
        try:
            rates = [WORKER_RUNS / time_cli_workers(d, k) for _ in range(min(reps, 3))]
            rows.append(Row(sec, label, f"{WORKER_RUNS}", median(rates), "runs/s", None, rates))
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows


def bench_redis(cfg: Config) -> list[Row]:
    why = unavailable()
    if why is not None:
        cfg.notes.append(why)
        return []
    cfg.notes.append(server_note())
    rows = bench_redis_per_task(cfg, "redis: µs per task (raw redis-py floor)")
    rows += bench_redis_workers(cfg, f"redis: {WORKER_RUNS} submitted runs of {WORKER_TASKS} tasks, carried by workers")
    return rows
