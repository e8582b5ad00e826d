"""Serializers turn journaled values into tagged bytes and back.

Every blob starts with a one-byte format tag so a reader never guesses the
format: an unknown tag is an error, never a fallback to another format.
"""

from __future__ import annotations

import base64
import json
import pickle
import sys
import traceback
from typing import Any, Protocol

from .errors import SerializationError

TAG_PICKLE = b"P"
TAG_JSON = b"J"

# Exact types (not subclasses) whose pickling never needs cloudpickle: the C
# pickler handles them about ten times faster than cloudpickle's Python one.
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
_NUMBERS = frozenset({type(None), bool, int, float})
_SIZED = frozenset({str, bytes, bytearray})

# From this size on (pickle's frame size) a value's bytes are not copied more than once: a large str
# or bytes is pickled into pieces joined once (`pickled`), and a large blob is read through a memoryview.
LARGE = 64 * 1024


class Serializer(Protocol):
    """Turns a value into tagged bytes and back. Implementations must be thread-safe.

    ``loads`` must refuse bytes with another format's tag (never fall back to another format; the tag ``V`` is
    durable's own, for a versioned task's values: see `_versions`),
    and ``stamp`` names the format and what it depends on; ``incompatible(stamp)`` says why a
    journal stamped so cannot be read here (``None``: it can).
    """

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, blob: bytes) -> Any: ...

    def stamp(self) -> str: ...

    def incompatible(self, stamp: str) -> str | None: ...


def _is_plain(value: Any, depth: int = 0) -> bool:
    t = type(value)
    if t in _PLAIN:
        return True
    if t not in _CONTAINERS or depth > 3 or len(value) > 64:
        return False
    plain, deeper = _PLAIN, depth + 1
    # Loops, not all(...) over a generator: scalars, the common case, are checked without a call.
    if t is dict:
        for k, v in value.items():
            if (type(k) not in plain and not _is_plain(k, deeper)) or (
                type(v) not in plain and not _is_plain(v, deeper)
            ):
                return False
        return True
    for v in value:  # noqa: SIM110 - a loop is what makes this fast (see above)
        if type(v) not in plain and not _is_plain(v, deeper):
            return False
    return True


class PickleSerializer:
    """cloudpickle (with the C pickler as a fast path for plain data), tagged ``P``."""

    def dumps(self, value: Any) -> bytes:
        t = type(value)
        if t in _NUMBERS:
            return TAG_PICKLE + pickle.dumps(value, protocol=3)  # the last protocol without frames
        if t in _PLAIN:  # str, bytes, bytearray, complex (the numbers are above)
            if t is complex or len(value) < LARGE:
                return _unframed(pickle.dumps(value, protocol=5))
        elif _is_plain(value):
            return _unframed(pickle.dumps(value, protocol=5))
        pieces = pickled(value)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def pieces(self, value: Any) -> list[Any]:
        """`dumps` as pieces to join (see `pickled`): a large value's bytes are not copied on the way."""
        t = type(value)
        if (t in _SIZED and len(value) >= LARGE) or (t not in _PLAIN and not _is_plain(value)):
            return pickled(value)
        return [self.dumps(value)]

    def loads(self, blob: bytes | memoryview) -> Any:
        """The value in ``blob`` (bytes, or a memoryview of them: a large blob is read in place, not copied)."""
        if blob[:1] != TAG_PICKLE:
            raise SerializationError("a journal blob", "bytes", _wrong_tag(blob, "pickle"), reading=True)
        return pickle.loads(blob[1:] if len(blob) < LARGE else memoryview(blob)[1:])

    def stamp(self) -> str:
        import cloudpickle

        return f"pickle python{sys.version_info[0]}.{sys.version_info[1]} cloudpickle{cloudpickle.__version__}"

    def incompatible(self, stamp: str) -> str | None:
        if not stamp.startswith("pickle "):
            return "it was written by another serializer: use that one for this thread"
        here = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        if stamp.split()[1] != here:
            # Pickles of classes and functions (cloudpickle) are not portable across Python versions.
            return (
                f"resume it under {stamp.split()[1].replace('python', 'Python ')}, or journal threads that "
                f"must outlive a Python upgrade with JsonSerializer"
            )
        return None


class _Pieces(list[Any]):
    """A file for a pickler that keeps what it writes: its frames, and a large bytes (or a str's UTF-8) whole."""

    write = list.append


