"""Serializers turn journaled values into tagged bytes and back.

Every blob starts with a one-byte format tag so a reader never guesses the
format: an unknown tag is an error, never a fallback to another format.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any, Protocol

from .errors import SerializationError

TAG_PICKLE = b"P"

# Exact types (not subclasses) whose pickling never needs cloudpickle: the C
# pickler handles them about ten times faster than cloudpickle's Python one.
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
_NUMBERS = frozenset({type(None), bool, int, float})


class Serializer(Protocol):
    """Turns a value into tagged bytes and back. Implementations must be thread-safe."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, blob: bytes) -> Any: ...


def _is_plain(value: Any, depth: int = 0) -> bool:
    t = type(value)
    if t in _PLAIN:
        return True
    if t not in _CONTAINERS or depth > 3 or len(value) > 64:
        return False
    if t is dict:
        return all(_is_plain(k, depth + 1) and _is_plain(v, depth + 1) for k, v in value.items())
    return all(_is_plain(v, depth + 1) for v in value)


class PickleSerializer:
    """cloudpickle (with the C pickler as a fast path for plain data), tagged ``P``."""

    def dumps(self, value: Any) -> bytes:
        t = type(value)
        if t in _NUMBERS:
            return TAG_PICKLE + pickle.dumps(value, protocol=3)  # the last protocol without frames
        if t in _PLAIN or _is_plain(value):
            return _unframed(pickle.dumps(value, protocol=5))
        import cloudpickle  # only for values the C pickler may not handle

        return _unframed(cloudpickle.dumps(value, protocol=5))

    def loads(self, blob: bytes) -> Any:
        if blob[:1] != TAG_PICKLE:
            raise SerializationError(
                "a journal blob", "bytes", f"unknown format tag {blob[:1]!r} (written by another serializer?)"
            )
        return pickle.loads(blob[1:])


def _unframed(blob: bytes) -> bytes:
    """Tag a pickle, dropping its frame header when one frame holds it all (any small pickle).

    Framing only helps a reader stream large pickles from a file; for the small
    values most tasks return its 9 bytes would be the largest part of the row.
    Unframed data is valid at every protocol, and `pickle.loads` reads it as is.
    """
    if blob[2:3] == b"\x95" and int.from_bytes(blob[3:11], "little") == len(blob) - 11:
        return TAG_PICKLE + blob[:2] + blob[11:]
    return TAG_PICKLE + blob


DEFAULT_SERIALIZER: Serializer = PickleSerializer()


def dump_value(serde: Serializer, value: Any, what: str) -> bytes:
    """Serialize ``value``, turning any failure into a `SerializationError` naming ``what``."""
    try:
        return serde.dumps(value)
    except Exception as exc:
        raise SerializationError(what, _type_name(value), f"{type(exc).__name__}: {exc}") from exc


def load_value(serde: Serializer, blob: bytes, what: str) -> Any:
    try:
        return serde.loads(blob)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            what, "bytes", f"the stored value cannot be read back ({type(exc).__name__}: {exc})"
        ) from exc


class ReplayedError(Exception):
    """Stands in for a recorded exception that could not be pickled or unpickled.

    It carries the original type name, message and traceback text, so a replay
    still raises, and still says what went wrong.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback_text))


def error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def dump_error(serde: Serializer, exc: BaseException) -> bytes:
    """Serialize an exception so that loading it gives an equivalent one, or a `ReplayedError`.

    Exceptions are checked by a round trip because many pickle fine and then fail
    to unpickle (a custom ``__init__`` without ``__reduce__``): better to learn
    that now than on the replay a week later.
    """
    try:
        blob = serde.dumps(exc)
        serde.loads(blob)
        return blob
    except Exception:
        stand_in = ReplayedError(_type_name(exc), str(exc), error_text(exc))
        return serde.dumps(stand_in)


def _type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
