"""A sub-entrypoint invoked inside a run (no thread id) runs as part of the caller's run."""

from __future__ import annotations

from typing import Any

import pytest

from durable import MemoryStore, Store, ThreadNotFoundError

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Outage(Exception):
    pass


def build(f: Flavor, store: Store, calls: Any, down: dict[str, bool]) -> tuple[Any, Any]:
    """outer: prepare, inner(...), publish. inner: search, summarize. ``down[name]`` makes that task fail."""

    def step(name: str, fn: Any) -> Any:
        def body(x: Any) -> Any:
            calls.hit(name)
            if down.get(name):
                raise Outage(f"{name} down")
            return fn(x)

        return f.task(name=name)(body)

    prepare = step("prepare", lambda x: x + 1)
    search = step("search", lambda x: [x, x * 2])
    summarize = step("summarize", lambda xs: sum(xs))
    publish = step("publish", lambda x: f"published {x}")

    # The inner entrypoint has its own store: a nested call must not touch it.
    @f.entrypoint(checkpointer=MemoryStore(), name="inner")
    def inner(x: int) -> Any:
        found = yield search(x)
        return (yield summarize(found))

    @f.entrypoint(checkpointer=store, name="outer")
    def outer(x: int) -> Any:
        a = yield prepare(x)
        b = yield f.sub(inner, a)
        return (yield publish(b))

    return outer, inner


def test_a_sub_entrypoint_is_journaled_under_the_callers_key(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """The sub-entrypoint gets the caller's next key and its tasks are keyed under it ("1.0", "1.1")."""
    outer, inner = build(flavor, store, calls, {})
    assert flavor.invoke(outer, 1, thread_id="t") == "published 6"
    entries = outer.get_state(thread_id="t").entries
    assert sorted((e.key, e.task, e.result) for e in entries) == [
        ("0", "prepare", 2),
        ("1", "inner", 6),
        ("1.0", "search", [2, 4]),
        ("1.1", "summarize", 6),
        ("2", "publish", "published 6"),
    ]
    with pytest.raises(ThreadNotFoundError):
        inner.get_state(thread_id="t")


def test_resume_after_a_sub_entrypoint_does_not_run_it_again(store: Store, flavor: Flavor, calls: Any) -> None:
    """When the caller fails after a sub-entrypoint finished, the resume replays the sub-entrypoint."""
    down = {"publish": True}
    outer, _ = build(flavor, store, calls, down)
    with pytest.raises(Outage, match="publish"):
        flavor.invoke(outer, 1, thread_id="t")
    down["publish"] = False
    assert flavor.invoke(outer, None, thread_id="t") == "published 6"
    assert calls.as_dict() == {"prepare": 1, "search": 1, "summarize": 1, "publish": 2}


def test_resume_inside_a_failed_sub_entrypoint_reruns_only_its_failed_task(
    store: Store, flavor: Flavor, calls: Any
) -> None:
    """When a sub-entrypoint's task fails the run, the resume replays its finished tasks and reruns the failed one."""
    down = {"summarize": True}
    outer, _ = build(flavor, store, calls, down)
    with pytest.raises(Outage, match="summarize"):
        flavor.invoke(outer, 1, thread_id="t")
    down["summarize"] = False
    assert flavor.invoke(outer, None, thread_id="t") == "published 6"
    assert calls.as_dict() == {"prepare": 1, "search": 1, "summarize": 2, "publish": 1}


def test_a_sub_entrypoint_with_a_thread_id_is_a_run_of_its_own(store: Store, flavor: Flavor, calls: Any) -> None:
    """Outside any run, a sub-entrypoint is an ordinary entrypoint with its own journal."""
    _, inner = build(flavor, store, calls, {})
    assert flavor.invoke(inner, 3, thread_id="solo") == 9
    assert sorted(e.key for e in inner.get_state(thread_id="solo").entries) == ["0", "1"]
