"""LangGraph's Functional-API surface on durable: positional config, injected parameters, the runtime accessors,
return shapes, snapshots, update_state, retry policies, the task cache, long-term memory, names, and the defects
issue 13 found. Every test runs on every store (``store``) and, where a run executes, sync and async (``flavor``).
"""

from __future__ import annotations

import asyncio
import functools
import pickle
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import durable
from durable import (
    Cache,
    CachePolicy,
    Command,
    ConfigurationError,
    GraphOutput,
    Interrupted,
    Memory,
    NonDeterminismError,
    PregelTask,
    ResumeError,
    RetryPolicy,
    Runtime,
    SerializationError,
    Store,
    UnfinishedRunError,
    UsageError,
    get_config,
    get_runtime,
    get_store,
    interrupt,
)

Flavor = Any  # the `flavor` fixture from tests/conftest.py


@dataclass(frozen=True)
class Ctx:
    user: str


def cfg(thread: str, **configurable: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, **configurable}}


# -- calling as LangGraph does ----------------------------------------------------------------------


def test_config_is_positional_everywhere(store: Store, flavor: Flavor, calls: Any) -> None:
    """invoke(x, config), get_state(config) and stream(x, config) name the thread by the config, as in LangGraph."""

    @flavor.task
    def double(x: int) -> int:
        calls.hit("double")
        return 2 * x

    @flavor.entrypoint(checkpointer=store)
    def flow(x: int) -> int:
        return (yield double(x))

    config = cfg("t")
    out = asyncio.run(flow.ainvoke(3, config)) if flavor.name == "async" else flow.invoke(3, config)
    assert out == 6
    assert flow.get_state(config).output == 6
    assert list(flow.stream(None, config, stream_mode="values")) == [6]
    assert flow.invoke(None, thread_id="t") == 6
    assert calls.as_dict() == {"double": 1}


def test_injected_parameters_and_the_runtime(store: Store, flavor: Flavor) -> None:
    """The body receives config, writer, store, runtime and previous by name; get_config/get_runtime/get_store
    reach the same inside tasks; context is the invoke's, not journaled."""
    seen: dict[str, Any] = {}

    @flavor.task
    def look(x: int) -> str:
        runtime = get_runtime(Ctx)
        seen["task"] = (get_config()["configurable"]["user_tag"], runtime.context, get_store() is runtime.store)
        return f"{runtime.context.user}:{x}"

    @flavor.entrypoint(checkpointer=store, store=Memory(), context_schema=Ctx)
    def flow(x: int, *, previous: Any, config: Any, writer: Any, store: Any, runtime: Runtime[Ctx]) -> Any:
        writer({"started": x})
        seen["body"] = (previous, config["configurable"]["thread_id"], runtime.previous, runtime.context)
        store.put(("seen",), "last", {"x": x})
        return (yield look(x))

    assert flavor.invoke(flow, 1, config=cfg("t", user_tag="blue"), context=Ctx("ann")) == "ann:1"
    assert seen["body"] == (None, "t", None, Ctx("ann")) and seen["task"] == ("blue", Ctx("ann"), True)
    assert flavor.invoke(flow, 2, config=cfg("t", user_tag="red"), context=Ctx("bob")) == "bob:2"
    assert seen["body"] == ("ann:1", "t", "ann:1", Ctx("bob")) and seen["task"][0] == "red"
    assert flow.store.get(("seen",), "last").value == {"x": 2}
    with pytest.raises(UsageError):
        get_config()


def test_streamed_writer_chunks(store: Store, flavor: Flavor) -> None:
    """An injected writer and get_stream_writer() both feed stream_mode="custom"."""

    @flavor.task
    def step(x: int) -> int:
        durable.get_stream_writer()(f"task {x}")
        return x

    @flavor.entrypoint(checkpointer=store)
    def flow(x: int, *, writer: Any) -> Any:
        writer("body")
        return (yield step(x))

    assert list(flow.stream(4, cfg("t"), stream_mode="custom")) == ["body", "task 4"]


# -- what comes back ------------------------------------------------------------------------------------


