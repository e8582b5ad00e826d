"""``stream_mode="messages"``: the tokens of LangChain chat models called in a run, as LangGraph streams them.

LangChain runnables find their callbacks in the context variable ``var_child_runnable_config``. Around
each body of a run streaming "messages" (the entrypoint's, each task's, each sub-entrypoint's), it
holds a config with one `MessagesHandler` and LangGraph's metadata for that body (``langgraph_node``,
``langgraph_step``, ``langgraph_path``, ``langgraph_checkpoint_ns``...). The handler is LangGraph's
``StreamMessagesHandler`` for durable's sink: each token of a chat model becomes an
``(AIMessageChunk, metadata)`` event, a model's whole message when it did not stream, and a body's
returned messages that were not streamed already. This module imports ``langchain_core``: it is
imported only when "messages" is streamed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

# langchain-core is optional: these type-check with or without it installed.
from langchain_core.callbacks import BaseCallbackHandler  # type: ignore[import-not-found, unused-ignore]
from langchain_core.messages import BaseMessage  # type: ignore[import-not-found, unused-ignore]
from langchain_core.outputs import (  # type: ignore[import-not-found, unused-ignore]
    ChatGeneration,
    ChatGenerationChunk,
    GenerationChunk,
    LLMResult,
)
from langchain_core.runnables.config import (  # type: ignore[import-not-found, unused-ignore]
    RunnableConfig,
    merge_configs,
    var_child_runnable_config,
)

from ._chunks import PUSH, START

if TYPE_CHECKING:
    from ._run import TaskSpec
    from ._stream import Namespace, Sink

T = TypeVar("T")
Meta = tuple["Namespace", dict[str, Any]]
_NOSTREAM = "nostream"  # LangGraph's tag for a model whose tokens are not streamed
_PULL = "__pregel_pull"
# Configurable values LangGraph copies into a task's metadata.
_PROPAGATED = ("thread_id", "checkpoint_id", "task_id", "run_id", "assistant_id", "graph_id")


def graph_namespace(metadata: Mapping[str, Any]) -> Namespace:
    """The namespace of the graph a body runs in, from its metadata (LangGraph's rule): its checkpoint
    namespace less its own part and one more per task call it runs under."""
    ns = tuple(str(metadata["langgraph_checkpoint_ns"]).split("|"))
    path = metadata.get("langgraph_path", ())
    drop = 1
    while len(path) == 4 and path[0] == PUSH[0] and path[-1] is True:
        drop += 1
        path = path[1]
    return ns[:-drop]


def _state_values(obj: Any) -> Sequence[Any]:
    if isinstance(obj, dict):
        return list(obj.values())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    fields = getattr(type(obj), "model_fields", None)  # a pydantic model
    if isinstance(fields, Mapping):
        return [getattr(obj, k) for k in fields]
    return ()


class MessagesHandler(BaseCallbackHandler):  # type: ignore[misc, unused-ignore]
    """LangGraph's ``StreamMessagesHandler``, emitting to a durable `Sink`. Being a streaming handler
    (``tap_output_iter``), it makes a chat model's ``invoke`` stream its tokens."""

    run_inline = True

    def __init__(self, sink: Sink, ambient: RunnableConfig | None) -> None:
        self.sink = sink
        self.ambient = ambient  # the config the run was started under (its callbacks go on being called)
        self.metadata: dict[UUID, Meta] = {}
        self.seen: set[Any] = set()

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        return output

    def emit(self, meta: Meta, message: BaseMessage, dedupe: bool = False) -> None:
        if dedupe and message.id in self.seen:
            return
        if message.id is None:
            message.id = str(uuid4())
        self.seen.add(message.id)
        self.sink.emit("messages", (message, meta[1]), meta[0])

    def emit_found(self, meta: Meta, value: Any) -> None:
        """The messages in a body's returned value (a message, a list of them, or a state's fields)."""
        if isinstance(value, BaseMessage):
            self.emit(meta, value, dedupe=True)
            return
        items = value if isinstance(value, Sequence) and not isinstance(value, str) else _state_values(value)
        for item in items:
            if isinstance(item, BaseMessage):
                self.emit(meta, item, dedupe=True)
            elif isinstance(item, Sequence) and not isinstance(item, str) and not isinstance(value, Sequence):
                for inner in item:
                    if isinstance(inner, BaseMessage):
                        self.emit(meta, inner, dedupe=True)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        if not metadata or "langgraph_checkpoint_ns" not in metadata or (tags and _NOSTREAM in tags):
            return
        ns = graph_namespace(metadata)
        if ns and not self.sink.subgraphs:
            return
        user_tags = [t for t in tags or () if not t.startswith("seq:step")]
        if user_tags:
            metadata["tags"] = user_tags
        self.metadata[run_id] = (ns if self.sink.subgraphs else (), metadata)

    def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], *, chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID, parent_run_id: UUID | None = None, tags: list[str] | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        meta = self.metadata.get(run_id)
        if meta is not None and isinstance(chunk, ChatGenerationChunk):
            self.emit(meta, chunk.message)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> Any:
        meta = self.metadata.pop(run_id, None)
        if meta is not None and response.generations and response.generations[0]:
            generation = response.generations[0][0]
            if isinstance(generation, ChatGeneration):
                self.emit(meta, generation.message, dedupe=True)

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> Any:
        self.metadata.pop(run_id, None)


