"""Questions for people: answers checked against a ``response_schema``, attributed with ``Command(by=)``, and
deadlines (``timeout=``, ``default=``) that workers carry; `Threads.answer` answering without the workflow's code.

Every test runs on every store (``store``) and, where the body matters, on sync and async entrypoints (``flavor``).
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, field_validator
from typing_extensions import TypedDict

from durable import (
    AnswerRejectedError,
    Command,
    ConfigurationError,
    Interrupted,
    InterruptTimeoutError,
    ResumeError,
    Store,
    Threads,
    UsageError,
    Worker,
    interrupt,
)

Flavor = Any


class Trade(BaseModel):
    approve: bool
    limit: int = 0

    @field_validator("limit")
    @classmethod
    def _below_cap(cls, v: int) -> int:  # a check JSON Schema cannot express: only the type makes it
        if v == 13:
            raise ValueError("13 is unlucky")
        return v


@dataclasses.dataclass
class Note:
    text: str


class Review(TypedDict):
    score: int


def _entries(ep: Any, thread_id: str) -> list[Any]:
    return [e for e in ep.get_state(thread_id=thread_id).entries if e.status == "answer"]


# -- checked answers ------------------------------------------------------------------------------------


def test_an_answer_that_does_not_fit_is_refused_before_anything_is_journaled(store: Store, flavor: Flavor) -> None:
    """A JSON Schema dict: a wrong answer raises AnswerRejectedError naming the field; nothing is written and
    the question stays pending; a right one is returned as given."""

    @flavor.entrypoint(checkpointer=store, name="ask")
    def ask(_: Any) -> Any:
        return interrupt("how many?", response_schema={"type": "object", "properties": {"n": {"type": "integer"}},
                                                         "required": ["n"]})  # fmt: skip
        yield  # a generator body, for the flavor driver

    asked = flavor.invoke(ask, 1, thread_id="t")
    assert asked.interrupts[0].response_schema["required"] == ["n"]
    with pytest.raises(AnswerRejectedError) as refused:
        flavor.invoke(ask, Command(resume={"n": "three"}), thread_id="t")
    assert refused.value.errors == [{"interrupt": "0", "path": "n", "message": "'three' is not of type 'integer'"}]
    state = ask.get_state(thread_id="t")
    assert (state.status, [e.key for e in state.entries], [i.id for i in state.interrupts]) == (
        "interrupted",
        [],
        ["0"],
    )
    assert flavor.invoke(ask, Command(resume={"n": 3}), thread_id="t") == {"n": 3}


def test_a_typed_schema_turns_the_answer_into_an_instance(store: Store, flavor: Flavor) -> None:
    """Pydantic models, dataclasses and TypedDicts: the pending Interrupt shows their JSON Schema, the answer
    comes back as the type (LangGraph's behaviour), and a model instance is a valid answer too."""

    @flavor.entrypoint(checkpointer=store, name="typed")
    def typed(_: Any) -> Any:
        trade = interrupt("trade?", response_schema=Trade)
        note = interrupt("note?", response_schema=Note)
        review = interrupt("score?", response_schema=Review)
        return [trade, note, review]
        yield

    out = flavor.invoke(typed, 1, thread_id="t")
    assert out.interrupts[0].response_schema["title"] == "Trade"
    out = flavor.invoke(typed, Command(resume={"approve": True, "limit": 5}), thread_id="t")
    assert out.interrupts[0].response_schema["title"] == "Note"
    with pytest.raises(AnswerRejectedError, match="text"):
        flavor.invoke(typed, Command(resume={}), thread_id="t")
    flavor.invoke(typed, Command(resume=Note("fine")), thread_id="t")
    assert flavor.invoke(typed, Command(resume={"score": 4}), thread_id="t") == [
        Trade(approve=True, limit=5), Note("fine"), {"score": 4}
    ]  # fmt: skip


def test_a_check_only_the_type_makes_asks_the_question_again(store: Store, flavor: Flavor, calls: Any) -> None:
    """A Pydantic validator refuses an answer the JSON Schema let through: the resume raises AnswerRejectedError
    with its message, the question is pending again (a None resume runs nothing), and a good answer carries on."""

    def _step() -> Any:
        calls.hit("step")
        return "done"
        yield

    step = flavor.task(name="step")(_step)

    @flavor.entrypoint(checkpointer=store, name="guarded")
    def guarded(_: Any) -> Any:
        yield step()
        trade = interrupt("trade?", response_schema=Trade)
        return trade.limit

    flavor.invoke(guarded, 1, thread_id="t")
    with pytest.raises(AnswerRejectedError, match="13 is unlucky"):
        flavor.invoke(guarded, Command(resume={"approve": True, "limit": 13}), thread_id="t")
    again = flavor.invoke(guarded, None, thread_id="t")
    assert isinstance(again, Interrupted) and again.interrupts[0].id == "1"
    assert [e["path"] for e in again.interrupts[0].errors] == ["limit"]
    assert guarded.get_state(thread_id="t").interrupts[0].id == "1"
    assert flavor.invoke(guarded, Command(resume={"approve": True, "limit": 7}), thread_id="t") == 7
    assert calls["step"] == 1


def test_one_bad_answer_among_several_refuses_them_all(store: Store) -> None:
    """An id map answering two questions, one of them wrongly: neither is journaled."""

    from durable import entrypoint, task

    @task
    def ask(name: str) -> Any:
        return interrupt(name, id=name, response_schema={"type": "boolean"})

    @entrypoint(checkpointer=store)
    def both(_: Any) -> Any:
        return [f.result() for f in (ask("a"), ask("b"))]

    assert set(both.invoke(1, thread_id="t").ids) == {"a", "b"}
    with pytest.raises(AnswerRejectedError) as refused:
        both.invoke(Command(resume={"a": True, "b": "yes"}), thread_id="t")
    assert [e["interrupt"] for e in refused.value.errors] == ["b"]
    assert _entries(both, "t") == []
    assert both.invoke(Command(resume={"a": True, "b": False}), thread_id="t") == [True, False]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"response_schema": 42}, "response_schema=42"),
        ({"response_schema": {"type": "nope"}}, "not a valid JSON Schema"),
        ({"default": 1}, "give timeout= too"),
        ({"timeout": 0}, "positive number"),
        ({"timeout": "soon"}, "positive number"),
    ],
)
def test_bad_options_are_a_usage_error(store: Store, options: dict[str, Any], match: str) -> None:
    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def bad(_: Any) -> Any:
        return interrupt("q", **options)

    with pytest.raises(UsageError, match=match):
        bad.invoke(1, thread_id="t")


