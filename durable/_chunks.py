"""LangGraph's chunk shapes for the stream modes, built by emitters that check the sink's flags first.

The run calls these at its event points (`Run.call`, a task's end, the run's start and end, a thread
that is settled already); each builds a chunk only for a mode the sink streams, and places it in its
namespace (see `Sink`). The shapes are LangGraph 1.x's, described in `durable._stream`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import CodeType
from typing import TYPE_CHECKING, Any

from ._state import _config

if TYPE_CHECKING:
    from ._codec import Codec
    from ._drivers import Body
    from ._interrupts import Interrupt, Interrupted
    from ._run import TaskSpec
    from ._stream import Namespace, Sink
    from .stores._base import Store

START = ("__start__",)
PUSH = ("__pregel_push",)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _task_event(sink: Sink, chunk: dict[str, Any], ns: Namespace, kind: str) -> None:
    """A "tasks" chunk, and its "debug" form (``kind``: ``"task"`` or ``"task_result"``)."""
    if sink.tasks:
        sink.emit("tasks", chunk, ns)
    if sink.debug:
        step = sink.step if not ns else 0  # a sub-entrypoint's graph has steps of its own
        sink.emit("debug", {"step": step, "timestamp": _now(), "type": kind, "payload": chunk}, ns)


def _result(sink: Sink, key: str, name: str, ns: Namespace, error: Any, result: dict[str, Any]) -> None:
    chunk = {"id": sink.call_id(key), "name": name, "error": error, "result": result, "interrupts": []}
    _task_event(sink, chunk, ns, "task_result")


def interrupt_dict(interrupt: Interrupt) -> dict[str, Any]:
    """An interrupt as LangGraph's chunks show one (``dataclasses.asdict`` of its `Interrupt`)."""
    return {"value": interrupt.value, "id": interrupt.id, "response_schema": None}


# -- task calls -------------------------------------------------------------------------------------


