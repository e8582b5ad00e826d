"""Replay checks each call against the journal: another task at a key, or other arguments, is caught."""

from __future__ import annotations

from typing import Any

import pytest

from durable import ArgumentsChangedError, NonDeterminismError, Store

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


def failing_once(calls: Any, failing: list[bool]) -> Any:
    """A body that raises Boom while ``failing[0]``, to make a run fail after its first task."""

    def finish(x: Any) -> Any:
        calls.hit("finish")
        if failing[0]:
            raise Boom("not yet")
        return x

    return finish


def unchanged(before: Any, after: Any) -> bool:
    return (before.run_id, before.status, before.entries) == (after.run_id, after.status, after.entries)


def swappable_flow(f: Flavor, store: Store, calls: Any) -> tuple[Any, list[bool], list[str]]:
    """A flow calling task "fetch" or "search" (per ``variant``), then "finish" (failing while ``failing``)."""
    failing = [True]
    variant = ["fetch"]

    @f.task(name="fetch")
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.task(name="search")
    def search(x: int) -> int:
        calls.hit("search")
        return x - 1

    finish = f.task(name="finish")(failing_once(calls, failing))

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        a = yield (fetch(x) if variant[0] == "fetch" else search(x))
        return (yield finish(a))

    return flow, failing, variant


def test_another_task_at_a_recorded_key_raises_non_determinism(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """A replay calling another task than the one recorded at a key raises NonDeterminismError; nothing runs."""
    f = flavor
    flow, failing, variant = swappable_flow(f, store, calls)

    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    before = journal.snapshot(flow, "t")

    failing[0] = False
    variant[0] = "search"
    with pytest.raises(NonDeterminismError, match=r"'0'.*'fetch'.*'search'") as info:
        f.invoke(flow, None, thread_id="t")
    assert type(info.value) is NonDeterminismError
    assert (info.value.key, info.value.recorded, info.value.actual) == ("0", "fetch", "search")
    assert calls.as_dict() == {"fetch": 1, "finish": 1}
    assert unchanged(before, journal.snapshot(flow, "t"))


def test_after_a_non_determinism_error_the_original_code_resumes_the_run(
    store: Store, flavor: Flavor, calls: Any
) -> None:
    """A NonDeterminismError does not spoil the run: back on the original code, the failed task runs again."""
    f = flavor
    flow, failing, variant = swappable_flow(f, store, calls)

    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    failing[0] = False
    variant[0] = "search"
    with pytest.raises(NonDeterminismError):
        f.invoke(flow, None, thread_id="t")
    variant[0] = "fetch"
    assert f.invoke(flow, None, thread_id="t") == 2
    assert calls.as_dict() == {"fetch": 1, "finish": 2}


def test_a_recorded_result_is_never_handed_to_another_task_later_in_the_run(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """A replay that inserts a new call shifts the keys: the next recorded key mismatches and raises."""
    f = flavor
    failing = [True]
    extra = [False]

    @f.task(name="fetch")
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.task(name="log")
    def log(x: int) -> None:
        calls.hit("log")

    finish = f.task(name="finish")(failing_once(calls, failing))

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        a = yield fetch(x)
        if extra[0]:
            yield log(a)
        return (yield finish(a))

    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    before = journal.snapshot(flow, "t")
    failing[0] = False
    extra[0] = True
    with pytest.raises(NonDeterminismError) as info:
        f.invoke(flow, None, thread_id="t")
    assert (info.value.key, info.value.recorded, info.value.actual) == ("1", "finish", "log")
    assert calls.as_dict() == {"fetch": 1, "finish": 1}
    assert unchanged(before, journal.snapshot(flow, "t"))


def changed_args_flow(f: Flavor, store: Store, calls: Any, policy: str) -> tuple[Any, list[int], list[bool]]:
    """fetch(x + offset) then finish: the test changes ``offset`` between the failed run and the resume."""
    offset = [0]
    failing = [True]

    @f.task(name="fetch")
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x * 100

    finish = f.task(name="finish")(failing_once(calls, failing))

    @f.entrypoint(checkpointer=store, on_changed_args=policy)
    def flow(x: int) -> Any:
        a = yield fetch(x + offset[0])
        return (yield finish(a))

    return flow, offset, failing


def test_changed_arguments_raise_by_default(store: Store, flavor: Flavor, calls: Any, journal: Any) -> None:
    """Replaying a task with other arguments raises ArgumentsChangedError naming the key; nothing runs."""
    f = flavor
    flow, offset, failing = changed_args_flow(f, store, calls, "raise")
    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    before = journal.snapshot(flow, "t")

    failing[0] = False
    offset[0] = 1
    with pytest.raises(ArgumentsChangedError, match="'0'") as info:
        f.invoke(flow, None, thread_id="t")
    assert isinstance(info.value, NonDeterminismError)
    assert (info.value.key, info.value.recorded) == ("0", "fetch")
    assert calls.as_dict() == {"fetch": 1, "finish": 1}
    assert unchanged(before, journal.snapshot(flow, "t"))


def test_after_an_arguments_changed_error_the_original_arguments_resume_the_run(
    store: Store, flavor: Flavor, calls: Any
) -> None:
    """An ArgumentsChangedError does not spoil the run: with the recorded arguments the failed task runs again."""
    f = flavor
    flow, offset, failing = changed_args_flow(f, store, calls, "raise")
    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    failing[0] = False
    offset[0] = 1
    with pytest.raises(ArgumentsChangedError):
        f.invoke(flow, None, thread_id="t")
    offset[0] = 0
    assert f.invoke(flow, None, thread_id="t") == 100
    assert calls.as_dict() == {"fetch": 1, "finish": 2}


def test_changed_arguments_with_warn_replay_the_recorded_result(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """With on_changed_args="warn", changed arguments emit a RuntimeWarning and replay the old result."""
    f = flavor
    flow, offset, failing = changed_args_flow(f, store, calls, "warn")
    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    failing[0] = False
    offset[0] = 1
    with pytest.warns(RuntimeWarning, match="'0'"):
        assert f.invoke(flow, None, thread_id="t") == 100
    assert calls.as_dict() == {"fetch": 1, "finish": 2}
    assert [(e.result, e.attempt) for e in journal.by_key(flow, "t")["0"]] == [(100, 1)]


def test_changed_arguments_with_rerun_run_the_task_again(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """With on_changed_args="rerun", a task with changed arguments runs again and its new result is used."""
    f = flavor
    flow, offset, failing = changed_args_flow(f, store, calls, "rerun")
    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    failing[0] = False
    offset[0] = 1
    assert f.invoke(flow, None, thread_id="t") == 200
    assert calls.as_dict() == {"fetch": 2, "finish": 2}
    assert [(e.result, e.attempt) for e in journal.by_key(flow, "t")["0"]] == [(100, 1), (200, 2)]


@pytest.mark.parametrize("policy", ["raise", "warn", "rerun"])
def test_unchanged_arguments_replay_under_every_policy(store: Store, flavor: Flavor, calls: Any, policy: str) -> None:
    """The same arguments replay silently whatever ``on_changed_args`` says."""
    f = flavor
    flow, _, failing = changed_args_flow(f, store, calls, policy)
    with pytest.raises(Boom):
        f.invoke(flow, 1, thread_id="t")
    failing[0] = False
    assert f.invoke(flow, None, thread_id="t") == 100
    assert calls.as_dict() == {"fetch": 1, "finish": 2}