# -- who answered ---------------------------------------------------------------------------------------


def test_who_answered_and_when_is_journaled(store: Store, flavor: Flavor) -> None:
    """Command(by=) is recorded with the answer, with the time; get_state and Threads show it."""

    @flavor.entrypoint(checkpointer=store, name="attributed")
    def attributed(_: Any) -> Any:
        return [interrupt("first?"), interrupt("second?")]
        yield

    flavor.invoke(attributed, 1, thread_id="t")
    before = time.time()
    flavor.invoke(attributed, Command(resume="yes", by="alice"), thread_id="t")
    assert flavor.invoke(attributed, Command(resume="no"), thread_id="t") == ["yes", "no"]
    first, second = _entries(attributed, "t")
    assert (first.answered_by, second.answered_by, first.timed_out) == ("alice", None, False)
    assert first.answered_at is not None and before <= first.answered_at <= time.time()
    seen = [e.answered_by for e in Threads(store).state("t").entries if e.status == "answer"]
    assert seen == ["alice", None]


@pytest.mark.parametrize("by", ["", "   ", 7, "x" * 201])
def test_a_bad_by_is_refused(store: Store, by: Any) -> None:
    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def one(_: Any) -> Any:
        return interrupt("q")

    one.invoke(1, thread_id="t")
    with pytest.raises(UsageError, match="by="):
        one.invoke(Command(resume=1, by=by), thread_id="t")
    assert _entries(one, "t") == []


