"""`stream` and `astream`: a run's events as it goes, in the "updates", "custom" and "values" modes
(the other modes, sub-entrypoints and ``version="v2"`` are in ``test_stream_modes.py``).

Every test runs with both iterators (``how``: ``stream`` and ``astream``) on sync and async entrypoints
(``flavor``) and on both stores.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import Command, ConfigurationError, Interrupt, Interrupted, Store, ThreadNotFoundError, get_stream_writer
from durable import interrupt as ask_human

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


@pytest.fixture(params=["stream", "astream"])
def how(request: pytest.FixtureRequest) -> str:
    """Which iterator a test consumes: ``ep.stream(...)`` or ``ep.astream(...)`` (in ``asyncio.run``)."""
    return request.param  # type: ignore[no-any-return]


def collect(how: str, ep: Any, input: Any, **kwargs: Any) -> list[Any]:
    """Every event of ``ep.stream(input, **kwargs)`` (or ``astream``), in order."""
    events, error = collect_until_error(how, ep, input, **kwargs)
    if error is not None:
        raise error
    return events


def collect_until_error(how: str, ep: Any, input: Any, **kwargs: Any) -> tuple[list[Any], BaseException | None]:
    """The events delivered before the iterator raised, and what it raised (``None`` if it ended)."""
    events: list[Any] = []
    if how == "stream":
        try:
            for event in ep.stream(input, **kwargs):
                events.append(event)
        except Exception as exc:
            return events, exc
        return events, None

    async def consume() -> BaseException | None:
        try:
            async for event in ep.astream(input, **kwargs):
                events.append(event)
        except Exception as exc:
            return exc
        return None

    return events, asyncio.run(consume())


def review_flow(f: Flavor, store: Store, calls: Any) -> Any:
    """fetch(x) -> interrupt({"doc": ...}) -> publish(answer): pauses on id "1"."""

    @f.task(name="fetch")
    def fetch(x: int) -> str:
        calls.hit("fetch")
        return f"doc{x}"

    @f.task(name="publish")
    def publish(doc: str, verdict: str) -> str:
        calls.hit("publish")
        return f"{doc} {verdict}"

    @f.entrypoint(checkpointer=store, name="review")
    def review(x: int) -> Any:
        doc = yield fetch(x)
        verdict = ask_human({"doc": doc})
        return (yield publish(doc, verdict))

    return review


PAUSE = Interrupted((Interrupt("1", {"doc": "doc1"}),), "t")


def test_updates_yield_each_task_then_the_entrypoint_value(how: str, store: Store, flavor: Flavor) -> None:
    """The "updates" mode (the default) yields {task: result} as each task finishes, then {entrypoint: value}."""

    @flavor.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    @flavor.task(name="name")
    def name(x: int) -> str:
        return f"n{x}"

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        a = yield double(x)
        b = yield double(a)
        return (yield name(b))

    assert collect(how, flow, 1, thread_id="t") == [{"double": 2}, {"double": 4}, {"name": "n4"}, {"flow": "n4"}]
    assert flow.get_state(thread_id="t").output == "n4"


def test_updates_of_parallel_tasks_come_once_each(how: str, store: Store, flavor: Flavor) -> None:
    """Parallel tasks each yield their update once (in any order), before the entrypoint's value."""

    @flavor.task(name="square")
    def square(x: int) -> int:
        return x * x

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(n: int) -> Any:
        return sum((yield [square(i) for i in range(n)]))

    events = collect(how, flow, 6, thread_id="t", stream_mode="updates")
    assert events[-1] == {"flow": 55}
    assert sorted(e["square"] for e in events[:-1]) == [0, 1, 4, 9, 16, 25]


def test_a_pause_yields_the_interrupts_and_the_resume_skips_replayed_tasks(
    how: str, store: Store, flavor: Flavor, calls: Any
) -> None:
    """A pause yields {"__interrupt__": (Interrupt, ...)}; the resume yields only fresh tasks, then the value."""
    review = review_flow(flavor, store, calls)
    assert collect(how, review, 1, thread_id="t") == [{"fetch": "doc1"}, {"__interrupt__": PAUSE.interrupts}]
    assert review.get_state(thread_id="t").status == "interrupted"
    resumed = collect(how, review, Command(resume="ok"), thread_id="t")
    assert resumed == [{"publish": "doc1 ok"}, {"review": "doc1 ok"}]
    assert calls.as_dict() == {"fetch": 1, "publish": 1}


