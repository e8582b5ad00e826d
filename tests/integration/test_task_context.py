"""`durable.task_context()`: where a task body runs, and an idempotency key stable across attempts and resumes."""

from __future__ import annotations

from typing import Any

import pytest

from durable import MemoryStore, RetryPolicy, Store, TaskContext, UsageError, task_context
from durable.testing import FakeClock

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Transient(Exception):
    pass


def recording(f: Flavor, seen: list[TaskContext], name: str, failures: int = 0, **options: Any) -> Any:
    """A task that records its `task_context()` and fails its first ``failures`` attempts."""

    def body(x: Any) -> Any:
        ctx = task_context()
        seen.append(ctx)
        if len([c for c in seen if c.task == name]) <= failures:
            raise Transient(f"{name} attempt {ctx.attempt}")
        return x

    return f.task(name=name, **options)(body)


def test_task_context_says_where_the_task_runs(store: Store, flavor: Flavor) -> None:
    seen: list[TaskContext] = []
    first = recording(flavor, seen, "first")
    second = recording(flavor, seen, "second")

    def flow(_: Any) -> Any:
        a = yield first(1)
        b = yield second(2)
        return a + b

    ep = flavor.entrypoint(checkpointer=store)(flow)
    assert flavor.invoke(ep, "go", thread_id="ctx") == 3
    assert [(c.thread_id, c.run_id, c.key, c.task, c.attempt) for c in seen] == [
        ("ctx", 1, "0", "first", 1),
        ("ctx", 1, "1", "second", 1),
    ]
    assert seen[0].idempotency_key != seen[1].idempotency_key


def test_idempotency_key_is_the_same_on_every_attempt_and_after_a_resume(flavor: Flavor) -> None:
    seen: list[TaskContext] = []
    pay = recording(flavor, seen, "pay", failures=3, retry=RetryPolicy(max_attempts=2, initial_interval=0.0))

    def flow(_: Any) -> Any:
        return (yield pay(10))

    ep = flavor.entrypoint(checkpointer=MemoryStore())(flow)
    with FakeClock():
        with pytest.raises(Transient):
            flavor.invoke(ep, "go", thread_id="t")
        assert flavor.invoke(ep, None, thread_id="t") == 10
    assert [c.attempt for c in seen] == [1, 2, 3, 4]
    assert {(c.thread_id, c.run_id, c.key) for c in seen} == {("t", 1, "0")}
    assert len({c.idempotency_key for c in seen}) == 1


def test_idempotency_key_differs_between_keys_threads_and_runs(flavor: Flavor) -> None:
    seen: list[TaskContext] = []
    pay = recording(flavor, seen, "pay")

    def flow(_: Any) -> Any:
        return (yield [pay(1), pay(1)])

    ep = flavor.entrypoint(checkpointer=MemoryStore())(flow)
    flavor.invoke(ep, "go", thread_id="a")
    flavor.invoke(ep, "go", thread_id="b")
    flavor.invoke(ep, "go", thread_id="a")  # a's second run
    assert sorted((c.thread_id, c.run_id, c.key) for c in seen) == [
        ("a", 1, "0"), ("a", 1, "1"), ("a", 2, "0"), ("a", 2, "1"), ("b", 1, "0"), ("b", 1, "1"),
    ]  # fmt: skip
    assert len({c.idempotency_key for c in seen}) == 6


def test_idempotency_key_is_a_function_of_thread_run_and_key_only() -> None:
    """The same call identity gives the same key whatever the task name or attempt."""
    a = TaskContext("t", 1, "0", "pay", 1)
    assert a.idempotency_key == TaskContext("t", 1, "0", "charge", 5).idempotency_key
    assert a.idempotency_key != TaskContext("t", 1, "0.0", "pay", 1).idempotency_key
    assert a.idempotency_key != TaskContext("t", 2, "0", "pay", 1).idempotency_key


def test_nested_tasks_get_their_own_context(flavor: Flavor) -> None:
    seen: list[TaskContext] = []
    inner = recording(flavor, seen, "inner")

    def outer_body(x: int) -> Any:
        seen.append(task_context())
        return (yield inner(x))

    outer = flavor.task(name="outer")(outer_body)

    def flow(_: Any) -> Any:
        return (yield outer(5))

    ep = flavor.entrypoint(checkpointer=MemoryStore())(flow)
    assert flavor.invoke(ep, "go", thread_id="t") == 5
    assert [(c.key, c.task) for c in seen] == [("0", "outer"), ("0.0", "inner")]


def test_task_context_is_refused_outside_a_task(flavor: Flavor) -> None:
    with pytest.raises(UsageError, match="task_context"):
        task_context()

    def flow(_: Any) -> Any:
        task_context()  # the entrypoint's own code is not a task
        yield from ()

    ep = flavor.entrypoint(checkpointer=MemoryStore())(flow)
    with pytest.raises(UsageError, match="inside a @task"):
        flavor.invoke(ep, "go", thread_id="t")


def test_task_context_is_refused_in_a_task_called_outside_a_run(flavor: Flavor) -> None:
    """Outside a run a task body just runs: there is no key, so no context."""
    seen: list[TaskContext] = []
    pay = recording(flavor, seen, "pay")
    with pytest.raises(UsageError):
        pay(1).result()
    assert seen == []