# -- deadlines ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_question_past_its_deadline_takes_its_default(store: Store, flavor: Flavor) -> None:
    """Before the deadline a None resume returns the same question (the same deadline); after it, the run goes on
    with the default, journaled as a timeout."""

    @flavor.entrypoint(checkpointer=store, name="timed")
    def timed(_: Any) -> Any:
        return interrupt("approve?", timeout=timedelta(seconds=0.3), default="rejected")
        yield

    first = flavor.invoke(timed, 1, thread_id="t")
    deadline = first.interrupts[0].deadline
    assert deadline is not None and 0 < deadline - time.time() <= 0.3
    again = flavor.invoke(timed, None, thread_id="t")
    assert again.interrupts[0].deadline == deadline
    time.sleep(max(0.0, deadline - time.time()) + 0.05)
    assert flavor.invoke(timed, None, thread_id="t") == "rejected"
    (entry,) = _entries(timed, "t")
    assert (entry.result, entry.timed_out, entry.answered_by) == ("rejected", True, None)


def test_a_question_past_its_deadline_without_a_default_raises_where_it_was_asked(store: Store, flavor: Flavor) -> None:
    """No default: InterruptTimeoutError at the interrupt() call, which the body may catch."""

    @flavor.entrypoint(checkpointer=store, name="strict")
    def strict(_: Any) -> Any:
        try:
            return interrupt("approve?", timeout=0.05)
        except InterruptTimeoutError as exc:
            return f"escalated: {exc.interrupt_id}"
        yield

    flavor.invoke(strict, 1, thread_id="t")
    time.sleep(0.1)
    assert flavor.invoke(strict, None, thread_id="t") == "escalated: 0"


def test_an_answer_in_time_beats_the_deadline_and_deadlines_survive_replays(store: Store) -> None:
    """Two questions with deadlines: answering one re-asks the other with its first deadline, not a new one."""
    from durable import entrypoint, task

    @task
    def ask(name: str) -> Any:
        return interrupt(name, id=name, timeout=3600, default="late")

    @entrypoint(checkpointer=store)
    def pair(_: Any) -> Any:
        return [f.result() for f in (ask("a"), ask("b"))]

    out = pair.invoke(1, thread_id="t")
    deadlines = {i.id: i.deadline for i in out.interrupts}
    again = pair.invoke(Command(resume={"a": "now"}), thread_id="t")
    assert {i.id: i.deadline for i in again.interrupts} == {"b": deadlines["b"]}
    assert pair.invoke(Command(resume={"b": "also"}), thread_id="t") == ["now", "also"]
    assert [e.timed_out for e in _entries(pair, "t")] == [False, False]


def test_a_worker_carries_an_overdue_question(store: Store) -> None:
    """A paused run past its deadline is due to a worker, as a durable sleep is; it is listed as overdue first."""
    from durable import entrypoint
    from durable.testing import FakeClock

    @entrypoint(checkpointer=store)
    def waits(_: Any) -> Any:
        return ["carried", interrupt("approve?", timeout=60, default=False)]

    worker = Worker([waits], checkpointer=store, poll_interval=0.05)
    with FakeClock() as clock:
        waits.invoke(1, thread_id="t")
        assert worker.run(until_idle=True).total == 0  # not due yet
        clock.advance(61)
        assert [(t, i.id) for t, i in Threads(store).interrupts(overdue=True)] == [("t", "0")]
        assert worker.run(until_idle=True).completed == 1
    assert waits.get_state(thread_id="t").output == ["carried", False]
    assert Threads(store).interrupts(overdue=True) == []


# -- answering without the code -------------------------------------------------------------------------------