def call_started(sink: Sink, spec: TaskSpec, key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskSpec:
    """A call is about to run: remember it, stream its start; returns the spec to run it with."""
    if spec.node:
        return spec
    nested = not spec.inherit_retry  # a sub-entrypoint (`Entrypoint.invoke` inside a run)
    if not (nested or sink.starts):
        return spec  # nothing to do at a task's start in the modes streamed
    if sink.track:
        sink.names[key] = spec.name
    if nested:
        sink.graphs.add(key)
        ns = sink.graph_ns(key)
        if sink.task_events and ns is not None:
            start = {"id": sink.call_id(key), "name": spec.name, "input": args[0] if args else None, "triggers": START}
            _task_event(sink, start, ns, "task")
    else:
        ns = sink.task_ns(key)
        if sink.task_events and ns is not None:
            start = {"id": sink.call_id(key), "name": spec.name, "input": (args, kwargs), "triggers": PUSH}
            _task_event(sink, start, ns, "task")
    if sink.messages:  # hidden calls too: what their models stream is hidden by their metadata
        from ._messages import with_messages

        return with_messages(sink, spec, key, args, kwargs)
    return spec


def call_replayed(
    sink: Sink, spec: TaskSpec, key: str, args: tuple[Any, ...], kwargs: dict[str, Any], error: BaseException | None,
    value: Any,
) -> None:  # fmt: skip
    """A call replayed from the journal: its start (as LangGraph re-reads it), and its recorded error
    (LangGraph runs a failed task again, and streams its error again); its result with ``replayed=True``."""
    if spec.node:
        return
    if sink.messages and spec.inherit_retry:
        from ._messages import count

        count(sink, key)
    if not spec.inherit_retry:
        # A replayed sub-entrypoint runs nothing; LangGraph's, restored from its checkpoint, streams its values.
        graph = sink.graph_ns(key) if sink.values and error is None else None
        if graph is not None:
            sink.emit("values", value, graph)
        return
    ns = sink.task_ns(key)
    if ns is None:
        return
    if sink.task_events:
        start = {"id": sink.call_id(key), "name": spec.name, "input": (args, kwargs), "triggers": PUSH}
        _task_event(sink, start, ns, "task")
        if error is not None:
            _result(sink, key, spec.name, ns, error, {})
    if error is None and sink.replayed:
        if sink.updates:
            sink.emit("updates", {spec.name: value}, ns)
        if sink.task_events:
            _result(sink, key, spec.name, ns, None, {"__return__": value})


def call_done(sink: Sink, spec: TaskSpec, key: str, value: Any, cached: bool = False) -> None:
    """A call finished with ``value`` (journaled already): its update and result."""
    if spec.node:
        return
    if not spec.inherit_retry:
        ns = sink.graph_ns(key)
        if ns is None:
            return  # without subgraphs, a sub-entrypoint's call is not an update of its caller
        if sink.messages:
            from ._messages import returned

            returned(sink, key, value)
        if sink.updates:
            sink.emit("updates", {spec.name: value}, ns)
        if sink.task_events:
            _result(sink, key, spec.name, ns, None, {"__end__": value})
        if sink.values:
            sink.emit("values", value, ns)
        return
    ns = sink.task_ns(key)  # () at once when the run has called no sub-entrypoint
    if ns is None:
        return
    if sink.messages:
        from ._messages import returned

        returned(sink, key, value)
    if sink.updates:
        sink.put(
            ("updates", {spec.name: value, "__metadata__": {"cached": True}} if cached else {spec.name: value}, ns)
        )
    if sink.task_events and not cached:  # LangGraph streams no result for a cache hit
        _result(sink, key, spec.name, ns, None, {"__return__": value})


def call_failed(sink: Sink, spec: TaskSpec, key: str, error: BaseException) -> None:
    """A call raised ``error`` (journaled already): its result, with the error."""
    if not sink.task_events or spec.node:
        return
    ns = sink.graph_ns(key) if not spec.inherit_retry else sink.task_ns(key)
    if ns is not None:
        _result(sink, key, spec.name, ns, error, {})


# -- the run ----------------------------------------------------------------------------------------


def wants_prior(sink: Sink | None, resumed: bool) -> bool:
    """Whether the run's start streams the values it starts from (which takes a read of the thread's runs)."""
    return sink is not None and (sink.checkpoints or sink.debug or (sink.values and resumed))


def read_prior(store: Store, is_async: bool, thread_id: str) -> Body:
    """The effect that reads the thread's runs (for the values a run starts from), for either driver."""
    from ._drivers import Body

    if not is_async:
        return Body(store.list_runs, (thread_id,), {})
    import asyncio

    return Body(asyncio.to_thread, (store.list_runs, thread_id), {})


def prior_values(runs: list[Any], codec: Codec, run_id: int) -> Any:
    """What run ``run_id`` starts from: the value of the run before it (``None`` for the first, or unreadable)."""
    from .errors import DurableError

    before = next((r for r in runs if r.run_id == run_id - 1), None)
    if before is None or before.output is None:
        return None
    try:
        reader = codec.for_thread(codec.nonce, before.entrypoint)
        return reader.load(before.output, before.run_id, "#output", "the previous run's output")
    except DurableError:
        return None  # what get_state() would raise about is no reason to fail a stream


def run_started(
    sink: Sink, fn: Callable[..., Any], input: Any, resumed: bool, prior: Any,
    interrupts: tuple[Interrupt, ...] = (), error: str | None = None,
) -> None:  # fmt: skip
    """The run starts (or resumes): the values it starts from, its input checkpoint, its entrypoint's start."""
    if sink.values and resumed:
        sink.emit("values", prior)
    if sink.checkpoints or sink.debug:
        _checkpoint(sink, input_checkpoint(sink, fn, prior, interrupts, error), 2 * sink.run_id - 3)
    if sink.task_events:
        _task_event(sink, {"id": sink.eid, "name": sink.name, "input": input, "triggers": START}, (), "task")


def run_completed(sink: Sink, output: Any) -> None:
    """The run finished with ``output``: its update, result, values and end checkpoint."""
    if sink.messages:
        from ._messages import returned

        returned(sink, "", output)
    if sink.updates:
        sink.emit("updates", {sink.name: output})
    if sink.task_events:
        _result(sink, "", sink.name, (), None, {"__end__": output})
    if sink.values:
        sink.emit("values", output)
    if sink.checkpoints or sink.debug:
        _checkpoint(sink, end_checkpoint(sink, output), sink.step)


def run_paused(sink: Sink, paused: Interrupted) -> None:
    """The run paused: its interrupts (as an update, as values, and as the entrypoint's result)."""
    if sink.updates:
        sink.emit("updates", {"__interrupt__": paused.interrupts})
    if sink.values:
        sink.emit("values", paused)
    if sink.task_events:
        asked = [interrupt_dict(i) for i in paused.interrupts]
        chunk: dict[str, Any] = {"id": sink.eid, "name": sink.name, "error": None, "result": {}, "interrupts": asked}
        _task_event(sink, chunk, (), "task_result")


def run_failed(sink: Sink, error: BaseException) -> None:
    """The run failed: the entrypoint's result, with the error."""
    if sink.task_events:
        _result(sink, "", sink.name, (), error, {})


def settled(
    sink: Sink, fn: Callable[..., Any], value: Any, paused: bool, input: Callable[[], Any], prior: Any,
    update: bool = False,
) -> None:  # fmt: skip
    """Streaming ``None`` on a thread that needs no run: a paused one (its start and pause again), or a
    finished one (its value and end checkpoint)."""
    if paused:
        run_started(sink, fn, input() if sink.task_events else None, True, prior, value.interrupts)
        run_paused(sink, value)
        return
    if sink.values:
        sink.emit("values", value)
    if sink.checkpoints or sink.debug:
        _checkpoint(sink, end_checkpoint(sink, value, update), sink.step)


# -- checkpoints ------------------------------------------------------------------------------------


def _checkpoint(sink: Sink, chunk: dict[str, Any], step: int) -> None:
    if sink.checkpoints:
        sink.emit("checkpoints", chunk)
    if sink.debug:
        sink.emit("debug", {"step": step, "timestamp": _now(), "type": "checkpoint", "payload": chunk})


def input_checkpoint(
    sink: Sink, fn: Callable[..., Any], prior: Any, interrupts: tuple[Interrupt, ...], error: str | None
) -> dict[str, Any]:
    """LangGraph's checkpoint of a run's start: what it starts from, and the entrypoint about to run."""
    tid, r = sink.thread_id, sink.run_id
    task: dict[str, Any] = {"id": sink.eid, "name": sink.name}
    if error is not None:
        task["error"] = error
    else:
        task["interrupts"] = tuple(interrupt_dict(i) for i in interrupts)
    task["state"] = {"configurable": {"checkpoint_ns": f"{sink.name}:{sink.eid}", "thread_id": tid}} if (
        reaches_entrypoint(fn)
    ) else None  # fmt: skip
    return {
        "config": _config(tid, r, "input"),
        "parent_config": _config(tid, r - 1, "end") if r > 1 else None,
        "values": prior,
        "metadata": {"source": "input", "step": 2 * r - 3, "parents": {}},
        "next": [sink.name],
        "tasks": [task],
    }


def end_checkpoint(sink: Sink, output: Any, update: bool = False) -> dict[str, Any]:
    """LangGraph's checkpoint of a run's end (or of an ``update_state``, which follows the run before it)."""
    tid, r = sink.thread_id, sink.run_id
    return {
        "config": _config(tid, r, "end"),
        "parent_config": _config(tid, r - 1, "end") if update else _config(tid, r, "input"),
        "values": output,
        "metadata": {"source": "update" if update else "loop", "step": 2 * r - 2, "parents": {}},
        "next": [],
        "tasks": [],
    }


def reaches_entrypoint(fn: Callable[..., Any]) -> bool:
    """Whether a body may run a sub-entrypoint: an `Entrypoint` among the values its code names (its
    closure, the globals it and its inner functions name). LangGraph shows a checkpoint task's
    ``state`` by the same look at the function."""
    from ._api import Entrypoint

    fn = getattr(fn, "__func__", fn)
    wrapped = getattr(fn, "__wrapped__", None)
    if callable(wrapped):
        fn = getattr(wrapped, "__func__", wrapped)
    code: CodeType | None = getattr(fn, "__code__", None)
    if code is None:
        return False
    values: list[Any] = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:
            continue
    scope: Mapping[str, Any] = getattr(fn, "__globals__", {})
    codes = [code]
    for c in codes:
        values.extend(scope[name] for name in c.co_names if name in scope)
        codes.extend(k for k in c.co_consts if isinstance(k, CodeType))
    return any(isinstance(v, Entrypoint) for v in values)
