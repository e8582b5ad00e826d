"""A failed run resumed with None: finished tasks replay, the task whose error failed the run runs again,
and errors the entrypoint handled replay as the same exception so the run takes the same branch."""

from __future__ import annotations

from typing import Any

import pytest

from durable import Store

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


class Outage(Exception):
    pass


def test_resume_reruns_only_the_failed_task(store: Store, flavor: Flavor, calls: Any, journal: Any) -> None:
    """Tasks before the failure replay, the failed task runs again, and the run completes."""
    f = flavor
    down = [True]

    @f.task
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.task
    def llm(x: int) -> int:
        calls.hit("llm")
        if down[0]:
            raise Outage(f"llm down for {x}")
        return x * 10

    @f.task
    def save(x: int) -> str:
        calls.hit("save")
        return f"saved {x}"

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        a = yield fetch(x)
        b = yield llm(a)
        return (yield save(b))

    with pytest.raises(Outage, match="llm down for 2"):
        f.invoke(flow, 1, thread_id="t")
    state = flow.get_state(thread_id="t")
    assert state.status == "failed"
    assert [(e.key, e.status) for e in state.entries] == [("0", "ok"), ("1", "error")]
    assert calls.as_dict() == {"fetch": 1, "llm": 1}

    down[0] = False
    assert f.invoke(flow, None, thread_id="t") == "saved 20"
    assert calls.as_dict() == {"fetch": 1, "llm": 2, "save": 1}
    by_key = journal.by_key(flow, "t")
    assert [(e.status, e.attempt) for e in by_key["0"]] == [("ok", 1)]
    assert [(e.status, e.attempt) for e in by_key["1"]] == [("error", 1), ("ok", 2)]
    assert [(e.status, e.attempt) for e in by_key["2"]] == [("ok", 1)]
    assert flow.get_state(thread_id="t").status == "completed"


def test_each_failed_resume_adds_an_attempt(store: Store, flavor: Flavor, calls: Any, journal: Any) -> None:
    """A task failing on every resume is recorded once per attempt, numbered 1, 2, 3."""
    f = flavor
    failures = [2]

    @f.task
    def flaky() -> str:
        calls.hit("flaky")
        if calls["flaky"] <= failures[0]:
            raise Outage(f"attempt {calls['flaky']}")
        return "ok"

    @f.entrypoint(checkpointer=store)
    def flow(_: str) -> Any:
        return (yield flaky())

    with pytest.raises(Outage, match="attempt 1"):
        f.invoke(flow, "go", thread_id="t")
    with pytest.raises(Outage, match="attempt 2"):
        f.invoke(flow, None, thread_id="t")
    assert f.invoke(flow, None, thread_id="t") == "ok"
    assert [(e.status, e.attempt) for e in journal.by_key(flow, "t")["0"]] == [("error", 1), ("error", 2), ("ok", 3)]


def test_resume_after_a_failed_fan_out_reruns_only_the_failed_branch(store: Store, flavor: Flavor, calls: Any) -> None:
    """When one task of a fan-out fails, its siblings are recorded and only the failed one runs again."""
    f = flavor
    down = [True]

    @f.task
    def work(i: int) -> int:
        calls.hit(f"work{i}")
        if i == 2 and down[0]:
            raise Outage("branch 2")
        return i * i

    @f.entrypoint(checkpointer=store)
    def flow(n: int) -> Any:
        return (yield [work(i) for i in range(n)])

    with pytest.raises(Outage):
        f.invoke(flow, 5, thread_id="t")
    down[0] = False
    assert f.invoke(flow, None, thread_id="t") == [0, 1, 4, 9, 16]
    assert calls.as_dict() == {"work0": 1, "work1": 1, "work2": 2, "work3": 1, "work4": 1}


