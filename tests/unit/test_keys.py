"""Journal keys: call order, hierarchical under tasks that call tasks, fixed at call time under fan-out."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from durable import MemoryStore, TaskFuture

Flavor = Any  # the `flavor` / `any_flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


def test_sequential_calls_are_keyed_by_call_order(any_flavor: Flavor, journal: Any) -> None:
    """Tasks called one after another are keyed "0", "1", "2" with their own names and results."""
    f = any_flavor

    @f.task
    def first(x: int) -> int:
        return x + 1

    @f.task
    def second(x: int) -> int:
        return x * 10

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(x: int) -> Any:
        a = yield first(x)
        b = yield second(a)
        c = yield first(b)
        return c

    assert f.invoke(flow, 1, thread_id="t") == 21
    entries = flow.get_state(thread_id="t").entries
    assert sorted((e.key, e.task, e.result) for e in entries) == [
        ("0", first.__name__, 2),
        ("1", second.__name__, 20),
        ("2", first.__name__, 21),
    ]


def test_tasks_called_inside_a_task_get_hierarchical_keys(any_flavor: Flavor, journal: Any) -> None:
    """A task's children are keyed by their order within it: "1.0", "1.1", and "1.1.0" one level deeper."""
    f = any_flavor

    @f.task
    def leaf(x: int) -> int:
        return x + 1

    @f.task
    def middle(x: int) -> Any:
        a = yield leaf(x)
        return a * 2

    @f.task
    def top(x: int) -> Any:
        a = yield leaf(x)
        b = yield middle(a)
        return a + b

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(x: int) -> Any:
        a = yield leaf(x)
        b = yield top(a)
        c = yield leaf(b)
        return c

    assert f.invoke(flow, 0, thread_id="t") == 9
    by_key = {k: v[-1] for k, v in journal.by_key(flow, "t").items()}
    assert journal.keys(flow, "t") == ["0", "1", "1.0", "1.1", "1.1.0", "2"]
    assert {k: (e.task, e.result) for k, e in by_key.items()} == {
        "0": (leaf.__name__, 1),
        "1": (top.__name__, 8),
        "1.0": (leaf.__name__, 2),
        "1.1": (middle.__name__, 6),
        "1.1.0": (leaf.__name__, 3),
        "2": (leaf.__name__, 9),
    }


def test_fan_out_keys_follow_call_order_not_completion_order(any_flavor: Flavor, journal: Any) -> None:
    """Under fan-out each key belongs to the call made in that order, even when the calls finish in reverse."""
    f = any_flavor
    n = 8
    finished = [threading.Event() for _ in range(n)]
    order: list[int] = []

    @f.task
    def work(i: int) -> Any:
        # Task i finishes only after task i + 1: the completion order is the reverse of the call order.
        if i + 1 < n:
            assert (yield f.blocking(finished[i + 1].wait, 5)), f"task {i + 1} never finished"
        order.append(i)
        finished[i].set()
        return i * i

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: None) -> Any:
        return (yield [work(i) for i in range(n)])

    assert f.invoke(flow, "go", thread_id="t") == [i * i for i in range(n)]
    assert order == list(reversed(range(n)))
    entries = flow.get_state(thread_id="t").entries
    assert {e.key: e.result for e in entries} == {str(i): i * i for i in range(n)}


def test_fan_out_inside_a_task_is_keyed_under_it(any_flavor: Flavor, journal: Any) -> None:
    """A task fanning out gets children keyed "k.0" .. "k.n-1" in call order."""
    f = any_flavor

    @f.task
    def square(i: int) -> int:
        return i * i

    @f.task
    def squares(n: int) -> Any:
        return (yield [square(i) for i in range(n)])

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(n: int) -> Any:
        a = yield square(n)
        b = yield squares(n)
        return [a, *b]

    assert f.invoke(flow, 5, thread_id="t") == [25, 0, 1, 4, 9, 16]
    results = {e.key: e.result for e in flow.get_state(thread_id="t").entries}
    assert results == {"0": 25, "1": [0, 1, 4, 9, 16], **{f"1.{i}": i * i for i in range(5)}}


def test_keys_are_the_same_on_replay(any_flavor: Flavor, journal: Any, calls: Any) -> None:
    """A resumed run computes the same keys, so every fan-out result replays to the call that made it."""
    f = any_flavor
    n = 6
    failing = [True]

    @f.task
    def work(i: int) -> str:
        calls.hit(f"work{i}")
        return f"r{i}"

    @f.task
    def last(values: list[str]) -> str:
        calls.hit("last")
        if failing[0]:
            raise Boom("not yet")
        return "+".join(values)

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(_: str) -> Any:
        values = yield [work(i) for i in range(n)]
        return (yield last(values))

    with pytest.raises(Boom):
        f.invoke(flow, "go", thread_id="t")
    keys_before = journal.keys(flow, "t")
    failing[0] = False
    assert f.invoke(flow, None, thread_id="t") == "+".join(f"r{i}" for i in range(n))
    assert calls.as_dict() == {**{f"work{i}": 1 for i in range(n)}, "last": 2}
    assert journal.keys(flow, "t") == keys_before == [*(str(i) for i in range(n)), str(n)]


def test_a_task_call_inside_a_run_returns_a_future_at_once(any_flavor: Flavor) -> None:
    """Inside a run a task call returns a pending TaskFuture without waiting for the task to finish."""
    f = any_flavor
    release = threading.Event()

    @f.task
    def slow(x: int) -> Any:
        assert (yield f.blocking(release.wait, 5)), "never released"
        return x + 1

    @f.entrypoint(checkpointer=MemoryStore())
    def flow(x: int) -> Any:
        fut = slow(x)
        assert isinstance(fut, TaskFuture)
        assert not fut.done()
        release.set()
        value = yield fut
        assert fut.done()
        return value

    assert f.invoke(flow, 1, thread_id="t") == 2


def test_a_sub_entrypoint_of_the_other_kind_joins_the_callers_run(any_flavor: Flavor, calls: Any) -> None:
    """A sync entrypoint may call an async sub-entrypoint and vice versa, keyed and replayed in the caller's run."""
    f = any_flavor
    other = dataclasses.replace(f, async_entrypoint=not f.async_entrypoint)
    down = [True]

    @f.task(name="step")
    def step(x: int) -> int:
        calls.hit(f"step{x}")
        if x == 4 and down[0]:
            raise Boom("down")
        return x + 1

    @other.entrypoint(checkpointer=MemoryStore(), name="inner")
    def inner(x: int) -> Any:
        a = yield step(x)
        return (yield step(a))

    @f.entrypoint(checkpointer=MemoryStore(), name="outer")
    def outer(x: int) -> Any:
        a = yield step(x)
        b = yield f.sub(inner, a)
        return (yield step(b))

    with pytest.raises(Boom):
        f.invoke(outer, 1, thread_id="t")
    down[0] = False
    assert f.invoke(outer, None, thread_id="t") == 5
    state = outer.get_state(thread_id="t")
    assert {e.key: e.task for e in state.entries} == {
        "0": "step",
        "1": "inner",
        "1.0": "step",
        "1.1": "step",
        "2": "step",
    }
    assert calls.as_dict() == {"step1": 1, "step2": 1, "step3": 1, "step4": 2}
