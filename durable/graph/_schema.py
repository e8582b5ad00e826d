"""State schemas: which channels a graph's state has, and how values cross between Python and them.

A schema is a ``TypedDict``, a dataclass or a Pydantic model (or any class with annotations). Each
annotated key is a channel: ``Annotated[T, reducer]`` with a two-argument reducer folds writes in
(`Reduced`), a plain key keeps the last write (`LastValue`), and ``RemainingSteps`` / ``IsLastStep``
are managed values computed for each node from the superstep it runs in. What a node receives is
its input schema's keys that have a value, as a dict (or as an instance of the dataclass or model);
what it returns is read back as ``(key, value)`` writes by `updates_of`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from .._interrupts import Command
from ..errors import ConfigurationError, InvalidUpdateError
from ._channels import MISSING, Channel, LastValue, Reduced

# NotRequired[...]/Required[...]/ReadOnly[...] wrap a TypedDict key's type (from typing or typing_extensions):
# its channel is the inner type's.
_WRAPPERS = ("NotRequired", "Required", "ReadOnly")


class _Managed:
    """A value the graph computes for each node instead of storing it."""

    def __init__(self, name: str, compute: Callable[[int, int], Any]) -> None:
        self.name = name
        self.compute = compute  # (step, stop) -> value

    def __repr__(self) -> str:
        return self.name


_REMAINING = _Managed("RemainingSteps", lambda step, stop: stop - step)
_LAST = _Managed("IsLastStep", lambda step, stop: step == stop - 1)

RemainingSteps = Annotated[int, _REMAINING]
"""A state key of this type holds how many supersteps the run may still take before its ``recursion_limit``."""
IsLastStep = Annotated[bool, _LAST]
"""A state key of this type is ``True`` in the last superstep the ``recursion_limit`` allows."""


@dataclass(frozen=True)
class Schema:
    """One schema class: its keys in order, their channels, and how to build an instance from values."""

    cls: Any
    channels: dict[str, Channel]  # empty channels, copied for each run
    managed: dict[str, _Managed]
    kind: str  # "dict", "dataclass" or "pydantic"

    @property
    def keys(self) -> tuple[str, ...]:
        return (*self.channels, *self.managed)

    def build(self, values: dict[str, Any]) -> Any:
        """What a node with this input schema receives."""
        if self.kind == "dict":
            return values
        return self.cls(**values)


def schema_of(cls: Any) -> Schema:
    """Read a schema class's keys, reducers and managed values."""
    if not isinstance(cls, type):
        raise ConfigurationError(
            f"state schema {cls!r}: use a TypedDict, a dataclass or a Pydantic model whose annotations name the "
            f"state's keys (Annotated[T, reducer] for a key that accumulates)"
        )
    try:
        hints = get_type_hints(cls, include_extras=True)
    except Exception as exc:  # a forward reference that cannot be resolved
        raise ConfigurationError(f"state schema {cls.__name__}: cannot read its annotations ({exc})") from exc
    kind = "dataclass" if dataclasses.is_dataclass(cls) else "pydantic" if _is_pydantic(cls) else "dict"
    if kind == "pydantic":
        fields = getattr(cls, "model_fields", None) or {}
        hints = {k: v for k, v in hints.items() if k in fields}
    channels: dict[str, Channel] = {}
    managed: dict[str, _Managed] = {}
    for key, hint in hints.items():
        if key.startswith("__") or get_origin(hint) is typing.ClassVar:
            continue
        found = _managed_in(hint)
        if found is not None:
            managed[key] = found
        else:
            channels[key] = _channel(key, hint)
    if not channels and not managed:
        raise ConfigurationError(
            f"state schema {cls.__name__} has no annotated keys: declare the state's keys as annotations "
            f"(class State(TypedDict): messages: list)"
        )
    return Schema(cls, channels, managed, kind)


def _is_pydantic(cls: type) -> bool:
    return any(base.__module__.startswith("pydantic") and base.__name__ == "BaseModel" for base in cls.__mro__)


def _unwrap(hint: Any) -> Any:
    while getattr(get_origin(hint), "_name", None) in _WRAPPERS:
        hint = get_args(hint)[0]
    return hint


def _managed_in(hint: Any) -> _Managed | None:
    hint = _unwrap(hint)
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, _Managed):
            return meta
        if _langgraph_managed(meta) is not None:
            return _langgraph_managed(meta)
    return None