def handler(sink: Sink) -> MessagesHandler:
    """The sink's handler (made at the run's start, under the config the run was started in)."""
    found = sink.handler
    if found is None:
        found = sink.handler = MessagesHandler(sink, var_child_runnable_config.get())
    return found  # type: ignore[no-any-return]


def metadata(sink: Sink, body: str, name: str, entry: bool) -> dict[str, Any]:
    """LangGraph's metadata for the body at ``body`` (``""``: the entrypoint's) named ``name``. Models add
    their ``ls_*`` fields, and ``checkpoint_ns`` from the config's ``configurable`` (see `_config`)."""
    graph = sink.graph_of(body)
    config = sink.config
    meta: dict[str, Any] = dict(config.get("metadata") or {})
    configurable = config.get("configurable") or {}
    meta.update((k, configurable[k]) for k in _PROPAGATED if configurable.get(k))
    meta.update(
        ls_integration="durable",
        langgraph_step=sink.step if graph == "" else 0,
        langgraph_node=name,
        langgraph_triggers=START if entry else PUSH,
        langgraph_path=_path(sink, body),
        langgraph_checkpoint_ns="|".join((*sink.chain(body), f"{name}:{sink.call_id(body)}")),
    )
    if graph != "":  # in a sub-entrypoint, LangGraph's metadata keeps the namespace its outermost one ran in
        parts = body.split(".")
        outer = next(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in sink.graphs)
        meta["checkpoint_ns"] = "|".join(sink.chain(outer))
    return meta


def _path(sink: Sink, body: str) -> tuple[Any, ...]:
    """LangGraph's ``langgraph_path``: an entrypoint's body is pulled, a task call pushed by its caller
    (its index is durable's call-order index in the caller's body)."""
    if body == "":
        return (_PULL, sink.name)
    if body in sink.graphs:
        return (_PULL, sink.names.get(body, "?"))
    parent, _, index = body.rpartition(".")
    return (PUSH[0], _path(sink, parent), sink.index.get(body, int(index)), True)


def count(sink: Sink, key: str) -> None:
    """Number a task call among the task calls of its caller's body (for ``langgraph_path``)."""
    parent = key.rpartition(".")[0]
    index = sink.index
    # The caller's count so far is kept under "<parent>." (no call's key ends with a dot).
    n = index.get(parent + ".", 0)
    index[parent + "."] = n + 1
    index[key] = n