def test_threads_answer_journals_and_a_worker_carries_the_run_on(store: Store, calls: Any) -> None:
    """Threads.answer checks, journals with who answered, and leaves the run due; the question leaves the inbox;
    a worker finishes the run without running the finished task again."""
    from durable import entrypoint, task

    @task
    def draft() -> str:
        calls.hit("draft")
        return "v1"

    @entrypoint(checkpointer=store)
    def approval(_: Any) -> Any:
        text = draft().result()
        trade = interrupt({"draft": text}, response_schema=Trade)
        return [text, trade.approve]

    approval.invoke(1, thread_id="t")
    threads = Threads(store)
    with pytest.raises(AnswerRejectedError, match="approve"):
        threads.answer("t", {"limit": 1})
    assert threads.answer("t", {"approve": True}, by="carol") == ("1",)
    assert threads.interrupts() == []
    with pytest.raises(ResumeError):  # answered already: nothing pending to answer
        threads.answer("t", {"approve": False})
    assert Worker([approval], checkpointer=store).run(until_idle=True).completed == 1
    state = approval.get_state(thread_id="t")
    assert (state.output, calls["draft"]) == (["v1", True], 1)
    assert [(e.answered_by, e.result) for e in state.entries if e.status == "answer"] == [("carol", {"approve": True})]


def test_threads_answer_is_carried_by_the_next_invoke_too(store: Store) -> None:
    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def simple(_: Any) -> Any:
        return interrupt("q")

    simple.invoke(1, thread_id="t")
    Threads(store).answer("t", "given", by="ops")
    assert simple.invoke(None, thread_id="t") == "given"


def test_threads_answer_does_not_unpickle_questions_nothing_vouches_for(store: Store) -> None:
    """A question that is not plain data is journaled as a pickle: an unsigned one is not read to check an answer
    (unless unsafe_unpickle=True, for a journal trusted as code)."""
    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def odd(_: Any) -> Any:
        return interrupt({"choices": {1, 2}})  # a set: not JSON

    odd.invoke(1, thread_id="t")
    with pytest.raises(ConfigurationError, match="unsafe_unpickle"):
        Threads(store).answer("t", 1)
    assert Threads(store, unsafe_unpickle=True).answer("t", 1) == ("0",)
    assert odd.invoke(None, thread_id="t") == 1


# -- the edges a review found -------------------------------------------------------------------------------


def test_deadlines_read_durable_clock_so_a_fake_clock_runs_a_week_in_a_moment(store: Store, calls: Any) -> None:
    """A deadline is on the clock durable sleeps use: under FakeClock, advancing past it lets a worker answer the
    question with its default, once (no loop between a worker that finds it due and an engine that does not)."""
    from durable import entrypoint
    from durable.testing import FakeClock

    @entrypoint(checkpointer=store)
    def weekly(_: Any) -> Any:
        calls.hit("body")
        return interrupt("sign off?", timeout=timedelta(days=7), default="auto-approved")

    with FakeClock() as clock:
        asked = weekly.invoke(1, thread_id="t")
        assert asked.interrupts[0].deadline == clock.now + 7 * 86400
        clock.advance(7 * 86400 + 1)
        assert Worker([weekly], checkpointer=store).run(until_idle=True).completed == 1
    assert (weekly.get_state(thread_id="t").output, calls["body"]) == ("auto-approved", 2)


def test_an_answer_waiting_to_be_carried_is_not_replaced_by_a_later_command(store: Store) -> None:
    """Alice answers through Threads.answer; Bob's Command before any worker ran is refused, nothing recorded; the
    run takes Alice's answer."""
    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def q(_: Any) -> Any:
        return interrupt("ship?")

    q.invoke(1, thread_id="t")
    Threads(store).answer("t", "yes", by="alice")
    with pytest.raises(ResumeError, match="already have an answer waiting"):
        q.invoke(Command(resume="no", by="bob"), thread_id="t")
    assert q.invoke(None, thread_id="t") == "yes"
    assert [(e.result, e.answered_by) for e in _entries(q, "t")] == [("yes", "alice")]