def _langgraph_managed(meta: Any) -> _Managed | None:
    """LangGraph's own RemainingSteps/IsLastStep, in a schema written against LangGraph's imports."""
    name = getattr(meta, "__name__", "")
    if getattr(meta, "__module__", "").startswith("langgraph.managed"):
        if name == "RemainingStepsManager":
            return _REMAINING
        if name == "IsLastStepManager":
            return _LAST
    return None


def _channel(key: str, hint: Any) -> Channel:
    hint = _unwrap(hint)
    metadata = getattr(hint, "__metadata__", ())
    if metadata and callable(metadata[-1]):
        reducer = metadata[-1]
        try:
            params = inspect.signature(reducer).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: trust it
            return Reduced(key, reducer, _initial(hint))
        positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        if positional != 2:
            raise ConfigurationError(
                f"state key {key!r}: its reducer {getattr(reducer, '__name__', reducer)!r} must take two "
                f"arguments (the current value and a write) and return the new value"
            )
        return Reduced(key, reducer, _initial(hint))
    return LastValue(key)


def _initial(hint: Any) -> Any:
    """A reduced key starts from its type's empty value (``list`` → ``[]``, ``int`` → ``0``), as in LangGraph."""
    typ = get_args(hint)[0] if get_origin(hint) is Annotated else hint
    typ = _unwrap(typ)
    typ = get_origin(typ) or typ
    typ = {
        collections.abc.Sequence: list,
        collections.abc.MutableSequence: list,
        collections.abc.Set: set,
        collections.abc.MutableSet: set,
        collections.abc.Mapping: dict,
        collections.abc.MutableMapping: dict,
    }.get(typ, typ)
    try:
        typ()
    except Exception:
        return MISSING
    return typ


def updates_of(value: Any, keys: frozenset[str], node: str) -> list[tuple[str, Any]]:
    """The state writes a node's return value makes, in its order; keys the state lacks are ignored, as in
    LangGraph. ``None`` writes nothing; a `Command` writes its ``update``."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [(k, v) for k, v in value.items() if k in keys]
    if isinstance(value, Command):
        return [] if value.graph == Command.PARENT else [(k, v) for k, v in _command_update(value) if k in keys]
    if isinstance(value, list | tuple) and value and any(isinstance(v, Command) for v in value):
        writes: list[tuple[str, Any]] = []
        for item in value:
            writes.extend(updates_of(item, keys, node))
        return writes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value) if f.name in keys]
    if _is_pydantic(type(value)):
        return _pydantic_updates(value, keys)
    raise InvalidUpdateError(
        f"node {node!r} returned {_short(value)}: a node returns a dict of state keys to update (or None, a "
        f"Command, or an instance of the state's class)"
    )


def _command_update(command: Command[Any]) -> list[tuple[str, Any]]:
    update = command.update
    if update is None:
        return []
    if isinstance(update, Mapping):
        return list(update.items())
    if isinstance(update, list | tuple) and all(isinstance(t, tuple) and len(t) == 2 for t in update):
        return list(update)
    if dataclasses.is_dataclass(update) and not isinstance(update, type):
        return [(f.name, getattr(update, f.name)) for f in dataclasses.fields(update)]
    if _is_pydantic(type(update)):
        return _pydantic_updates(update, None)
    raise InvalidUpdateError(f"Command(update={_short(update)}): give a dict of state keys, or (key, value) pairs")


def _pydantic_updates(model: Any, keys: frozenset[str] | None) -> list[tuple[str, Any]]:
    """A model's fields as writes: those set explicitly or differing from a ``None`` default (LangGraph's rule)."""
    fields = type(model).model_fields
    given = model.model_fields_set
    out = []
    for name, info in fields.items():
        if keys is not None and name not in keys:
            continue
        value = getattr(model, name)
        if value is not None or info.default is not None or name in given:
            out.append((name, value))
    return out


def input_updates(value: Any, schema: Schema) -> list[tuple[str, Any]]:
    """The writes a graph's input makes: a dict (validated through a Pydantic input schema), or an instance."""
    keys = frozenset(schema.channels)
    if schema.kind == "pydantic" and isinstance(value, Mapping):
        value = schema.cls(**value)  # a ValidationError says what does not fit, as in LangGraph
    if isinstance(value, Mapping) and not isinstance(value, dict):
        value = dict(value)
    return updates_of(value, keys, "__start__")


def state_values(channels: Mapping[str, Channel], keys: Sequence[str]) -> dict[str, Any]:
    """The keys that have a value, as a dict (what ``get_state().values`` and a ``"values"`` chunk show)."""
    out = {}
    for key in keys:
        channel = channels.get(key)
        if channel is not None and channel.available():
            out[key] = channel.get()
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