def _config(sink: Sink, meta: dict[str, Any]) -> RunnableConfig:
    """The LangChain config a body runs under: the handler, the metadata, the run's tags, and (as LangGraph's
    task config has it) the body's ``checkpoint_ns``, which a model copies into its metadata."""
    found = handler(sink)
    tags = sink.config.get("tags")
    config: RunnableConfig = {
        "callbacks": [found],
        "metadata": meta,
        "tags": list(tags) if isinstance(tags, list | tuple) else [],
        "configurable": {"checkpoint_ns": meta["langgraph_checkpoint_ns"]},
    }
    return merge_configs(found.ambient, config) if found.ambient else config


def _bound(fn: Callable[..., Any], is_async: bool, config: RunnableConfig) -> Callable[..., Any]:
    """``fn`` running with ``config`` as the LangChain config its runnables inherit."""
    if is_async:

        @functools.wraps(fn)
        async def arun(*args: Any, **kwargs: Any) -> Any:
            token = var_child_runnable_config.set(config)
            try:
                return await fn(*args, **kwargs)
            finally:
                var_child_runnable_config.reset(token)

        return arun

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = var_child_runnable_config.set(config)
        try:
            return fn(*args, **kwargs)
        finally:
            var_child_runnable_config.reset(token)

    return run


def _seen_inputs(sink: Sink, value: Any) -> None:
    """An entrypoint's input messages are not streamed when it returns them (LangGraph's ``on_chain_start``)."""
    for item in _state_values(value):
        for message in item if isinstance(item, Sequence) and not isinstance(item, str) else (item,):
            if isinstance(message, BaseMessage) and message.id is not None:
                handler(sink).seen.add(message.id)


def with_body(sink: Sink, fn: Callable[..., Any], is_async: bool, input: Any) -> Callable[..., Any]:
    """The entrypoint's body, streaming the messages of the models it calls."""
    handler(sink)
    _seen_inputs(sink, input)
    return _bound(fn, is_async, _config(sink, metadata(sink, "", sink.name, True)))


def with_messages(sink: Sink, spec: TaskSpec, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskSpec:
    """A task (or sub-entrypoint) call's spec, its body streaming the messages of the models it calls."""
    entry = not spec.inherit_retry
    if entry and args:
        _seen_inputs(sink, args[0])
    if not entry:
        count(sink, key)
    meta = metadata(sink, key, spec.name, entry)
    return dataclasses.replace(spec, fn=_bound(spec.fn, spec.is_async, _config(sink, meta)))


def returned(sink: Sink, key: str, value: Any) -> None:
    """A body returned ``value``: its messages that were not streamed (LangGraph's ``on_chain_end``)."""
    name = sink.name if key == "" else sink.names.get(key, "?")
    entry = key == "" or key in sink.graphs
    meta = metadata(sink, key, name, entry)
    ns = graph_namespace(meta)
    if ns and not sink.subgraphs:
        return
    handler(sink).emit_found((ns if sink.subgraphs else (), meta), value)


# -- a graph's nodes (`durable.graph`): LangGraph's metadata is the node's, made by the graph ----------------------


def node_config(sink: Sink, metadata: Mapping[str, Any]) -> RunnableConfig:
    """The LangChain config a graph node runs under: the streamer, and the node's metadata."""
    return _config(sink, {**metadata, "ls_integration": "durable"})


def enter_node(sink: Sink, config: RunnableConfig, input: Any) -> Any:
    """A node starts: the models it calls stream under ``config``; the messages it was given are not news."""
    _seen_inputs(sink, input)
    return var_child_runnable_config.set(config)


def leave_node(token: Any) -> None:
    var_child_runnable_config.reset(token)


def node_returned(sink: Sink, config: RunnableConfig, value: Any) -> None:
    """A node returned ``value``: its messages that were not streamed (LangGraph's ``on_chain_end``)."""
    meta = config["metadata"]
    ns = graph_namespace(meta)
    if ns and not sink.subgraphs:
        return
    handler(sink).emit_found((ns if sink.subgraphs else (), meta), value)
