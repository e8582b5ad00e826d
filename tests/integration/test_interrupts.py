"""Pausing a run for a person: `interrupt`, `Interrupted`, `Command(resume=...)` and the rules around them.

Every test runs on both stores and on sync and async entrypoints (the ``store`` and ``flavor`` fixtures).
`interrupt` is a plain function, so task and entrypoint bodies call it directly; pausing is a `BaseException`,
so it passes through the flavor's generator driver (which only catches `Exception`) like it would through user code.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from durable import (
    Command,
    DurableError,
    Interrupt,
    Interrupted,
    MemoryStore,
    ResumeError,
    Store,
    ThreadNotFoundError,
    UnfinishedRunError,
    UsageError,
    interrupt,
)

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


def counted(f: Flavor, calls: Any, name: str, fn: Any = lambda x: x) -> Any:
    """A task named ``name`` that counts its executions and returns ``fn(x)``."""

    def body(x: Any) -> Any:
        calls.hit(name)
        return fn(x)

    return f.task(name=name)(body)


def asker(f: Flavor, calls: Any, name: str = "ask") -> Any:
    """A task that counts its executions and returns the answer to ``interrupt(question, id=id)``."""

    def body(question: Any, id: str | None = None) -> Any:
        calls.hit(name)
        return interrupt(question, id=id)

    return f.task(name=name)(body)


def answers(ep: Any, thread_id: str) -> list[tuple[str, str, str, Any]]:
    """The journal's answer entries as (key, task, status, answer), in key order."""
    return sorted(
        (e.key, e.task, e.status, e.result) for e in ep.get_state(thread_id=thread_id).entries if e.status == "answer"
    )


# -- pausing and resuming ---------------------------------------------------------------------------


def test_interrupt_in_the_body_pauses_and_the_resume_returns_the_answer(
    store: Store, flavor: Flavor, calls: Any
) -> None:
    """interrupt() in the body returns Interrupted (id = its key "2"); Command(resume=v) makes it return v."""
    fetch = counted(flavor, calls, "fetch", lambda x: x * 10)

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        a = yield fetch(x)
        b = yield fetch(x + 1)
        answer = interrupt({"a": a, "b": b})
        c = yield fetch(answer)
        return (a, b, c)

    out = flavor.invoke(flow, 1, thread_id="t")
    assert out == Interrupted(interrupts=(Interrupt("2", {"a": 10, "b": 20}),), thread_id="t")
    assert out.ids == ("2",)
    state = flow.get_state(thread_id="t")
    assert (state.status, state.interrupts, state.output) == ("interrupted", out.interrupts, None)
    assert [(e.key, e.task, e.status, e.result) for e in state.entries] == [
        ("0", "fetch", "ok", 10),
        ("1", "fetch", "ok", 20),
    ]

    assert flavor.invoke(flow, Command(resume=5), thread_id="t") == (10, 20, 50)
    assert calls.as_dict() == {"fetch": 3}
    state = flow.get_state(thread_id="t")
    assert (state.status, state.interrupts, state.output) == ("completed", (), (10, 20, 50))
    assert answers(flow, "t") == [("2", "interrupt", "answer", 5)]
    # The finished run is settled: None returns its value, nothing runs.
    assert flavor.invoke(flow, None, thread_id="t") == (10, 20, 50)
    assert calls.as_dict() == {"fetch": 3}