def test_a_paused_result_reads_as_langgraphs_and_v2_is_a_graph_output(store: Store, flavor: Flavor) -> None:
    """A paused invoke is an Interrupted that also answers "__interrupt__" in out and out["__interrupt__"];
    version="v2" gives GraphOutput(value, interrupts) paused and finished alike."""

    @flavor.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        return {"x": x, "ok": interrupt({"approve": x})}

    out = flavor.invoke(flow, 5, config=cfg("t"))
    assert isinstance(out, Interrupted) and "__interrupt__" in out and dict(out).keys() == {"__interrupt__"}
    assert [i.value for i in out["__interrupt__"]] == [{"approve": 5}]
    paused = flavor.invoke(flow, None, config=cfg("t"), version="v2")
    assert isinstance(paused, GraphOutput) and paused.value == {} and paused.interrupts == out.interrupts
    done = flavor.invoke(flow, Command(resume=True), config=cfg("t"), version="v2")
    assert done == GraphOutput({"x": 5, "ok": True}) and done["x"] == 5
    with pytest.raises(ConfigurationError, match="version"):
        flow.invoke(None, cfg("t"), version="v3")  # type: ignore[call-overload]


def test_state_has_langgraphs_snapshot_fields(store: Store, flavor: Flavor) -> None:
    """get_state(config) has values, next, tasks (with the interrupts), config, metadata and parent_config."""

    @flavor.entrypoint(checkpointer=store, name="wf")
    def flow(x: int) -> Any:
        return x * 10 + interrupt("go?")

    assert flavor.invoke(flow, 1, config=cfg("t"), context=None) is not None
    flavor.invoke(flow, Command(resume=1), config=cfg("t"))
    assert isinstance(flavor.invoke(flow, 2, config=cfg("t")), Interrupted)
    paused = flow.get_state(cfg("t"))
    assert (paused.values, paused.next, paused.metadata["source"]) == (11, ("wf",), "input")
    (pending,) = paused.tasks
    assert isinstance(pending, PregelTask) and pending.name == "wf" and [i.value for i in pending.interrupts] == ["go?"]
    assert paused.parent_config == flow.get_state_history(cfg("t")).__next__().parent_config
    flavor.invoke(flow, Command(resume=2), config=cfg("t"))
    done = flow.get_state(cfg("t"))
    assert (done.values, done.next, done.tasks, done.metadata["source"]) == (22, (), (), "loop")
    assert done.config["configurable"]["thread_id"] == "t" and done.created_at is not None


def test_history_lists_each_runs_end_and_start_newest_first(store: Store, flavor: Flavor) -> None:
    """get_state_history: end then start of each run, newest first; filter, limit, before, and a checkpoint_id
    read back through get_state."""

    @flavor.entrypoint(checkpointer=store)
    def flow(x: int) -> int:
        return x

    for x in (1, 2):
        flavor.invoke(flow, x, config=cfg("t"))
    found = list(flow.get_state_history(cfg("t")))
    assert [(s.values, s.next, s.metadata["source"]) for s in found] == [
        (2, (), "loop"), (1, ("flow",), "input"), (1, (), "loop"), (None, ("flow",), "input"),
    ]  # fmt: skip
    assert [s.values for s in flow.get_state_history(cfg("t"), filter={"source": "loop"})] == [2, 1]
    assert len(list(flow.get_state_history(cfg("t"), limit=3))) == 3
    assert [s.values for s in flow.get_state_history(cfg("t"), before=found[1].config)] == [1, None]
    assert flow.get_state(found[2].config).values == 1
    with pytest.raises(ConfigurationError, match="checkpoint"):
        flow.get_state(cfg("t", checkpoint_id="nope"))

    async def history() -> list[Any]:
        return [(s.values, s.next) for s in [s async for s in flow.aget_state_history(cfg("t"))]]

    assert asyncio.run(history()) == [(s.values, s.next) for s in found]  # the async twin gives the same


def test_update_state_feeds_the_next_runs_previous(store: Store, flavor: Flavor) -> None:
    """update_state(config, values) is what the next run's previous receives; an unfinished thread refuses it."""

    @flavor.entrypoint(checkpointer=store)
    def flow(x: int, *, previous: Any = None) -> Any:
        if x < 0:
            return interrupt("wait")
        return (previous or 0) + x

    assert flavor.invoke(flow, 1, config=cfg("t")) == 1
    new = flow.update_state(cfg("t"), 100)
    assert flow.get_state(new).values == 100 and flow.get_state(cfg("t")).metadata["source"] == "update"
    assert flavor.invoke(flow, 5, config=cfg("t")) == 105
    assert isinstance(flavor.invoke(flow, -1, config=cfg("p")), Interrupted)
    with pytest.raises(UnfinishedRunError):
        flow.update_state(cfg("p"), 1)


# -- tasks: policies, cache, names -------------------------------------------------------------------


