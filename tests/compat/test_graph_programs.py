"""LangGraph Graph-API programs, each written once, run on durable and on LangGraph with the same results.

A program is written against a `GraphLib`: the names a LangGraph Graph-API program imports (``StateGraph``,
``START``, ``END``, ``MessagesState``, ``add_messages``, ``REMOVE_ALL_MESSAGES``, ``Overwrite``, ``Send``,
``Command``, ``interrupt``, ``task``, ``RetryPolicy``, ``CachePolicy``, ``get_stream_writer``, ``get_config``,
``get_store``, the errors, ``RemainingSteps``) and factories for what it constructs (a checkpointer, a node cache,
a long-term store). Building a `GraphLib` from ``durable`` or from ``langgraph.*`` is what "rewriting the imports"
means. The ``lib`` fixture (of this module) gives each test:

* ``durable-memory``: durable, journaling to a `MemoryStore`;
* ``durable-sqlite``: durable, journaling to a `SQLiteStore` file in ``tmp_path``;
* ``langgraph``: LangGraph 1.x with ``InMemorySaver`` / ``InMemoryCache`` / ``InMemoryStore`` (skipped when
  LangGraph is not installed).

Every test asserts exact values, the same for each library: outputs, snapshots, stream chunks and how many times
each node body ran (``calls``); ids that differ by design (task, checkpoint and interrupt ids, timestamps) are
compared after `normalized` numbers them in order of appearance. Where durable differs from LangGraph by design
(see the README's list), the test branches on ``lib.is_durable`` and says why; where it differs by mistake, the
test asserts LangGraph's behaviour and is a strict xfail on durable's runs (``bug``).

The file has no ``from __future__ import annotations``: state schemas are built inside the tests from the
library's names (``add_messages``, ``RemainingSteps``), and both libraries read their annotations at runtime.
"""

import asyncio
import importlib
import itertools
import operator
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from typing_extensions import NotRequired, TypedDict

Calls = Any  # the `calls` counter of tests/conftest.py
LIBS = ["durable-memory", "durable-sqlite", "langgraph"]


@dataclass(frozen=True)
class GraphLib:
    """What a Graph-API program imports, from one library, and the factories it calls."""

    name: str  # "durable-memory", "durable-sqlite" or "langgraph"
    StateGraph: Any
    START: str
    END: str
    MessagesState: Any
    add_messages: Any
    REMOVE_ALL_MESSAGES: str
    Overwrite: Any
    Send: Any
    Command: Any
    interrupt: Any
    task: Any  # for a @task called inside a node
    RetryPolicy: Any
    CachePolicy: Any
    get_stream_writer: Any
    get_config: Any
    get_store: Any
    GraphRecursionError: Any
    InvalidUpdateError: Any
    RemainingSteps: Any
    checkpointer: Callable[[], Any]  # InMemorySaver() / a fresh MemoryStore or SQLiteStore
    cache: Callable[[], Any]  # InMemoryCache() / durable.Cache()
    store: Callable[[], Any]  # InMemoryStore() / durable.Memory()

    @property
    def is_durable(self) -> bool:
        return self.name.startswith("durable")

    def __repr__(self) -> str:
        return f"GraphLib({self.name})"


def _durable_lib(name: str, tmp_path: Path, closing: list[Any]) -> GraphLib:
    import durable
    import durable.graph as graph

    made = itertools.count()

    def checkpointer() -> Any:
        journal: Any
        if name == "durable-memory":
            journal = durable.MemoryStore()
        else:
            journal = durable.SQLiteStore(tmp_path / f"journal-{next(made)}.db")
        closing.append(journal)
        return journal

    return GraphLib(
        name=name,
        StateGraph=graph.StateGraph,
        START=graph.START,
        END=graph.END,
        MessagesState=graph.MessagesState,
        add_messages=graph.add_messages,
        REMOVE_ALL_MESSAGES=graph.REMOVE_ALL_MESSAGES,
        Overwrite=graph.Overwrite,
        Send=durable.Send,
        Command=durable.Command,
        interrupt=durable.interrupt,
        task=durable.task,
        RetryPolicy=durable.RetryPolicy,
        CachePolicy=durable.CachePolicy,
        get_stream_writer=durable.get_stream_writer,
        get_config=durable.get_config,
        get_store=durable.get_store,
        GraphRecursionError=graph.GraphRecursionError,
        InvalidUpdateError=graph.InvalidUpdateError,
        RemainingSteps=graph.RemainingSteps,
        checkpointer=checkpointer,
        cache=lambda: durable.Cache(),
        store=lambda: durable.Memory("memory://"),  # InMemoryStore(): an in-process memory of its own
    )


def _langgraph_lib() -> GraphLib:
    pytest.importorskip("langgraph")
    graph = importlib.import_module("langgraph.graph")
    types = importlib.import_module("langgraph.types")
    config = importlib.import_module("langgraph.config")
    errors = importlib.import_module("langgraph.errors")
    managed = importlib.import_module("langgraph.managed")
    return GraphLib(
        name="langgraph",
        StateGraph=graph.StateGraph,
        START=graph.START,
        END=graph.END,
        MessagesState=graph.MessagesState,
        add_messages=graph.add_messages,
        REMOVE_ALL_MESSAGES=importlib.import_module("langgraph.graph.message").REMOVE_ALL_MESSAGES,
        Overwrite=types.Overwrite,
        Send=types.Send,
        Command=types.Command,
        interrupt=types.interrupt,
        task=importlib.import_module("langgraph.func").task,
        RetryPolicy=types.RetryPolicy,
        CachePolicy=types.CachePolicy,
        get_stream_writer=config.get_stream_writer,
        get_config=config.get_config,
        get_store=config.get_store,
        GraphRecursionError=errors.GraphRecursionError,
        InvalidUpdateError=errors.InvalidUpdateError,
        RemainingSteps=managed.RemainingSteps,
        checkpointer=importlib.import_module("langgraph.checkpoint.memory").InMemorySaver,
        cache=importlib.import_module("langgraph.cache.memory").InMemoryCache,
        store=importlib.import_module("langgraph.store.memory").InMemoryStore,
    )


@pytest.fixture(params=LIBS)
def lib(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphLib]:
    """The program's imports from durable (on a MemoryStore, on a SQLiteStore) and from LangGraph.

    A test parametrizes ``lib`` itself (``on_libs``) to mark durable's runs, e.g. an xfail for a behaviour
    durable does not match yet."""
    closing: list[Any] = []
    yield _langgraph_lib() if request.param == "langgraph" else _durable_lib(request.param, tmp_path, closing)
    for journal in closing:
        journal.close()


def on_libs(durable: pytest.MarkDecorator) -> pytest.MarkDecorator:
    """Parametrize ``lib`` with ``durable`` marking durable's runs (an xfail where it differs from LangGraph)."""
    params = [pytest.param(name, marks=durable) if name.startswith("durable") else name for name in LIBS]
    return pytest.mark.parametrize("lib", params, indirect=True)


def limitation(reason: str) -> pytest.MarkDecorator:
    """``on_libs`` with a strict xfail on durable's runs: a documented difference (README, porting guide)."""
    return on_libs(pytest.mark.xfail(strict=True, reason=f"durable differs: {reason}"))


def bug(reason: str, **kwargs: Any) -> pytest.MarkDecorator:
    """``on_libs`` with a strict xfail on durable's runs: durable does not match LangGraph here yet."""
    return on_libs(pytest.mark.xfail(strict=True, reason=f"BUG: {reason}", **kwargs))


def cfg(thread_id: str, **configurable: Any) -> dict[str, Any]:
    """LangGraph's config naming a thread (and other ``configurable`` values)."""
    return {"configurable": {"thread_id": thread_id, **configurable}}


def plain(value: Any) -> Any:
    """``value`` with every interrupt as ``("interrupt", its value)`` and a ``GraphOutput`` as a tuple, so both
    libraries' results compare with ``==`` (interrupt ids differ by design: LangGraph hashes, durable keys)."""
    kind = type(value).__name__
    if kind == "Interrupt":
        return ("interrupt", plain(value.value))
    if kind == "GraphOutput":
        return ("GraphOutput", plain(value.value), plain(tuple(value.interrupts)))
    if isinstance(value, Mapping):
        found = {k: plain(v) for k, v in value.items()}
        if "__interrupt__" in found:  # a list from invoke, a tuple in a stream chunk: the same interrupts
            found["__interrupt__"] = tuple(found["__interrupt__"])
        return found
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value


_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAMESPACE = re.compile(rf"(?P<name>[^:|]+):(?P<id>{_UUID})")


def normalized(value: Any) -> Any:
    """`plain` for stream chunks and snapshots: every task id (and namespace ``"node:<task id>"``) and checkpoint
    id becomes ``task<N>`` / ``checkpoint<N>`` in order of first appearance, so references between chunks still
    compare; timestamps become ``"<time>"``; interrupts (objects or dicts) become ``("interrupt", value)``."""
    refs: dict[tuple[str, str], str] = {}

    def ref(kind: str, key: str) -> str:
        if (kind, key) not in refs:
            refs[kind, key] = f"{kind}{sum(k == kind for k, _ in refs)}"
        return refs[kind, key]

    def walk(v: Any, key: Any = None) -> Any:
        if type(v).__name__ == "Interrupt":
            return ("interrupt", walk(v.value))
        if type(v).__name__ == "GraphOutput":
            return ("GraphOutput", walk(v.value), walk(tuple(v.interrupts)))
        if isinstance(v, Mapping):
            if set(v) == {"id", "value", "response_schema"}:  # an interrupt in a "tasks" chunk
                return ("interrupt", walk(v["value"]))
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return type(v)(walk(x) for x in v)
        if not isinstance(v, str):
            return v
        if key in ("timestamp", "created_at"):
            return "<time>"
        if key == "checkpoint_id":
            return ref("checkpoint", v)
        if re.fullmatch(_UUID, v):
            return ref("task", v)
        parts = [_NAMESPACE.fullmatch(part) for part in v.split("|")]
        if all(parts):
            return "|".join(f"{m['name']}:{ref('task', m['id'])}" for m in parts if m)
        return v

    return walk(value)


def interrupted(state: Mapping[str, Any], *values: Any) -> dict[str, Any]:
    """A paused invoke's result: the state with these interrupt values, as `plain` shows it."""
    return {**state, "__interrupt__": tuple(("interrupt", v) for v in values)}


def by_repr(chunks: list[Any]) -> list[Any]:
    """Chunks of nodes running in parallel, in an order that does not depend on which finished first."""
    return sorted(chunks, key=repr)


def line(lib: GraphLib, state: Any, *nodes: Any, checkpointer: Any = None, **compile: Any) -> Any:
    """A compiled graph running ``nodes`` (``(name, fn)`` pairs) one after another, from START to END."""
    builder = lib.StateGraph(state)
    builder.add_sequence(list(nodes))
    builder.add_edge(lib.START, nodes[0][0])
    builder.add_edge(nodes[-1][0], lib.END)
    return builder.compile(checkpointer=checkpointer if checkpointer is not None else lib.checkpointer(), **compile)


class Steps(TypedDict):
    """A state whose ``steps`` accumulate every node's writes."""

    steps: Annotated[list[str], operator.add]


def step(name: str, calls: Calls | None = None) -> Callable[[Any], dict[str, Any]]:
    """A node appending its name to ``steps`` (and counting its runs)."""

    def node(state: Any) -> dict[str, Any]:
        if calls is not None:
            calls.hit(name)
        return {"steps": [name]}

    node.__name__ = name
    return node


# -- 1. the seeds' programs ------------------------------------------------------------------------------


@dataclass
class FakeResponse:
    text: str


