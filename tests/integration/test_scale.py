"""Many runs at once and long journals: behaviour under load, not speed (the benchmarks measure that).

A thousand concurrent async runs complete on SQLite and on Postgres, none fails and no task runs twice,
with a bounded number of threads and database connections; a resumed run reads its journal a window at a
time instead of loading it whole; operations grouped in one SQLite transaction fail alone.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from durable import LeaseLostError, PostgresStore, SQLiteStore, Store, entrypoint, task
from durable._core import HEAD, WINDOW
from durable.stores import JournalRow

RUNS = 1000
TASKS = 10


async def _many(store: Store, runs: int = RUNS) -> tuple[Counter[tuple[int, int]], list[Any], int]:
    """``runs`` concurrent ainvokes of an entrypoint of TASKS async tasks: executions per (run, task), the
    results (or errors), and the most threads the process had while they ran, more than it had before (earlier
    tests may have left threads of their own)."""
    ran: Counter[tuple[int, int]] = Counter()
    before = threading.active_count()
    peak = [before]

    @task
    async def step(run: int, i: int) -> int:
        ran[(run, i)] += 1
        await asyncio.sleep(0)
        peak[0] = max(peak[0], threading.active_count())
        return i

    @entrypoint(checkpointer=store, name="many")
    async def many(run: int) -> int:
        return sum([await step(run, i) for i in range(TASKS)])

    results = await asyncio.gather(*(many.ainvoke(r, thread_id=f"t{r}") for r in range(runs)), return_exceptions=True)
    return ran, results, peak[0] - before


def _check(ran: Counter[tuple[int, int]], results: list[Any], runs: int = RUNS) -> None:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert results == [sum(range(TASKS))] * runs
    assert set(ran.values()) == {1} and len(ran) == runs * TASKS  # every task of every run ran once


@pytest.mark.slow
def test_a_thousand_async_runs_on_sqlite(tmp_path: Path) -> None:
    """1,000 concurrent async runs on one SQLite file all complete, each task once, on a few threads."""
    store = SQLiteStore(tmp_path / "j.db")
    ran, results, peak = asyncio.run(_many(store))
    _check(ran, results)
    assert peak < 10  # one carrier thread for the store (and a few of the engine's), not one per run
    store.close()


@pytest.mark.slow
def test_a_thousand_async_runs_on_postgres(pg_schema: tuple[str, str]) -> None:
    """1,000 concurrent async runs on Postgres all complete, each task once, within the pool's connections."""
    dsn, schema = pg_schema
    store = PostgresStore(dsn, schema=schema, pool_size=4)
    opened: list[int] = []
    idle = store._idle
    connect = idle.connect

    async def counting(s: Any) -> Any:  # count the async connections the store opens (the real ones)
        opened.append(1)
        return await connect(s)

    idle.connect = counting  # type: ignore[method-assign]
    ran, results, _ = asyncio.run(_many(store))
    _check(ran, results)
    assert len(opened) <= store.pool_size  # a run waits for a connection rather than opening one of its own
    store.close()


class GuardedStore(SQLiteStore):
    """A real SQLite store that refuses to load a run's journal whole, and records the windows a replay reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.windows: list[int] = []
        self.heads: list[int] = []  # rows each journal_head returned
        self.whole = False

    def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        if not self.whole:
            raise AssertionError("a resume loaded the whole journal")
        return super().load_journal(tid, run_id)

    def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        rows, whole = super().journal_head(tid, run_id, limit)
        self.heads.append(len(rows))
        return rows, whole

    def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        self.windows.append(len(keys))
        return super().journal_keys(tid, run_id, keys)


def _failed_then_resumed(store: GuardedStore, n: int, durability: str = "sync") -> Counter[int]:
    """Record a run of ``n`` tasks that fails after the last, resume it (it completes, its sum checked), and
    return how often each task's body ran."""
    ran: Counter[int] = Counter()
    failing = [True]

    @task
    def step(i: int) -> int:
        ran[i] += 1
        return i

    @entrypoint(checkpointer=store)
    def tasks(k: int) -> int:
        total = sum(step(i).result() for i in range(k))
        if failing[0]:
            raise RuntimeError("fails after its last task")
        return total

    with pytest.raises(RuntimeError):
        tasks.invoke(n, thread_id="t", durability=durability)  # type: ignore[arg-type]
    failing[0] = False
    assert tasks.invoke(None, thread_id="t") == sum(range(n))
    return ran


@pytest.mark.slow
def test_a_resume_reads_the_journal_a_window_at_a_time(tmp_path: Path) -> None:
    """Resuming a 10,000-task run reads the journal in windows of calls, never whole, and replays every task."""
    n = 10_000
    store = GuardedStore(tmp_path / "j.db")
    ran = _failed_then_resumed(store, n, durability="exit")
    assert set(ran.values()) == {1}  # all replayed, none run again
    assert store.heads and max(store.heads) <= HEAD
    assert store.windows and max(store.windows) == WINDOW
    assert len(store.windows) <= n // WINDOW + 2


@pytest.mark.parametrize("n", [0, 1, WINDOW, HEAD])
def test_a_short_journal_is_read_in_one_statement(tmp_path: Path, n: int) -> None:
    """A run of at most HEAD recorded calls is resumed from one read of its journal, with no windows after."""
    store = GuardedStore(tmp_path / "j.db")
    ran = _failed_then_resumed(store, n)
    assert set(ran.values()) <= {1}
    assert store.heads == [n] and store.windows == []


def test_a_failed_operation_in_a_group_leaves_the_others_committed(tmp_path: Path) -> None:
    """Operations the SQLite carrier commits together fail alone: a stale lease's append is refused while
    another run's, in the same group, is committed."""
    store = SQLiteStore(tmp_path / "j.db")
    from durable.stores import NewRun

    async def main() -> tuple[BaseException | None, list[str]]:
        async with store.asession() as session:
            good = await session.claim("good", "me", None, NewRun("ep", b"Pin", None, 1, b"n" * 16))
            stale = await session.claim("stale", "me", None, NewRun("ep", b"Pin", None, 1, b"n" * 16))
            await session.claim("stale", "you", "me")  # taken over: "me" holds a stale lease now
            row = JournalRow("0", 1, "t", 1, None, b"Px", 0.0, 0.0)
            results = await asyncio.gather(
                session.append(stale, 1, [row]), session.append(good, 1, [row]), return_exceptions=True
            )
            kept = [r.key for r in await session.load_journal(good.tid, 1)]
            return (results[0] if isinstance(results[0], BaseException) else None), kept

    error, kept = asyncio.run(main())
    assert isinstance(error, LeaseLostError)
    assert kept == ["0"]
    store.close()