def test_sequential_interrupts_pause_in_turn_with_call_order_ids(store: Store, flavor: Flavor, calls: Any) -> None:
    """Interrupts in a task ("1.0"), a nested task ("2.1.0") and the body ("3") pause one after the other."""
    prep = counted(flavor, calls, "prep")
    ask = asker(flavor, calls)

    @flavor.task(name="nested")
    def nested(x: str) -> Any:
        calls.hit("nested")
        p = yield prep(x)
        return (yield ask(f"deep {p}"))

    @flavor.entrypoint(checkpointer=store)
    def flow(x: str) -> Any:
        p = yield prep(x)
        first = yield ask(f"first {p}")
        second = yield nested(first)
        third = interrupt(f"last {second}")
        return [first, second, third]

    steps = [("1.0", "first go", "A"), ("2.1.0", "deep A", "B"), ("3", "last B", "C")]
    out = flavor.invoke(flow, "go", thread_id="t")
    for i, (id, question, answer) in enumerate(steps):
        assert out == Interrupted((Interrupt(id, question),), "t"), f"pause {i}"
        assert flow.get_state(thread_id="t").interrupts == (Interrupt(id, question),)
        # Asking again changes nothing: the same pause, nothing runs.
        ran = calls.as_dict()
        assert flavor.invoke(flow, None, thread_id="t") == out
        assert calls.as_dict() == ran
        out = flavor.invoke(flow, Command(resume=answer), thread_id="t")
    assert out == ["A", "B", "C"]
    assert answers(flow, "t") == [
        ("1.0", "interrupt", "answer", "A"),
        ("2.1.0", "interrupt", "answer", "B"),
        ("3", "interrupt", "answer", "C"),
    ]
    # prep ran once per key ("0" and "2.0"); the paused tasks ran once more when their answer came.
    assert calls.as_dict() == {"prep": 2, "ask": 4, "nested": 2}


def test_parallel_interrupts_surface_together_in_call_order(store: Store, flavor: Flavor, calls: Any) -> None:
    """Parallel tasks' interrupts come in one Interrupted in key order ("2.0" before "10.0"), whatever pauses first."""
    n = 12
    paused = [threading.Event() for _ in range(n)]

    @flavor.task(name="ask")
    def ask(i: int) -> Any:
        calls.hit("ask")
        if i + 1 < n:  # pause in reverse call order: task i waits until task i + 1 has paused
            assert (yield flavor.blocking(paused[i + 1].wait, 10))
        try:
            return interrupt(f"q{i}")
        finally:
            paused[i].set()

    @flavor.entrypoint(checkpointer=store)
    def flow(n: int) -> Any:
        return (yield [ask(i) for i in range(n)])

    out = flavor.invoke(flow, n, thread_id="t")
    expected = tuple(Interrupt(f"{i}.0", f"q{i}") for i in range(n))
    assert out == Interrupted(expected, "t")
    assert len(set(out.ids)) == n
    assert flow.get_state(thread_id="t").interrupts == expected
    result = flavor.invoke(flow, Command(resume={f"{i}.0": i * i for i in reversed(range(n))}), thread_id="t")
    assert result == [i * i for i in range(n)]
    assert calls["ask"] == 2 * n


def test_answering_a_subset_leaves_the_rest_pending_with_the_same_ids(store: Store, flavor: Flavor, calls: Any) -> None:
    """Command({id: v}) for some pending ids re-pauses on the others (same ids, same values); the rest completes."""
    ask = asker(flavor, calls)

    @flavor.entrypoint(checkpointer=store)
    def flow(names: list[str]) -> Any:
        return (yield [ask(name) for name in names])

    out = flavor.invoke(flow, ["ann", "bob", "cy"], thread_id="t")
    assert out == Interrupted((Interrupt("0.0", "ann"), Interrupt("1.0", "bob"), Interrupt("2.0", "cy")), "t")

    out = flavor.invoke(flow, Command(resume={"1.0": "bob says yes"}), thread_id="t")
    rest = Interrupted((Interrupt("0.0", "ann"), Interrupt("2.0", "cy")), "t")
    assert out == rest
    assert flow.get_state(thread_id="t").interrupts == rest.interrupts
    assert flavor.invoke(flow, None, thread_id="t") == rest
    assert answers(flow, "t") == [("1.0", "interrupt", "answer", "bob says yes")]

    result = flavor.invoke(flow, Command(resume={"2.0": "cy: no", "0.0": "ann: ok"}), thread_id="t")
    assert result == ["ann: ok", "bob says yes", "cy: no"]
    # 3 paused; then all 3 ran again (bob's got its answer, the others paused again); then ann's and cy's.
    assert calls["ask"] == 3 + 3 + 2
    assert flow.get_state(thread_id="t").status == "completed"


