"""`stream` and `astream` in LangGraph's other modes ("tasks", "checkpoints", "debug", "messages"), with
``subgraphs=True`` (sub-entrypoints' events and namespaces) and ``version="v2"`` parts.

Every test runs with both iterators (``how``) on sync and async entrypoints (``flavor``) and on every store. Where
LangGraph is installed, the same program (written once, run with durable's and with LangGraph's decorators)
streams the same chunks on both, once ids, timestamps and checkpoint ids are named by order of appearance.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import re
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from durable import Cache, CachePolicy, Command, ConfigurationError, RetryPolicy, Store, get_stream_writer
from durable import interrupt as ask_human

Flavor = Any  # the `flavor` fixture from tests/conftest.py
PUSH = ("__pregel_push",)
START = ("__start__",)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Boom(Exception):
    pass


@pytest.fixture(params=["stream", "astream"])
def how(request: pytest.FixtureRequest) -> str:
    """Which iterator a test consumes: ``ep.stream(...)`` or ``ep.astream(...)`` (in ``asyncio.run``)."""
    return request.param  # type: ignore[no-any-return]


def collect(how: str, ep: Any, input: Any, **kwargs: Any) -> list[Any]:
    """The chunks of ``ep.stream``/``astream`` as plain data; an error ends it ("raised", ...)."""
    return collect_with(how, ep, input, Plain(), **kwargs)


def collect_with(how: str, ep: Any, input: Any, plain: Plain, **kwargs: Any) -> list[Any]:
    """`collect`, naming ids with ``plain`` (shared across a thread's invocations)."""
    out: list[Any] = []
    if how == "stream":
        try:
            for chunk in ep.stream(input, **kwargs):
                out.append(plain(chunk))
        except Exception as exc:
            out.append(("raised", type(exc).__name__, str(exc)))
        return out

    async def consume() -> None:
        try:
            async for chunk in ep.astream(input, **kwargs):
                out.append(plain(chunk))
        except Exception as exc:
            out.append(("raised", type(exc).__name__, str(exc)))

    asyncio.run(consume())
    return out


class Plain:
    """Chunks as plain data that compare across libraries: a UUID becomes ``<n>`` (by first appearance), a checkpoint
    id ``cp<n>``, a timestamp ``<ts>`` (once checked), an interrupt ``("interrupt", value)`` (its id in a chunk
    ``<interrupt>``), an exception ``(type, message)``, a message ``(type, content, id)``; ``lc_versions`` and
    ``ls_integration`` (each library's own name) are left out."""

    def __init__(self, checkpoint_ids: bool = True) -> None:
        self.names: dict[str, str] = {}
        self.checkpoint_ids = checkpoint_ids  # False: keep checkpoint ids as they are

    def name(self, found: str, prefix: str = "") -> str:
        return self.names.setdefault(prefix + found, f"{prefix or '<'}{len(self.names)}{'' if prefix else '>'}")

    def __call__(self, value: Any) -> Any:
        kind = type(value).__name__
        if kind == "Interrupt":
            return ("interrupt", self(value.value))
        if kind == "Interrupted":
            return {"__interrupt__": tuple(self(i) for i in value.interrupts)}
        if kind in ("AIMessageChunk", "AIMessage", "HumanMessage"):
            return (kind, value.content, self(value.id))
        if isinstance(value, BaseException):
            return (type(value).__name__, str(value))
        if isinstance(value, dict):
            return {k: self._field(k, v, value) for k, v in value.items() if k not in ("lc_versions", "ls_integration")}
        if isinstance(value, list | tuple):
            return type(value)(self(v) for v in value)
        if isinstance(value, str) and UUID.search(value):
            return UUID.sub(lambda m: self.name(m.group()), value)
        return value

    def _field(self, key: str, value: Any, within: dict[str, Any]) -> Any:
        if key == "timestamp":
            datetime.fromisoformat(value)
            return "<ts>"
        if key == "checkpoint_id":
            return self.name(str(value), "cp") if self.checkpoint_ids else value
        if key == "id" and "response_schema" in within:
            return "<interrupt>"
        return self(value)


def steps_flow(f: Flavor, store: Store, calls: Any) -> Any:
    """double(x), then bad(...) raising Boom (caught), then (x == 1) interrupt({"q": ...}), then double(answer)."""

    @f.task(name="double")
    def double(x: int) -> int:
        calls.hit("double")
        return 2 * x

    @f.task(name="bad")
    def bad(x: int) -> int:
        calls.hit("bad")
        raise Boom(f"bad {x}")

    @f.entrypoint(checkpointer=store, name="wf")
    def wf(x: int) -> Any:
        a = yield double(x)
        with contextlib.suppress(Boom):
            yield bad(a)
        if x == 1:
            a = ask_human({"q": a})
        return (yield double(a))

    return wf


def start(id: str, name: str, input: Any, triggers: tuple[str, ...] = PUSH) -> dict[str, Any]:
    return {"id": id, "name": name, "input": input, "triggers": triggers}


def result(id: str, name: str, value: Any = None, error: Any = None, key: str = "__return__") -> dict[str, Any]:
    return {"id": id, "name": name, "error": error, "result": {} if error else {key: value}, "interrupts": []}


def paused(id: str, name: str, *questions: tuple[str, Any]) -> dict[str, Any]:
    interrupts = [{"value": value, "id": "<interrupt>", "response_schema": None} for _, value in questions]
    return {"id": id, "name": name, "error": None, "result": {}, "interrupts": interrupts}


def config(thread_id: str, checkpoint: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint}}