def test_what_is_checked_is_what_is_journaled(store: Store) -> None:
    """An answer that is not JSON data (a date) is checked, journaled and returned as the JSON the schema sees."""
    import datetime

    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def when(_: Any) -> Any:
        return interrupt("when?", response_schema={"type": "string", "format": "date"})

    when.invoke(1, thread_id="t")
    assert when.invoke(Command(resume=datetime.date(2020, 1, 2)), thread_id="t") == "2020-01-02"


def test_threads_answer_keeps_the_store_size_limit(tmp_path: Any) -> None:
    from durable import SerializationError, SQLiteStore, entrypoint

    store = SQLiteStore(tmp_path / "small.db", max_result_bytes=1000)

    @entrypoint(checkpointer=store)
    def big(_: Any) -> Any:
        return interrupt("essay?")

    big.invoke(1, thread_id="t")
    with pytest.raises(SerializationError):
        Threads(store).answer("t", "x" * 5000)
    assert _entries(big, "t") == []


def test_a_serializer_of_the_applications_own_is_used_for_questions_and_answers(store: Store) -> None:
    """Only the default pickle serializer's questions and answers are written as JSON; an application's own
    serializer (one that encrypts, say) writes them too."""
    from durable import PickleSerializer, entrypoint

    class Wrapped:
        inner = PickleSerializer()

        def dumps(self, value: Any) -> bytes:
            return b"X" + self.inner.dumps(value)

        def loads(self, blob: bytes) -> Any:
            assert blob[:1] == b"X", blob[:8]
            return self.inner.loads(blob[1:])

        def stamp(self) -> str:
            return "wrapped 1"

        def incompatible(self, stamp: str) -> str | None:
            return None if stamp == "wrapped 1" else "another serializer"

    @entrypoint(checkpointer=store, serializer=Wrapped())
    def own(_: Any) -> Any:
        return interrupt({"q": 1})

    own.invoke(1, thread_id="t")
    thread = store.get_thread("t")
    assert thread is not None and thread.run is not None and thread.run.interrupts is not None
    assert thread.run.interrupts[:1] == b"X"
    assert own.invoke(Command(resume="a"), thread_id="t") == "a"


def test_a_due_paused_run_a_worker_lets_go_is_still_paused_and_due(store: Store) -> None:
    """Reserving a due paused run does not mark it running: let go without being carried, it stays paused, its
    question answered and due, for the next worker."""
    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def q(_: Any) -> Any:
        return interrupt("ship?")

    q.invoke(1, thread_id="t")
    Threads(store).answer("t", "yes")
    (lease,) = store.reserve("someone", [q.name], 5)
    store.release(lease)
    thread = store.get_thread("t")
    assert thread is not None and thread.run is not None
    assert (thread.run.status, thread.run.wake_at is not None, thread.owner) == ("interrupted", True, None)
    assert Worker([q], checkpointer=store).run(until_idle=True).completed == 1


def test_a_refusal_only_the_type_makes_is_shown_on_the_question_asked_again(store: Store) -> None:
    """Answered without the code (the console's way), a worker's run meets the Pydantic validator: the question is
    pending again, and says why the answer was refused, for whoever answers next."""
    from durable import entrypoint

    @entrypoint(checkpointer=store)
    def guarded(_: Any) -> Any:
        return interrupt("trade?", response_schema=Trade).limit

    guarded.invoke(1, thread_id="t")
    Threads(store).answer("t", {"approve": True, "limit": 13}, by="eve")
    assert Worker([guarded], checkpointer=store).run(until_idle=True).interrupted == 1
    ((thread_id, asked),) = Threads(store).interrupts()
    assert (thread_id, [e["message"] for e in asked.errors]) == ("t", ["Value error, 13 is unlucky"])
    Threads(store).answer("t", {"approve": True, "limit": 12}, by="eve")
    assert Worker([guarded], checkpointer=store).run(until_idle=True).completed == 1
    assert guarded.get_state(thread_id="t").output == 12
