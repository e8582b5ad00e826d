"""The channels a graph's state and control flow live in, with LangGraph's update rules.

A state key is a channel: a plain key keeps its last value (`LastValue`, one write per superstep),
a key annotated with a reducer folds every write into its value (`Reduced`). Control flow uses
channels too: a node is triggered by a write to its ``branch:to:<node>`` channel (`Ephemeral`, or
`DeferredTrigger` for a ``defer=True`` node), a join ``add_edge([a, b], c)`` by a `Barrier` that
fills as its sources finish, and `Send` packets wait in the `Tasks` topic. Each channel says how a
superstep's writes change it (`update`), whether it has a value to read (`available`), and how it
is saved in a checkpoint (`save`/`load`, plain data any serializer can store).

``consume`` (the nodes a channel triggered have read it) and ``finish`` (the graph would otherwise
end: deferred nodes may run now) are the two moments LangGraph's Pregel loop tells channels about.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidUpdateError

MISSING: Any = object()  # a channel with no value yet


class Channel:
    """A channel's value and its rules; subclasses override what differs."""

    __slots__ = ("key", "value")

    def __init__(self, key: str) -> None:
        self.key = key
        self.value = MISSING

    def fresh(self) -> Channel:
        """An empty channel with the same rules."""
        return type(self)(self.key)

    def available(self) -> bool:
        return self.value is not MISSING

    def get(self) -> Any:
        return self.value

    def update(self, values: Sequence[Any]) -> bool:
        raise NotImplementedError

    def consume(self) -> bool:
        return False

    def finish(self) -> bool:
        return False

    def save(self) -> Any:
        """The channel's state as plain data (`MISSING` when there is nothing to keep)."""
        return self.value

    def load(self, data: Any) -> None:
        self.value = data


class LastValue(Channel):
    """A state key without a reducer: one write per superstep, which replaces its value."""

    __slots__ = ()

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        if len(values) != 1:
            raise InvalidUpdateError(
                f"At key {self.key!r}: Can receive only one value per step. Use an Annotated key to handle "
                f"multiple values (Annotated[T, reducer]); {len(values)} nodes wrote it in the same superstep"
            )
        self.value = values[0]
        return True


class Reduced(Channel):
    """A state key annotated with a reducer: each write is folded in, in the superstep's write order."""

    __slots__ = ("initial", "reducer")

    def __init__(self, key: str, reducer: Callable[[Any, Any], Any] | None = None, initial: Any = MISSING) -> None:
        super().__init__(key)
        self.reducer = reducer
        self.initial = initial
        self.value = initial() if callable(initial) else initial

    def fresh(self) -> Reduced:
        return Reduced(self.key, self.reducer, self.initial)

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        assert self.reducer is not None
        value = self.value
        if value is MISSING:
            value, values = _overwritten(values[0])[1], values[1:]
        replaced = False
        for v in values:
            is_overwrite, inner = _overwritten(v)
            if is_overwrite:
                if replaced:
                    raise InvalidUpdateError(f"At key {self.key!r}: can receive only one Overwrite value per step")
                value, replaced = inner, True
            elif not replaced:  # after an Overwrite, the step's other writes are dropped (as in LangGraph)
                value = self.reducer(value, v)
        self.value = value
        return True


OVERWRITE = "__overwrite__"


def _overwritten(value: Any) -> tuple[bool, Any]:
    """Whether a write replaces a reduced value (an `Overwrite`, or its ``{"__overwrite__": v}`` form)."""
    if isinstance(value, Overwrite):
        return True, value.value
    if type(value) is dict and len(value) == 1 and OVERWRITE in value:
        return True, value[OVERWRITE]
    return False, value


class Overwrite:
    """Write ``value`` to a reduced key as it is, bypassing its reducer (LangGraph's ``Overwrite``)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Overwrite({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Overwrite) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


class Ephemeral(Channel):
    """A value seen for one superstep only: the graph's input, and the trigger of a node's next run."""

    __slots__ = ("guard",)

    def __init__(self, key: str, guard: bool = False) -> None:
        super().__init__(key)
        self.guard = guard

    def fresh(self) -> Ephemeral:
        return Ephemeral(self.key, self.guard)

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            if self.value is MISSING:
                return False
            self.value = MISSING
            return True
        if self.guard and len(values) != 1:
            raise InvalidUpdateError(f"{self.key!r} can receive only one value per step")
        self.value = values[-1]
        return True


class DeferredTrigger(Channel):
    """The trigger of a ``defer=True`` node: it fires only once the graph has nothing else to run."""

    __slots__ = ("finished",)

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.finished = False

    def available(self) -> bool:
        return self.finished and self.value is not MISSING

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        self.finished = False
        self.value = values[-1]
        return True

    def consume(self) -> bool:
        if not self.finished:
            return False
        self.finished, self.value = False, MISSING
        return True

    def finish(self) -> bool:
        if self.finished or self.value is MISSING:
            return False
        self.finished = True
        return True

    def save(self) -> Any:
        return MISSING if self.value is MISSING else [self.value, self.finished]

    def load(self, data: Any) -> None:
        self.value, self.finished = data[0], bool(data[1])


class Barrier(Channel):
    """A join: fires once every one of its source nodes has finished (in any supersteps), then resets."""

    __slots__ = ("deferred", "finished", "names", "seen")

    def __init__(self, key: str, names: frozenset[str] = frozenset(), deferred: bool = False) -> None:
        super().__init__(key)
        self.names = names
        self.seen: set[str] = set()
        self.deferred = deferred
        self.finished = False

    def fresh(self) -> Barrier:
        return Barrier(self.key, self.names, self.deferred)

    def _full(self) -> bool:
        return self.seen == self.names

    def available(self) -> bool:
        return self._full() and (self.finished or not self.deferred)

    def get(self) -> Any:
        return None

    def update(self, values: Sequence[Any]) -> bool:
        changed = False
        for name in values:
            if name not in self.names:
                raise InvalidUpdateError(f"{self.key!r} joins {sorted(self.names)}, not {name!r}")
            if name not in self.seen:
                self.seen.add(name)
                changed = True
        return changed

    def consume(self) -> bool:
        if self._full() and (self.finished or not self.deferred):
            self.seen.clear()
            self.finished = False
            return True
        return False

    def finish(self) -> bool:
        if self.deferred and not self.finished and self._full():
            self.finished = True
            return True
        return False

    def save(self) -> Any:
        if not self.seen:
            return MISSING
        return [sorted(self.seen), self.finished] if self.deferred else sorted(self.seen)

    def load(self, data: Any) -> None:
        if self.deferred:
            self.seen, self.finished = set(data[0]), bool(data[1])
        else:
            self.seen = set(data)


class Tasks(Channel):
    """The `Send` packets for the next superstep, each one a task of its own."""

    __slots__ = ()

    def available(self) -> bool:
        return self.value is not MISSING and bool(self.value)

    def update(self, values: Sequence[Any]) -> bool:
        had = self.value is not MISSING and bool(self.value)
        self.value = list(values) if values else MISSING
        return had or bool(values)

    def save(self) -> Any:
        return [[s.node, s.arg] for s in self.value] if self.available() else MISSING

    def load(self, data: Any) -> None:
        from .._interrupts import Send

        self.value = [Send(node, arg) for node, arg in data]