class FakeRequests:
    """Stands for the ``requests`` module: ``get(url)`` counts its calls and returns a page naming the URL."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def get(self, url: str) -> FakeResponse:
        self.calls.hit(f"GET {url}")
        return FakeResponse(f"<html>page at {url}</html>" + "." * 200)


class ApiState(TypedDict):
    url: str
    result: NotRequired[str]


class ApiListState(TypedDict):
    urls: list[str]
    result: NotRequired[list[str]]


def test_seed_call_api_graph(lib: GraphLib, calls: Calls) -> None:
    """The seeds' ``call_api`` graph (``requests.get`` made local) returns the page's first 100 characters; the
    finished thread's ``invoke(None, config)`` runs nothing again."""
    requests = FakeRequests(calls)

    # -- the seed, imports rewritten --
    def call_api(state: ApiState):
        """Example node that makes an API request."""
        result = requests.get(state["url"]).text[:100]  # Side-effect
        return {"result": result}

    builder = lib.StateGraph(ApiState)
    builder.add_node("call_api", call_api)
    builder.add_edge(lib.START, "call_api")
    builder.add_edge("call_api", lib.END)
    checkpointer = lib.checkpointer()
    graph = builder.compile(checkpointer=checkpointer)
    thread_id = uuid.uuid4()
    config = {"configurable": {"thread_id": thread_id}}
    out = graph.invoke({"url": "https://www.example.com"}, config)
    # -- end of the seed --

    page = ("<html>page at https://www.example.com</html>" + "." * 200)[:100]
    assert out == {"url": "https://www.example.com", "result": page}
    assert graph.invoke(None, config) == out
    assert graph.get_state(config).values == out
    assert calls.as_dict() == {"GET https://www.example.com": 1}


def test_seed_task_inside_a_node(lib: GraphLib, calls: Calls) -> None:
    """The seeds' graph whose node calls a ``@task`` per URL: each request is made once; the node returns
    ``results``, a key the state lacks (the seed's typo), so the state keeps only ``urls``."""
    requests = FakeRequests(calls)

    # -- the seed, imports rewritten --
    @lib.task
    def _make_request(url: str):
        """Make a request."""
        return requests.get(url).text[:100]

    def call_api(state: ApiListState):
        """Example node that makes an API request."""
        requests = [_make_request(url) for url in state["urls"]]
        results = [request.result() for request in requests]
        calls.hit("call_api")
        assert results == [f"<html>page at {u}</html>".ljust(100, ".") for u in state["urls"]]
        return {"results": results}

    builder = lib.StateGraph(ApiListState)
    builder.add_node("call_api", call_api)
    builder.add_edge(lib.START, "call_api")
    builder.add_edge("call_api", lib.END)
    checkpointer = lib.checkpointer()
    graph = builder.compile(checkpointer=checkpointer)
    thread_id = uuid.uuid4()
    config = {"configurable": {"thread_id": thread_id}}
    out = graph.invoke({"urls": ["https://www.example.com", "https://b.example"]}, config)
    # -- end of the seed --

    assert out == {"urls": ["https://www.example.com", "https://b.example"]}
    assert graph.invoke(None, config) == out
    assert calls.as_dict() == {"GET https://www.example.com": 1, "GET https://b.example": 1, "call_api": 1}


def test_task_inside_a_node_streams_its_update(lib: GraphLib) -> None:
    """A ``@task`` called inside a node streams its own ``"updates"`` chunk, before the node's."""

    @lib.task
    def shout(text: str) -> str:
        return text.upper()

    def node(state: Steps) -> dict[str, Any]:
        return {"steps": [shout("a").result()]}

    graph = line(lib, Steps, ("node", node))
    assert list(graph.stream({"steps": []}, cfg("t1"))) == [{"shout": "A"}, {"node": {"steps": ["A"]}}]


def test_durability_modes(lib: GraphLib, calls: Calls) -> None:
    """``durability="sync"``, ``"async"`` and ``"exit"`` give the same result and final state."""
    graph = abc(lib, calls)
    for mode in ("sync", "async", "exit"):
        assert graph.invoke({"steps": []}, cfg(mode), durability=mode) == {"steps": ["a", "b", "c"]}
        assert graph.get_state(cfg(mode)).values == {"steps": ["a", "b", "c"]}
    assert calls.as_dict() == {"a": 3, "b": 3, "c": 3}


# -- 2. state schemas and reducers --------------------------------------------------------------------


class Counter(TypedDict):
    total: Annotated[int, operator.add]
    last: str


def test_typed_dict_state_with_reducer(lib: GraphLib) -> None:
    """A TypedDict state: an ``Annotated[..., operator.add]`` key adds every write to the input; a plain key
    keeps the last write; keys a node returns that the state lacks are ignored."""

    def first(state: Counter) -> dict[str, Any]:
        return {"total": 10, "last": "first", "unknown": 1}

    def second(state: Counter) -> dict[str, Any]:
        return {"total": state["total"] * 2, "last": f"second after {state['last']}"}

    graph = line(lib, Counter, ("first", first), ("second", second))
    assert graph.invoke({"total": 1, "last": "input"}, cfg("t1")) == {"total": 33, "last": "second after first"}
    assert graph.get_state(cfg("t1")).values == {"total": 33, "last": "second after first"}
    # the next run's input adds to the thread's state
    assert graph.invoke({"total": 0}, cfg("t1")) == {"total": 2 * (33 + 10) + 43, "last": "second after first"}


@dataclass
class DataState:
    name: str
    visits: Annotated[list[str], operator.add] = field(default_factory=list)
    mood: str = "calm"


def test_dataclass_state(lib: GraphLib) -> None:
    """A dataclass state: nodes read attributes (defaults filled in), return dicts; invoke returns a dict."""
    seen: list[Any] = []

    def greet(state: DataState) -> dict[str, Any]:
        seen.append((type(state).__name__, state.name, state.visits, state.mood))
        return {"visits": [f"hello {state.name}"], "mood": "happy"}

    graph = line(lib, DataState, ("greet", greet))
    assert graph.invoke({"name": "ann"}, cfg("t1")) == {"name": "ann", "visits": ["hello ann"], "mood": "happy"}
    assert graph.invoke(DataState(name="bob", visits=["x"]), cfg("t2")) == {
        "name": "bob",
        "visits": ["x", "hello bob"],
        "mood": "happy",
    }
    assert seen == [("DataState", "ann", [], "calm"), ("DataState", "bob", ["x"], "calm")]


try:
    import pydantic
except ImportError:  # pragma: no cover - LangGraph (a dev dependency) brings it
    pydantic = None
else:

    class Model(pydantic.BaseModel):
        question: str
        answers: Annotated[list[str], operator.add] = pydantic.Field(default_factory=list)
        tries: int = 0


@pytest.mark.skipif(pydantic is None, reason="needs pydantic")
def test_pydantic_state(lib: GraphLib) -> None:
    """A Pydantic state: nodes get model instances (defaults filled in), input is validated; invoke returns a
    dict."""
    seen: list[Any] = []

    def answer(state: Model) -> dict[str, Any]:
        seen.append((type(state).__name__, state.question, state.answers, state.tries))
        return {"answers": [state.question[::-1]], "tries": state.tries + 1}

    graph = line(lib, Model, ("answer", answer))
    assert graph.invoke({"question": "why"}, cfg("t1")) == {"question": "why", "answers": ["yhw"], "tries": 1}
    assert graph.invoke(Model(question="how", tries=4), cfg("t2")) == {
        "question": "how",
        "answers": ["woh"],
        "tries": 5,
    }
    assert seen == [("Model", "why", [], 0), ("Model", "how", [], 4)]


@pytest.mark.skipif(pydantic is None, reason="needs pydantic")
def test_pydantic_input_validation(lib: GraphLib) -> None:
    """Input that does not fit a Pydantic state raises pydantic's ``ValidationError``."""

    def answer(state: Model) -> dict[str, Any]:
        return {"answers": ["yes"]}

    graph = line(lib, Model, ("answer", answer))
    with pytest.raises(pydantic.ValidationError, match="question"):
        graph.invoke({"question": ["not", "a", "string"]}, cfg("t1"))


class Single(TypedDict):
    value: str
    log: Annotated[list[str], operator.add]


def test_two_writes_to_a_plain_key_in_one_step(lib: GraphLib, calls: Calls) -> None:
    """Two parallel nodes writing a key without a reducer fail the step with ``InvalidUpdateError``; writing
    a reducer key from both is fine."""

    def left(state: Single) -> dict[str, Any]:
        calls.hit("left")
        return {"value": "left", "log": ["left"]}

    def right(state: Single) -> dict[str, Any]:
        calls.hit("right")
        return {"value": "right", "log": ["right"]}

    def logs_only(state: Single) -> dict[str, Any]:
        return {"log": ["logs_only"]}

    builder = lib.StateGraph(Single)
    builder.add_node("left", left)
    builder.add_node("right", right)
    builder.add_edge(lib.START, "left")
    builder.add_edge(lib.START, "right")
    graph = builder.compile(checkpointer=lib.checkpointer())
    with pytest.raises(lib.InvalidUpdateError, match="value"):
        graph.invoke({"value": "start", "log": []}, cfg("t1"))
    assert calls.as_dict() == {"left": 1, "right": 1}

    builder = lib.StateGraph(Single)
    builder.add_node("left", logs_only)
    builder.add_node("right", right)
    builder.add_edge(lib.START, "left")
    builder.add_edge(lib.START, "right")
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"value": "start", "log": []}, cfg("t2")) == {"value": "right", "log": ["logs_only", "right"]}


def test_overwrite_bypasses_the_reducer(lib: GraphLib) -> None:
    """A node writing ``Overwrite(value)`` to a reducer key replaces the value instead of adding to it."""

    def reset(state: Steps) -> dict[str, Any]:
        return {"steps": lib.Overwrite(["reset"])}

    graph = line(lib, Steps, ("a", step("a")), ("reset", reset), ("b", step("b")))
    assert graph.invoke({"steps": ["in"]}, cfg("t1")) == {"steps": ["reset", "b"]}


class InputState(TypedDict):
    user_input: str


class OutputState(TypedDict):
    graph_output: str


class OverallState(TypedDict):
    foo: str
    user_input: str
    graph_output: str


class PrivateState(TypedDict):
    bar: str


def test_input_output_and_private_schemas(lib: GraphLib) -> None:
    """LangGraph's "multiple schemas" how-to: ``input_schema`` narrows the input, ``output_schema`` the result,
    and a node's input annotation (``PrivateState``) adds a private channel another node writes."""
    seen: list[Any] = []

    def node_1(state: InputState) -> OverallState:
        seen.append(("node_1", dict(state)))
        return {"foo": state["user_input"] + " name"}

    def node_2(state: OverallState) -> PrivateState:
        seen.append(("node_2", dict(state)))
        return {"bar": state["foo"] + " is"}

    def node_3(state: PrivateState) -> OutputState:
        seen.append(("node_3", dict(state)))
        return {"graph_output": state["bar"] + " Lance"}

    builder = lib.StateGraph(OverallState, input_schema=InputState, output_schema=OutputState)
    builder.add_node("node_1", node_1)
    builder.add_node("node_2", node_2)
    builder.add_node("node_3", node_3)
    builder.add_edge(lib.START, "node_1")
    builder.add_edge("node_1", "node_2")
    builder.add_edge("node_2", "node_3")
    builder.add_edge("node_3", lib.END)
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"user_input": "My"}, cfg("t1")) == {"graph_output": "My name is Lance"}
    assert seen == [
        ("node_1", {"user_input": "My"}),
        ("node_2", {"foo": "My name", "user_input": "My"}),
        ("node_3", {"bar": "My name is"}),
    ]
    assert graph.get_state(cfg("t1")).values == {
        "foo": "My name",
        "user_input": "My",
        "graph_output": "My name is Lance",
        "bar": "My name is",
    }


# -- 3. messages ---------------------------------------------------------------------------------------


