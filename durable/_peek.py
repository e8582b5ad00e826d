"""Reading a journal from the operator's tools without letting the journal choose how it is read.

The application reads its own journal with its own serializer and key. The tools (`Threads`, the
``durable`` command) read anybody's, and a pickle is code: one planted in a database would run in the
operator's shell. So a tool decides from what it can check, never from what the journal says about
itself (a run's stamp, a blob's claim to be signed):

- a JSON value is always decoded (reading JSON never runs code);
- a pickle is unpickled only when its signature verified under a key the operator gave, or when the
  operator opted in (``Threads(unsafe_unpickle=True)``, ``--unsafe-unpickle``);
- anything else is shown as a `SealedValue`: its format, the type it would be when that can be read
  off the pickle's opcodes without running them, its size and its SHA-256, and why it was not read.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, replace
from typing import Any, Literal

from ._answers import RECORD, split
from ._codec import Codec, Keyring, unsigned_part
from ._serde import TAG_JSON, TAG_PICKLE, JsonSerializer, ReplayedError, type_name
from ._versions import TAG as VERSIONED
from ._versions import peel
from .errors import IntegrityError, SerializationError

Why = Literal[
    "unsigned-pickle",  # nobody vouches for it: unpickling it would run whatever it holds
    "signed-no-key",  # signed, but no key was given to check it
    "bad-signature",  # it fails its signature check (altered, moved, or signed with a key not given)
    "unsigned-under-key",  # not signed while a key is configured: the application refuses it
    "unreadable",  # verified (or allowed), but it does not decode here (a class that moved, another Python)
    "unknown-format",  # not a format durable writes
]

_WHY_SHORT = {
    "unsigned-pickle": "unsigned",
    "signed-no-key": "signed, no key given",
    "bad-signature": "FAILS ITS SIGNATURE",
    "unsigned-under-key": "unsigned under a key",
    "unreadable": "unreadable here",
    "unknown-format": "unknown format",
}
_WHY_TEXT = {
    "unsigned-pickle": "an unsigned pickle, not unpickled (a pickle can run code: give the key it was signed "
    "with, or --unsafe-unpickle if you trust this journal)",
    "signed-no-key": "signed; give the key (DURABLE_SECRET or --secret-file) to read it",
    "bad-signature": "fails its signature check: altered, moved, or signed with a key not given; not read",
    "unsigned-under-key": "not signed while a key is configured: the application refuses it; not read",
    "unreadable": "does not decode here",
    "unknown-format": "not a format durable writes; not read",
}


@dataclass(frozen=True, slots=True)
class SealedValue:
    """A journaled value the tools did not deserialize, described without running anything.

    ``format`` is ``"pickle"``, ``"json"`` or ``"unknown"``; ``type_name`` is read off a pickle's
    opcodes (``None`` when that cannot be done safely); ``size`` and ``sha256`` are of the serialized
    value (without its signature), so two equal values compare equal; ``why`` says why it was not read.
    """

    format: str
    type_name: str | None
    size: int
    sha256: str
    why: Why
    detail: str = ""

    @property
    def reason(self) -> str:
        """Why it was not read, and what would read it, in a sentence."""
        return _WHY_TEXT[self.why] + (f" ({self.detail})" if self.detail else "")

    def __repr__(self) -> str:
        # Why first: a table that cuts a long line keeps the reason, and loses the digest.
        kind = f"{self.format} {self.type_name}" if self.type_name else self.format
        return f"<sealed, {_WHY_SHORT[self.why]}: {kind}, {self.size:,} bytes, sha256 {self.sha256[:12]}>"

    def to_json(self) -> dict[str, Any]:
        return {
            "sealed": {
                "format": self.format, "type": self.type_name, "size": self.size, "sha256": self.sha256,
                "why": self.why, "reason": self.reason,
            }
        }  # fmt: skip


class SealedError(Exception):
    """A recorded exception the tools did not unpickle; ``sealed`` describes it."""

    def __init__(self, sealed: SealedValue) -> None:
        super().__init__(f"a recorded error, not read: {sealed!r}")
        self.sealed = sealed

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.sealed,))


def as_error(value: Any) -> BaseException:
    """A recorded error as an exception, whatever was read back (a sealed value, or data that is not one)."""
    if isinstance(value, BaseException):
        return value
    if isinstance(value, SealedValue):
        return SealedError(value)
    return ReplayedError(type_name(value), f"the recorded error is a {type_name(value)}, not an exception", "")


class ToolReader:
    """Reads one thread's values for the tools, by the rules in this module's docstring.

    ``signed_unread`` counts the signed values left unread because no key was given.
    """

    def __init__(self, ring: Keyring | None, thread_id: str, nonce: bytes | None, entrypoint: str, unsafe: bool):
        self.codec = Codec(JsonSerializer(), ring, thread_id, nonce, entrypoint)
        self.unsafe = unsafe
        self.signed_unread = 0

    def value(
        self, blob: bytes, run: int, slot: str, name: str = "", attempt: int = 0, status: int = 0,
        digest: bytes | None = None,
    ) -> Any:  # fmt: skip
        try:
            checked = self.codec.check(blob, run, slot, name, attempt, status, digest)
        except IntegrityError as exc:
            return sealed(unsigned_part(blob), "bad-signature", str(exc))
        if self.codec.keyring is not None and not checked.signed:
            return sealed(checked.inner, "unsigned-under-key")
        if digest == RECORD:  # an answer: its header (who, when) is plain bytes; its value goes by the rules below
            try:
                head, inner = split(checked.inner)
            except SerializationError as exc:
                return sealed(checked.inner, "unreadable", str(exc))
            return replace(head, value=self._decode(inner, checked.signed, checked.verified))
        return self._decode(checked.inner, checked.signed, checked.verified)

    def _decode(self, inner: bytes, signed: bool, verified: bool) -> Any:
        if inner[:1] == VERSIONED:  # a versioned task's value: the header names the version, the value follows
            inner = bytes(peel(inner)[1])
        tag = inner[:1]
        if tag == TAG_JSON:
            try:
                return JsonSerializer().loads(inner)
            except Exception as exc:
                return sealed(inner, "unreadable", f"{type(exc).__name__}: {exc}")
        if tag != TAG_PICKLE:
            return sealed(inner, "unknown-format")
        if not (verified or self.unsafe):
            if signed:
                self.signed_unread += 1
            return sealed(inner, "signed-no-key" if signed else "unsigned-pickle")
        try:
            return pickle.loads(inner[1:])
        except Exception as exc:
            return sealed(inner, "unreadable", f"{type(exc).__name__}: {exc}")

    def row(self, row: Any, run: int) -> Any:
        """A row's value; an answer row's is an `Answer` (who answered, when) holding the value."""
        return self.value(row.payload, run, row.key, row.name, row.attempt, row.status, row.digest)


def sealed(inner: bytes, why: Why, detail: str = "") -> SealedValue:
    """Describe serialized bytes without deserializing them."""
    tag = inner[:1]
    fmt = "pickle" if tag == TAG_PICKLE else "json" if tag == TAG_JSON else "unknown"
    kind = pickled_type(inner[1:]) if fmt == "pickle" else None
    return SealedValue(fmt, kind, len(inner), hashlib.sha256(inner).hexdigest(), why, detail)


_SCALARS = {
    "NONE": "NoneType", "NEWTRUE": "bool", "NEWFALSE": "bool", "INT": "int", "BININT": "int", "BININT1": "int",
    "BININT2": "int", "LONG": "int", "LONG1": "int", "LONG4": "int", "FLOAT": "float", "BINFLOAT": "float",
    "STRING": "str", "BINSTRING": "str", "SHORT_BINSTRING": "str", "UNICODE": "str", "BINUNICODE": "str",
    "SHORT_BINUNICODE": "str", "BINUNICODE8": "str", "BINBYTES": "bytes", "SHORT_BINBYTES": "bytes",
    "BINBYTES8": "bytes", "BYTEARRAY8": "bytearray", "EMPTY_DICT": "dict", "EMPTY_LIST": "list",
    "EMPTY_TUPLE": "tuple", "EMPTY_SET": "set",
}  # fmt: skip
_CLOSERS = {"TUPLE": "tuple", "TUPLE1": "tuple", "TUPLE2": "tuple", "TUPLE3": "tuple", "LIST": "list",
            "DICT": "dict", "FROZENSET": "frozenset"}  # fmt: skip
_CONTAINERS = {"EMPTY_DICT", "EMPTY_LIST", "EMPTY_SET"}
_NOISE = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
_RECONSTRUCTORS = {"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"}
_MAX_OPS = 100_000


def pickled_type(data: bytes) -> str | None:
    """The type a pickle would build, read off its opcodes without running any (``None`` if unsure).

    A pickle starts with what builds its top object: a class or function it names (``GLOBAL``), or
    a scalar or container opcode; `pickletools.genops` only parses.
    """
    import pickletools  # a pure parser, loaded only when a pickle must be described

    ops: list[tuple[str, Any]] = []
    complete = False
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name not in _NOISE:
                ops.append((op.name, arg))
            if len(ops) > _MAX_OPS:
                break
        complete = True
    except Exception:  # malformed or truncated: what was parsed so far may still name the type
        pass
    if not ops:
        return None
    found = _global_at(ops, 0)
    if found is not None:
        name, after = found
        if name.startswith("cloudpickle."):
            return None  # a class or function pickled by value: its own name is deep in its arguments
        if name not in _RECONSTRUCTORS:
            return name
        # copyreg._reconstructor(cls, base, state): the class is the next name.
        for i in range(after, min(after + 3, len(ops))):
            inner = _global_at(ops, i)
            if inner is not None:
                return inner[0]
        return None
    if not complete or ops[-1][0] != "STOP":
        return None
    first, last = ops[0][0], ops[-2][0] if len(ops) > 1 else ""
    if last in _CLOSERS and first not in _CONTAINERS:  # a tuple or frozenset of scalars, or a MARK-built one
        return _CLOSERS[last]
    if first in _CONTAINERS or (first in _SCALARS and len(ops) == 2):
        return _SCALARS[first]
    return None


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"}


def _global_at(ops: list[tuple[str, Any]], i: int) -> tuple[str, int] | None:
    """The name a global reference starting at ``ops[i]`` gives, and the index after it."""
    name, arg = ops[i]
    if name == "GLOBAL":
        return str(arg).replace(" ", "."), i + 1
    if i + 2 < len(ops) and name in _STRINGS and ops[i + 1][0] in _STRINGS and ops[i + 2][0] == "STACK_GLOBAL":
        return f"{arg}.{ops[i + 1][1]}", i + 3
    return None
