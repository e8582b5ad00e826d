"""A graph thread's checkpoints, rebuilt from its journal: ``get_state``, ``get_state_history``, time travel.

durable keeps what each node wrote, not a copy of the whole state per superstep. A finished run's
end state is stored once (what the next run starts from); any other checkpoint is rebuilt by
running the superstep machine over the journal without running a node (`_dry`): each journaled
node's writes are applied as they were, and where a node has no result yet the run stopped, so
that superstep's tasks are ``next``. A checkpoint id is ``"<run>:<superstep>"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._codec import Codec
from .._interrupts import Interrupt, PendingInterrupt, pending_from_data
from .._state import JournalEntry, PregelTask, ThreadState, _run_state, app_reader, read_state
from .._stream import call_id
from ..errors import ConfigurationError, DurableError, EntrypointMismatchError, ThreadNotFoundError
from ._emit import checkpoint_id
from ._loop import Outcome, graph_flow
from ._node import decode
from ._pregel import PULL, PUSH, START, Machine, Task, Write

if TYPE_CHECKING:
    from ..stores._base import RunRow, ThreadRow
    from ._compiled import CompiledStateGraph
    from ._loop import Call, GraphCore, Op


@dataclass
class Checkpoint:
    """One checkpoint of a run: the state after an input, a superstep or an update, and what runs next."""

    run_id: int
    step: int
    source: str
    saved: dict[str, Any]
    values: dict[str, Any]
    next: list[Task]
    keys: list[str] = field(default_factory=list)  # the journal keys the next tasks ran (or would run) at
    results: dict[str, Any] = field(default_factory=dict)  # key -> the task's state writes, once known
    at: float = 0.0
    made_by: int = 0  # the run that made this state (a run going on from a checkpoint did not make it)
    finished: set[str] = field(default_factory=set)  # where a run stopped: the keys of the tasks that finished
    parent: str | None = None  # the checkpoint it was made from

    @property
    def id(self) -> str:
        return checkpoint_id(self.made_by or self.run_id, self.step)


class _Recorder:
    """An emitter that keeps every checkpoint of a dry replay instead of streaming it."""

    def __init__(self, run_id: int, at: float) -> None:
        self.run_id, self.at = run_id, at
        self.found: list[Checkpoint] = []
        self.core: GraphCore | None = None

    def begin(self, core: GraphCore, machine: Machine, op: Op) -> None:
        self.core = core

    def step(self, machine: Machine, calls: Sequence[Call]) -> None:
        self._keep(machine, [c.task for c in calls], [c.key for c in calls])

    def stepped(self, machine: Machine, fresh: bool) -> None:
        """Nothing to keep: the next step (or the end) keeps the state this superstep made."""

    def stopped(self, machine: Machine, tasks: Sequence[Task], breakpoint: bool = False) -> None:
        self._keep(machine, list(tasks), [])

    def child(self, task: Task, step: int) -> None:
        return None

    def _keep(self, machine: Machine, tasks: list[Task], keys: list[str]) -> None:
        saved = machine.save()
        values = machine.values()
        step, source, origin, parent = machine.step, machine.source, machine.origin, machine.parent
        self.found.append(
            Checkpoint(self.run_id, step, source, saved, values, tasks, keys, {}, self.at, origin, parent=parent)
        )


@dataclass
class _Replayed:
    """A dry replay of one run: its checkpoints, the state it ended with, where it stopped (if it did)."""

    checkpoints: list[Checkpoint]
    end: dict[str, Any] | None  # the saved state at its end (None: it stopped before the end)
    error: BaseException | None = None


def _dry(core: GraphCore, input: Any, previous: Any, entries: Sequence[JournalEntry], run_id: int,
         at: float) -> _Replayed:  # fmt: skip
    """Run the superstep machine over a run's journal, running no node; stop where a node has no result."""
    ok = {e.key: e for e in entries if e.status == "ok" and "." not in e.key}
    recorder = _Recorder(run_id, at)
    flow = graph_flow(core, input, previous, {}, recorder, run_id)  # type: ignore[arg-type]
    n = 0
    outcomes: list[Outcome] | None = None
    while True:
        try:
            calls = flow.send(outcomes)  # type: ignore[arg-type]
        except StopIteration as stop:
            final = stop.value
            return _Replayed(recorder.found, getattr(final, "save", None))
        except DurableError as exc:  # a recursion limit, a bad update: the run failed here
            return _Replayed(recorder.found, None, exc)
        for call in calls:
            call.key, n = str(n), n + 1
        last = recorder.found[-1] if recorder.found else None
        if last is not None and [t.name for t in last.next] == [c.task.name for c in calls]:
            last.keys = [c.key for c in calls]  # the checkpoint these calls run from
        else:
            last = None
        keys = frozenset(core.plan.state_keys)
        done: list[tuple[Call, list[Write]]] = []
        for call in calls:
            entry = ok.get(call.key)
            if entry is None:
                continue
            writes = decode(call.runner, entry.result)
            done.append((call, writes))
            if last is not None:
                last.results[call.key] = {k: v for k, v in writes if k in keys}
                last.at = max(last.at, entry.finished_at)
        if len(done) < len(calls):  # the run stopped in this superstep
            flow.close()
            if last is not None and done:
                # As LangGraph's snapshot shows it: the nodes that finished have written, the others are next.
                shown = calls[0].machine.copy()
                shown.apply([(c.task, w) for c, w in done])
                last.values = shown.values()
                last.finished = {c.key for c, _ in done}
            return _Replayed(recorder.found, None)
        outcomes = [Outcome(w, None, False) for _, w in done]