def pickled(value: Any) -> list[Any]:
    """What `PickleSerializer.dumps` returns, as pieces to join: the tag, then what the pickler wrote.

    A bytes or bytearray of 64 KiB or more is one of the pieces itself and a large str's UTF-8 another
    (the C pickler hands such payloads to its file as they are), so joining the pieces, or hashing
    them, is the only pass over the value's bytes. A pickle under `LARGE` comes back as one piece,
    unframed as `dumps` makes it.
    """
    pieces = _Pieces((TAG_PICKLE,))
    if type(value) in _PLAIN or _is_plain(value):
        pickle.Pickler(pieces, protocol=5).dump(value)
    else:
        import cloudpickle  # only for values the C pickler may not handle

        cloudpickle.Pickler(pieces, protocol=5).dump(value)
    if len(pieces) == 2 and len(pieces[1]) < LARGE:  # the usual small pickle: one write, one frame
        return [_unframed(pieces[1])]
    return pieces


def _wrong_tag(blob: bytes | memoryview, reader: str) -> str:
    tag = bytes(blob[:1])
    found = {TAG_PICKLE: "pickle", TAG_JSON: "json"}.get(tag)
    if found is None:
        return f"unknown format tag {tag!r}; it is never guessed"
    return f"it was written by the {found} serializer and this entrypoint reads {reader}: it is never converted"


class JsonSerializer:
    """JSON, tagged ``J``: reading a journal never executes code or chooses a class to build.

    Stores None, bools, ints, floats, strs, lists, dicts, tuples and bytes (tuples, bytes and
    dicts with non-string or ``$``-keys are wrapped so that they come back as they went in, and
    data shaped like a wrapper stays data). An exception is stored as its type name, message and
    traceback text, and comes back as a `ReplayedError`. Anything else is a `SerializationError`.
    """

    def dumps(self, value: Any) -> bytes:
        return TAG_JSON + _ENCODER.encode(_to_json(value, 0)).encode()

    def loads(self, blob: bytes) -> Any:
        if blob[:1] != TAG_JSON:
            raise SerializationError("a journal blob", "bytes", _wrong_tag(blob, "json"), reading=True)
        return _from_json(_DECODER.decode(blob[1:].decode()))

    def stamp(self) -> str:
        return "json 1"

    def incompatible(self, stamp: str) -> str | None:
        return None if stamp.startswith("json ") else "it was written by another serializer: use that one"


# Made once: `json.dumps` with options builds an encoder per call, and `json.loads` of bytes guesses their encoding.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder()


def _to_json(v: Any, depth: int) -> Any:
    t = type(v)
    if v is None or t is bool or t is int or t is float or t is str:
        return v
    if depth > 200:
        raise TypeError("nested too deeply for JSON")
    if t is list:
        return [_to_json(x, depth + 1) for x in v]
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in v):
            return {k: _to_json(x, depth + 1) for k, x in v.items()}
        return {"$dict": [[_to_json(k, depth + 1), _to_json(x, depth + 1)] for k, x in v.items()]}
    if t is tuple:
        return {"$tuple": [_to_json(x, depth + 1) for x in v]}
    if t is bytes:
        return {"$bytes": base64.b64encode(v).decode()}
    if isinstance(v, BaseException):
        replayed = v if isinstance(v, ReplayedError) else None
        return {
            "$error": [
                replayed.type_name if replayed else type_name(v),
                replayed.message if replayed else str(v),
                replayed.traceback_text if replayed else error_text(v),
            ]
        }
    raise TypeError(f"the JSON serializer stores plain data only, not {type_name(v)} (use PickleSerializer)")


def _from_json(v: Any) -> Any:
    if type(v) is list:
        return [_from_json(x) for x in v]
    if type(v) is not dict:
        return v
    if len(v) == 1:
        ((k, x),) = v.items()
        if k == "$dict":
            return {_from_json(a): _from_json(b) for a, b in x}
        if k == "$tuple":
            return tuple(_from_json(a) for a in x)
        if k == "$bytes":
            return base64.b64decode(x)
        if k == "$error":
            return ReplayedError(str(x[0]), str(x[1]), str(x[2]))
    return {k: _from_json(x) for k, x in v.items()}


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
        raise unwritable(what, value, exc) from exc


def unwritable(what: str, value: Any, exc: Exception) -> SerializationError:
    return SerializationError(what, type_name(value), f"{type(exc).__name__}: {exc}")


def load_value(serde: Serializer, blob: bytes, what: str) -> Any:
    try:
        return serde.loads(blob)
    except SerializationError:
        raise
    except Exception as exc:
        raise unreadable(what, exc) from exc


def load_pickle(serde: PickleSerializer, blob: bytes | memoryview, what: str) -> Any:
    """`load_value` for the pickle serializer, which also reads a memoryview (a large blob, not copied)."""
    try:
        return serde.loads(blob)
    except SerializationError:
        raise
    except Exception as exc:
        raise unreadable(what, exc) from exc


def unreadable(what: str, exc: Exception) -> SerializationError:
    return SerializationError(what, "bytes", f"{type(exc).__name__}: {exc}", reading=True)


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
        stand_in = ReplayedError(type_name(exc), str(exc), error_text(exc))
        return serde.dumps(stand_in)


def type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