def test_messages_state(lib: GraphLib) -> None:
    """``MessagesState``: input tuples become messages with ids; a node's message is appended; a message with
    an existing id replaces it; ``RemoveMessage(id=...)`` deletes it, ``RemoveMessage(id=REMOVE_ALL_MESSAGES)`` all
    before it."""
    messages = pytest.importorskip("langchain_core.messages")
    ids = itertools.count()

    def reply(state: Any) -> dict[str, Any]:
        last = state["messages"][-1]
        return {"messages": [messages.AIMessage(content=f"echo: {last.content}", id=f"ai-{next(ids)}")]}

    graph = line(lib, lib.MessagesState, ("reply", reply))
    config = cfg("t1")
    out = graph.invoke({"messages": [("user", "hi")]}, config)
    human = out["messages"][0]
    assert isinstance(human, messages.HumanMessage) and human.content == "hi"
    assert isinstance(human.id, str) and len(human.id) == 36  # a uuid4 given by add_messages
    assert out["messages"][1] == messages.AIMessage(content="echo: hi", id="ai-0")

    edited = messages.HumanMessage(content="hello", id=human.id)
    out = graph.invoke({"messages": [edited]}, config)  # replaces the first message; the node answers it
    assert [(type(m).__name__, m.content, m.id) for m in out["messages"]] == [
        ("HumanMessage", "hello", human.id),
        ("AIMessage", "echo: hi", "ai-0"),
        ("AIMessage", "echo: echo: hi", "ai-1"),
    ]
    out = graph.invoke({"messages": [messages.RemoveMessage(id="ai-0"), ("user", "bye")]}, config)
    assert [m.content for m in out["messages"]] == ["hello", "echo: echo: hi", "bye", "echo: bye"]
    out = graph.invoke({"messages": [messages.RemoveMessage(id=lib.REMOVE_ALL_MESSAGES), ("user", "anew")]}, config)
    assert [m.content for m in out["messages"]] == ["anew", "echo: anew"]


def test_add_messages_reducer(lib: GraphLib) -> None:
    """``add_messages`` used as a reducer of a custom state and called directly: appends, replaces by id,
    turns dicts and tuples into messages."""
    messages = pytest.importorskip("langchain_core.messages")

    class Chat(TypedDict):
        history: Annotated[list, lib.add_messages]
        turns: int

    def bot(state: Chat) -> dict[str, Any]:
        return {"history": [{"role": "assistant", "content": "ok", "id": "b1"}], "turns": state["turns"] + 1}

    graph = line(lib, Chat, ("bot", bot))
    out = graph.invoke({"history": [messages.HumanMessage(content="go", id="h1")], "turns": 0}, cfg("t1"))
    assert out == {
        "history": [messages.HumanMessage(content="go", id="h1"), messages.AIMessage(content="ok", id="b1")],
        "turns": 1,
    }
    merged = lib.add_messages(
        [messages.HumanMessage(content="a", id="1"), messages.AIMessage(content="b", id="2")],
        [messages.AIMessage(content="B", id="2"), ("user", "c")],
    )
    assert [(type(m).__name__, m.content, m.id) for m in merged[:2]] == [
        ("HumanMessage", "a", "1"),
        ("AIMessage", "B", "2"),
    ]
    assert (type(merged[2]).__name__, merged[2].content) == ("HumanMessage", "c")


# -- 4. edges: parallel branches, joins, conditional edges ---------------------------------------------


def test_parallel_branches_and_join(lib: GraphLib, calls: Calls) -> None:
    """Fan-out from START to two branches of different lengths: a plain edge into ``join`` runs it once per
    arriving branch; ``add_edge([a, b], c)`` waits for both; parallel writes land in node-name order."""
    builder = lib.StateGraph(Steps)
    for name in ("b_short", "a_long", "a_long_2", "join", "wait_both"):
        builder.add_node(name, step(name, calls))
    builder.add_edge(lib.START, "b_short")
    builder.add_edge(lib.START, "a_long")
    builder.add_edge("a_long", "a_long_2")
    builder.add_edge("b_short", "join")
    builder.add_edge("a_long_2", "join")
    builder.add_edge(["b_short", "a_long_2"], "wait_both")
    graph = builder.compile(checkpointer=lib.checkpointer())
    chunks = list(graph.stream({"steps": []}, cfg("t1"), stream_mode="updates"))
    steps = [by_repr(chunks[:2]), by_repr(chunks[2:4]), chunks[4:]]  # parallel nodes stream as they finish
    assert steps == [
        [{"a_long": {"steps": ["a_long"]}}, {"b_short": {"steps": ["b_short"]}}],
        [{"a_long_2": {"steps": ["a_long_2"]}}, {"join": {"steps": ["join"]}}],
        [{"join": {"steps": ["join"]}}, {"wait_both": {"steps": ["wait_both"]}}],
    ]
    assert graph.get_state(cfg("t1")).values == {
        "steps": ["a_long", "b_short", "a_long_2", "join", "join", "wait_both"]
    }
    assert calls.as_dict() == {"b_short": 1, "a_long": 1, "a_long_2": 1, "join": 2, "wait_both": 1}


class Routed(TypedDict):
    n: int
    steps: Annotated[list[str], operator.add]


def test_conditional_edges(lib: GraphLib) -> None:
    """A router with a dict path map, one returning a list (both branches run), a ``Literal`` router without a
    map, and routing to END."""

    def classify(state: Routed) -> str:
        return "big" if state["n"] > 10 else "small"

    def both(state: Routed) -> list[str]:
        return ["x", "y"] if state["n"] % 2 == 0 else ["y"]

    def finish(state: Routed) -> Literal["done", "__end__"]:
        return "done" if state["n"] < 100 else lib.END

    builder = lib.StateGraph(Routed)
    for name in ("start", "high", "low", "x", "y", "done"):
        builder.add_node(name, step(name))
    builder.add_edge(lib.START, "start")
    builder.add_conditional_edges("start", classify, {"big": "high", "small": "low"})
    builder.add_conditional_edges("high", both, ["x", "y"])
    builder.add_edge("low", lib.END)
    builder.add_conditional_edges("x", finish)
    builder.add_conditional_edges("y", finish)
    builder.add_edge("done", lib.END)
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"n": 3, "steps": []}, cfg("t1"))["steps"] == ["start", "low"]
    assert graph.invoke({"n": 12, "steps": []}, cfg("t2"))["steps"] == ["start", "high", "x", "y", "done"]
    assert graph.invoke({"n": 13, "steps": []}, cfg("t3"))["steps"] == ["start", "high", "y", "done"]
    assert graph.invoke({"n": 200, "steps": []}, cfg("t4"))["steps"] == ["start", "high", "x", "y"]


def test_entry_finish_sequence_and_conditional_entry(lib: GraphLib) -> None:
    """``set_entry_point``, ``add_sequence`` (of functions, named after them), ``set_finish_point`` and
    ``set_conditional_entry_point``."""

    def one(state: Steps) -> dict[str, Any]:
        return {"steps": ["one"]}

    def two(state: Steps) -> dict[str, Any]:
        return {"steps": ["two"]}

    builder = lib.StateGraph(Steps)
    builder.add_sequence([one, two, ("three", step("three"))])
    builder.set_entry_point("one")
    builder.set_finish_point("three")
    assert builder.compile(checkpointer=lib.checkpointer()).invoke({"steps": []}, cfg("t1")) == {
        "steps": ["one", "two", "three"]
    }

    builder = lib.StateGraph(Steps)
    builder.add_node("one", one)
    builder.add_node("two", two)
    builder.set_conditional_entry_point(lambda s: "two" if s["steps"] else "one", ["one", "two"])
    builder.set_finish_point("one")
    builder.set_finish_point("two")
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"steps": []}, cfg("t2")) == {"steps": ["one"]}
    assert graph.invoke({"steps": ["x"]}, cfg("t3")) == {"steps": ["x", "two"]}


# -- 5. Send and Command -------------------------------------------------------------------------------


class Jokes(TypedDict):
    subjects: list[str]
    jokes: Annotated[list[str], operator.add]


def test_send_map_reduce(lib: GraphLib, calls: Calls) -> None:
    """A conditional edge returning ``Send``s fans out one node run per Send, each with its own argument; the
    reducer gets their results in Send order; the reduce node after them runs once."""

    def continue_to_jokes(state: Jokes) -> list[Any]:
        return [lib.Send("generate_joke", {"subject": s}) for s in state["subjects"]]

    def generate_joke(arg: dict[str, str]) -> dict[str, Any]:
        calls.hit("generate_joke")
        return {"jokes": [f"Joke about {arg['subject']}"]}

    def best(state: Jokes) -> dict[str, Any]:
        calls.hit("best")
        return {"jokes": [f"best of {len(state['jokes'])}"]}

    builder = lib.StateGraph(Jokes)
    builder.add_node("generate_joke", generate_joke)
    builder.add_node("best", best)
    builder.add_conditional_edges(lib.START, continue_to_jokes, ["generate_joke"])
    builder.add_edge("generate_joke", "best")
    builder.add_edge("best", lib.END)
    graph = builder.compile(checkpointer=lib.checkpointer())
    subjects = ["cats", "dogs", "owls", "bees", "ants"]
    assert graph.invoke({"subjects": subjects, "jokes": []}, cfg("t1")) == {
        "subjects": subjects,
        "jokes": [f"Joke about {s}" for s in subjects] + ["best of 5"],
    }
    assert calls.as_dict() == {"generate_joke": 5, "best": 1}


class Hops(TypedDict):
    hops: Annotated[list[str], operator.add]
    target: str


def test_command_from_a_node(lib: GraphLib, calls: Calls) -> None:
    """A node returning ``Command(update=..., goto=...)`` (annotated ``-> Command[Literal[...]]``) updates the
    state and goes where it says, with no edge; ``goto=Send(...)`` runs a node with its own argument."""

    def router(state: Hops) -> Any:
        return lib.Command(update={"hops": ["router"]}, goto=state["target"])

    router.__annotations__["return"] = lib.Command[Literal["left", "right", "fan"]]

    def left(state: Hops) -> dict[str, Any]:
        calls.hit("left")
        return {"hops": ["left"]}

    def right(state: Hops) -> dict[str, Any]:
        calls.hit("right")
        return {"hops": ["right"]}

    def fan(state: Hops) -> Any:
        return lib.Command(goto=[lib.Send("echo", {"say": "a"}), lib.Send("echo", {"say": "b"})])

    def echo(arg: dict[str, str]) -> dict[str, Any]:
        calls.hit("echo")
        return {"hops": [f"echo {arg['say']}"]}

    builder = lib.StateGraph(Hops)
    for name, fn in [("router", router), ("left", left), ("right", right), ("fan", fan), ("echo", echo)]:
        builder.add_node(name, fn)
    builder.add_edge(lib.START, "router")
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"hops": [], "target": "right"}, cfg("t1")) == {"hops": ["router", "right"], "target": "right"}
    assert graph.invoke({"hops": [], "target": "fan"}, cfg("t2"))["hops"] == ["router", "echo a", "echo b"]
    assert calls.as_dict() == {"right": 1, "echo": 2}


def test_command_to_the_parent_graph(lib: GraphLib, calls: Calls) -> None:
    """A subgraph's node returning ``Command(graph=Command.PARENT, goto=..., update=...)`` leaves the subgraph and
    goes to a node of the parent graph, updating the parent's state."""

    def sub_step(state: Hops) -> dict[str, Any]:
        return {"hops": ["sub_step"]}

    def handoff(state: Hops) -> Any:
        return lib.Command(graph=lib.Command.PARENT, goto="other", update={"hops": ["handoff"]})

    def never(state: Hops) -> dict[str, Any]:
        calls.hit("never")
        return {"hops": ["never"]}

    sub = lib.StateGraph(Hops)
    sub.add_sequence([("sub_step", sub_step), ("handoff", handoff), ("never", never)])
    sub.add_edge(lib.START, "sub_step")
    subgraph = sub.compile()

    builder = lib.StateGraph(Hops)
    builder.add_node("sub", subgraph)
    builder.add_node("other", lambda state: {"hops": ["other"]})
    builder.add_edge(lib.START, "sub")
    graph = builder.compile(checkpointer=lib.checkpointer())
    # the subgraph's own writes (sub_step) stay in it: only the Command's update reaches the parent
    assert graph.invoke({"hops": ["in"], "target": ""}, cfg("t1")) == {"hops": ["in", "handoff", "other"], "target": ""}
    assert calls.as_dict() == {}