def test_replayed_true_also_yields_the_replayed_tasks(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """With replayed=True, the tasks replayed from the journal are yielded too (their recorded results)."""
    review = review_flow(flavor, store, calls)
    collect(how, review, 1, thread_id="t")
    resumed = collect(how, review, Command(resume="ok"), thread_id="t", replayed=True)
    assert resumed == [{"fetch": "doc1"}, {"publish": "doc1 ok"}, {"review": "doc1 ok"}]
    assert calls.as_dict() == {"fetch": 1, "publish": 1}


def test_streaming_none_on_a_paused_thread_yields_the_same_pause_and_runs_nothing(
    how: str, store: Store, flavor: Flavor, calls: Any
) -> None:
    """Streaming None on a paused thread yields its pending interrupts ("updates"), or the values it would resume
    from and its Interrupted ("values")."""
    review = review_flow(flavor, store, calls)
    collect(how, review, 1, thread_id="t")
    assert collect(how, review, None, thread_id="t") == [{"__interrupt__": PAUSE.interrupts}]
    assert collect(how, review, None, thread_id="t", stream_mode="values") == [None, PAUSE]
    assert calls.as_dict() == {"fetch": 1}


def test_values_yields_exactly_what_invoke_returns(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """The "values" mode yields what invoke returns: the Interrupted when the run pauses, the run's value when it
    finishes; a resume first yields the values it resumes from (None on a thread's first run), as LangGraph does."""
    review = review_flow(flavor, store, calls)
    assert collect(how, review, 1, thread_id="t", stream_mode="values") == [PAUSE]
    assert flavor.invoke(review, None, thread_id="t") == PAUSE
    final = collect(how, review, Command(resume="ok"), thread_id="t", stream_mode="values")
    assert final == [None, "doc1 ok"]
    assert flavor.invoke(review, None, thread_id="t") == "doc1 ok"
    # A finished thread streamed with None yields its stored value; nothing runs.
    assert collect(how, review, None, thread_id="t", stream_mode="values") == ["doc1 ok"]
    assert calls.as_dict() == {"fetch": 1, "publish": 1}


def test_custom_yields_what_tasks_and_the_body_send(how: str, store: Store, flavor: Flavor) -> None:
    """The "custom" mode yields what get_stream_writer() sent, from the body and from tasks (nested too), in order."""

    @flavor.task(name="child")
    def child(x: int) -> int:
        get_stream_writer()(("child", x))
        return x + 1

    @flavor.task(name="work")
    def work(x: int) -> Any:
        write = get_stream_writer()
        write({"progress": 0})
        y = yield child(x)
        write({"progress": 100})
        return y

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        write = get_stream_writer()
        write("start")
        y = yield work(x)
        write(f"end {y}")
        return y

    events = collect(how, flow, 1, thread_id="t", stream_mode="custom")
    assert events == ["start", {"progress": 0}, ("child", 1), {"progress": 100}, "end 2"]
    # Outside a stream the writer drops what it is given: invoke runs the same code.
    assert flavor.invoke(flow, 5, thread_id="plain") == 6


def test_custom_events_from_parallel_tasks_all_arrive(how: str, store: Store, flavor: Flavor) -> None:
    """Custom events sent by parallel tasks (in pool threads or on the loop) all reach the consumer."""

    @flavor.task(name="work")
    def work(i: int) -> int:
        get_stream_writer()(i)
        return i

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(n: int) -> Any:
        return (yield [work(i) for i in range(n)])

    assert sorted(collect(how, flow, 20, thread_id="t", stream_mode="custom")) == list(range(20))


def test_the_stream_writer_outside_a_run_does_nothing() -> None:
    """get_stream_writer() outside any run returns a writer that drops its events."""
    get_stream_writer()("nobody listens")


def test_a_list_of_modes_yields_mode_and_chunk_pairs(how: str, store: Store, flavor: Flavor) -> None:
    """A list of modes yields (mode, chunk) pairs of every mode asked for, in the order they happened."""

    @flavor.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        get_stream_writer()("start")
        y = yield double(x)
        get_stream_writer()("end")
        return y + 1

    events = collect(how, flow, 1, thread_id="t", stream_mode=["updates", "custom", "values"])
    assert events == [
        ("custom", "start"),
        ("updates", {"double": 2}),
        ("custom", "end"),
        ("updates", {"flow": 3}),
        ("values", 3),
    ]
    assert collect(how, flow, 2, thread_id="u", stream_mode=["values"]) == [("values", 5)]
    assert collect(how, flow, 3, thread_id="v", stream_mode=["custom", "values"]) == [
        ("custom", "start"),
        ("custom", "end"),
        ("values", 7),
    ]


def test_a_list_of_modes_on_a_pause(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """On a pause, "updates" yields the interrupts and "values" the Interrupted, as pairs."""
    review = review_flow(flavor, store, calls)
    events = collect(how, review, 1, thread_id="t", stream_mode=["values", "updates"])
    assert events == [
        ("updates", {"fetch": "doc1"}),
        ("updates", {"__interrupt__": PAUSE.interrupts}),
        ("values", PAUSE),
    ]


@pytest.mark.parametrize("mode", ["bogus", [], ["updates", "bogus"], "message"], ids=repr)
def test_a_bad_stream_mode_is_a_configuration_error(how: str, store: Store, flavor: Flavor, mode: Any) -> None:
    """An unknown mode (or an empty list) raises ConfigurationError and runs nothing."""
    ran: list[int] = []

    @flavor.task(name="double")
    def double(x: int) -> int:
        ran.append(x)
        return 2 * x

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        return (yield double(x))

    with pytest.raises(ConfigurationError, match="stream_mode"):
        collect(how, flow, 1, thread_id="t", stream_mode=mode)
    assert ran == []
    with pytest.raises(ThreadNotFoundError):
        flow.get_state(thread_id="t")


def test_an_exception_in_the_run_is_raised_by_the_iterator(how: str, store: Store, flavor: Flavor) -> None:
    """The run's exception is raised by the iterator after the events before it; resuming streams the rest."""
    down = [True]

    @flavor.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    @flavor.task(name="flaky")
    def flaky(x: int) -> int:
        if down[0]:
            raise Boom(f"flaky down at {x}")
        return x + 1

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        y = yield double(x)
        return (yield flaky(y))

    events, error = collect_until_error(how, flow, 1, thread_id="t")
    assert events == [{"double": 2}]
    assert isinstance(error, Boom) and str(error) == "flaky down at 2"
    assert flow.get_state(thread_id="t").status == "failed"

    down[0] = False
    assert collect(how, flow, None, thread_id="t") == [{"flaky": 3}, {"flow": 3}]


def test_a_library_error_is_raised_by_the_iterator(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """Errors of the invocation itself (new input on a paused thread) come out of the iterator too."""
    from durable import UnfinishedRunError

    review = review_flow(flavor, store, calls)
    collect(how, review, 1, thread_id="t")
    events, error = collect_until_error(how, review, 2, thread_id="t")
    assert events == []
    assert isinstance(error, UnfinishedRunError)