def test_retry_policy_lists_and_the_default_retry_on(store: Store, flavor: Flavor, calls: Any) -> None:
    """The first policy whose retry_on covers an error decides; by default a ValueError is not retried, a
    ConnectionError is."""
    fast = {"initial_interval": 0.0, "jitter": False}

    @flavor.task(retry_policy=[RetryPolicy(retry_on=KeyError, max_attempts=2, **fast), RetryPolicy(**fast)])
    def flaky(kind: str) -> str:
        calls.hit(kind)
        if calls[kind] == 1:
            raise {"key": KeyError, "conn": ConnectionError, "value": ValueError}[kind](kind)
        return kind

    @flavor.entrypoint(checkpointer=store)
    def flow(kind: str) -> Any:
        return (yield flaky(kind))

    assert flavor.invoke(flow, "key", config=cfg("k")) == "key"
    assert flavor.invoke(flow, "conn", config=cfg("c")) == "conn"
    with pytest.raises(ValueError):
        flavor.invoke(flow, "value", config=cfg("v"))
    assert calls.as_dict() == {"key": 2, "conn": 2, "value": 1}
    assert RetryPolicy(0.1, 3.0).backoff_factor == 3.0  # LangGraph's field order
    with pytest.raises(ConfigurationError):
        durable.task(retry_policy=RetryPolicy(), retry=RetryPolicy(max_attempts=9))


def test_a_cached_task_is_not_run_again_across_threads(store: Store, flavor: Flavor, calls: Any) -> None:
    """With cache_policy and the entrypoint's cache, a second call with the same arguments is a hit, streamed with
    cached metadata and journaled (its replay comes from the journal); clear_cache forgets."""

    @flavor.task(cache_policy=CachePolicy(ttl=60))
    def slow(x: int) -> int:
        calls.hit("slow")
        return x * 10

    @flavor.entrypoint(checkpointer=store, cache=Cache())
    def flow(x: int) -> Any:
        return [(yield slow(x)), (yield slow(x + 1))]

    assert list(flow.stream(1, cfg("a"))) == [{"slow": 10}, {"slow": 20}, {"flow": [10, 20]}]
    assert list(flow.stream(1, cfg("b"))) == [
        {"slow": 10, "__metadata__": {"cached": True}}, {"slow": 20, "__metadata__": {"cached": True}},
        {"flow": [10, 20]},
    ]  # fmt: skip
    assert calls.as_dict() == {"slow": 2}
    assert [e.status for e in flow.get_state(cfg("b")).entries] == ["ok", "ok"]
    assert flow.clear_cache() == 2
    assert flavor.invoke(flow, 1, config=cfg("c")) == [10, 20] and calls.as_dict() == {"slow": 4}


def test_a_journal_recorded_under_qualified_names_replays(store: Store, calls: Any) -> None:
    """Rows and runs recorded under the old default names (qualified) replay under today's (__name__)."""

    def fetch(x: int) -> int:
        calls.hit("fetch")
        return x + 1

    def flow(x: int) -> int:
        value = tasked(x).result()
        if calls["fail"] == 0:
            calls.hit("fail")
            raise RuntimeError("after the task")
        return value

    tasked = durable.task(name=fetch.__qualname__)(fetch)
    before = durable.entrypoint(checkpointer=store, name=flow.__qualname__)(flow)
    with pytest.raises(RuntimeError):
        before.invoke(1, config=cfg("t"))
    tasked = durable.task(fetch)  # today's default name, "fetch"
    after = durable.entrypoint(checkpointer=store)(flow)
    assert (tasked.name, after.name) == ("fetch", "flow")
    assert after.invoke(None, config=cfg("t")) == 2
    assert calls["fetch"] == 1


# -- long-term memory -----------------------------------------------------------------------------------


def test_long_term_memory_is_shared_across_threads(store: Store, flavor: Flavor) -> None:
    """Memory() lives in the journal's database: one thread puts, another reads, through the store parameter,
    runtime.store and get_store()."""

    @flavor.entrypoint(checkpointer=store, store=Memory())
    def remember(fact: str, *, store: Any) -> str:
        store.put(("facts", "ann"), "color", {"value": fact})
        return fact

    @flavor.entrypoint(checkpointer=store, store=Memory())
    def recall(_: Any, *, runtime: Runtime[None]) -> Any:
        assert runtime.store is not None
        item = get_store().get(("facts", "ann"), "color")
        return item.value["value"], [i.key for i in runtime.store.search(("facts",))]

    flavor.invoke(remember, "green", config=cfg("one"))
    assert tuple(flavor.invoke(recall, 0, config=cfg("two"))) == ("green", ["color"])


