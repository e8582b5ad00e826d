"""Durability "sync": parallel tasks that finish together share commits, and each is committed before it resolves."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from durable import SQLiteStore, entrypoint, task
from durable.stores import JournalRow, Lease


class SlowDiskStore(SQLiteStore):
    """A real SQLite store whose first commit takes 100 ms, as on a slow disk; it records each batch's size."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        if not self.batches:
            time.sleep(0.1)
        super().append(lease, run_id, rows)
        self.batches.append(len(rows))


def test_parallel_tasks_share_commits(tmp_path: Path) -> None:
    """Tasks finishing while a commit is in flight are committed together by the next one, all of them durably."""
    n = 20
    store = SlowDiskStore(tmp_path / "j.db")
    barrier = threading.Barrier(n, timeout=10)

    @task
    def step(i: int) -> int:
        barrier.wait()
        return i * i

    @entrypoint(checkpointer=store)
    def fan(k: int) -> list[int]:
        futures = [step(i) for i in range(k)]
        return [f.result() for f in futures]

    assert fan.invoke(n, thread_id="t") == [i * i for i in range(n)]
    assert sum(store.batches) == n
    assert len(store.batches) < n and max(store.batches) > 1
    entries = fan.get_state(thread_id="t").entries
    assert sorted(e.result for e in entries) == sorted(i * i for i in range(n))


def test_sequential_tasks_are_committed_before_they_resolve(tmp_path: Path) -> None:
    """In sync mode each task's row is readable by another connection before the next task starts."""
    path = tmp_path / "j.db"
    seen: list[int] = []

    @task
    def step(i: int) -> int:
        reader = SQLiteStore(path)
        thread = reader.get_thread("t")
        assert thread is not None and thread.run is not None
        seen.append(len(reader.load_journal(thread.tid, thread.run.run_id)))
        reader.close()
        return i

    @entrypoint(checkpointer=SQLiteStore(path))
    def seq(k: int) -> int:
        return sum(step(i).result() for i in range(k))

    assert seq.invoke(5, thread_id="t") == 10
    assert seen == [0, 1, 2, 3, 4]


def test_a_failed_group_commit_fails_every_task_in_it(tmp_path: Path) -> None:
    """When the shared commit fails, every task whose row was in it fails with the store's error."""

    class BrokenStore(SQLiteStore):
        def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
            time.sleep(0.05)
            raise OSError("disk on fire")

    n = 8
    barrier = threading.Barrier(n, timeout=10)

    @task
    def step(i: int) -> int:
        barrier.wait()
        return i

    @entrypoint(checkpointer=BrokenStore(tmp_path / "j.db"))
    def fan(k: int) -> list[Any]:
        futures = [step(i) for i in range(k)]
        return [type(f.exception()).__name__ for f in futures]

    assert fan.invoke(n, thread_id="t") == ["OSError"] * n