def test_each_answer_goes_to_its_own_interrupt(store: Store, flavor: Flavor, calls: Any) -> None:
    """Answers are matched by id (custom or default), never by position or order of the dict."""
    ask = asker(flavor, calls)

    @flavor.entrypoint(checkpointer=store)
    def flow(_: Any) -> Any:
        return (yield [ask("to a", "a"), ask("to b", "b"), ask("third")])

    out = flavor.invoke(flow, 0, thread_id="t")
    assert out.interrupts == (Interrupt("a", "to a"), Interrupt("b", "to b"), Interrupt("2.0", "third"))
    result = flavor.invoke(flow, Command(resume={"2.0": 3, "b": 2, "a": 1}), thread_id="t")
    assert result == [1, 2, 3]
    assert answers(flow, "t") == [
        ("0.0", "interrupt", "answer", 1),
        ("1.0", "interrupt", "answer", 2),
        ("2.0", "interrupt", "answer", 3),
    ]


@pytest.mark.parametrize(
    ("resume", "answer"),
    [({"0.0": "yes"}, "yes"), ({"other": 1}, {"other": 1}), ({}, {}), ("plain", "plain")],
    ids=["id-map", "dict-not-an-id-map", "empty-dict", "scalar"],
)
def test_with_one_pending_a_value_that_is_not_an_id_map_is_the_answer(
    store: Store, flavor: Flavor, calls: Any, resume: Any, answer: Any
) -> None:
    """With one pending, {its id: v} answers v; any other value (a dict too) is the answer itself."""
    ask = asker(flavor, calls)

    @flavor.entrypoint(checkpointer=store)
    def flow(_: Any) -> Any:
        return (yield ask("q"))

    flavor.invoke(flow, 0, thread_id="t")
    assert flavor.invoke(flow, Command(resume=resume), thread_id="t") == answer


def test_a_paused_task_reruns_from_its_start_but_finished_work_does_not(
    store: Store, flavor: Flavor, calls: Any
) -> None:
    """On resume the paused tasks run again from their start; finished tasks and their finished children replay."""
    notify = counted(flavor, calls, "notify")
    draft = counted(flavor, calls, "draft", lambda i: f"draft{i}")

    @flavor.task(name="review")
    def review(i: int) -> Any:
        calls.hit("review")
        d = yield draft(i)
        verdict = interrupt({"draft": d})
        calls.hit("review after the answer")
        return f"{d}: {verdict}"

    @flavor.entrypoint(checkpointer=store)
    def flow(n: int) -> Any:
        yield notify("start")
        reviews = yield [review(i) for i in range(n)]
        return (yield notify(reviews))

    out = flavor.invoke(flow, 2, thread_id="t")
    assert out.interrupts == (Interrupt("1.1", {"draft": "draft0"}), Interrupt("2.1", {"draft": "draft1"}))
    assert calls.as_dict() == {"notify": 1, "draft": 2, "review": 2}

    result = flavor.invoke(flow, Command(resume={"1.1": "ok", "2.1": "no"}), thread_id="t")
    assert result == ["draft0: ok", "draft1: no"]
    assert calls.as_dict() == {"notify": 2, "draft": 2, "review": 4, "review after the answer": 2}


@pytest.mark.parametrize("where", ["task", "body"])
def test_except_exception_does_not_swallow_the_pause(store: Store, flavor: Flavor, calls: Any, where: str) -> None:
    """``except Exception:`` around interrupt() (in a task or in the body) lets the pause through."""

    def guarded(question: str) -> Any:
        try:
            return interrupt(question)
        except Exception:
            calls.hit("swallowed")
            return "swallowed"

    guarded_task = flavor.task(name="guarded")(guarded)

    @flavor.entrypoint(checkpointer=store)
    def flow(q: str) -> Any:
        if where == "task":
            return (yield guarded_task(q))
        return guarded(q)

    out = flavor.invoke(flow, "publish?", thread_id="t")
    assert out == Interrupted((Interrupt("0.0" if where == "task" else "0", "publish?"),), "t")
    assert flow.get_state(thread_id="t").status == "interrupted"
    assert flavor.invoke(flow, Command(resume="yes"), thread_id="t") == "yes"
    assert calls["swallowed"] == 0


def test_a_custom_id_used_twice_among_pending_interrupts_is_an_error(store: Store, flavor: Flavor, calls: Any) -> None:
    """Two parallel interrupts with the same custom id make the invocation fail with a UsageError naming the id."""
    ask = asker(flavor, calls)

    @flavor.entrypoint(checkpointer=store)
    def flow(_: Any) -> Any:
        return (yield [ask("first", "same"), ask("second", "same")])

    with pytest.raises(UsageError, match="'same'"):
        flavor.invoke(flow, 0, thread_id="t")