# -- reading a thread --------------------------------------------------------------------------------------


@dataclass
class _Thread:
    graph: CompiledStateGraph[Any, Any, Any, Any]
    thread: ThreadRow
    run: RunRow
    codec: Codec

    def load(self, blob: bytes | None, run: RunRow, slot: str) -> Any:
        if blob is None:
            return None
        return self.codec.for_thread(self.thread.nonce, run.entrypoint).load(
            blob, run.run_id, slot, f"the run's {slot}"
        )


def _open(graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str) -> _Thread:
    store = graph.checkpointer
    thread = store.get_thread(thread_id)
    if thread is None or thread.run is None:
        raise ThreadNotFoundError(thread_id)
    run = thread.run
    entry = graph.entrypoint
    if run.entrypoint != entry.name and run.entrypoint not in entry._spec.aliases:
        raise EntrypointMismatchError(thread_id, run.entrypoint, entry.name)
    ring = entry._ring
    codec = Codec(entry._spec.serde, ring, thread_id, thread.nonce, run.entrypoint, store.max_result_bytes)
    return _Thread(graph, thread, run, codec)


def resume_or_done(graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str) -> tuple[str, Any]:
    """What ``invoke(None)`` means on this thread: ``("resume", None)`` to go on from a breakpoint,
    ``("done", output)`` for a finished graph, ``("engine", None)`` to let the engine resume (or refuse)."""
    try:
        t = _open(graph, thread_id)
    except ThreadNotFoundError:
        return "engine", None
    if t.run.status != "completed":
        return "engine", None
    machine = Machine(graph.core.plan, t.load(t.run.save, t.run, "#save"))
    if machine.next_tasks():
        return "resume", None
    return "done", t.load(t.run.output, t.run, "#output")


def state_now(graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str) -> ThreadState:
    """``get_state``: the latest checkpoint, with the run's durable fields (status, journal, error...)."""
    entry = graph.entrypoint
    t = _open(graph, thread_id)
    base = read_state(graph.checkpointer, thread_id, app_reader(entry._spec.serde, entry._ring))
    run = t.run
    if run.status == "completed":
        saved = t.load(run.save, run, "#save")
        machine = Machine(graph.core.plan, saved)
        point = Checkpoint(run.run_id, machine.step, machine.source, saved, machine.values(), machine.next_tasks(),
                           at=run.finished_at or run.started_at, made_by=machine.origin,
                           parent=machine.parent)  # fmt: skip
        return _state(base, point, None, _order(graph))
    replayed = _dry(graph.core, t.load(run.input, run, "#input"), t.load(run.previous, run, "#previous"),
                    base.entries, run.run_id, run.started_at)  # fmt: skip
    if not replayed.checkpoints:
        raise ConfigurationError(f"thread {thread_id!r}: its run cannot be replayed to a checkpoint")
    return _state(base, replayed.checkpoints[-1], _pending(t, run), _order(graph))


def _pending(t: _Thread, run: RunRow) -> tuple[PendingInterrupt, ...]:
    if run.status != "interrupted" or run.interrupts is None:
        return ()
    codec = t.codec.for_thread(t.thread.nonce, run.entrypoint)
    return pending_from_data(codec.load_plain(codec.open(run.interrupts, run.run_id, "#interrupts"), "the interrupts"))


