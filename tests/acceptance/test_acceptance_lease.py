"""One executor per thread across real processes: two processes invoking one thread at once."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

EXIT_BUSY = 3  # _worker.py: caught ThreadBusyError

Worker = Any  # the `worker` fixture from conftest.py


def wait_until_ready(procs: list[Any], ready: list[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in ready):
        for proc, _ in procs:
            assert proc.poll() is None, f"worker exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "workers never became ready"
        time.sleep(0.001)


@pytest.mark.parametrize("db", ["fresh", "initialized"])
@pytest.mark.parametrize("mode", ["seq", "fan"])
def test_two_processes_invoking_one_thread_at_once(worker: Worker, mode: str, db: str) -> None:
    """Two processes invoking one thread at the same instant: one runs it, the other gets ThreadBusyError."""
    n, sleep = 8, 0.05
    if db == "initialized":
        # The SQLite file and its schema already exist (another thread ran on it).
        worker.ok(thread="warm-up", mode=mode, n=1, count=worker.tmp_path / "warm-up.txt")

    go = worker.tmp_path / "go"
    ready = [worker.tmp_path / f"ready-{x}" for x in "ab"]
    procs = [worker.start(thread="shared", mode=mode, n=n, sleep=sleep, ready=r, go=go) for r in ready]
    wait_until_ready(procs, ready)
    go.touch()
    done = [worker.finish(proc, argv) for proc, argv in procs]

    report = "\n".join(d.describe() for d in done)
    assert sorted(d.returncode for d in done) == [0, EXIT_BUSY], report
    winner = next(d for d in done if d.returncode == 0)
    loser = next(d for d in done if d.returncode == EXIT_BUSY)
    assert loser.out is not None and loser.out["error"] == "ThreadBusyError", report
    assert winner.out is not None
    result = winner.out["result"]
    assert result["indices"] == list(range(n))
    assert result["values"] == [i * i + 1 for i in range(n)]
    assert result["pids"] == [winner.pid] * n

    lines = worker.lines()
    assert {pid for pid, _ in lines} == {winner.pid}, f"the busy process ran task bodies: {lines}"
    assert worker.counts() == Counter(range(n)), f"a task body ran twice or never: {lines}"

    state = worker.state("shared")
    assert state["status"] == "completed", state
    assert len(state["entries"]) == n
    assert state["output"] == result
