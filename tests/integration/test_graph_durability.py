"""durable's guarantees for graphs (`durable.graph.StateGraph`), on every store, with sync and async nodes.

A node run is one journaled task, so what holds for tasks holds for nodes: a failed or paused run resumes
with only its unfinished nodes running again, a `@task` called in a node is journaled under it, and the
thread has one writer at a time, signed rows, workers, `Threads` and the CLI.

The ``way`` fixture writes each graph once: a node's body is a plain function, or a generator that *yields*
what it waits for (a `TaskFuture`, ``Sub(graph, input)`` to run a subgraph, ``Block(fn, *args)`` for a blocking
call). ``sync`` makes sync nodes and tasks and runs the graph with ``invoke``; ``async`` makes async ones and
runs it with ``ainvoke``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import operator
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypedDict

import pytest

import durable
from durable import (
    Command,
    IntegrityError,
    SQLiteStore,
    Store,
    TaskFuture,
    ThreadBusyError,
    Threads,
    Worker,
    interrupt,
)
from durable.graph import END, START, CompiledStateGraph, MessagesState, StateGraph

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = b"k" * 32


class State(TypedDict):
    log: Annotated[list[str], operator.add]


class Boom(Exception):
    pass


class Sub(NamedTuple):
    """For a node body to yield: run ``graph`` on ``input`` (``invoke``, or ``ainvoke`` when async)."""

    graph: CompiledStateGraph[Any, Any, Any, Any]
    input: Any


class Block(NamedTuple):
    """For a node body to yield: a blocking call (in a worker thread when async)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]


def _wait(step: Any) -> Any:
    if isinstance(step, Sub):
        return step.graph.invoke(step.input)
    if isinstance(step, Block):
        return step.fn(*step.args)
    assert isinstance(step, TaskFuture), step
    return step.result()


async def _await(step: Any) -> Any:
    if isinstance(step, Sub):
        return await step.graph.ainvoke(step.input)
    if isinstance(step, Block):
        return await asyncio.to_thread(step.fn, *step.args)
    assert isinstance(step, TaskFuture), step
    return await step


def _drive(result: Any) -> Any:
    """Run a generator body to its end, waiting for what it yields (a plain body's value passes through)."""
    if not inspect.isgenerator(result):
        return result
    gen: Generator[Any, Any, Any] = result
    value: Any = None
    while True:
        try:
            step = gen.send(value)
        except StopIteration as stop:
            return stop.value
        value = _wait(step)


async def _adrive(result: Any) -> Any:
    """`_drive`, awaiting what the body yields."""
    if not inspect.isgenerator(result):
        return result
    gen: Generator[Any, Any, Any] = result
    value: Any = None
    while True:
        try:
            step = gen.send(value)
        except StopIteration as stop:
            return stop.value
        value = await _await(step)