def test_a_handled_error_replays_the_same_exception_and_branch(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """An error the entrypoint caught replays on resume as the same exception, so the same branch runs."""
    f = flavor
    primary_down = [True]
    later_down = [True]
    caught: list[tuple[str, str]] = []

    @f.task
    def primary(q: str) -> str:
        calls.hit("primary")
        if primary_down[0]:
            raise Outage(f"primary cannot answer {q!r}")
        return f"primary:{q}"

    @f.task
    def fallback(q: str) -> str:
        calls.hit("fallback")
        return f"fallback:{q}"

    @f.task
    def publish(answer: str) -> str:
        calls.hit("publish")
        if later_down[0]:
            raise Boom("publish failed")
        return f"published {answer}"

    @f.entrypoint(checkpointer=store)
    def flow(q: str) -> Any:
        try:
            answer = yield primary(q)
        except Outage as exc:
            caught.append((type(exc).__name__, str(exc)))
            answer = yield fallback(q)
        return (yield publish(answer))

    with pytest.raises(Boom):
        f.invoke(flow, "why", thread_id="t")
    # The primary would now succeed: a resume that ran it again would take the other branch.
    primary_down[0] = False
    later_down[0] = False
    assert f.invoke(flow, None, thread_id="t") == "published fallback:why"
    assert caught == [("Outage", "primary cannot answer 'why'")] * 2
    assert calls.as_dict() == {"primary": 1, "fallback": 1, "publish": 2}
    by_key = journal.by_key(flow, "t")
    assert [e.status for e in by_key["0"]] == ["error"]
    assert isinstance(by_key["0"][0].error, Outage)


def test_an_error_raised_by_the_entrypoint_itself_reruns_no_task(store: Store, flavor: Flavor, calls: Any) -> None:
    """When the entrypoint's own code fails, the resume replays every finished task and reruns only the body."""
    f = flavor
    broken = [True]

    @f.task
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        calls.hit("flow")
        a = yield fetch(x)
        b = yield fetch(a)
        if broken[0]:
            raise Boom("bug in the entrypoint")
        return b

    with pytest.raises(Boom, match="bug in the entrypoint"):
        f.invoke(flow, 1, thread_id="t")
    broken[0] = False
    assert f.invoke(flow, None, thread_id="t") == 3
    assert calls.as_dict() == {"flow": 2, "fetch": 2}


def test_a_task_error_re_raised_as_another_error_is_rerun(store: Store, flavor: Flavor, calls: Any) -> None:
    """A task error that the entrypoint wraps (``raise ... from exc``) still made the run fail: it runs again."""
    f = flavor
    down = [True]

    @f.task
    def llm(q: str) -> str:
        calls.hit("llm")
        if down[0]:
            raise Outage("503")
        return q.upper()

    @f.entrypoint(checkpointer=store)
    def flow(q: str) -> Any:
        try:
            return (yield llm(q))
        except Outage as exc:
            raise Boom("could not answer") from exc

    with pytest.raises(Boom) as info:
        f.invoke(flow, "hi", thread_id="t")
    assert isinstance(info.value.__cause__, Outage)
    down[0] = False
    assert f.invoke(flow, None, thread_id="t") == "HI"
    assert calls["llm"] == 2


def test_a_failure_deep_in_nested_tasks_is_rerun(store: Store, flavor: Flavor, calls: Any) -> None:
    """A child task whose error failed its parent task, and so the run, runs again on resume."""
    f = flavor
    down = [True]

    @f.task
    def leaf(x: int) -> int:
        calls.hit("leaf")
        if down[0]:
            raise Outage("leaf down")
        return x + 1

    @f.task
    def prepare(x: int) -> int:
        calls.hit("prepare")
        return x * 2

    @f.task
    def parent(x: int) -> Any:
        calls.hit("parent")
        a = yield prepare(x)
        return (yield leaf(a))

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        return (yield parent(x))

    with pytest.raises(Outage):
        f.invoke(flow, 1, thread_id="t")
    down[0] = False
    assert f.invoke(flow, None, thread_id="t") == 3
    assert calls.as_dict() == {"parent": 2, "prepare": 1, "leaf": 2}


def test_a_resume_that_fails_early_keeps_the_failed_task_to_rerun(store: Store, flavor: Flavor, calls: Any) -> None:
    """A resume failing before it reaches the failed task leaves that task to run again on the next resume."""
    f = flavor
    llm_down = [True]
    body_broken = [False]

    @f.task
    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    @f.task
    def llm(x: int) -> int:
        calls.hit("llm")
        if llm_down[0]:
            raise Outage("llm down")
        return x * 10

    @f.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        a = yield fetch(x)
        if body_broken[0]:
            raise Boom("config missing")
        return (yield llm(a))

    with pytest.raises(Outage):
        f.invoke(flow, 1, thread_id="t")
    body_broken[0] = True
    with pytest.raises(Boom):
        f.invoke(flow, None, thread_id="t")
    body_broken[0] = False
    llm_down[0] = False
    assert f.invoke(flow, None, thread_id="t") == 20
    assert calls.as_dict() == {"fetch": 1, "llm": 2}