def test_invoke_with_a_command(lib: GraphLib, calls: Calls) -> None:
    """``invoke(Command(update=..., goto=...), config)`` on a thread updates its state and runs from the named
    node; on a new thread, ``Command(goto=...)`` runs from that node."""

    def hop(name: str) -> Callable[[Hops], dict[str, Any]]:
        def node(state: Hops) -> dict[str, Any]:
            calls.hit(name)
            return {"hops": [name]}

        return node

    builder = lib.StateGraph(Hops)
    builder.add_node("first", hop("first"))
    builder.add_node("second", hop("second"))
    builder.add_edge(lib.START, "first")
    builder.add_edge("first", "second")
    graph = builder.compile(checkpointer=lib.checkpointer())
    config = cfg("t1")
    assert graph.invoke({"hops": [], "target": "x"}, config) == {"hops": ["first", "second"], "target": "x"}
    out = graph.invoke(lib.Command(update={"hops": ["cmd"], "target": "y"}, goto="second"), config)
    assert out == {"hops": ["first", "second", "cmd", "second"], "target": "y"}
    assert graph.invoke(lib.Command(goto="first"), cfg("t2")) == {"hops": ["first", "second"]}
    assert calls.as_dict() == {"first": 2, "second": 3}


# -- 6. recursion limit and managed values -------------------------------------------------------------


class Loop(TypedDict):
    n: int


def looping(lib: GraphLib, calls: Calls) -> Any:
    def again(state: Loop) -> dict[str, Any]:
        calls.hit("again")
        return {"n": state["n"] + 1}

    builder = lib.StateGraph(Loop)
    builder.add_node("again", again)
    builder.add_edge(lib.START, "again")
    builder.add_edge("again", "again")
    return builder.compile(checkpointer=lib.checkpointer())


def test_recursion_limit(lib: GraphLib, calls: Calls) -> None:
    """A graph that never ends stops with ``GraphRecursionError`` (a ``RecursionError``) after
    ``config["recursion_limit"]`` supersteps; the state keeps the last step's writes."""
    graph = looping(lib, calls)
    assert issubclass(lib.GraphRecursionError, RecursionError)
    with pytest.raises(lib.GraphRecursionError, match=r"(?i)recursion limit of 5\b"):
        graph.invoke({"n": 0}, {**cfg("t1"), "recursion_limit": 5})
    assert calls["again"] == 5
    assert graph.get_state(cfg("t1")).values == {"n": 5}
    with pytest.raises(lib.GraphRecursionError, match=r"(?i)recursion limit of 12\b"):
        graph.invoke({"n": 0}, {**cfg("t2"), "recursion_limit": 12})
    assert calls["again"] == 17
    assert graph.get_state(cfg("t2")).values == {"n": 12}


def test_default_recursion_limit(lib: GraphLib, calls: Calls) -> None:
    """With no ``recursion_limit`` in the config, a graph of 40 supersteps finishes (LangGraph 1.2's default
    limit is 10007)."""

    def again(state: Loop) -> dict[str, Any]:
        return {"n": state["n"] + 1}

    builder = lib.StateGraph(Loop)
    builder.add_node("again", again)
    builder.add_edge(lib.START, "again")
    builder.add_conditional_edges("again", lambda s: lib.END if s["n"] >= 40 else "again", ["again", lib.END])
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"n": 0}, cfg("t1")) == {"n": 40}


def agent_state(lib: GraphLib) -> Any:
    """A state with ``seen`` and a ``remaining_steps: RemainingSteps`` managed value."""

    class AgentState(TypedDict):
        seen: Annotated[list[int], operator.add]
        remaining_steps: lib.RemainingSteps

    return AgentState


def test_remaining_steps(lib: GraphLib) -> None:
    """A ``RemainingSteps`` key tells a node how many supersteps are left after its own, so it can stop before
    the limit."""

    def think(state) -> dict[str, Any]:
        return {"seen": [state["remaining_steps"]]}

    builder = lib.StateGraph(agent_state(lib))
    builder.add_node("think", think)
    builder.add_edge(lib.START, "think")
    builder.add_conditional_edges("think", lambda s: lib.END if s["seen"][-1] <= 2 else "think", ["think", lib.END])
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"seen": []}, {**cfg("t1"), "recursion_limit": 6}) == {"seen": [5, 4, 3, 2]}
    assert graph.invoke({"seen": []}, {**cfg("t2"), "recursion_limit": 25})["seen"][:2] == [24, 23]


def test_router_reads_remaining_steps(lib: GraphLib) -> None:
    """A conditional edge's router reads ``RemainingSteps`` like a node does."""

    def think(state) -> dict[str, Any]:
        return {"seen": [state["remaining_steps"]]}

    def route(state) -> str:
        return lib.END if state["remaining_steps"] <= 2 else "think"

    builder = lib.StateGraph(agent_state(lib))
    builder.add_node("think", think)
    builder.add_edge(lib.START, "think")
    builder.add_conditional_edges("think", route, ["think", lib.END])
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"seen": []}, {**cfg("t1"), "recursion_limit": 6}) == {"seen": [5, 4, 3, 2]}


# -- 7. deferred nodes ---------------------------------------------------------------------------------


def test_deferred_node_after_uneven_branches(lib: GraphLib, calls: Calls) -> None:
    """A ``defer=True`` node reached by branches of different lengths runs once, after all of them."""
    builder = lib.StateGraph(Steps)
    for name in ("a", "b", "b_2", "b_3"):
        builder.add_node(name, step(name))
    builder.add_node("summary", step("summary", calls), defer=True)
    builder.add_edge(lib.START, "a")
    builder.add_edge(lib.START, "b")
    builder.add_edge("b", "b_2")
    builder.add_edge("b_2", "b_3")
    builder.add_edge("a", "summary")
    builder.add_edge("b_3", "summary")
    builder.add_edge("summary", lib.END)
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"steps": []}, cfg("t1")) == {"steps": ["a", "b", "b_2", "b_3", "summary"]}
    assert calls.as_dict() == {"summary": 1}


# -- 8. interrupt() in a node --------------------------------------------------------------------------


class Draft(TypedDict):
    topic: str
    draft: str
    verdict: str


def review_graph(lib: GraphLib, calls: Calls, **compile: Any) -> Any:
    """draft -> review (asks a person with ``interrupt``) -> publish."""

    def draft(state: Draft) -> dict[str, Any]:
        calls.hit("draft")
        return {"draft": f"essay on {state['topic']}"}

    def review(state: Draft) -> dict[str, Any]:
        calls.hit("review")
        verdict = lib.interrupt({"question": "ok?", "draft": state["draft"]})
        return {"verdict": verdict}

    def publish(state: Draft) -> dict[str, Any]:
        calls.hit("publish")
        return {"draft": state["draft"].upper()}

    return line(lib, Draft, ("draft", draft), ("review", review), ("publish", publish), **compile)


def test_interrupt_and_resume(lib: GraphLib, calls: Calls) -> None:
    """``interrupt()`` pauses the graph: invoke returns the state with ``__interrupt__``; ``get_state`` shows the
    paused node in ``next``, its task with the interrupt, and ``interrupts``; ``Command(resume=...)`` runs the
    node again from its start with the answer; nodes that finished do not run again."""
    graph = review_graph(lib, calls)
    config = cfg("t1")
    question = {"question": "ok?", "draft": "essay on cats"}
    out = graph.invoke({"topic": "cats"}, config)
    assert plain(out) == interrupted({"topic": "cats", "draft": "essay on cats"}, question)
    state = graph.get_state(config)
    assert (state.values, state.next) == ({"topic": "cats", "draft": "essay on cats"}, ("review",))
    assert [(t.name, [i.value for i in t.interrupts]) for t in state.tasks] == [("review", [question])]
    assert [i.value for i in state.interrupts] == [question]
    assert state.interrupts[0].id == out["__interrupt__"][0].id
    assert graph.invoke(lib.Command(resume="approved"), config) == {
        "topic": "cats",
        "draft": "ESSAY ON CATS",
        "verdict": "approved",
    }
    assert (graph.get_state(config).next, graph.get_state(config).interrupts) == ((), ())
    assert calls.as_dict() == {"draft": 1, "review": 2, "publish": 1}


def test_invoke_none_while_paused_asks_again(lib: GraphLib, calls: Calls) -> None:
    """``invoke(None, config)`` on a paused thread gives the same question again. LangGraph runs the paused node
    again to ask it; durable returns the pending question without running anything (deliberate: the node's code
    before its ``interrupt()`` is not run once more for nothing, as for entrypoints)."""
    graph = review_graph(lib, calls)
    config = cfg("t1")
    graph.invoke({"topic": "cats"}, config)
    question = {"question": "ok?", "draft": "essay on cats"}
    assert plain(graph.invoke(None, config)) == interrupted({"topic": "cats", "draft": "essay on cats"}, question)
    assert calls.as_dict() == {"draft": 1, "review": 1 if lib.is_durable else 2}


def test_changing_a_paused_thread(lib: GraphLib, calls: Calls) -> None:
    """A thread paused on ``interrupt()`` given new input, ``update_state``, or ``Command(resume=, update=)``:
    durable refuses all three (the question stays pending: ``UnfinishedRunError`` / ``ConfigurationError``);
    LangGraph drops the paused run for new input, and applies the update otherwise."""
    graph = review_graph(lib, calls)
    for thread in ("t1", "t2", "t3"):
        graph.invoke({"topic": "cats"}, cfg(thread))
    if lib.is_durable:  # deliberate: a pending question is never silently dropped or answered around
        from durable import ConfigurationError, UnfinishedRunError

        with pytest.raises(UnfinishedRunError):
            graph.invoke({"topic": "dogs"}, cfg("t1"))
        with pytest.raises(UnfinishedRunError):
            graph.update_state(cfg("t2"), {"topic": "owls"})
        with pytest.raises(ConfigurationError):
            graph.invoke(lib.Command(resume="ok", update={"topic": "bees"}), cfg("t3"))
        assert [graph.get_state(cfg(t)).next for t in ("t1", "t2", "t3")] == [("review",)] * 3
        assert calls.as_dict() == {"draft": 3, "review": 3}
    else:
        out = graph.invoke({"topic": "dogs"}, cfg("t1"))
        assert [i.value["draft"] for i in out["__interrupt__"]] == ["essay on dogs"]
        graph.update_state(cfg("t2"), {"topic": "owls"})
        assert graph.invoke(lib.Command(resume="fine"), cfg("t2"))["topic"] == "owls"
        out = graph.invoke(lib.Command(resume="ok", update={"topic": "bees"}), cfg("t3"))
        assert out == {"topic": "bees", "draft": "ESSAY ON CATS", "verdict": "ok"}
        assert calls.as_dict() == {"draft": 4, "review": 6, "publish": 2}