@dataclass(frozen=True)
class Way:
    """Sync nodes run with ``invoke``, or async nodes run with ``ainvoke``: one graph, written once."""

    name: str
    is_async: bool

    def node(self, body: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if self.is_async:

            @functools.wraps(body)
            async def anode(state: Any) -> Any:
                return await _adrive(body(state))

            return anode

        @functools.wraps(body)
        def node(state: Any) -> Any:
            return _drive(body(state))

        return node

    def task(self, body: Callable[..., Any], name: str) -> Any:
        if self.is_async:

            async def atask(*args: Any) -> Any:
                return body(*args)

            return durable.task(name=name)(atask)

        def task(*args: Any) -> Any:
            return body(*args)

        return durable.task(name=name)(task)

    def invoke(self, graph: CompiledStateGraph[Any, Any, Any, Any], input: Any, config: Any, **kw: Any) -> Any:
        if self.is_async:
            return asyncio.run(graph.ainvoke(input, config, **kw))
        return graph.invoke(input, config, **kw)


@pytest.fixture(params=[Way("sync", False), Way("async", True)], ids=lambda w: w.name)
def way(request: pytest.FixtureRequest) -> Way:
    return request.param  # type: ignore[no-any-return]


def cfg(thread_id: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def logging_node(way: Way, calls: Any, name: str, down: list[bool] | None = None) -> Callable[[Any], Any]:
    """A node that counts its runs and appends its name; it raises `Boom` while ``down[0]``."""

    def body(state: Any) -> Any:
        calls.hit(name)
        if down is not None and down[0]:
            raise Boom(f"{name} is down")
        return {"log": [name]}

    return way.node(body)


def graph_of(nodes: dict[str, Any], edges: list[tuple[Any, str]], **options: Any) -> Any:
    """A `StateGraph` of `State` with these nodes and edges; compiled with ``options`` if any are given."""
    builder = StateGraph(State)
    for name, fn in nodes.items():
        builder.add_node(name, fn)
    for start, end in edges:
        builder.add_edge(start, end)
    return builder.compile(**options) if options else builder


def asking(way: Way, calls: Any) -> Any:
    """START -> one -> two (asks "q" with interrupt) -> END."""
    one = logging_node(way, calls, "one")

    def two(state: Any) -> Any:
        calls.hit("two")
        return {"log": [f"two:{interrupt('q')}"]}

    return graph_of({"one": one, "two": way.node(two)}, [(START, "one"), ("one", "two"), ("two", END)])


# -- failure and resume ---------------------------------------------------------------------------


def test_a_failed_node_reruns_alone_then_its_join(store: Store, way: Way, calls: Any) -> None:
    """c fails while b (same superstep) succeeds: resume runs only c, then the join d; a and b are not rerun."""
    down = [True]
    nodes = {n: logging_node(way, calls, n, down if n == "c" else None) for n in "abcd"}
    edges = [(START, "a"), ("a", "b"), ("a", "c"), (["b", "c"], "d"), ("d", END)]
    graph = graph_of(nodes, edges, checkpointer=store)

    with pytest.raises(Boom, match="c is down"):
        way.invoke(graph, {"log": []}, cfg())
    state = graph.get_state(cfg())
    assert (state.status, state.next, state.values) == ("failed", ("c",), {"log": ["a", "b"]})
    assert [(t.name, t.error) for t in state.tasks] == [("b", None), ("c", "Boom('c is down')")]
    assert calls.as_dict() == {"a": 1, "b": 1, "c": 1}

    down[0] = False
    assert way.invoke(graph, None, cfg()) == {"log": ["a", "b", "c", "d"]}
    assert calls.as_dict() == {"a": 1, "b": 1, "c": 2, "d": 1}
    state = graph.get_state(cfg())
    assert [(e.key, e.task, e.status) for e in state.entries if e.task == "c"] == [
        ("3", "c", "error"),
        ("3", "c", "ok"),
    ]


def test_a_task_in_a_node_is_replayed_when_the_node_reruns(store: Store, way: Way, calls: Any) -> None:
    """A @task that returned before its node failed is journaled under the node ("1.0") and not run again."""
    down = [True]

    def fetch_body(x: int) -> str:
        calls.hit("fetch")
        return f"fetched {x} (call {calls['fetch']})"

    fetch = way.task(fetch_body, "fetch")

    def a(state: Any) -> Any:
        calls.hit("a")
        got = yield fetch(len(state["log"]))
        if down[0]:
            raise Boom("a failed after its task")
        return {"log": [got]}

    graph = graph_of({"a": way.node(a)}, [(START, "a"), ("a", END)], checkpointer=store)
    with pytest.raises(Boom):
        way.invoke(graph, {"log": ["x"]}, cfg())
    down[0] = False
    assert way.invoke(graph, None, cfg()) == {"log": ["x", "fetched 1 (call 1)"]}
    assert calls.as_dict() == {"a": 2, "fetch": 1}
    entries = sorted((e.key, e.attempt, e.task, e.status) for e in graph.get_state(cfg()).entries)
    assert entries == [
        ("0", 1, "__start__", "ok"),
        ("1", 1, "a", "error"),
        ("1", 2, "a", "ok"),
        ("1.0", 1, "fetch", "ok"),
    ]


# -- interrupts -----------------------------------------------------------------------------------


def test_interrupt_reruns_the_node_from_its_start_and_replays_its_tasks(store: Store, way: Way, calls: Any) -> None:
    """The paused node runs again on resume; its task before interrupt() replays, the node before it does not run."""

    def prep_body(x: int) -> str:
        calls.hit("prep")
        return f"draft {x}"

    prep = way.task(prep_body, "prep")

    def ask(state: Any) -> Any:
        calls.hit("ask")
        draft = yield prep(len(state["log"]))
        return {"log": [f"{draft}: {interrupt(draft)}"]}

    first = logging_node(way, calls, "first")
    graph = graph_of({"first": first, "ask": way.node(ask)}, [(START, "first"), ("first", "ask"), ("ask", END)],
                     checkpointer=store)  # fmt: skip

    out = way.invoke(graph, {"log": []}, cfg())
    assert out["log"] == ["first"] and [(i.id, i.value) for i in out["__interrupt__"]] == [("2.1", "draft 1")]
    state = graph.get_state(cfg())
    assert (state.status, state.next) == ("interrupted", ("ask",))
    assert [i.value for t in state.tasks for i in t.interrupts] == ["draft 1"]

    assert way.invoke(graph, Command(resume="ok"), cfg()) == {"log": ["first", "draft 1: ok"]}
    assert calls.as_dict() == {"first": 1, "ask": 2, "prep": 1}


@pytest.mark.parametrize("answer", ["together", "one_by_one"])
def test_parallel_interrupts_surface_together(store: Store, way: Way, calls: Any, answer: str) -> None:
    """Two nodes pausing in one superstep return both interrupts at once; they are answered at once or in turn."""

    def asker(name: str) -> Any:
        def body(state: Any) -> Any:
            calls.hit(name)
            return {"log": [f"{name}:{interrupt(f'{name}?')}"]}

        return way.node(body)

    edges = [(START, "x"), (START, "y"), (["x", "y"], "z"), ("z", END)]
    graph = graph_of({"x": asker("x"), "y": asker("y"), "z": logging_node(way, calls, "z")}, edges, checkpointer=store)
    out = way.invoke(graph, {"log": []}, cfg())
    asked = {i.value: i.id for i in out["__interrupt__"]}
    assert sorted(asked) == ["x?", "y?"] and len(set(asked.values())) == 2
    assert {i.value for i in graph.get_state(cfg()).interrupts} == {"x?", "y?"}

    if answer == "together":
        done = way.invoke(graph, Command(resume={asked["x?"]: "1", asked["y?"]: "2"}), cfg())
        assert calls.as_dict() == {"x": 2, "y": 2, "z": 1}
    else:
        out = way.invoke(graph, Command(resume={asked["x?"]: "1"}), cfg())
        assert [(i.id, i.value) for i in out["__interrupt__"]] == [(asked["y?"], "y?")]
        done = way.invoke(graph, Command(resume={asked["y?"]: "2"}), cfg())
        assert calls.as_dict() == {"x": 2, "y": 3, "z": 1}  # x finished on the first answer: it does not run again
    assert done == {"log": ["x:1", "y:2", "z"]}


@pytest.mark.parametrize("how", ["node", "called"])
def test_a_subgraph_resumes_without_rerunning_its_first_node(store: Store, way: Way, calls: Any, how: str) -> None:
    """A subgraph pausing in its second node: on resume its first node is replayed, only the second runs again."""
    sub = asking(way, calls).compile()
    if how == "node":
        parent = graph_of({"sub": sub}, [(START, "sub"), ("sub", END)], checkpointer=store)
    else:

        def call_sub(state: Any) -> Any:
            calls.hit("call_sub")
            out = yield Sub(sub, state)
            return {"log": out["log"][len(state["log"]) :]}

        parent = graph_of({"sub": way.node(call_sub)}, [(START, "sub"), ("sub", END)], checkpointer=store)

    out = way.invoke(parent, {"log": []}, cfg())
    assert [i.value for i in out.get("__interrupt__", [])] == ["q"], out
    assert parent.get_state(cfg()).next == ("sub",)
    assert way.invoke(parent, Command(resume="A"), cfg()) == {"log": ["one", "two:A"]}
    assert calls["one"] == 1 and calls["two"] == 2


# -- how rows reach the store ---------------------------------------------------------------------


def test_durability_modes_journal_the_same_result(store: Store, way: Way, calls: Any) -> None:
    """Durability "sync", "async" and "exit" finish with the same state and the same journal entries."""
    fetch = way.task(lambda x: x * 10, "fetch")

    def b(state: Any) -> Any:
        got = yield fetch(len(state["log"]))
        return {"log": [f"b{got}"]}

    nodes = {"a": logging_node(way, calls, "a"), "b": way.node(b), "c": logging_node(way, calls, "c"),
             "d": logging_node(way, calls, "d")}  # fmt: skip
    edges = [(START, "a"), ("a", "b"), ("a", "c"), (["b", "c"], "d"), ("d", END)]
    graph = graph_of(nodes, edges, checkpointer=store)
    found = {}
    for mode in ("sync", "async", "exit"):
        out = way.invoke(graph, {"log": []}, cfg(mode), durability=mode)
        state = graph.get_state(cfg(mode))
        assert (state.status, state.values) == ("completed", out)
        found[mode] = (out, sorted((e.key, e.attempt, e.task, e.status, repr(e.result)) for e in state.entries))
    assert found["sync"][0] == {"log": ["a", "b10", "c", "d"]}
    assert found["async"] == found["sync"] == found["exit"]
    assert len(found["sync"][1]) == 6  # START, a, b, b's task, c, d


@pytest.mark.slow
def test_a_long_graph_journals_writes_not_states(store: Store, way: Way) -> None:
    """Each superstep journals what its node wrote, not the whole state: 200 steps cost about twice 100."""

    def step(state: Any) -> Any:
        return {"messages": [("ai", f"message {len(state['messages'])} " + "x" * 50)]}

    class Loop(MessagesState):
        n: int

    builder = StateGraph(Loop)
    builder.add_node("step", way.node(step))
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if len(s["messages"]) < s["n"] else END)
    graph = builder.compile(checkpointer=store)

    size = {}
    for n in (100, 200):
        out = way.invoke(graph, {"messages": [], "n": n}, {**cfg(f"long{n}"), "recursion_limit": n + 10})
        assert len(out["messages"]) == n
        thread = store.get_thread(f"long{n}")
        assert thread is not None
        rows = [r for run in store.list_runs(f"long{n}") for r in store.load_journal(thread.tid, run.run_id)]
        assert len(rows) == n + 1
        size[n] = sum(len(r.payload) for r in rows)
    assert size[200] / size[100] < 2.3, size


# -- signing --------------------------------------------------------------------------------------


def test_a_signed_graph_runs_pauses_and_resumes(store: Store, way: Way, calls: Any) -> None:
    """compile(secret=...) signs the graph's rows: a run, a pause and a resume work as unsigned."""
    graph = asking(way, calls).compile(checkpointer=store, secret=KEY)
    out = way.invoke(graph, {"log": []}, cfg())
    assert out["log"] == ["one"] and [i.value for i in out["__interrupt__"]] == ["q"]
    assert way.invoke(graph, Command(resume="yes"), cfg()) == {"log": ["one", "two:yes"]}
    assert graph.get_state(cfg()).values == {"log": ["one", "two:yes"]}
    assert calls.as_dict() == {"one": 1, "two": 2}


def test_a_tampered_node_row_fails_the_resume(tmp_path: Path, way: Way, calls: Any) -> None:
    """Altering a finished node's journaled writes in SQLite makes the resume raise IntegrityError; nothing runs."""
    db = tmp_path / "journal.db"
    with SQLiteStore(db) as store:
        graph = asking(way, calls).compile(checkpointer=store, secret=KEY)
        way.invoke(graph, {"log": []}, cfg())
        with sqlite3.connect(db) as conn:
            (payload,) = conn.execute("SELECT payload FROM durable_journal WHERE key = '1'").fetchone()
            tampered = bytearray(payload)
            tampered[-3] ^= 0x01
            conn.execute("UPDATE durable_journal SET payload = ? WHERE key = '1'", (bytes(tampered),))
        with pytest.raises(IntegrityError, match="'1' \\(one\\)"):
            way.invoke(graph, Command(resume="yes"), cfg())
    assert calls.as_dict() == {"one": 1, "two": 1}


# -- one writer, workers, threads, the CLI ---------------------------------------------------------


def test_one_writer_per_thread(store: Store, way: Way) -> None:
    """While a run holds the thread, another invoke of it (resume or new input) raises ThreadBusyError."""
    entered, release = threading.Event(), threading.Event()

    def hold(state: Any) -> Any:
        entered.set()
        assert (yield Block(release.wait, (10,)))
        return {"log": ["held"]}

    graph = graph_of({"hold": way.node(hold)}, [(START, "hold"), ("hold", END)], checkpointer=store)
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(way.invoke(graph, {"log": []}, cfg())))
    first.start()
    try:
        assert entered.wait(10)
        for given in (None, {"log": ["other"]}):
            with pytest.raises(ThreadBusyError):
                way.invoke(graph, given, cfg())
    finally:
        release.set()
        first.join(10)
    assert results == [{"log": ["held"]}]
    assert graph.get_state(cfg()).values == {"log": ["held"]}