def test_interrupt_outside_a_run_is_a_usage_error() -> None:
    """interrupt() with no run to pause raises UsageError at once."""
    with pytest.raises(UsageError, match="entrypoint"):
        interrupt("anyone there?")


# -- resuming with nothing to resume, or the wrong answers -------------------------------------------


def resumable_flow(f: Flavor, store: Store, calls: Any) -> Any:
    """Input "plain" completes, "fail" fails after a task, "one" pauses on "1.0", "two" on "1.0" and "2.0"."""
    fetch = counted(f, calls, "fetch")
    ask = asker(f, calls)

    @f.entrypoint(checkpointer=store)
    def flow(mode: str) -> Any:
        x = yield fetch(mode)
        if mode == "fail":
            raise Boom("failed")
        if mode == "one":
            return (yield ask(x))
        if mode == "two":
            return (yield [ask(x + "1"), ask(x + "2")])
        return x

    return flow


def _completed(f: Flavor, flow: Any) -> None:
    assert f.invoke(flow, "plain", thread_id="t") == "plain"


def _failed(f: Flavor, flow: Any) -> None:
    with pytest.raises(Boom):
        f.invoke(flow, "fail", thread_id="t")


def _completed_after_a_pause(f: Flavor, flow: Any) -> None:
    f.invoke(flow, "one", thread_id="t")
    assert f.invoke(flow, Command(resume="yes"), thread_id="t") == "yes"


NOTHING_PENDING = {"completed": _completed, "failed": _failed, "completed-after-a-pause": _completed_after_a_pause}


@pytest.mark.parametrize("history", list(NOTHING_PENDING))
@pytest.mark.parametrize("resume", ["yes", {"1.0": "yes"}], ids=["scalar", "id-map"])
def test_a_command_with_nothing_pending_raises_and_changes_nothing(
    store: Store, flavor: Flavor, calls: Any, journal: Any, history: str, resume: Any
) -> None:
    """Command on a thread that is not paused (finished, failed, never paused) raises ResumeError; nothing changes."""
    flow = resumable_flow(flavor, store, calls)
    NOTHING_PENDING[history](flavor, flow)
    before, ran = journal.snapshot(flow, "t"), calls.as_dict()
    with pytest.raises(ResumeError, match="'t'"):
        flavor.invoke(flow, Command(resume=resume), thread_id="t")
    assert journal.snapshot(flow, "t") == before
    assert calls.as_dict() == ran


def test_a_command_on_an_unknown_thread_raises(store: Store, flavor: Flavor, calls: Any, journal: Any) -> None:
    """Command on a thread the store does not know is a clear error and creates nothing."""
    flow = resumable_flow(flavor, store, calls)
    with pytest.raises(DurableError, match="'nobody'") as info:
        flavor.invoke(flow, Command(resume="yes"), thread_id="nobody")
    assert isinstance(info.value, ResumeError | ThreadNotFoundError)
    assert journal.snapshot(flow, "nobody") is None
    assert calls.total() == 0


BAD_COMMANDS = {
    "scalar": "yes",
    "none": None,
    "unknown-id": {"9.0": "yes"},
    "known-and-unknown-ids": {"1.0": "yes", "9.0": "yes"},
    "empty-dict": {},
    "list": ["yes", "no"],
}


@pytest.mark.parametrize("resume", list(BAD_COMMANDS.values()), ids=list(BAD_COMMANDS))
def test_a_command_that_is_not_an_id_map_with_several_pending_raises_and_changes_nothing(
    store: Store, flavor: Flavor, calls: Any, journal: Any, resume: Any
) -> None:
    """With several pending, a scalar or a map naming unknown ids raises ResumeError; the pause stands as it was."""
    flow = resumable_flow(flavor, store, calls)
    paused = flavor.invoke(flow, "two", thread_id="t")
    assert paused.ids == ("1.0", "2.0")
    before, ran = journal.snapshot(flow, "t"), calls.as_dict()
    with pytest.raises(ResumeError, match=r"'1\.0'"):
        flavor.invoke(flow, Command(resume=resume), thread_id="t")
    assert journal.snapshot(flow, "t") == before
    assert flow.get_state(thread_id="t").interrupts == paused.interrupts
    assert calls.as_dict() == ran
    # The thread is still resumable as it was.
    assert flavor.invoke(flow, Command(resume={"1.0": "a", "2.0": "b"}), thread_id="t") == ["a", "b"]