def _state(base: ThreadState, point: Checkpoint, pending: Sequence[PendingInterrupt] | None,
           order: Mapping[str, int]) -> ThreadState:  # fmt: skip
    """A checkpoint as LangGraph's snapshot fields on durable's `ThreadState` (``pending``: the interrupts
    its tasks are waiting on, when it is where the run stopped)."""
    tid, r = base.thread_id, point.run_id
    errors = {e.key: e for e in base.entries if e.status == "error" and "." not in e.key}
    keyed = [(task, point.keys[i] if i < len(point.keys) else "") for i, task in enumerate(point.next)]
    # LangGraph lists a checkpoint's Send tasks first, then its nodes in the order they were added.
    keyed.sort(key=lambda tk: (0, tk[0].path[1], 0) if tk[0].path[0] == PUSH else (1, 0, order.get(tk[0].name, 0)))
    tasks = []
    asked: list[Interrupt] = []
    for task, key in keyed:
        mine = tuple(p.public() for p in (pending or ()) if key and p.key.split(".")[0] == key)
        asked.extend(mine)
        failed = errors.get(key) if base.status == "failed" and r == base.run_id else None
        tasks.append(PregelTask(
            call_id(tid, r, key) if key else "", task.name, task.path if task.path[0] != PULL else (PULL, task.name),
            repr(failed.error) if failed is not None else None, mine, None, point.results.get(key),
        ))  # fmt: skip
    waiting = tuple(task.name for task, key in keyed if key not in point.finished)
    config = {"configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": point.id}}
    return replace(
        base, values=point.values, next=waiting, tasks=tuple(tasks), config=config,
        metadata={"source": point.source, "step": point.step, "parents": {}, "run_id": point.made_by or r},
        created_at=_iso(point.at), interrupts=tuple(asked) if pending is not None else base.interrupts,
        parent_config=None if point.parent is None else {
            "configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": point.parent}
        },
    )  # fmt: skip


def _order(graph: CompiledStateGraph[Any, Any, Any, Any]) -> dict[str, int]:
    return {name: i for i, name in enumerate((START, *graph.builder.nodes))}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def _fold(graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str) -> list[tuple[ThreadState, Checkpoint, bool]]:
    """Every checkpoint of the thread, oldest first, rebuilt by replaying each run's journal in turn from the
    state the run before it ended with; each with its run's state, and whether the run stopped there."""
    entry = graph.entrypoint
    t = _open(graph, thread_id)
    store = graph.checkpointer
    reader = app_reader(entry._spec.serde, entry._ring)
    carried: dict[str, Any] | None = None
    found: list[tuple[ThreadState, Checkpoint, bool]] = []
    for run in store.list_runs(thread_id):
        base = replace(_run_state(store, t.thread, run, reader(t.thread, run)), owner=None, lease_expires=None)
        replayed = _dry(graph.core, t.load(run.input, run, "#input"), carried, base.entries, run.run_id,
                        run.started_at)  # fmt: skip
        for point in replayed.checkpoints:
            if found and found[-1][1].id == point.id:
                found.pop()  # a run going on from a checkpoint shows it once, as it is now
            found.append((base, point, point is replayed.checkpoints[-1] and run.status != "completed"))
        if run.status == "completed" and replayed.end is not None:
            carried = replayed.end
    return found


def history(graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str) -> list[ThreadState]:
    """Every checkpoint of the thread, newest first (LangGraph's ``get_state_history``)."""
    t = _open(graph, thread_id)
    out: list[ThreadState] = []
    order = _order(graph)
    for base, point, stopped in _fold(graph, thread_id):
        # Only where the latest run stopped are its questions pending (the others' were answered).
        pending = _pending(t, t.run) if stopped and point.run_id == t.run.run_id else ()
        out.append(_state(base, point, pending, order))
    out.reverse()
    return out


def snapshot_at(graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str, wanted: str) -> ThreadState:
    for snapshot in history(graph, thread_id):
        if snapshot.config["configurable"]["checkpoint_id"] == wanted:
            return snapshot
    raise ConfigurationError(f"thread {thread_id!r} has no checkpoint {wanted!r}: take one from get_state_history()")


def restore_for(
    graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str, wanted: str | None
) -> Mapping[str, Any] | None:
    """The saved state of an earlier checkpoint to run from (time travel), or ``None`` for the latest."""
    if wanted is None:
        return None
    try:
        now = state_now(graph, thread_id)
    except ThreadNotFoundError:
        raise ConfigurationError(f"thread {thread_id!r} has no checkpoint {wanted!r}: it has no journal") from None
    if now.config["configurable"]["checkpoint_id"] == wanted:
        return None
    for _, point, _ in _fold(graph, thread_id):
        if point.id == wanted:
            return point.saved
    raise ConfigurationError(f"thread {thread_id!r} has no checkpoint {wanted!r}: take one from get_state_history()")


def latest_config(graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str) -> dict[str, Any]:
    return dict(state_now(graph, thread_id).config)
