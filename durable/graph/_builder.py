"""`StateGraph`: the builder, with LangGraph's methods, names and checks; `compile` makes it runnable.

The builder only records: nodes (`NodeSpec`), edges, joins (``add_edge([a, b], c)``) and
conditional edges (`Branch`), and the schemas whose keys are the state's channels. Every mistake
that can be seen before running (an edge to a node that does not exist, a reserved name, no way
in from ``START``) is a `ConfigurationError` at ``add_*`` or ``compile`` time, naming the fix.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from .._caching import CachePolicy
from .._interrupts import Command
from .._retry import Retry, RetryPolicy, retry_option
from ..errors import ConfigurationError
from ._channels import Channel, LastValue
from ._schema import Schema, schema_of

if TYPE_CHECKING:
    from .._serde import Serializer
    from ..stores._base import Store
    from ._compiled import CompiledStateGraph

START = "__start__"
END = "__end__"
_RESERVED_CHARS = ("|", ":")  # LangGraph's namespace separators

if TYPE_CHECKING:  # defaults (PEP 696) let ``StateGraph(State)`` be typed without naming the other three
    from typing_extensions import TypeVar as _TypeVar

    StateT = _TypeVar("StateT")
    ContextT = _TypeVar("ContextT", default=None)
    InputT = _TypeVar("InputT", default=StateT)
    OutputT = _TypeVar("OutputT", default=StateT)
else:
    StateT, ContextT, InputT, OutputT = (TypeVar(n) for n in ("StateT", "ContextT", "InputT", "OutputT"))


@dataclass
class NodeSpec:
    """A node as added: what it runs, what it reads, and its policies."""

    name: str
    action: Any  # a function, a LangChain runnable, or a compiled graph (a subgraph)
    input_schema: Schema
    retry: Retry | None = None
    cache: CachePolicy[Any] | None = None
    timeout: float | None = None
    defer: bool = False
    ends: tuple[str, ...] | dict[str, str] = ()  # where its Commands may go (for drawing)
    metadata: dict[str, Any] | None = None


@dataclass
class Branch:
    """A conditional edge: ``path`` (the router) reads the state and names where to go."""

    path: Callable[..., Any]
    ends: dict[Hashable, str] | None  # the path map: what the router returns -> node name
    input_schema: Schema | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.path) or inspect.iscoroutinefunction(call_of(self.path))


class StateGraph(Generic[StateT, ContextT, InputT, OutputT]):
    """A graph whose nodes read and update a shared state, run durably once compiled (LangGraph's
    ``StateGraph``).

    ``state_schema`` is a ``TypedDict``, dataclass or Pydantic model; a key annotated
    ``Annotated[T, reducer]`` accumulates its writes with ``reducer`` (``operator.add``,
    `add_messages`), any other key keeps the last one. ``input_schema`` and ``output_schema`` narrow
    what ``invoke`` takes and returns; ``context_schema`` types ``invoke(..., context=...)``.

    >>> from typing import TypedDict
    >>> class State(TypedDict):
    ...     n: int
    >>> builder = StateGraph(State)
    >>> builder.add_node("double", lambda s: {"n": s["n"] * 2})  # doctest: +ELLIPSIS
    <...StateGraph object at ...>
    >>> builder.add_edge(START, "double").add_edge("double", END)  # doctest: +ELLIPSIS
    <...StateGraph object at ...>
    """

    def __init__(
        self,
        state_schema: type[StateT],
        context_schema: type[ContextT] | None = None,
        *,
        input_schema: type[InputT] | None = None,
        output_schema: type[OutputT] | None = None,
    ) -> None:
        self.nodes: dict[str, NodeSpec] = {}
        self.edges: set[tuple[str, str]] = set()
        self.waiting_edges: set[tuple[tuple[str, ...], str]] = set()
        self.branches: defaultdict[str, dict[str, Branch]] = defaultdict(dict)
        self.schemas: dict[Any, Schema] = {}
        self.channels: dict[str, Channel] = {}
        self.managed: dict[str, Any] = {}
        self.compiled = False
        self.state_schema = state_schema
        self.context_schema = context_schema
        self.input_schema: Any = input_schema or state_schema
        self.output_schema: Any = output_schema or state_schema
        self._state = self._add_schema(state_schema)
        self._input = self._add_schema(self.input_schema, allow_managed=False)
        self._output = self._add_schema(self.output_schema, allow_managed=False)

    def _add_schema(self, cls: Any, allow_managed: bool = True) -> Schema:
        found = self.schemas.get(cls)
        if found is not None:
            return found
        schema = schema_of(cls)
        if schema.managed and not allow_managed:
            raise ConfigurationError(
                f"{cls.__name__} has managed values ({', '.join(schema.managed)}): they belong in the state "
                f"schema, not in an input or output schema"
            )
        for key, channel in schema.channels.items():
            known = self.channels.get(key)
            if known is None:
                self.channels[key] = channel
            elif type(known) is not type(channel) and not isinstance(channel, LastValue):
                raise ConfigurationError(
                    f"state key {key!r} is declared twice with different rules ({type(known).__name__} in one "
                    f"schema, {type(channel).__name__} in {cls.__name__}): annotate it the same way in both"
                )
        for key, value in schema.managed.items():
            self.managed.setdefault(key, value)
        self.schemas[cls] = schema
        return schema

    # -- nodes ---------------------------------------------------------------------------------------

    def add_node(
        self,
        node: str | Callable[..., Any] | Any,
        action: Callable[..., Any] | Any | None = None,
        *,
        defer: bool = False,
        metadata: dict[str, Any] | None = None,
        input_schema: type[Any] | None = None,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        cache_policy: CachePolicy[Any] | None = None,
        destinations: dict[str, str] | tuple[str, ...] | None = None,
        timeout: float | timedelta | None = None,
        retry: RetryPolicy | Sequence[RetryPolicy] | None = None,
    ) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """Add a node: ``add_node("name", fn)`` or ``add_node(fn)`` (named after the function).

        The node receives the state (its input schema's keys that have a value) and returns a dict of
        keys to update, ``None``, or a `Command`. It may declare ``config``, ``writer``, ``store`` and
        ``runtime`` parameters. A compiled graph added as a node is a subgraph. Each run of the node
        is one task in the journal: ``retry_policy``, ``cache_policy`` and ``timeout`` are a task's.
        ``defer=True`` holds the node until nothing else is left to run (for a node that joins a
        fan-out of unequal length). ``destinations`` names where its Commands may go, for drawing.
        """
        if not isinstance(node, str):
            action, node = node, _name_of(node)
        if action is None:
            raise ConfigurationError(f"add_node({node!r}) has no action: pass add_node({node!r}, function)")
        if node in self.nodes:
            raise ConfigurationError(f"Node `{node}` already present: node names are unique in a graph")
        if node in (START, END):
            raise ConfigurationError(f"Node `{node}` is reserved: START and END are the graph's entry and exit")
        for char in _RESERVED_CHARS:
            if char in node:
                raise ConfigurationError(
                    f"'{char}' is a reserved character and is not allowed in the node names ({node!r})"
                )
        if not callable(action) and not hasattr(action, "invoke"):
            raise ConfigurationError(f"add_node({node!r}, {action!r}): the action must be a function or runnable")
        inferred, ends = _hints(action)
        schema = self._add_schema(input_schema or inferred) if (input_schema or inferred) else self._state
        from .._task import _timeout

        self.nodes[node] = NodeSpec(
            name=node,
            action=action,
            input_schema=schema,
            retry=retry_option(retry_policy, retry),
            cache=cache_policy,
            timeout=_timeout(timeout),
            defer=defer,
            ends=destinations if destinations is not None else ends,
            metadata=metadata,
        )
        return self

    # -- edges ---------------------------------------------------------------------------------------

    def add_edge(self, start_key: str | list[str], end_key: str) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """``start_key`` → ``end_key``. With a list of start nodes, ``end_key`` waits for all of them."""
        if isinstance(start_key, str):
            if start_key == END:
                raise ConfigurationError("END cannot be a start node: edges leave END nowhere")
            if end_key == START:
                raise ConfigurationError("START cannot be an end node: edges lead to START from nowhere")
            self.edges.add((start_key, end_key))
            return self
        starts = tuple(start_key)
        for start in starts:
            if start == END:
                raise ConfigurationError("END cannot be a start node: edges leave END nowhere")
            if start not in self.nodes and start != START:
                raise ConfigurationError(f"Need to add_node `{start}` first (it starts an edge to {end_key!r})")
        if end_key == START:
            raise ConfigurationError("START cannot be an end node: edges lead to START from nowhere")
        if end_key != END and end_key not in self.nodes:
            raise ConfigurationError(f"Need to add_node `{end_key}` first (it ends an edge from {list(starts)})")
        self.waiting_edges.add((starts, end_key))
        return self

    def add_conditional_edges(
        self,
        source: str,
        path: Callable[..., Any],
        path_map: dict[Hashable, str] | list[str] | None = None,
    ) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """After ``source``, ``path(state)`` decides where to go: a node name, `END`, a `Send`, or a list
        of them (run in parallel). ``path_map`` maps what it returns to node names (a list: the names
        it may return); without one, a ``Literal[...]`` return annotation says where it may go."""
        path_fn = getattr(path, "invoke", None) if not callable(path) else path
        if path_fn is None:
            raise ConfigurationError(f"add_conditional_edges({source!r}, {path!r}): the path must be callable")
        name = getattr(path, "__name__", None) or type(path).__name__
        if name == "<lambda>":
            name = "condition"
        if name in self.branches[source]:
            raise ConfigurationError(f"Branch with name `{name}` already exists for node `{source}`")
        ends: dict[Hashable, str] | None
        if isinstance(path_map, dict):
            ends = dict(path_map)
        elif isinstance(path_map, list | tuple):
            ends = {name_: name_ for name_ in path_map}
        elif path_map is None:
            ends = _literal_ends(path)
        else:
            raise ConfigurationError(f"path_map={path_map!r}: use a dict, a list of node names, or None")
        self.branches[source][name] = Branch(path_fn, ends)
        return self

    def add_sequence(
        self, nodes: Sequence[Callable[..., Any] | tuple[str, Callable[..., Any]]]
    ) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """Add nodes run one after the other (each a function, or a ``(name, function)`` pair)."""
        if not nodes:
            raise ConfigurationError("add_sequence() needs at least one node")
        previous: str | None = None
        for item in nodes:
            if isinstance(item, tuple):
                name, action = item
            else:
                name, action = _name_of(item), item
            if name in self.nodes:
                raise ConfigurationError(
                    f"Node names must be unique: node with the name {name!r} already exists. Pass "
                    f"(name, function) pairs to add_sequence to give them names"
                )
            self.add_node(name, action)
            if previous is not None:
                self.add_edge(previous, name)
            previous = name
        return self

    def set_entry_point(self, key: str) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """``add_edge(START, key)``."""
        return self.add_edge(START, key)

    def set_conditional_entry_point(
        self, path: Callable[..., Any], path_map: dict[Hashable, str] | list[str] | None = None
    ) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """``add_conditional_edges(START, path, path_map)``."""
        return self.add_conditional_edges(START, path, path_map)

    def set_finish_point(self, key: str) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """``add_edge(key, END)``."""
        return self.add_edge(key, END)

    # -- checking and compiling ----------------------------------------------------------------------

    def all_edges(self) -> set[tuple[str, str]]:
        """Every plain edge, a join's sources each counted as an edge to its end."""
        return self.edges | {(start, end) for starts, end in self.waiting_edges for start in starts}

    def validate(self, interrupt: Sequence[str] | None = None) -> StateGraph[StateT, ContextT, InputT, OutputT]:
        """Check that every edge connects known nodes and that the graph has a way in from START."""
        sources = {src for src, _ in self.all_edges()} | set(self.branches)
        for source in sources:
            if source not in self.nodes and source != START:
                raise ConfigurationError(
                    f"Found edge starting at unknown node '{source}': add_node({source!r}, ...) first"
                )
        if START not in sources:
            raise ConfigurationError(
                "Graph must have an entrypoint: add at least one edge from START to another node "
                "(builder.add_edge(START, 'first_node'))"
            )
        targets = {end for _, end in self.all_edges()}
        for start, branches in self.branches.items():
            for branch in branches.values():
                if branch.ends is not None:
                    targets.update(branch.ends.values())
                    continue
                targets.update(n for n in self.nodes if n != start)
                targets.add(END)
        for spec in self.nodes.values():
            ends = spec.ends.keys() if isinstance(spec.ends, dict) else spec.ends
            targets.update(ends)
        for target in targets:
            if target not in self.nodes and target != END:
                raise ConfigurationError(
                    f"Found edge ending at unknown node `{target}`: add_node({target!r}, ...) first, or route to END"
                )
        for name in interrupt or ():
            if name not in self.nodes:
                raise ConfigurationError(f"Interrupt node `{name}` not found among {sorted(self.nodes)}")
        return self

    def compile(
        self,
        checkpointer: Store | str | bool | None = None,
        *,
        cache: Any = None,
        store: Any = None,
        interrupt_before: Literal["*"] | Sequence[str] | None = None,
        interrupt_after: Literal["*"] | Sequence[str] | None = None,
        debug: bool = False,
        name: str | None = None,
        serializer: Serializer | None = None,
        secret: Any = None,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
    ) -> CompiledStateGraph[StateT, ContextT, InputT, OutputT]:
        """The runnable graph, journaling to ``checkpointer`` (a store or URL; default: ``$DURABLE_URL`` or
        ``durable.db``). ``interrupt_before``/``interrupt_after`` pause a run at those nodes (``"*"``: all):
        the run stops with the state as it is, and ``invoke(None, config)`` goes on. ``name`` is what its
        runs are recorded under (default ``"LangGraph"``, as in LangGraph: give each graph its own name
        when several share a store). ``serializer``, ``secret`` and ``retry_policy`` are an entrypoint's."""
        from ._compiled import CompiledStateGraph

        before = _nodes_option(interrupt_before, "interrupt_before")
        after = _nodes_option(interrupt_after, "interrupt_after")
        self.validate([n for n in (*before, *after) if n != "*"])
        self.compiled = True
        return CompiledStateGraph(
            self,
            checkpointer=checkpointer,
            cache=cache,
            store=store,
            interrupt_before=before,
            interrupt_after=after,
            name=name,
            serializer=serializer,
            secret=secret,
            retry=retry_option(retry_policy, None),
        )


def _nodes_option(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if value == "*":
        return ("*",)
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigurationError(f"{what}={value!r}: pass a list of node names, or '*' for every node")
    return tuple(value)


def call_of(obj: Any) -> Any:
    """The function a callable runs (a callable object's ``__call__``), to read its hints; ``None`` if none."""
    if inspect.isroutine(obj):
        return obj
    return obj.__call__ if callable(obj) else None


def _name_of(action: Any) -> str:
    name = getattr(action, "name", None)
    if not isinstance(name, str) or not name:
        name = getattr(action, "__name__", None) or type(action).__name__
    return str(name)


def _hints(action: Any) -> tuple[Any, tuple[str, ...]]:
    """A node function's input schema (its first parameter's annotation, when that is a schema class) and
    where a ``-> Command[Literal[...]]`` annotation says it goes."""
    fn = call_of(action)
    if fn is None:
        return None, ()
    try:
        hints = get_type_hints(fn)
        first = next(iter(inspect.signature(fn).parameters), None)
    except (NameError, TypeError, ValueError):
        return None, ()
    schema = None
    hint = hints.get(first) if first is not None else None
    if isinstance(hint, type):
        try:
            if get_type_hints(hint):
                schema = hint
        except (NameError, TypeError):
            pass
    ends: tuple[str, ...] = ()
    returns = hints.get("return")
    candidates = get_args(returns) if get_origin(returns) is Union else (returns,)
    for candidate in candidates:
        if get_origin(candidate) is Command or _is_langgraph_command(get_origin(candidate)):
            args = get_args(candidate)
            if args and get_origin(args[0]) is Literal:
                ends = tuple(get_args(args[0]))
    return schema, ends


def _is_langgraph_command(origin: Any) -> bool:
    return getattr(origin, "__name__", "") == "Command" and getattr(origin, "__module__", "").startswith("langgraph")


def _literal_ends(path: Any) -> dict[Hashable, str] | None:
    """A router annotated ``-> Literal["a", "b"]`` goes only there (LangGraph draws those edges only)."""
    fn = call_of(path)
    try:
        returns = get_type_hints(fn).get("return") if fn is not None else None
    except (NameError, TypeError):
        return None
    if get_origin(returns) is Literal:
        return {value: value for value in get_args(returns)}
    return None
