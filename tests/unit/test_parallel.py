"""Fan-out really runs in parallel: each test can only pass if its tasks are running at the same time."""

from __future__ import annotations

import threading
from typing import Any

from durable import MemoryStore

Flavor = Any  # the `any_flavor` fixture from tests/conftest.py

N = 10
TIMEOUT = 10.0  # a Barrier that times out breaks, and the waiting tasks raise BrokenBarrierError


def test_fanned_out_tasks_run_concurrently(any_flavor: Flavor) -> None:
    """Ten tasks that each wait on a Barrier(10) all get through: they run at the same time."""
    f = any_flavor
    barrier = threading.Barrier(N, timeout=TIMEOUT)

    @f.task
    def meet(i: int) -> Any:
        yield f.blocking(barrier.wait)
        return i

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(n: int) -> Any:
        return (yield [meet(i) for i in range(n)])

    assert f.invoke(flow, N, thread_id="t") == list(range(N))
    assert not barrier.broken


def test_tasks_fanned_out_inside_a_task_run_concurrently(any_flavor: Flavor) -> None:
    """A task's own fan-out runs in parallel too, next to a sibling task fanning out at the same time."""
    f = any_flavor
    half = N // 2
    barrier = threading.Barrier(2 * half, timeout=TIMEOUT)

    @f.task
    def meet(i: int) -> Any:
        yield f.blocking(barrier.wait)
        return i

    @f.task
    def group(start: int) -> Any:
        return (yield [meet(start + i) for i in range(half)])

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        return (yield [group(0), group(half)])

    assert f.invoke(flow, "go", thread_id="t") == [list(range(half)), list(range(half, 2 * half))]
    keys = sorted(e.key for e in flow.get_state(thread_id="t").entries)
    assert keys == sorted(["0", "1", *(f"0.{i}" for i in range(half)), *(f"1.{i}" for i in range(half))])