def test_several_interrupts_in_one_node(lib: GraphLib, calls: Calls) -> None:
    """A node asking two questions pauses twice; each resume runs it from its start, answered questions
    return their answers at once."""

    def form(state: Draft) -> dict[str, Any]:
        calls.hit("form")
        topic = lib.interrupt("topic?")
        verdict = lib.interrupt(f"verdict on {topic}?")
        return {"topic": topic, "verdict": verdict}

    graph = line(lib, Draft, ("form", form))
    config = cfg("t1")
    outs = [graph.invoke({"draft": ""}, config)]
    outs.append(graph.invoke(lib.Command(resume="owls"), config))
    outs.append(graph.invoke(lib.Command(resume="good"), config))
    assert plain(outs) == [
        interrupted({"draft": ""}, "topic?"),
        interrupted({"draft": ""}, "verdict on owls?"),
        {"draft": "", "topic": "owls", "verdict": "good"},
    ]
    assert calls.as_dict() == {"form": 3}


def test_parallel_interrupts_resumed_by_id(lib: GraphLib, calls: Calls) -> None:
    """Two parallel nodes that both ask pause together; a ``Command(resume={id: answer, ...})`` answers both."""

    class Answers(TypedDict):
        answers: Annotated[list[str], operator.add]

    def asker(name: str) -> Callable[[Any], dict[str, Any]]:
        def node(state: Answers) -> dict[str, Any]:
            calls.hit(name)
            return {"answers": [f"{name}: {lib.interrupt(f'{name}?')}"]}

        return node

    builder = lib.StateGraph(Answers)
    builder.add_node("ask_a", asker("ask_a"))
    builder.add_node("ask_b", asker("ask_b"))
    builder.add_node("after", lambda s: {"answers": ["after"]})
    builder.add_edge(lib.START, "ask_a")
    builder.add_edge(lib.START, "ask_b")
    builder.add_edge(["ask_a", "ask_b"], "after")
    graph = builder.compile(checkpointer=lib.checkpointer())
    config = cfg("t1")
    out = graph.invoke({"answers": []}, config)
    assert sorted(i.value for i in out["__interrupt__"]) == ["ask_a?", "ask_b?"]
    state = graph.get_state(config)
    assert state.next == ("ask_a", "ask_b")
    answers = {i.id: i.value.upper() for i in state.interrupts}
    assert graph.invoke(lib.Command(resume=answers), config) == {"answers": ["ask_a: ASK_A?", "ask_b: ASK_B?", "after"]}
    assert calls.as_dict() == {"ask_a": 2, "ask_b": 2}


def test_interrupt_inside_a_subgraph(lib: GraphLib, calls: Calls) -> None:
    """A subgraph added as a node pauses on its node's ``interrupt()``; on resume, the subgraph's nodes before the
    interrupt and the parent's nodes before the subgraph do not run again."""

    def counted(name: str) -> Callable[[Any], dict[str, Any]]:
        def node(state: Hops) -> dict[str, Any]:
            calls.hit(name)
            return {"hops": [name]}

        return node

    def sub_ask(state: Hops) -> dict[str, Any]:
        calls.hit("sub_ask")
        return {"hops": [f"answer {lib.interrupt('sub?')}"]}

    sub = lib.StateGraph(Hops)
    sub.add_sequence([("sub_before", counted("sub_before")), ("sub_ask", sub_ask), ("sub_after", counted("sub_after"))])
    sub.add_edge(lib.START, "sub_before")
    builder = lib.StateGraph(Hops)
    builder.add_sequence([("before", counted("before")), ("sub", sub.compile()), ("after", counted("after"))])
    builder.add_edge(lib.START, "before")
    graph = builder.compile(checkpointer=lib.checkpointer())
    config = cfg("t1")
    assert plain(graph.invoke({"hops": []}, config)) == interrupted({"hops": ["before"]}, "sub?")
    state = graph.get_state(config)
    assert (state.next, [t.name for t in state.tasks]) == (("sub",), ["sub"])
    assert [i.value for i in state.interrupts] == ["sub?"]
    assert graph.invoke(lib.Command(resume="yes"), config) == {
        # the subgraph returns its whole state: the parent's reducer adds it to what it had
        "hops": ["before", "before", "sub_before", "answer yes", "sub_after", "after"]
    }
    assert calls.as_dict() == {"before": 1, "sub_before": 1, "sub_ask": 2, "sub_after": 1, "after": 1}


@limitation(
    "a paused subgraph's task in get_state has state=None, with subgraphs=True too (LangGraph: its config / its "
    "StateSnapshot): a subgraph has no checkpoints of its own, it is journaled in its parent's node"
)
def test_get_state_of_a_paused_subgraph(lib: GraphLib, calls: Calls) -> None:
    """``get_state(config, subgraphs=True)`` shows the paused subgraph's own snapshot on the parent's task: its
    values, next node and interrupt."""

    def sub_ask(state: Hops) -> dict[str, Any]:
        return {"hops": [f"answer {lib.interrupt('sub?')}"]}

    sub = lib.StateGraph(Hops)
    sub.add_sequence([("sub_before", lambda s: {"hops": ["sub_before"]}), ("sub_ask", sub_ask)])
    sub.add_edge(lib.START, "sub_before")
    graph = line(lib, Hops, ("before", lambda s: {"hops": ["before"]}), ("sub", sub.compile()))
    config = cfg("t1")
    graph.invoke({"hops": []}, config)
    assert graph.get_state(config).tasks[0].state["configurable"]["thread_id"] == "t1"  # a config, without subgraphs
    inner = graph.get_state(config, subgraphs=True).tasks[0].state
    assert (inner.values, inner.next) == ({"hops": ["before", "sub_before"]}, ("sub_ask",))
    assert [i.value for i in inner.interrupts] == ["sub?"]
    assert normalized(inner.config["configurable"]["checkpoint_ns"]) == "sub:task0"


def test_interrupt_in_a_subgraph_invoked_by_a_node(lib: GraphLib, calls: Calls) -> None:
    """A node calling ``subgraph.invoke(...)``: the interrupt pauses the parent; on resume the parent node runs
    again from its start, and inside the subgraph only the node that asked runs again."""

    def sub_before(state: Hops) -> dict[str, Any]:
        calls.hit("sub_before")
        return {"hops": ["sub_before"]}

    def sub_ask(state: Hops) -> dict[str, Any]:
        calls.hit("sub_ask")
        return {"hops": [f"answer {lib.interrupt('sub?')}"]}

    sub = lib.StateGraph(Hops)
    sub.add_sequence([("sub_before", sub_before), ("sub_ask", sub_ask)])
    sub.add_edge(lib.START, "sub_before")
    subgraph = sub.compile()

    def call_sub(state: Hops) -> dict[str, Any]:
        calls.hit("call_sub")
        out = subgraph.invoke({"hops": ["from parent"]})
        return {"hops": out["hops"]}

    graph = line(lib, Hops, ("call_sub", call_sub))
    config = cfg("t1")
    assert plain(graph.invoke({"hops": []}, config)) == interrupted({"hops": []}, "sub?")
    assert graph.invoke(lib.Command(resume="yes"), config) == {"hops": ["from parent", "sub_before", "answer yes"]}
    assert calls.as_dict() == {"call_sub": 2, "sub_before": 1, "sub_ask": 2}


def test_resume_after_a_failed_node(lib: GraphLib, calls: Calls) -> None:
    """A failing node fails the run; ``get_state`` shows it as next, with its error; ``invoke(None, config)``
    resumes the run: the nodes that finished before do not run again."""
    failures = [ConnectionError("flaky")]

    def fragile(state: Steps) -> dict[str, Any]:
        calls.hit("fragile")
        if failures:
            raise failures.pop()
        return {"steps": ["fragile"]}

    builder = lib.StateGraph(Steps)
    builder.add_node("solid", step("solid", calls))
    builder.add_node("prepare", step("prepare", calls))
    builder.add_node("fragile", fragile)
    builder.add_node("after", step("after", calls))
    builder.add_edge(lib.START, "solid")
    builder.add_edge(lib.START, "prepare")
    builder.add_edge("prepare", "fragile")
    builder.add_edge(["solid", "fragile"], "after")
    graph = builder.compile(checkpointer=lib.checkpointer())
    config = cfg("t1")
    with pytest.raises(ConnectionError, match="flaky"):
        graph.invoke({"steps": []}, config)
    state = graph.get_state(config)
    assert (state.values, state.next) == ({"steps": ["prepare", "solid"]}, ("fragile",))
    assert [(t.name, t.result, t.error) for t in state.tasks] == [("fragile", None, "ConnectionError('flaky')")]
    assert graph.invoke(None, config) == {"steps": ["prepare", "solid", "fragile", "after"]}
    assert calls.as_dict() == {"solid": 1, "prepare": 1, "fragile": 2, "after": 1}


# -- 9. breakpoints: interrupt_before / interrupt_after, update_state -----------------------------------


def abc(lib: GraphLib, calls: Calls | None = None, **compile: Any) -> Any:
    """a -> b -> c over `Steps`."""
    return line(lib, Steps, ("a", step("a", calls)), ("b", step("b", calls)), ("c", step("c", calls)), **compile)


def test_interrupt_before_at_compile(lib: GraphLib, calls: Calls) -> None:
    """``compile(interrupt_before=["b"])`` stops before b: invoke returns the state so far, ``next`` is b;
    ``invoke(None, config)`` goes on; ``update_state`` at the breakpoint changes the state first."""
    graph = abc(lib, calls, interrupt_before=["b"])
    config = cfg("t1")
    assert plain(graph.invoke({"steps": []}, config)) == {"steps": ["a"]}
    state = graph.get_state(config)
    assert (state.values, state.next, [t.name for t in state.tasks], state.interrupts) == (
        {"steps": ["a"]},
        ("b",),
        ["b"],
        (),
    )
    assert graph.invoke(None, config) == {"steps": ["a", "b", "c"]}
    assert graph.get_state(config).next == ()

    config = cfg("t2")
    graph.invoke({"steps": []}, config)
    returned = graph.update_state(config, {"steps": ["edited"]})
    assert set(returned["configurable"]) == {"thread_id", "checkpoint_ns", "checkpoint_id"}
    assert returned["configurable"]["thread_id"] == "t2" and returned["configurable"]["checkpoint_ns"] == ""
    assert returned["configurable"]["checkpoint_id"] == graph.get_state(config).config["configurable"]["checkpoint_id"]
    state = graph.get_state(config)
    assert (state.values, state.next) == ({"steps": ["a", "edited"]}, ("b",))
    assert graph.invoke(None, config) == {"steps": ["a", "edited", "b", "c"]}
    assert calls.as_dict() == {"a": 2, "b": 2, "c": 2}


def test_update_state_as_node(lib: GraphLib, calls: Calls) -> None:
    """``update_state(config, values, as_node="b")`` at a breakpoint before b acts as b: ``next`` becomes c, and
    b does not run."""
    graph = abc(lib, calls, interrupt_before=["b"])
    config = cfg("t1")
    graph.invoke({"steps": []}, config)
    graph.update_state(config, {"steps": ["b by hand"]}, as_node="b")
    state = graph.get_state(config)
    assert (state.values, state.next) == ({"steps": ["a", "b by hand"]}, ("c",))
    assert graph.invoke(None, config) == {"steps": ["a", "b by hand", "c"]}
    assert calls.as_dict() == {"a": 1, "c": 1}


def test_interrupt_after_at_compile(lib: GraphLib, calls: Calls) -> None:
    """``compile(interrupt_after=["a"])`` stops after a: ``next`` is b; ``invoke(None, config)`` goes on."""
    graph = abc(lib, calls, interrupt_after=["a"])
    config = cfg("t1")
    assert plain(graph.invoke({"steps": []}, config)) == {"steps": ["a"]}
    assert graph.get_state(config).next == ("b",)
    assert graph.invoke(None, config) == {"steps": ["a", "b", "c"]}
    assert calls.as_dict() == {"a": 1, "b": 1, "c": 1}