def test_new_input_on_a_paused_thread_raises_and_none_returns_the_same_pause(
    store: Store, flavor: Flavor, calls: Any, journal: Any
) -> None:
    """New input on a paused thread raises UnfinishedRunError; None returns the same Interrupted; nothing runs."""
    flow = resumable_flow(flavor, store, calls)
    paused = flavor.invoke(flow, "two", thread_id="t")
    before, ran = journal.snapshot(flow, "t"), calls.as_dict()

    with pytest.raises(UnfinishedRunError, match="'t'") as info:
        flavor.invoke(flow, "plain", thread_id="t")
    assert info.value.status == "interrupted"
    for _ in range(2):
        assert flavor.invoke(flow, None, thread_id="t") == paused
    assert journal.snapshot(flow, "t") == before
    assert flow.get_state(thread_id="t").interrupts == paused.interrupts
    assert calls.as_dict() == ran


# -- sub-entrypoints and durability modes --------------------------------------------------------------


@pytest.mark.parametrize(("where", "id"), [("task", "1.1.0"), ("body", "1.1")])
def test_an_interrupt_in_a_sub_entrypoint_pauses_the_caller(
    store: Store, flavor: Flavor, calls: Any, where: str, id: str
) -> None:
    """An interrupt in a sub-entrypoint (its task or its body) pauses the outer run; the resume re-runs nothing done."""
    prepare = counted(flavor, calls, "prepare", lambda x: x + 1)
    search = counted(flavor, calls, "search", lambda x: x * 10)
    publish = counted(flavor, calls, "publish", lambda x: f"published {x}")
    ask = asker(flavor, calls)

    @flavor.entrypoint(checkpointer=MemoryStore(), name="inner")
    def inner(x: int) -> Any:
        found = yield search(x)
        verdict = (yield ask(found)) if where == "task" else interrupt(found)
        return (found, verdict)

    @flavor.entrypoint(checkpointer=store, name="outer")
    def outer(x: int) -> Any:
        a = yield prepare(x)
        b = yield flavor.sub(inner, a)
        return (yield publish(b))

    out = flavor.invoke(outer, 1, thread_id="t")
    assert out == Interrupted((Interrupt(id, 20),), "t")
    assert outer.get_state(thread_id="t").status == "interrupted"
    assert flavor.invoke(outer, Command(resume="approved"), thread_id="t") == "published (20, 'approved')"
    expected = {"prepare": 1, "search": 1, "publish": 1}
    if where == "task":
        expected["ask"] = 2
    assert calls.as_dict() == expected
    assert answers(outer, "t") == [(id, "interrupt", "answer", "approved")]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_pausing_journals_everything_finished_before_the_pause(
    store: Store, flavor: Flavor, calls: Any, durability: str
) -> None:
    """In every durability mode, a pause journals the finished tasks and children: the resume does not re-run them."""
    fetch = counted(flavor, calls, "fetch", lambda i: f"doc{i}")
    draft = counted(flavor, calls, "draft", lambda d: f"draft of {d}")

    @flavor.task(name="review")
    def review(docs: list[str]) -> Any:
        calls.hit("review")
        d = yield draft(docs)
        return interrupt(d)

    @flavor.entrypoint(checkpointer=store)
    def flow(n: int) -> Any:
        docs = yield [fetch(i) for i in range(n)]
        verdict = yield review(docs)
        return (docs, verdict)

    out = flavor.invoke(flow, 3, thread_id="t", durability=durability)
    assert out == Interrupted((Interrupt("3.1", "draft of ['doc0', 'doc1', 'doc2']"),), "t")
    entries = flow.get_state(thread_id="t").entries
    assert sorted((e.key, e.task, e.status) for e in entries) == [
        ("0", "fetch", "ok"),
        ("1", "fetch", "ok"),
        ("2", "fetch", "ok"),
        ("3.0", "draft", "ok"),
    ]
    result = flavor.invoke(flow, Command(resume="ok"), thread_id="t", durability=durability)
    assert result == (["doc0", "doc1", "doc2"], "ok")
    assert calls.as_dict() == {"fetch": 3, "draft": 1, "review": 2}