@pytest.mark.parametrize("given", ["graph", "entrypoint"])
def test_a_worker_carries_a_submitted_graph_run(store: Store, way: Way, calls: Any, given: str) -> None:
    """submit() records the run and runs nothing; a Worker given the graph (or its entrypoint) completes it."""
    nodes = {n: logging_node(way, calls, n) for n in "ab"}
    graph = graph_of(nodes, [(START, "a"), ("a", "b"), ("b", END)], checkpointer=store, name="submitted")
    assert graph.submit({"log": ["in"]}, cfg("job")) == "job"
    assert graph.get_state(cfg("job")).status == "running" and calls.total() == 0

    carried = graph if given == "graph" else graph.entrypoint
    stats = Worker([carried], checkpointer=store, poll_interval=0.01).run_once()
    assert (stats.completed, stats.total) == (1, 1)
    state = graph.get_state(cfg("job"))
    assert (state.status, state.values) == ("completed", {"log": ["in", "a", "b"]})
    assert calls.as_dict() == {"a": 1, "b": 1}


def test_threads_list_and_read_a_graph_thread(store: Store, way: Way, calls: Any) -> None:
    """graph.threads lists the graph's thread (not others on the store); Threads(store).state reads it."""
    graph = asking(way, calls).compile(checkpointer=store, secret=KEY, name="asker")
    other = graph_of({"a": logging_node(way, calls, "a")}, [(START, "a"), ("a", END)], checkpointer=store)
    way.invoke(graph, {"log": []}, cfg("t"))
    way.invoke(other, {"log": []}, cfg("other"))

    listed = [(s.thread_id, s.entrypoint, s.status) for s in graph.threads.list()]
    assert listed == [("t", "asker", "interrupted")]
    state = Threads(store, secret=KEY).state("t")
    assert (state.status, [i.value for i in state.interrupts]) == ("interrupted", ["q"])
    assert [(e.key, e.task) for e in state.entries] == [("0", "__start__"), ("1", "one")]

    way.invoke(graph, Command(resume="yes"), cfg("t"))
    state = Threads(store, secret=KEY).state("t")
    assert (state.status, state.output) == ("completed", {"log": ["one", "two:yes"]})