def test_breakpoints_at_invoke(lib: GraphLib, calls: Calls) -> None:
    """``invoke(..., interrupt_before=[...])`` / ``interrupt_after=[...]`` set breakpoints for that call only;
    ``"*"`` stops at every node."""
    graph = abc(lib, calls)
    config = cfg("t1")
    assert graph.invoke({"steps": []}, config, interrupt_before=["c"]) == {"steps": ["a", "b"]}
    assert graph.get_state(config).next == ("c",)
    assert graph.invoke(None, config) == {"steps": ["a", "b", "c"]}

    config = cfg("t2")
    assert graph.invoke({"steps": []}, config, interrupt_after=["a"]) == {"steps": ["a"]}
    assert graph.invoke(None, config, interrupt_after="*") == {"steps": ["a", "b"]}
    assert graph.get_state(config).next == ("c",)
    assert graph.invoke(None, config) == {"steps": ["a", "b", "c"]}
    assert calls.as_dict() == {"a": 2, "b": 2, "c": 2}


# -- 10. history and time travel ----------------------------------------------------------------------


def history(graph: Any, config: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each snapshot of the thread, newest first: metadata source and step, next, values, tasks' names and
    results, and the interrupts' values."""
    return [
        (
            s.metadata["source"],
            s.metadata["step"],
            s.next,
            s.values,
            [(t.name, t.result) for t in s.tasks],
            [i.value for i in s.interrupts],
        )
        for s in graph.get_state_history(config)
    ]


def test_state_history(lib: GraphLib) -> None:
    """``get_state_history`` lists one snapshot per superstep of every run, newest first: the ``input`` one
    before START and a ``loop`` one per superstep, with what ran next and its result; each snapshot's
    ``parent_config`` is the one before it; ``get_state`` of a snapshot's config reads it."""
    graph = abc(lib)
    config = cfg("t1")
    graph.invoke({"steps": []}, config)
    graph.invoke({"steps": ["x"]}, config)
    one, two = ["a", "b", "c"], ["a", "b", "c", "x"]
    assert history(graph, config) == [
        ("loop", 8, (), {"steps": [*two, "a", "b", "c"]}, [], []),
        ("loop", 7, ("c",), {"steps": [*two, "a", "b"]}, [("c", {"steps": ["c"]})], []),
        ("loop", 6, ("b",), {"steps": [*two, "a"]}, [("b", {"steps": ["b"]})], []),
        ("loop", 5, ("a",), {"steps": two}, [("a", {"steps": ["a"]})], []),
        ("input", 4, ("__start__",), {"steps": one}, [("__start__", {"steps": ["x"]})], []),
        ("loop", 3, (), {"steps": one}, [], []),
        ("loop", 2, ("c",), {"steps": ["a", "b"]}, [("c", {"steps": ["c"]})], []),
        ("loop", 1, ("b",), {"steps": ["a"]}, [("b", {"steps": ["b"]})], []),
        ("loop", 0, ("a",), {"steps": []}, [("a", {"steps": ["a"]})], []),
        ("input", -1, ("__start__",), {"steps": []}, [("__start__", {"steps": []})], []),
    ]
    snapshots = list(graph.get_state_history(config))
    assert [s.parent_config for s in snapshots[:-1]] == [s.config for s in snapshots[1:]]
    assert snapshots[-1].parent_config is None
    assert graph.get_state(config).config == snapshots[0].config
    assert all(set(s.config["configurable"]) == {"thread_id", "checkpoint_ns", "checkpoint_id"} for s in snapshots)
    assert graph.get_state(snapshots[6].config).values == {"steps": ["a", "b"]}
    assert [s.metadata["step"] for s in graph.get_state_history(config, limit=2)] == [8, 7]
    assert [s.metadata["step"] for s in graph.get_state_history(config, filter={"source": "input"})] == [4, -1]
    assert [s.metadata["step"] for s in graph.get_state_history(config, before=snapshots[7].config)] == [0, -1]


def test_get_state_parent_config(lib: GraphLib) -> None:
    """``get_state(config).parent_config`` is the config of the snapshot before the latest."""
    graph = abc(lib)
    graph.invoke({"steps": []}, cfg("t1"))
    assert graph.get_state(cfg("t1")).parent_config == list(graph.get_state_history(cfg("t1")))[1].config


def test_history_with_a_breakpoint_and_update_state(lib: GraphLib) -> None:
    """A breakpoint's snapshot shows the pending node with no result; ``update_state`` adds an ``update``
    snapshot with the next step, and the run goes on from there."""
    graph = abc(lib, interrupt_before=["b"])
    config = cfg("t1")
    graph.invoke({"steps": []}, config)
    graph.update_state(config, {"steps": ["e"]})
    graph.invoke(None, config)
    assert history(graph, config) == [
        ("loop", 4, (), {"steps": ["a", "e", "b", "c"]}, [], []),
        ("loop", 3, ("c",), {"steps": ["a", "e", "b"]}, [("c", {"steps": ["c"]})], []),
        ("update", 2, ("b",), {"steps": ["a", "e"]}, [("b", {"steps": ["b"]})], []),
        ("loop", 1, ("b",), {"steps": ["a"]}, [("b", None)], []),
        ("loop", 0, ("a",), {"steps": []}, [("a", {"steps": ["a"]})], []),
        ("input", -1, ("__start__",), {"steps": []}, [("__start__", {"steps": []})], []),
    ]


@limitation(
    "history of an interrupted run: once answered, the paused step's snapshot loses its interrupts (durable keeps "
    "a pending question until it is answered, then the answer; the Functional API's history does the same)"
)
def test_history_of_an_interrupted_run(lib: GraphLib, calls: Calls) -> None:
    """While paused, only the paused step's snapshot has the interrupt; after the answer that snapshot keeps it,
    with the node's result."""
    graph = review_graph(lib, calls)
    config = cfg("t1")
    graph.invoke({"topic": "cats"}, config)
    question = {"question": "ok?", "draft": "essay on cats"}
    drafted = {"topic": "cats", "draft": "essay on cats"}
    assert history(graph, config) == [
        ("loop", 1, ("review",), drafted, [("review", None)], [question]),
        ("loop", 0, ("draft",), {"topic": "cats"}, [("draft", {"draft": "essay on cats"})], []),
        ("input", -1, ("__start__",), {}, [("__start__", {"topic": "cats"})], []),
    ]
    graph.invoke(lib.Command(resume="ok"), config)
    assert history(graph, config)[2] == ("loop", 1, ("review",), drafted, [("review", {"verdict": "ok"})], [question])


def test_replay_from_a_checkpoint(lib: GraphLib, calls: Calls) -> None:
    """``invoke(None, config)`` with an earlier snapshot's config runs the graph again from there: the nodes
    after it run again, the ones before do not; the thread's state is the replay's."""
    graph = abc(lib, calls)
    config = cfg("t1")
    graph.invoke({"steps": []}, config)
    before_b = list(graph.get_state_history(config))[2]
    assert before_b.next == ("b",)
    assert graph.invoke(None, before_b.config) == {"steps": ["a", "b", "c"]}
    assert calls.as_dict() == {"a": 1, "b": 2, "c": 2}
    assert graph.get_state(config).values == {"steps": ["a", "b", "c"]}
    assert graph.get_state(config).next == ()


def test_fork_with_update_state(lib: GraphLib, calls: Calls) -> None:
    """``update_state`` on an earlier snapshot's config forks the thread there: it returns the new snapshot's
    config, and ``invoke(None, that config)`` runs on from the edited state."""
    graph = abc(lib, calls)
    config = cfg("t1")
    graph.invoke({"steps": []}, config)
    before_c = list(graph.get_state_history(config))[1]
    assert before_c.next == ("c",)
    forked = graph.update_state(before_c.config, {"steps": ["edited"]})
    assert forked["configurable"]["thread_id"] == "t1"
    state = graph.get_state(config)
    assert (state.values, state.next, state.config) == ({"steps": ["a", "b", "edited"]}, ("c",), forked)
    assert graph.invoke(None, forked) == {"steps": ["a", "b", "edited", "c"]}
    assert calls.as_dict() == {"a": 1, "b": 1, "c": 2}


def test_history_after_time_travel(lib: GraphLib) -> None:
    """A replay from an earlier snapshot starts with a ``fork`` snapshot whose parent is the chosen one; an
    ``update_state`` on an earlier snapshot has that snapshot as its parent."""
    graph = abc(lib)
    config = cfg("t1")
    graph.invoke({"steps": []}, config)
    first = list(graph.get_state_history(config))
    graph.invoke(None, first[2].config)
    replayed = list(graph.get_state_history(config))
    assert [(s.metadata["source"], s.metadata["step"], s.next) for s in replayed[:3]] == [
        ("loop", 4, ()),
        ("loop", 3, ("c",)),
        ("fork", 2, ("b",)),
    ]
    assert replayed[2].parent_config == first[2].config
    forked = graph.update_state(first[1].config, {"steps": ["edited"]})
    update = graph.get_state(forked)
    assert (update.metadata["source"], update.parent_config) == ("update", first[1].config)


# -- 11. streaming -------------------------------------------------------------------------------------


def writing(lib: GraphLib) -> Any:
    """a (which writes a custom chunk) -> b."""

    def a(state: Steps) -> dict[str, Any]:
        lib.get_stream_writer()({"progress": "in a"})
        return {"steps": ["a"]}

    return line(lib, Steps, ("a", a), ("b", step("b")))


def test_stream_values_updates_custom(lib: GraphLib) -> None:
    """``values`` streams the state after the input and each superstep, ``updates`` each node's writes,
    ``custom`` what ``get_stream_writer()`` sends; a list of modes gives ``(mode, chunk)`` pairs in order; under
    ``invoke`` the writer's chunks go nowhere."""
    graph = writing(lib)
    assert list(graph.stream({"steps": []}, cfg("t1"))) == [{"a": {"steps": ["a"]}}, {"b": {"steps": ["b"]}}]
    assert list(graph.stream({"steps": []}, cfg("t2"), stream_mode="values")) == [
        {"steps": []},
        {"steps": ["a"]},
        {"steps": ["a", "b"]},
    ]
    assert list(graph.stream({"steps": []}, cfg("t3"), stream_mode="custom")) == [{"progress": "in a"}]
    assert list(graph.stream({"steps": []}, cfg("t4"), stream_mode=["values", "updates", "custom"])) == [
        ("values", {"steps": []}),
        ("custom", {"progress": "in a"}),
        ("updates", {"a": {"steps": ["a"]}}),
        ("values", {"steps": ["a"]}),
        ("updates", {"b": {"steps": ["b"]}}),
        ("values", {"steps": ["a", "b"]}),
    ]
    assert graph.invoke({"steps": []}, cfg("t5")) == {"steps": ["a", "b"]}


def snapshot_chunk(n: int, source: str, values: list[str], nxt: list[str], task: int | None) -> dict[str, Any]:
    """The ``n``-th ``checkpoints`` chunk of a run of `writing` on thread "t1", `normalized`."""
    config = {"configurable": {"checkpoint_id": f"checkpoint{n}", "checkpoint_ns": "", "thread_id": "t1"}}
    parent = {"configurable": {**config["configurable"], "checkpoint_id": f"checkpoint{n - 1}"}}
    tasks = [] if task is None else [{"id": f"task{task}", "name": nxt[0], "interrupts": (), "state": None}]
    return {
        "config": config,
        "parent_config": parent if n else None,
        "values": {"steps": values},
        "metadata": {"parents": {}, "source": source, "step": n - 1},
        "next": nxt,
        "tasks": tasks,
    }


def without_run_id(chunks: list[Any]) -> list[Any]:
    """Checkpoint chunks without the ``run_id`` durable adds to their metadata."""
    for chunk in chunks:
        payload = chunk.get("payload", chunk)
        if "metadata" in payload:
            payload["metadata"].pop("run_id", None)
    return chunks


def test_stream_tasks_and_checkpoints(lib: GraphLib) -> None:
    """``tasks`` streams each node's start (input, triggers) and end (result, error, interrupts), ``checkpoints``
    each superstep's snapshot, with its parent, next nodes and their task ids."""
    graph = writing(lib)
    assert normalized(list(graph.stream({"steps": []}, cfg("t0"), stream_mode="tasks"))) == [
        {"id": "task0", "name": "a", "input": {"steps": []}, "triggers": ("branch:to:a",)},
        {"id": "task0", "name": "a", "error": None, "result": {"steps": ["a"]}, "interrupts": []},
        {"id": "task1", "name": "b", "input": {"steps": ["a"]}, "triggers": ("branch:to:b",)},
        {"id": "task1", "name": "b", "error": None, "result": {"steps": ["b"]}, "interrupts": []},
    ]
    chunks = normalized(list(graph.stream({"steps": []}, cfg("t1"), stream_mode="checkpoints")))
    assert without_run_id(chunks) == [
        snapshot_chunk(0, "input", [], ["__start__"], 0),
        snapshot_chunk(1, "loop", [], ["a"], 1),
        snapshot_chunk(2, "loop", ["a"], ["b"], 2),
        snapshot_chunk(3, "loop", ["a", "b"], [], None),
    ]


def test_stream_debug(lib: GraphLib) -> None:
    """``debug`` streams the checkpoints, task starts and task results, each as ``{"type", "step", "timestamp",
    "payload"}``; a task's id is the one its checkpoint announced."""
    graph = writing(lib)
    chunks = without_run_id(normalized(list(graph.stream({"steps": []}, cfg("t1"), stream_mode="debug"))))

    def debug(kind: str, step: int, payload: dict[str, Any]) -> dict[str, Any]:
        return {"type": kind, "step": step, "timestamp": "<time>", "payload": payload}

    assert chunks == [
        debug("checkpoint", -1, snapshot_chunk(0, "input", [], ["__start__"], 0)),
        debug("checkpoint", 0, snapshot_chunk(1, "loop", [], ["a"], 1)),
        debug("task", 1, {"id": "task1", "name": "a", "input": {"steps": []}, "triggers": ("branch:to:a",)}),
        debug(
            "task_result", 1, {"id": "task1", "name": "a", "error": None, "result": {"steps": ["a"]}, "interrupts": []}
        ),
        debug("checkpoint", 1, snapshot_chunk(2, "loop", ["a"], ["b"], 2)),
        debug("task", 2, {"id": "task2", "name": "b", "input": {"steps": ["a"]}, "triggers": ("branch:to:b",)}),
        debug(
            "task_result", 2, {"id": "task2", "name": "b", "error": None, "result": {"steps": ["b"]}, "interrupts": []}
        ),
        debug("checkpoint", 2, snapshot_chunk(3, "loop", ["a", "b"], [], None)),
    ]


def subgraph_parent(lib: GraphLib) -> Any:
    """p -> sub, a subgraph whose node writes a custom chunk."""

    def sub_a(state: Hops) -> dict[str, Any]:
        lib.get_stream_writer()({"in": "sub_a"})
        return {"hops": ["sub_a"]}

    sub = lib.StateGraph(Hops)
    sub.add_node("sub_a", sub_a)
    sub.add_edge(lib.START, "sub_a")
    return line(lib, Hops, ("p", lambda s: {"hops": ["p"]}), ("sub", sub.compile()))


def test_stream_subgraphs(lib: GraphLib) -> None:
    """``subgraphs=True`` streams ``(namespace, mode, chunk)``: the subgraph's chunks under ``("sub:<task id>",)``,
    the id of the parent's task running it; without it, only the parent's chunks."""
    graph = subgraph_parent(lib)
    assert list(graph.stream({"hops": []}, cfg("t1"), stream_mode=["updates", "custom"])) == [
        ("updates", {"p": {"hops": ["p"]}}),
        ("updates", {"sub": {"hops": ["p", "sub_a"]}}),
    ]
    modes = ["values", "updates", "custom", "tasks"]
    chunks = normalized(list(graph.stream({"hops": []}, cfg("t2"), stream_mode=modes, subgraphs=True)))
    sub = ("sub:task1",)
    assert chunks == [
        ((), "values", {"hops": []}),
        ((), "tasks", {"id": "task0", "name": "p", "input": {"hops": []}, "triggers": ("branch:to:p",)}),
        ((), "updates", {"p": {"hops": ["p"]}}),
        ((), "tasks", {"id": "task0", "name": "p", "error": None, "result": {"hops": ["p"]}, "interrupts": []}),
        ((), "values", {"hops": ["p"]}),
        ((), "tasks", {"id": "task1", "name": "sub", "input": {"hops": ["p"]}, "triggers": ("branch:to:sub",)}),
        (sub, "values", {"hops": ["p"]}),
        (sub, "tasks", {"id": "task2", "name": "sub_a", "input": {"hops": ["p"]}, "triggers": ("branch:to:sub_a",)}),
        (sub, "custom", {"in": "sub_a"}),
        (sub, "updates", {"sub_a": {"hops": ["sub_a"]}}),
        (
            sub,
            "tasks",
            {"id": "task2", "name": "sub_a", "error": None, "result": {"hops": ["sub_a"]}, "interrupts": []},
        ),
        (sub, "values", {"hops": ["p", "sub_a"]}),
        ((), "updates", {"sub": {"hops": ["p", "sub_a"]}}),
        (
            (),
            "tasks",
            {"id": "task1", "name": "sub", "error": None, "result": {"hops": ["p", "sub_a"]}, "interrupts": []},
        ),
        ((), "values", {"hops": ["p", "p", "sub_a"]}),
    ]


def test_stream_v2_parts(lib: GraphLib) -> None:
    """``version="v2"`` streams ``{"type", "ns", "data"}`` parts (``values`` ones with their ``interrupts``), for one
    mode or several, with subgraphs too."""
    graph = subgraph_parent(lib)
    assert list(graph.stream({"hops": []}, cfg("t1"), version="v2")) == [
        {"type": "updates", "ns": (), "data": {"p": {"hops": ["p"]}}},
        {"type": "updates", "ns": (), "data": {"sub": {"hops": ["p", "sub_a"]}}},
    ]
    parts = list(graph.stream({"hops": []}, cfg("t2"), stream_mode=["custom", "values"], subgraphs=True, version="v2"))
    sub = ("sub:task0",)
    assert normalized(parts) == [
        {"type": "values", "ns": (), "data": {"hops": []}, "interrupts": ()},
        {"type": "values", "ns": (), "data": {"hops": ["p"]}, "interrupts": ()},
        {"type": "values", "ns": sub, "data": {"hops": ["p"]}, "interrupts": ()},
        {"type": "custom", "ns": sub, "data": {"in": "sub_a"}},
        {"type": "values", "ns": sub, "data": {"hops": ["p", "sub_a"]}, "interrupts": ()},
        {"type": "values", "ns": (), "data": {"hops": ["p", "p", "sub_a"]}, "interrupts": ()},
    ]


def test_stream_of_a_paused_run(lib: GraphLib, calls: Calls) -> None:
    """A run pausing on ``interrupt()`` streams ``{"__interrupt__": (...)}`` in ``updates`` and ``values`` (with the
    state); a ``tasks`` end shows the interrupt; v2 parts carry it as an ``updates`` part."""
    graph = review_graph(lib, calls)
    question = {"question": "ok?", "draft": "essay on x"}
    chunks = normalized(list(graph.stream({"topic": "x"}, cfg("t1"), stream_mode=["updates", "values"])))
    assert chunks == [
        ("values", {"topic": "x"}),
        ("updates", {"draft": {"draft": "essay on x"}}),
        ("values", {"topic": "x", "draft": "essay on x"}),
        ("updates", {"__interrupt__": (("interrupt", question),)}),
        ("values", {"topic": "x", "draft": "essay on x", "__interrupt__": (("interrupt", question),)}),
    ]
    chunks = normalized(list(graph.stream({"topic": "x"}, cfg("t2"), stream_mode="tasks")))
    assert chunks[-1] == {
        "id": "task1",
        "name": "review",
        "error": None,
        "result": {},
        "interrupts": [("interrupt", question)],
    }
    parts = normalized(list(graph.stream({"topic": "x"}, cfg("t3"), version="v2")))
    assert parts == [
        {"type": "updates", "ns": (), "data": {"draft": {"draft": "essay on x"}}},
        {"type": "updates", "ns": (), "data": {"__interrupt__": (("interrupt", question),)}},
    ]
    assert list(graph.stream(lib.Command(resume="ok"), cfg("t3"))) == [
        {"review": {"verdict": "ok"}},
        {"publish": {"draft": "ESSAY ON X"}},
    ]


def test_stream_values_of_a_resumed_run(lib: GraphLib, calls: Calls) -> None:
    """Resuming with ``Command(resume=...)`` streams ``values`` from the paused step's state first."""
    graph = review_graph(lib, calls)
    graph.invoke({"topic": "x"}, cfg("t1"))
    assert list(graph.stream(lib.Command(resume="ok"), cfg("t1"), stream_mode="values")) == [
        {"topic": "x", "draft": "essay on x"},
        {"topic": "x", "draft": "essay on x", "verdict": "ok"},
        {"topic": "x", "draft": "ESSAY ON X", "verdict": "ok"},
    ]


def test_stream_order_at_an_interrupt(lib: GraphLib, calls: Calls) -> None:
    """At an interrupt, ``updates`` and ``values`` show ``__interrupt__`` before the node's ``tasks`` end chunk."""
    graph = review_graph(lib, calls)
    chunks = list(graph.stream({"topic": "x"}, cfg("t1"), stream_mode=["updates", "values", "tasks"]))
    assert [mode for mode, _ in chunks[-3:]] == ["updates", "values", "tasks"]


def test_stream_messages(lib: GraphLib) -> None:
    """``messages`` streams a chat model's tokens as ``(AIMessageChunk, metadata)``, the metadata naming the node,
    its step and triggers; the input's messages are not streamed."""
    fake = pytest.importorskip("langchain_core.language_models.fake_chat_models")
    messages = pytest.importorskip("langchain_core.messages")
    model = fake.GenericFakeChatModel(messages=iter([messages.AIMessage(content="hello big world", id="m1")]))

    def chat(state: Any) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = line(lib, lib.MessagesState, ("chat", chat))
    chunks = list(graph.stream({"messages": [("user", "hi")]}, cfg("t1"), stream_mode="messages"))
    keys = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path")
    assert [(type(m).__name__, m.content, m.id, tuple(meta[k] for k in keys)) for m, meta in chunks] == [
        ("AIMessageChunk", token, "m1", ("chat", 1, ("branch:to:chat",), ("__pregel_pull", "chat")))
        for token in ["hello", " ", "big", " ", "world"]
    ]
    assert normalized(chunks[0][1]["langgraph_checkpoint_ns"]) == "chat:task0"


# -- 12. invoke versions, async, context, config, runnables --------------------------------------------


def test_invoke_v2(lib: GraphLib, calls: Calls) -> None:
    """``invoke(..., version="v2")`` returns a ``GraphOutput``: ``.value`` the state, ``.interrupts`` the pending
    interrupts (empty once finished)."""
    graph = review_graph(lib, calls)
    paused = graph.invoke({"topic": "x"}, cfg("t1"), version="v2")
    question = {"question": "ok?", "draft": "essay on x"}
    assert normalized(paused) == ("GraphOutput", {"topic": "x", "draft": "essay on x"}, (("interrupt", question),))
    done = graph.invoke(lib.Command(resume="ok"), cfg("t1"), version="v2")
    assert normalized(done) == ("GraphOutput", {"topic": "x", "draft": "ESSAY ON X", "verdict": "ok"}, ())


def test_async_nodes(lib: GraphLib, calls: Calls) -> None:
    """``ainvoke`` and ``astream`` run async nodes (parallel ones concurrently) and sync nodes alike; an async
    node pauses on ``interrupt()`` and resumes."""

    async def fetch(state: Steps) -> dict[str, Any]:
        calls.hit("fetch")
        await asyncio.sleep(0)
        return {"steps": ["fetch"]}

    async def ask(state: Steps) -> dict[str, Any]:
        calls.hit("ask")
        return {"steps": [f"ask {lib.interrupt('go?')}"]}

    graph = line(lib, Steps, ("fetch", fetch), ("sync", step("sync", calls)), ("ask", ask))

    async def run() -> list[Any]:
        paused = await graph.ainvoke({"steps": []}, cfg("t1"))
        done = await graph.ainvoke(lib.Command(resume="yes"), cfg("t1"))
        streamed = [c async for c in graph.astream({"steps": []}, cfg("t2"), stream_mode=["updates"])]
        resumed = [c async for c in graph.astream(lib.Command(resume="no"), cfg("t2"))]
        return [paused, done, streamed, resumed]

    assert plain(asyncio.run(run())) == [
        interrupted({"steps": ["fetch", "sync"]}, "go?"),
        {"steps": ["fetch", "sync", "ask yes"]},
        [
            ("updates", {"fetch": {"steps": ["fetch"]}}),
            ("updates", {"sync": {"steps": ["sync"]}}),
            ("updates", {"__interrupt__": (("interrupt", "go?"),)}),
        ],
        [{"ask": {"steps": ["ask no"]}}],
    ]
    assert calls.as_dict() == {"fetch": 2, "sync": 2, "ask": 4}


def test_sync_graph_run_async(lib: GraphLib) -> None:
    """A graph of sync nodes runs under ``ainvoke`` / ``astream`` too."""
    graph = abc(lib)

    async def run() -> list[Any]:
        return [
            await graph.ainvoke({"steps": []}, cfg("t1")),
            [c async for c in graph.astream({"steps": []}, cfg("t2"), stream_mode="values")],
        ]

    assert asyncio.run(run()) == [
        {"steps": ["a", "b", "c"]},
        [{"steps": []}, {"steps": ["a"]}, {"steps": ["a", "b"]}, {"steps": ["a", "b", "c"]}],
    ]


@dataclass
class UserContext:
    user: str


def test_context_and_runtime(lib: GraphLib) -> None:
    """``StateGraph(State, context_schema=...)``: ``invoke(..., context=...)`` reaches a node's ``runtime``
    parameter as ``runtime.context``, with ``runtime.store`` the compiled graph's store."""
    seen: list[Any] = []

    def greet(state: Steps, runtime) -> dict[str, Any]:
        seen.append((type(runtime).__name__, runtime.context, runtime.store is not None))
        return {"steps": [f"hello {runtime.context.user}"]}

    builder = lib.StateGraph(Steps, context_schema=UserContext)
    builder.add_node("greet", greet)
    builder.add_edge(lib.START, "greet")
    graph = builder.compile(checkpointer=lib.checkpointer(), store=lib.store())
    assert graph.invoke({"steps": []}, cfg("t1"), context=UserContext(user="ann")) == {"steps": ["hello ann"]}
    assert seen == [("Runtime", UserContext(user="ann"), True)]


def test_long_term_store_in_nodes(lib: GraphLib) -> None:
    """``compile(store=...)``: nodes reach it as a ``store`` parameter, ``get_store()`` and ``runtime.store``;
    what one thread puts, another finds."""

    def remember(state: Steps, store) -> dict[str, Any]:
        store.put(("memories", "ann"), state["steps"][0], {"fact": state["steps"][0]})
        return {"steps": ["remembered"]}

    def recall(state: Steps, runtime) -> dict[str, Any]:
        found = sorted(item.value["fact"] for item in runtime.store.search(("memories", "ann")))
        assert lib.get_store().get(("memories", "ann"), found[0]).value == {"fact": found[0]}
        return {"steps": found}

    memories = lib.store()
    graph = line(lib, Steps, ("remember", remember), ("recall", recall), store=memories)
    assert graph.invoke({"steps": ["likes tea"]}, cfg("t1")) == {"steps": ["likes tea", "remembered", "likes tea"]}
    assert graph.invoke({"steps": ["owns a cat"]}, cfg("t2"))["steps"][-2:] == ["likes tea", "owns a cat"]
    assert sorted(i.key for i in memories.search(("memories", "ann"))) == ["likes tea", "owns a cat"]


def test_node_config(lib: GraphLib) -> None:
    """A node's ``config`` parameter has the thread's ``configurable`` values and ``metadata`` naming the node,
    its step, triggers and path."""
    seen: list[Any] = []
    keys = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path")

    def node(name: str) -> Callable[..., dict[str, Any]]:
        def run(state: Steps, config) -> dict[str, Any]:
            seen.append((*(config["metadata"][k] for k in keys), config["configurable"]["user"]))
            return {"steps": [name]}

        return run

    builder = lib.StateGraph(Steps)
    builder.add_node("first", node("first"))
    builder.add_node("second", node("second"))
    builder.add_edge(lib.START, "first")
    builder.add_conditional_edges("first", lambda s: "second", ["second"])
    graph = builder.compile(checkpointer=lib.checkpointer())
    graph.invoke({"steps": []}, cfg("t1", user="ann"))
    assert seen == [
        ("first", 1, ("branch:to:first",), ("__pregel_pull", "first"), "ann"),
        ("second", 2, ("branch:to:second",), ("__pregel_pull", "second"), "ann"),
    ]


def test_get_config_in_a_node(lib: GraphLib) -> None:
    """``get_config()`` in a node gives the node's config, metadata included (the thread id, the node, its
    namespace ``"node:<task id>"``)."""
    seen: list[Any] = []

    def node(state: Steps, config) -> dict[str, Any]:
        got = lib.get_config()
        meta = got["metadata"]
        seen.append((meta["langgraph_node"], meta["thread_id"], config["metadata"]["thread_id"]))
        seen.append(normalized(meta["langgraph_checkpoint_ns"]))
        return {"steps": ["node"]}

    line(lib, Steps, ("node", node)).invoke({"steps": []}, cfg("t1"))
    assert seen == [("node", "t1", "t1"), "node:task0"]


def test_runnable_as_a_node(lib: GraphLib) -> None:
    """A LangChain ``RunnableLambda`` (or any runnable) added as a node runs with the state."""
    runnables = pytest.importorskip("langchain_core.runnables")
    shout = runnables.RunnableLambda(lambda state: {"steps": [s.upper() for s in state["steps"]]})
    builder = lib.StateGraph(Steps)
    builder.add_node("shout", shout)
    builder.add_node("done", step("done"))
    builder.add_edge(lib.START, "shout")
    builder.add_edge("shout", "done")
    graph = builder.compile(checkpointer=lib.checkpointer())
    assert graph.invoke({"steps": ["hi"]}, cfg("t1")) == {"steps": ["hi", "HI", "done"]}
    assert list(graph.stream({"steps": ["a"]}, cfg("t2"))) == [
        {"shout": {"steps": ["A"]}},
        {"done": {"steps": ["done"]}},
    ]


# -- 13. retry and cache policies ----------------------------------------------------------------------


def test_node_retry_policy(lib: GraphLib, calls: Calls) -> None:
    """``add_node(..., retry_policy=RetryPolicy(...))`` runs a failing node again: a ConnectionError is retried
    by default up to ``max_attempts``; a ValueError is not; the last error fails the run."""
    quick = {"initial_interval": 0.001, "jitter": False}
    left = [ConnectionError("one"), ConnectionError("two")]

    def flaky(state: Steps) -> dict[str, Any]:
        calls.hit("flaky")
        if left:
            raise left.pop()
        return {"steps": ["flaky"]}

    def broken(state: Steps) -> dict[str, Any]:
        calls.hit("broken")
        raise ValueError("a bug")

    def down(state: Steps) -> dict[str, Any]:
        calls.hit("down")
        raise ConnectionError("down")

    builder = lib.StateGraph(Steps)
    builder.add_node("flaky", flaky, retry_policy=lib.RetryPolicy(**quick))
    builder.add_edge(lib.START, "flaky")
    assert builder.compile(checkpointer=lib.checkpointer()).invoke({"steps": []}, cfg("t1")) == {"steps": ["flaky"]}

    for name, fn, exc in [("broken", broken, ValueError), ("down", down, ConnectionError)]:
        builder = lib.StateGraph(Steps)
        builder.add_node(name, fn, retry_policy=lib.RetryPolicy(max_attempts=4, **quick))
        builder.add_edge(lib.START, name)
        with pytest.raises(exc):
            builder.compile(checkpointer=lib.checkpointer()).invoke({"steps": []}, cfg(name))
    assert calls.as_dict() == {"flaky": 3, "broken": 1, "down": 4}


def cached_graph(lib: GraphLib, calls: Calls) -> Any:
    """One node, ``slow``, with ``cache_policy=CachePolicy()``, compiled with a cache."""

    def slow(state: Loop) -> dict[str, Any]:
        calls.hit("slow")
        return {"n": state["n"] * 10}

    builder = lib.StateGraph(Loop)
    builder.add_node("slow", slow, cache_policy=lib.CachePolicy())
    builder.add_edge(lib.START, "slow")
    return builder.compile(checkpointer=lib.checkpointer(), cache=lib.cache())


def test_node_cache_policy(lib: GraphLib, calls: Calls) -> None:
    """``add_node(..., cache_policy=CachePolicy())`` with ``compile(cache=...)``: a node's second run on the same
    input is a cache hit, on any thread: it does not run again."""
    graph = cached_graph(lib, calls)
    assert [graph.invoke({"n": n}, cfg(f"t{i}")) for i, n in enumerate([2, 2, 3, 3, 2])] == [
        {"n": 20},
        {"n": 20},
        {"n": 30},
        {"n": 30},
        {"n": 20},
    ]
    assert calls.as_dict() == {"slow": 2}


def test_cached_node_streams_its_update(lib: GraphLib, calls: Calls) -> None:
    """A cache hit streams the node's update with ``"__metadata__": {"cached": True}``."""
    graph = cached_graph(lib, calls)
    assert list(graph.stream({"n": 2}, cfg("t1"))) == [{"slow": {"n": 20}}]
    assert list(graph.stream({"n": 2}, cfg("t2"))) == [{"slow": {"n": 20}, "__metadata__": {"cached": True}}]


# -- 14. drawing ---------------------------------------------------------------------------------------


def test_draw_mermaid(lib: GraphLib) -> None:
    """``get_graph().draw_mermaid()`` draws plain edges, conditional edges (dotted, with their labels) and a
    join the same as LangGraph."""
    builder = lib.StateGraph(Routed)
    for name in ("start", "high", "low", "x", "y", "done"):
        builder.add_node(name, step(name))
    builder.add_edge(lib.START, "start")
    builder.add_conditional_edges("start", lambda s: "big", {"big": "high", "small": "low"})
    builder.add_conditional_edges("high", lambda s: ["x"], ["x", "y"])
    builder.add_edge(["x", "y"], "done")
    builder.add_edge("low", lib.END)
    builder.add_edge("done", lib.END)
    assert builder.compile().get_graph().draw_mermaid() == MERMAID


MERMAID = """---
config:
  flowchart:
    curve: linear
---
graph TD;
\t__start__([<p>__start__</p>]):::first
\tstart(start)
\thigh(high)
\tlow(low)
\tx(x)
\ty(y)
\tdone(done)
\t__end__([<p>__end__</p>]):::last
\t__start__ --> start;
\thigh -.-> x;
\thigh -.-> y;
\tstart -. &nbsp;big&nbsp; .-> high;
\tstart -. &nbsp;small&nbsp; .-> low;
\tx --> done;
\ty --> done;
\tdone --> __end__;
\tlow --> __end__;
\tclassDef default fill:#f2f0ff,line-height:1.2
\tclassDef first fill-opacity:0
\tclassDef last fill:#bfb6fc
"""