# -- "tasks" ----------------------------------------------------------------------------------------


def test_tasks_stream_each_start_and_result(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """The "tasks" mode yields the entrypoint's start, each task's start and result (or error), and its result."""
    wf = steps_flow(flavor, store, calls)
    assert collect(how, wf, 2, thread_id="t", stream_mode="tasks") == [
        start("<0>", "wf", 2, START),
        start("<1>", "double", ((2,), {})),
        result("<1>", "double", 4),
        start("<2>", "bad", ((4,), {})),
        result("<2>", "bad", error=("Boom", "bad 4")),
        start("<3>", "double", ((4,), {})),
        result("<3>", "double", 8),
        result("<0>", "wf", 8, key="__end__"),
    ]


def test_task_ids_are_the_same_on_a_resume_and_differ_across_threads(
    how: str, store: Store, flavor: Flavor, calls: Any
) -> None:
    """A call's id is a UUID of (thread, run, key): the same on a resume, different on another thread."""
    wf = steps_flow(flavor, store, calls)
    ids = lambda chunks: [c["id"] for c in chunks]  # noqa: E731
    first = ids(collect_raw(how, wf, 1, thread_id="t", stream_mode="tasks"))
    resumed = ids(collect_raw(how, wf, Command(resume=3), thread_id="t", stream_mode="tasks"))
    other = ids(collect_raw(how, wf, 1, thread_id="u", stream_mode="tasks"))
    assert all(uuid.UUID(i) for i in first + resumed + other)
    assert resumed[:4] == [first[0], first[1], first[3], first[3]]  # wf, double, bad (start and error)
    assert not set(first) & set(other)


def collect_raw(how: str, ep: Any, input: Any, **kwargs: Any) -> list[Any]:
    """The chunks as they are."""
    return collect_with(how, ep, input, lambda chunk: chunk, **kwargs)  # type: ignore[arg-type]


def test_tasks_on_a_pause_and_its_resume(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """A pause ends with the entrypoint's interrupts; a resume replays starts (a caught error with its result)."""
    wf = steps_flow(flavor, store, calls)
    plain = Plain()
    assert collect_with(how, wf, 1, plain, thread_id="t", stream_mode="tasks") == [
        start("<0>", "wf", 1, START),
        start("<1>", "double", ((1,), {})),
        result("<1>", "double", 2),
        start("<2>", "bad", ((2,), {})),
        result("<2>", "bad", error=("Boom", "bad 2")),
        paused("<0>", "wf", ("1", {"q": 2})),
    ]
    # Streaming None runs nothing: the entrypoint's start and pause again, not its replayed tasks (a difference).
    assert collect_with(how, wf, None, plain, thread_id="t", stream_mode="tasks") == [
        start("<0>", "wf", 1, START),
        paused("<0>", "wf", ("1", {"q": 2})),
    ]
    assert collect_with(how, wf, Command(resume=5), plain, thread_id="t", stream_mode="tasks") == [
        start("<0>", "wf", 1, START),
        start("<1>", "double", ((1,), {})),
        start("<2>", "bad", ((2,), {})),
        result("<2>", "bad", error=("Boom", "bad 2")),
        start("<3>", "double", ((5,), {})),
        result("<3>", "double", 10),
        result("<0>", "wf", 10, key="__end__"),
    ]
    assert calls.as_dict() == {"double": 2, "bad": 1}


def test_tasks_with_replayed_true_also_yield_replayed_results(
    how: str, store: Store, flavor: Flavor, calls: Any
) -> None:
    """With replayed=True a replayed task yields its recorded result too."""
    wf = steps_flow(flavor, store, calls)
    collect(how, wf, 1, thread_id="t")
    chunks = collect(how, wf, Command(resume=5), thread_id="t", stream_mode="tasks", replayed=True)
    assert chunks[1:4] == [
        start("<1>", "double", ((1,), {})),
        result("<1>", "double", 2),
        start("<2>", "bad", ((2,), {})),
    ]


def test_a_task_that_pauses_yields_no_result(how: str, store: Store, flavor: Flavor) -> None:
    """A task that calls interrupt() has a start and no result; on the resume it runs again, start to result."""

    @flavor.task(name="ask")
    def ask(x: int) -> Any:
        return ask_human({"x": x})

    @flavor.entrypoint(checkpointer=store, name="wf")
    def wf(x: int) -> Any:
        return (yield ask(x))

    plain = Plain()
    assert collect_with(how, wf, 7, plain, thread_id="t", stream_mode=["tasks", "updates"]) == [
        ("tasks", start("<0>", "wf", 7, START)),
        ("tasks", start("<1>", "ask", ((7,), {}))),
        ("updates", {"__interrupt__": (("interrupt", {"x": 7}),)}),
        ("tasks", paused("<0>", "wf", ("0.0", {"x": 7}))),
    ]
    assert collect_with(how, wf, Command(resume="yes"), plain, thread_id="t", stream_mode="tasks") == [
        start("<0>", "wf", 7, START),
        start("<1>", "ask", ((7,), {})),
        result("<1>", "ask", "yes"),
        result("<0>", "wf", "yes", key="__end__"),
    ]


def test_retries_yield_one_result_and_a_cache_hit_none(how: str, store: Store, flavor: Flavor) -> None:
    """A retried task yields one start and one result; a cache hit a start and a cached update, no result."""
    tries: list[int] = []

    @flavor.task(name="flaky", retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=False))
    def flaky(x: int) -> int:
        tries.append(x)
        if len(tries) % 3:
            raise ConnectionError("down")
        return x

    @flavor.task(name="cached", cache_policy=CachePolicy())
    def cached(x: int) -> int:
        return x + 1

    @flavor.entrypoint(checkpointer=store, name="wf", cache=Cache())
    def wf(x: int) -> Any:
        return (yield flaky((yield cached(x))))

    modes = ["tasks", "updates"]
    assert collect(how, wf, 1, thread_id="t", stream_mode=modes) == [
        ("tasks", start("<0>", "wf", 1, START)),
        ("tasks", start("<1>", "cached", ((1,), {}))),
        ("updates", {"cached": 2}),
        ("tasks", result("<1>", "cached", 2)),
        ("tasks", start("<2>", "flaky", ((2,), {}))),
        ("updates", {"flaky": 2}),
        ("tasks", result("<2>", "flaky", 2)),
        ("updates", {"wf": 2}),
        ("tasks", result("<0>", "wf", 2, key="__end__")),
    ]
    assert len(tries) == 3
    assert collect(how, wf, 1, thread_id="u", stream_mode=modes) == [
        ("tasks", start("<0>", "wf", 1, START)),
        ("tasks", start("<1>", "cached", ((1,), {}))),
        ("updates", {"cached": 2, "__metadata__": {"cached": True}}),
        ("tasks", start("<2>", "flaky", ((2,), {}))),
        ("updates", {"flaky": 2}),
        ("tasks", result("<2>", "flaky", 2)),
        ("updates", {"wf": 2}),
        ("tasks", result("<0>", "wf", 2, key="__end__")),
    ]


def test_a_failed_run_ends_with_the_entrypoint_error(how: str, store: Store, flavor: Flavor) -> None:
    """A task error that fails the run yields the task's result and the entrypoint's, both with the error."""

    @flavor.task(name="bad")
    def bad(x: int) -> int:
        raise Boom("no")

    @flavor.entrypoint(checkpointer=store, name="wf")
    def wf(x: int) -> Any:
        return (yield bad(x))

    assert collect(how, wf, 1, thread_id="t", stream_mode="tasks") == [
        start("<0>", "wf", 1, START),
        start("<1>", "bad", ((1,), {})),
        result("<1>", "bad", error=("Boom", "no")),
        result("<0>", "wf", error=("Boom", "no")),
        ("raised", "Boom", "no"),
    ]


# -- "checkpoints" and "debug" ----------------------------------------------------------------------


def test_checkpoints_at_each_run_start_and_end(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """Each run's start and end checkpoints carry get_state()'s configs, steps 2r-3 / 2r-2 and pending interrupts."""
    wf = steps_flow(flavor, store, calls)
    plain = Plain(checkpoint_ids=False)

    def ckpt(run: int, phase: str, values: Any, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        end = phase == "end"
        return {
            "config": config("t", f"{run}.{int(end)}"),
            "parent_config": config("t", f"{run}.0" if end else f"{run - 1}.1") if end or run > 1 else None,
            "values": values,
            "metadata": {"source": "loop" if end else "input", "step": 2 * run - (2 if end else 3), "parents": {}},
            "next": [] if end else ["wf"],
            "tasks": tasks,
        }

    def entry(id: str, **more: Any) -> dict[str, Any]:
        return {"id": id, "name": "wf", **more, "state": None}

    raw = collect_raw(how, wf, 2, thread_id="t", stream_mode="checkpoints")
    assert [plain(c) for c in raw] == [ckpt(1, "input", None, [entry("<0>", interrupts=())]), ckpt(1, "end", 8, [])]
    snapshots = {s.config["configurable"]["checkpoint_id"]: s for s in wf.get_state_history(thread_id="t")}
    for chunk in raw:
        snapshot = snapshots[chunk["config"]["configurable"]["checkpoint_id"]]
        assert (chunk["config"], chunk["metadata"]["step"]) == (dict(snapshot.config), snapshot.metadata["step"])
    assert collect_with(how, wf, 1, plain, thread_id="t", stream_mode="checkpoints") == [
        ckpt(2, "input", 8, [entry("<1>", interrupts=())])
    ]
    asked = ({"value": {"q": 2}, "id": "<interrupt>", "response_schema": None},)
    assert collect_with(how, wf, None, plain, thread_id="t", stream_mode="checkpoints") == [
        ckpt(2, "input", 8, [entry("<1>", interrupts=asked)])
    ]
    assert collect_with(how, wf, Command(resume=5), plain, thread_id="t", stream_mode="checkpoints") == [
        ckpt(2, "input", 8, [entry("<1>", interrupts=asked)]),
        ckpt(2, "end", 10, []),
    ]
    assert collect_with(how, wf, None, plain, thread_id="t", stream_mode="checkpoints") == [ckpt(2, "end", 10, [])]


def test_the_checkpoint_of_a_failed_run_resumed_shows_its_error(how: str, store: Store, flavor: Flavor) -> None:
    """Resuming a failed run yields its input checkpoint with the entrypoint's error (its repr), as get_state()."""
    down = [True]

    @flavor.task(name="flaky")
    def flaky(x: int) -> int:
        if down[0]:
            raise Boom("down")
        return x

    @flavor.entrypoint(checkpointer=store, name="wf")
    def wf(x: int) -> Any:
        return (yield flaky(x))

    collect(how, wf, 1, thread_id="t")
    down[0] = False
    expected = wf.get_state(thread_id="t").tasks[0].error
    chunks = collect_with(how, wf, None, Plain(checkpoint_ids=False), thread_id="t", stream_mode="checkpoints")
    assert chunks[0]["tasks"] == [{"id": "<0>", "name": "wf", "error": "Boom('down')", "state": None}]
    assert chunks[0]["tasks"][0]["error"] == expected
    assert chunks[1]["values"] == 1


def test_an_update_states_checkpoint_follows_the_run_before_it(
    how: str, store: Store, flavor: Flavor, calls: Any
) -> None:
    """Streaming None after update_state yields the update's checkpoint (source "update"), as get_state() shows it."""
    wf = steps_flow(flavor, store, calls)
    collect(how, wf, 2, thread_id="t")
    made = wf.update_state({"configurable": {"thread_id": "t"}}, 42)
    chunks = collect_with(how, wf, None, Plain(checkpoint_ids=False), thread_id="t", stream_mode="checkpoints")
    assert chunks == [
        {
            "config": made,
            "parent_config": config("t", "1.1"),
            "values": 42,
            "metadata": {"source": "update", "step": 2, "parents": {}},
            "next": [],
            "tasks": [],
        }
    ]
    state = wf.get_state(thread_id="t")
    assert (dict(state.config), dict(state.parent_config or {})) == (made, config("t", "1.1"))


def test_sub_entrypoints_stream_no_checkpoints(how: str, store: Store, flavor: Flavor) -> None:
    """A sub-entrypoint is journaled in its caller's run: with subgraphs, only the run's own checkpoints stream."""
    outer = nested_flow(flavor, store)
    chunks = collect(how, outer, 1, thread_id="t", stream_mode="checkpoints", subgraphs=True)
    assert [(ns, c["metadata"]["source"]) for ns, c in chunks] == [((), "input"), ((), "loop")]
    task = chunks[0][1]["tasks"][0]  # its state says it may run sub-entrypoints, as LangGraph's does
    assert task["state"] == {"configurable": {"checkpoint_ns": f"outer:{task['id']}", "thread_id": "t"}}


def test_debug_wraps_checkpoints_and_task_events(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """The "debug" mode wraps every checkpoint and task event with its step, an ISO timestamp and its type."""
    wf = steps_flow(flavor, store, calls)
    chunks = collect(how, wf, 2, thread_id="t", stream_mode=["debug", "tasks", "checkpoints"])
    debug = [c for m, c in chunks if m == "debug"]
    others = [c for m, c in chunks if m != "debug"]
    assert [d["payload"] for d in debug] == others
    assert [(d["type"], d["step"], d["timestamp"]) for d in debug] == [
        ("checkpoint", -1, "<ts>"),
        *[("task", 0, "<ts>"), ("task", 0, "<ts>"), ("task_result", 0, "<ts>")],
        *[("task", 0, "<ts>"), ("task_result", 0, "<ts>"), ("task", 0, "<ts>"), ("task_result", 0, "<ts>")],
        ("task_result", 0, "<ts>"),
        ("checkpoint", 0, "<ts>"),
    ]
    second = collect(how, wf, 3, thread_id="t", stream_mode="debug")
    assert [(d["type"], d["step"]) for d in second][:2] == [("checkpoint", 1), ("task", 2)]
    assert second[-1]["step"] == 2


def test_values_on_a_resume_start_with_the_previous_runs_value(
    how: str, store: Store, flavor: Flavor, calls: Any
) -> None:
    """A resumed run's "values" start with what it resumes from: the previous run's value."""
    wf = steps_flow(flavor, store, calls)
    assert collect(how, wf, 2, thread_id="t", stream_mode="values") == [8]
    assert collect(how, wf, 1, thread_id="t", stream_mode="values") == [{"__interrupt__": (("interrupt", {"q": 2}),)}]
    assert collect(how, wf, Command(resume=5), thread_id="t", stream_mode="values") == [8, 10]


# -- sub-entrypoints: subgraphs ---------------------------------------------------------------------


def nested_flow(f: Flavor, store: Store) -> Any:
    """outer: double, inner.invoke(...) (double inside), via(...) (a task calling inner); each body writes an event."""

    @f.task(name="double")
    def double(x: int) -> int:
        get_stream_writer()(("double", x))
        return 2 * x

    @f.entrypoint(checkpointer=store, name="inner")
    def inner(x: int) -> Any:
        get_stream_writer()(("inner", x))
        return (yield double(x)) + 100

    @f.task(name="via")
    def via(x: int) -> Any:
        get_stream_writer()(("via", x))
        return (yield f.sub(inner, x))

    @f.entrypoint(checkpointer=store, name="outer")
    def outer(x: int) -> Any:
        a = yield double(x)
        b = yield f.sub(inner, a)
        return (yield via(b))

    return outer


def test_without_subgraphs_a_sub_entrypoint_streams_nothing(how: str, store: Store, flavor: Flavor) -> None:
    """Without subgraphs, a sub-entrypoint's events are not streamed, nor is its call a task update of its caller."""
    outer = nested_flow(flavor, store)
    modes = ["updates", "custom", "values", "tasks"]
    assert collect(how, outer, 1, thread_id="t", stream_mode=modes) == [
        ("tasks", start("<0>", "outer", 1, START)),
        ("tasks", start("<1>", "double", ((1,), {}))),
        ("custom", ("double", 1)),
        ("updates", {"double": 2}),
        ("tasks", result("<1>", "double", 2)),
        ("tasks", start("<2>", "via", ((104,), {}))),
        ("custom", ("via", 104)),
        ("updates", {"via": 308}),
        ("tasks", result("<2>", "via", 308)),
        ("updates", {"outer": 308}),
        ("tasks", result("<0>", "outer", 308, key="__end__")),
        ("values", 308),
    ]


def test_subgraphs_namespace_every_event(how: str, store: Store, flavor: Flavor) -> None:
    """With subgraphs, events come as (namespace, mode, chunk), named after the calls they run under."""
    outer = nested_flow(flavor, store)
    modes = ["updates", "custom", "values", "tasks"]
    out, inner1, via, inner2 = ("outer:<0>",), ("outer:<0>",), ("outer:<0>", "via:<4>"), ("outer:<0>", "via:<4>")
    assert collect(how, outer, 1, thread_id="t", stream_mode=modes, subgraphs=True) == [
        ((), "tasks", start("<0>", "outer", 1, START)),
        ((), "tasks", start("<1>", "double", ((1,), {}))),
        (out, "custom", ("double", 1)),
        ((), "updates", {"double": 2}),
        ((), "tasks", result("<1>", "double", 2)),
        (inner1, "tasks", start("<2>", "inner", 2, START)),
        (inner1, "custom", ("inner", 2)),
        (inner1, "tasks", start("<3>", "double", ((2,), {}))),
        (("outer:<0>", "inner:<2>"), "custom", ("double", 2)),
        (inner1, "updates", {"double": 4}),
        (inner1, "tasks", result("<3>", "double", 4)),
        (inner1, "updates", {"inner": 104}),
        (inner1, "tasks", result("<2>", "inner", 104, key="__end__")),
        (inner1, "values", 104),
        ((), "tasks", start("<4>", "via", ((104,), {}))),
        (out, "custom", ("via", 104)),
        (via, "tasks", start("<5>", "inner", 104, START)),
        (inner2, "custom", ("inner", 104)),
        (inner2, "tasks", start("<6>", "double", ((104,), {}))),
        (("outer:<0>", "via:<4>", "inner:<5>"), "custom", ("double", 104)),
        (inner2, "updates", {"double": 208}),
        (inner2, "tasks", result("<6>", "double", 208)),
        (inner2, "updates", {"inner": 308}),
        (inner2, "tasks", result("<5>", "inner", 308, key="__end__")),
        (inner2, "values", 308),
        ((), "updates", {"via": 308}),
        ((), "tasks", result("<4>", "via", 308)),
        ((), "updates", {"outer": 308}),
        ((), "tasks", result("<0>", "outer", 308, key="__end__")),
        ((), "values", 308),
    ]
    assert collect(how, outer, 2, thread_id="u", stream_mode="updates", subgraphs=True)[:2] == [
        ((), {"double": 4}),
        (("outer:<0>",), {"double": 8}),
    ]


def test_a_replayed_sub_entrypoint_streams_its_value_with_subgraphs(how: str, store: Store, flavor: Flavor) -> None:
    """A replayed sub-entrypoint streams its value in its namespace with subgraphs (as LangGraph's), nothing without."""

    @flavor.entrypoint(checkpointer=store, name="inner")
    def inner(x: int) -> int:
        return x + 100

    @flavor.entrypoint(checkpointer=store, name="outer")
    def outer(x: int) -> Any:
        b = yield flavor.sub(inner, x)
        return ask_human(b)

    collect(how, outer, 1, thread_id="t")
    plain = Plain()
    assert collect_with(
        how, outer, Command(resume="a"), plain, thread_id="t", stream_mode="values", subgraphs=True
    ) == [
        ((), None),
        (("outer:<0>",), 101),
        ((), "a"),
    ]
    collect(how, outer, 1, thread_id="u")
    assert collect(how, outer, Command(resume="b"), thread_id="u", stream_mode="values") == [None, "b"]


# -- version="v2" -----------------------------------------------------------------------------------


def test_v2_yields_typed_parts(how: str, store: Store, flavor: Flavor, calls: Any) -> None:
    """version="v2" yields {"type", "ns", "data"} parts; a values part also has "interrupts" (data {} when paused)."""
    wf = steps_flow(flavor, store, calls)
    assert collect(how, wf, 1, thread_id="t", stream_mode=["updates", "values"], version="v2") == [
        {"type": "updates", "ns": (), "data": {"double": 2}},
        {"type": "updates", "ns": (), "data": {"__interrupt__": (("interrupt", {"q": 2}),)}},
        {"type": "values", "ns": (), "data": {}, "interrupts": (("interrupt", {"q": 2}),)},
    ]
    assert collect(how, wf, Command(resume=5), thread_id="t", stream_mode="values", version="v2") == [
        {"type": "values", "ns": (), "data": None, "interrupts": ()},
        {"type": "values", "ns": (), "data": 10, "interrupts": ()},
    ]
    outer = nested_flow(flavor, store)
    parts = collect(how, outer, 1, thread_id="n", stream_mode="custom", subgraphs=True, version="v2")
    assert parts[:2] == [
        {"type": "custom", "ns": ("outer:<0>",), "data": ("double", 1)},
        {"type": "custom", "ns": ("outer:<0>",), "data": ("inner", 2)},
    ]


def test_a_bad_version_is_a_configuration_error(store: Store, flavor: Flavor, calls: Any) -> None:
    """version= other than "v1" or "v2" raises ConfigurationError."""
    wf = steps_flow(flavor, store, calls)
    with pytest.raises(ConfigurationError, match="version"):
        wf.stream(1, thread_id="t", version="v3")


# -- "messages" -------------------------------------------------------------------------------------


def fake_model(text: str) -> Any:
    """LangChain's GenericFakeChatModel answering ``text``, streamed a word (and a space) at a time."""
    models = pytest.importorskip("langchain_core.language_models.fake_chat_models")
    messages = importlib.import_module("langchain_core.messages")
    return models.GenericFakeChatModel(messages=iter([messages.AIMessage(content=text)]))


def test_messages_stream_chat_model_tokens(how: str, store: Store, flavor: Flavor) -> None:
    """The "messages" mode yields each chat model token as (AIMessageChunk, metadata), each returned message once."""
    pytest.importorskip("langchain_core")
    import durable

    wf = chat_program(durable.entrypoint, durable.task, store, flavor.async_entrypoint)
    chunks = collect_raw(how, wf, "hi", thread_id="t", stream_mode="messages")
    said: dict[str, tuple[str, str, str]] = {}
    for message, meta in chunks:
        node, kind, text = said.get(message.id, (meta["langgraph_node"], type(message).__name__, ""))
        said[message.id] = (node, kind, text + message.content)
    assert list(said.values()) == [
        ("chat", "AIMessageChunk", "task says hi"),
        ("wf", "AIMessageChunk", "body says"),
        ("chat", "AIMessageChunk", "task says hi!"),
        ("made", "AIMessage", "made hi"),
    ]
    meta = chunks[0][1]
    assert meta["langgraph_step"] == 0 and meta["langgraph_triggers"] == PUSH and meta["thread_id"] == "t"
    assert meta["langgraph_path"] == ("__pregel_push", ("__pregel_pull", "wf"), 0, True)
    assert re.fullmatch(r"wf:[-0-9a-f]{36}\|chat:[-0-9a-f]{36}", meta["langgraph_checkpoint_ns"])
    assert meta["checkpoint_ns"] == meta["langgraph_checkpoint_ns"]
    assert meta["ls_provider"] == "genericfakechatmodel" and meta["ls_model_type"] == "chat"
    body = next(meta for message, meta in chunks if meta["langgraph_node"] == "wf")
    assert body["langgraph_path"] == ("__pregel_pull", "wf") and body["langgraph_triggers"] == START
    nested = collect_raw(how, wf, "hi", thread_id="u", stream_mode="messages", subgraphs=True)
    inside = [(ns, meta["langgraph_node"]) for ns, (message, meta) in nested if ns]
    assert inside and {node for ns, node in inside} == {"chat"} and all(len(ns) == 1 for ns, node in inside)


def test_messages_need_langchain_core(
    how: str, store: Store, flavor: Flavor, calls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without langchain-core, stream_mode="messages" raises ConfigurationError saying what to install."""
    monkeypatch.setitem(sys.modules, "langchain_core.callbacks", None)
    wf = steps_flow(flavor, store, calls)
    iterate = wf.stream if how == "stream" else wf.astream
    with pytest.raises(ConfigurationError, match="pip install langchain-core"):
        iterate(1, thread_id="t", stream_mode=["updates", "messages"])


@pytest.mark.subprocess
def test_langchain_is_not_imported_unless_messages_are_streamed(tmp_path: Any) -> None:
    """Streaming every mode but "messages" does not import langchain_core."""
    script = textwrap.dedent(
        """
        import sys
        from durable import MemoryStore, entrypoint, task

        @task
        def double(x):
            return 2 * x

        @entrypoint(checkpointer=MemoryStore())
        def wf(x):
            return double(x).result()

        modes = ["updates", "custom", "values", "tasks", "checkpoints", "debug"]
        assert len(list(wf.stream(1, thread_id="t", stream_mode=modes, subgraphs=True))) > 5
        assert "langchain_core" not in sys.modules
        """
    )
    repo = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": repo})


# -- the same program on LangGraph ------------------------------------------------------------------


def program(entrypoint: Any, task: Any, interrupt: Any, writer: Any, checkpointer: Any, is_async: bool) -> Any:
    """One program for both libraries: tasks, a caught error, a custom event, a sub-entrypoint, an interrupt."""

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def bad(x: int) -> int:
        raise Boom(f"bad {x}")

    @task
    def twice(x: int) -> int:
        return double(x).result() + double(x + 1).result()

    @entrypoint(checkpointer=checkpointer)
    def inner(x: int) -> int:
        writer()(("inner", x))
        return double(x).result() + 100

    @entrypoint(checkpointer=checkpointer)
    def wf(x: int) -> int:
        a = double(x).result()
        with contextlib.suppress(Boom):
            bad(a).result()
        writer()("hello")
        b = inner.invoke(a) + twice(a).result()
        if x == 1:
            b = interrupt({"q": b})
        return double(b).result()  # type: ignore[no-any-return]

    @task
    async def adouble(x: int) -> int:
        return 2 * x

    @task
    async def abad(x: int) -> int:
        raise Boom(f"bad {x}")

    @task
    async def atwice(x: int) -> int:
        return await adouble(x) + await adouble(x + 1)  # type: ignore[no-any-return]

    @entrypoint(checkpointer=checkpointer)
    async def ainner(x: int) -> int:
        writer()(("inner", x))
        return await adouble(x) + 100  # type: ignore[no-any-return]

    @entrypoint(checkpointer=checkpointer)
    async def awf(x: int) -> int:
        a = await adouble(x)
        with contextlib.suppress(Boom):
            await abad(a)
        writer()("hello")
        b = await ainner.ainvoke(a) + await atwice(a)
        if x == 1:
            b = interrupt({"q": b})
        return await adouble(b)  # type: ignore[no-any-return]

    return awf if is_async else wf


def run_program(lib: str, store: Store | None, is_async: bool, how: str, inputs: list[Any], **kwargs: Any) -> list[Any]:
    """Each invocation's chunks (plain data), on durable (on ``store``) or on LangGraph."""
    if lib == "langgraph":
        func = importlib.import_module("langgraph.func")
        types = importlib.import_module("langgraph.types")
        saver = importlib.import_module("langgraph.checkpoint.memory").InMemorySaver()
        writer = importlib.import_module("langgraph.config").get_stream_writer
        wf = program(func.entrypoint, func.task, types.interrupt, writer, saver, is_async)
        command = types.Command
        how = "astream" if is_async else how  # LangGraph's stream() does not run async entrypoints
    else:
        import durable

        wf = program(durable.entrypoint, durable.task, durable.interrupt, durable.get_stream_writer, store, is_async)
        command = durable.Command
    plain = Plain()
    given = [command(resume=i[1]) if isinstance(i, tuple) else i for i in inputs]
    return [collect_with(how, wf, i, plain, config={"configurable": {"thread_id": "t"}}, **kwargs) for i in given]


@pytest.mark.parametrize(
    "options",
    [
        {"stream_mode": "updates"},
        {"stream_mode": "tasks"},
        {"stream_mode": "checkpoints"},
        {"stream_mode": "values"},
        {"stream_mode": "custom"},
        {"stream_mode": "debug"},
        {"stream_mode": ["updates", "custom", "values", "tasks", "checkpoints"]},
        {"stream_mode": ["updates", "custom", "values", "tasks"], "subgraphs": True},
        {"stream_mode": ["updates", "values", "custom"], "version": "v2"},
        {"stream_mode": ["updates", "values", "tasks"], "subgraphs": True, "version": "v2"},
    ],
    ids=lambda o: "-".join(f"{v}" for v in o.values()).replace(" ", ""),
)
@pytest.mark.slow
def test_the_same_program_streams_the_same_chunks_on_langgraph(
    how: str, store: Store, flavor: Flavor, options: dict[str, Any]
) -> None:
    """A program ported to durable by its imports streams LangGraph's chunks (the same list for every invocation)."""
    pytest.importorskip("langgraph")
    inputs = [1, ("resume", 5), None, 3]
    expected = run_program("langgraph", None, flavor.async_entrypoint, how, inputs, **options)
    assert run_program("durable", store, flavor.async_entrypoint, how, inputs, **options) == expected


def test_chat_messages_are_langgraphs(how: str, store: Store, flavor: Flavor) -> None:
    """The same program's "messages" chunks are LangGraph's (tokens, returned messages, metadata), subgraphs or not."""
    pytest.importorskip("langgraph")
    for thread, subgraphs in (("t", False), ("u", True)):
        expected = run_chat("langgraph", None, flavor.async_entrypoint, how, thread, subgraphs)
        assert run_chat("durable", store, flavor.async_entrypoint, how, thread, subgraphs) == expected


def chat_program(entrypoint: Any, task: Any, checkpointer: Any, is_async: bool) -> Any:
    """Chat models in a task, in a task called by a task, in a sub-entrypoint, in the body; a returned message."""
    messages = importlib.import_module("langchain_core.messages")
    if is_async:

        @task
        async def chat(q: str) -> str:
            return (await fake_model(f"task says {q}").ainvoke(q)).content  # type: ignore[no-any-return]

        @task
        async def made(q: str) -> Any:
            return messages.AIMessage(content=f"made {q}", id="made-1")

        @task
        async def outer_task(q: str) -> str:
            return await chat(q + "!")  # type: ignore[no-any-return]

        @entrypoint(checkpointer=checkpointer)
        async def inner(q: str) -> str:
            return await chat(q)  # type: ignore[no-any-return]

        @entrypoint(checkpointer=checkpointer)
        async def wf(q: str) -> list[str]:
            a = await chat(q)
            b = (await fake_model("body says").ainvoke("body")).content
            c = await inner.ainvoke(q)
            d = await outer_task(q)
            return [a, b, c, d, (await made(q)).content]

        return wf

    @task
    def chat(q: str) -> str:  # type: ignore[no-redef]
        return fake_model(f"task says {q}").invoke(q).content  # type: ignore[no-any-return]

    @task
    def made(q: str) -> Any:  # type: ignore[no-redef]
        return messages.AIMessage(content=f"made {q}", id="made-1")

    @task
    def outer_task(q: str) -> str:  # type: ignore[no-redef]
        return chat(q + "!").result()  # type: ignore[no-any-return]

    @entrypoint(checkpointer=checkpointer)
    def inner(q: str) -> str:  # type: ignore[no-redef]
        return chat(q).result()  # type: ignore[no-any-return]

    @entrypoint(checkpointer=checkpointer)
    def wf(q: str) -> list[str]:  # type: ignore[no-redef]
        a = chat(q).result()
        b = fake_model("body says").invoke("body").content
        c = inner.invoke(q)
        d = outer_task(q).result()
        return [a, b, c, d, made(q).result().content]

    return wf


def run_chat(lib: str, store: Store | None, is_async: bool, how: str, thread: str, subgraphs: bool) -> list[Any]:
    """The chat program's "messages" chunks (plain data), on durable (on ``store``) or on LangGraph."""
    if lib == "langgraph":
        func = importlib.import_module("langgraph.func")
        saver = importlib.import_module("langgraph.checkpoint.memory").InMemorySaver()
        wf = chat_program(func.entrypoint, func.task, saver, is_async)
        how = "astream" if is_async else how
    else:
        import durable

        wf = chat_program(durable.entrypoint, durable.task, store, is_async)
    cfg = {"configurable": {"thread_id": thread}, "metadata": {"user": "me"}}
    return collect(how, wf, "hi", config=cfg, stream_mode="messages", subgraphs=subgraphs)