@pytest.mark.subprocess
def test_the_cli_lists_and_shows_a_graph_thread(tmp_path: Path, calls: Any) -> None:
    """`durable threads` lists a graph's thread; `durable show` prints its nodes' journal, interrupt and output."""
    db = tmp_path / "journal.db"
    secret = "graph-cli-key-0123456789abcdef"

    def durable_cli(*args: str) -> Any:
        env = {"PYTHONPATH": str(REPO_ROOT), "DURABLE_SECRET": secret, "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-m", "durable", *args, "--json", "--url", f"sqlite:///{db}"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    with SQLiteStore(db) as store:
        graph = asking(Way("sync", False), calls).compile(checkpointer=store, secret=secret, name="asker")
        graph.invoke({"log": []}, cfg("g1"))
        listed = durable_cli("threads")["threads"]
        assert [(t["thread_id"], t["entrypoint"], t["status"]) for t in listed] == [("g1", "asker", "interrupted")]
        shown = durable_cli("show", "g1")
        asked = [{"id": "2.0", "value": "q", "response_schema": None, "deadline": None, "overdue": False, "errors": []}]
        assert (shown["status"], shown["interrupts"]) == ("interrupted", asked)
        assert [(e["key"], e["task"]) for e in shown["entries"]] == [("0", "__start__"), ("1", "one")]

        graph.invoke(Command(resume="yes"), cfg("g1"))
    shown = durable_cli("show", "g1")
    assert (shown["status"], shown["output"]) == ("completed", {"log": ["one", "two:yes"]})
    entries = [(e["key"], e["task"], e["status"]) for e in shown["entries"]]
    assert entries == [("0", "__start__", "ok"), ("1", "one", "ok"), ("2.0", "interrupt", "answer"), ("2", "two", "ok")]