# -- defects found on the way -----------------------------------------------------------------------------


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}"


def test_a_bound_method_task_gets_self_once(store: Store) -> None:
    """task(obj.method) passes obj once, not twice."""
    greet = durable.task(Greeter("hi").greet)

    @durable.entrypoint(checkpointer=store)
    def flow(name: str) -> str:
        return greet(name).result()

    assert flow.invoke("ann", config=cfg("t")) == "hi, ann"
    assert greet("bob").result() == "hi, bob"


def test_a_partial_task_is_named_after_its_function(store: Store) -> None:
    """An unnamed functools.partial task is named after its function, so it resumes in another process."""
    add_one = durable.task(functools.partial(lambda a, b: a + b, 1))
    named = durable.task(functools.partial(pow, 2))

    @durable.entrypoint(checkpointer=store)
    def flow(x: int) -> int:
        return add_one(x).result() + named(x).result()

    assert flow.invoke(3, config=cfg("t")) == 4 + 8
    assert [e.task for e in flow.get_state(cfg("t")).entries] == ["<lambda>", "pow"]


def test_a_task_future_in_a_result_is_refused(store: Store) -> None:
    """A TaskFuture inside a task's result is a SerializationError telling to call .result()."""

    @durable.task
    def inner(x: int) -> int:
        return x

    @durable.task
    def outer(x: int) -> dict[str, Any]:
        return {"pending": inner(x)}

    @durable.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        return outer(x).result()

    with pytest.raises(SerializationError, match=r"\.result\(\)"):
        flow.invoke(1, config=cfg("t"))
    with pytest.raises(TypeError, match=r"\.result\(\)"):
        pickle.dumps(inner(1))


def test_timeout_takes_a_timedelta() -> None:
    """@task(timeout=timedelta(...)) is that many seconds; a non-positive one is refused."""
    assert durable.task(timeout=timedelta(seconds=1.5))(abs).timeout == 1.5
    with pytest.raises(ConfigurationError):
        durable.task(timeout=timedelta(0))


def test_entrypoints_that_could_never_run_are_refused_at_decoration() -> None:
    """A generator, an async generator or a body without an input parameter raises ConfigurationError."""

    def gen(x: int) -> Any:
        yield x

    async def agen(x: int) -> Any:
        yield x

    def nothing() -> int:
        return 1

    def keyword_only(*, x: int) -> int:
        return x

    for body in (gen, agen, nothing, keyword_only):
        with pytest.raises(ConfigurationError):
            durable.entrypoint(body)


def test_a_command_mixing_pending_ids_and_others_is_refused(store: Store, flavor: Flavor) -> None:
    """Command(resume={pending_id: ..., "typo": ...}) is a ResumeError; a dict naming no pending id is the answer."""

    @flavor.entrypoint(checkpointer=store)
    def flow(x: int) -> Any:
        return interrupt("q", id="approve")

    assert isinstance(flavor.invoke(flow, 1, config=cfg("t")), Interrupted)
    with pytest.raises(ResumeError, match="typo"):
        flavor.invoke(flow, Command(resume={"approve": True, "typo": False}), config=cfg("t"))
    assert flavor.invoke(flow, Command(resume={"free": "form"}), config=cfg("t")) == {"free": "form"}


def test_replay_refuses_a_name_that_was_never_this_tasks(store: Store, calls: Any) -> None:
    """Aliases are only the names a task had by default: another task's name is still a NonDeterminismError."""

    def one(x: int) -> int:
        return x

    def flow(x: int) -> int:
        value = step(x).result()
        if calls["fail"] == 0:
            calls.hit("fail")
            raise RuntimeError("after the task")
        return value

    step = durable.task(name="other")(one)
    first = durable.entrypoint(checkpointer=store, name="flow")(flow)
    with pytest.raises(RuntimeError):
        first.invoke(1, config=cfg("t"))
    step = durable.task(one)
    with pytest.raises(NonDeterminismError):
        durable.entrypoint(checkpointer=store, name="flow")(flow).invoke(None, config=cfg("t"))


def test_a_writer_typed_streamwriter_is_injected() -> None:
    """`durable.StreamWriter` (LangGraph's name) annotates the injected writer; what it writes is streamed."""
    from durable import StreamWriter

    @durable.entrypoint(checkpointer=durable.MemoryStore())
    def flow(n: int, writer: StreamWriter) -> int:
        writer({"step": n})
        return n

    assert list(flow.stream(3, cfg("w"), stream_mode="custom")) == [{"step": 3}]
