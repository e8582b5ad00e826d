"""A short, stable digest of a task call's arguments, to notice changed arguments on replay.

It must give the same bytes in every process, so it cannot hash pickles of
sets (their order follows PYTHONHASHSEED) or reprs of objects (they carry
addresses). Plain data is encoded structurally; other objects by their type and
attributes; what cannot be encoded stably makes the digest ``None``, which
means "not checked" rather than a false alarm. The digest detects accidental
change; it is not a security measure (signing the journal is).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

_MAX_ITEMS = 10_000


class _Unstable(Exception):
    pass


_SCALARS = frozenset({int, str, float, bool, type(None)})
_pack = struct.Struct("<I").pack


def _hash(data: bytes) -> bytes:
    # Change detection, not security: a changed argument goes unnoticed with odds of one in
    # four billion, for 4 bytes a row (a tenth of it) and a sixth of a cryptographic hash's time.
    return _pack(zlib.crc32(data))


def digest_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes | None:
    if not kwargs:
        if not args:
            return b""
        # Most task calls pass a few scalars, whose repr is stable across processes.
        scalars = _SCALARS
        for a in args:
            if type(a) not in scalars:
                break
        else:
            return _hash(repr(args).encode("utf-8", "surrogatepass"))
    out: list[bytes] = [b"\x00"]
    try:
        _enc(args, out, 0)
        if kwargs:
            _enc(sorted(kwargs.items()), out, 0)
    except (_Unstable, RecursionError):
        return None
    return _hash(b"".join(out))


def _enc(v: Any, out: list[bytes], depth: int) -> None:
    t = type(v)
    if t is int or t is bool:
        out.append(b"i%d;" % v if t is int else (b"T" if v else b"F"))
    elif t is str:
        b = v.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(b))
        out.append(b)
    elif v is None:
        out.append(b"N")
    elif t is float:
        out.append(b"f" + struct.pack("<d", v))
    elif t is bytes or t is bytearray:
        out.append(b"b%d:" % len(v))
        out.append(bytes(v))
    elif depth > 20:
        raise _Unstable
    elif t is list or t is tuple:
        if len(v) > _MAX_ITEMS:
            raise _Unstable
        out.append(b"l%d[" % len(v) if t is list else b"t%d[" % len(v))
        for x in v:
            _enc(x, out, depth + 1)
    elif t is dict:
        if len(v) > _MAX_ITEMS:
            raise _Unstable
        # Equal dicts digest equally whatever their insertion order (which may follow a set's).
        items = []
        for k, x in v.items():
            sub: list[bytes] = []
            _enc(k, sub, depth + 1)
            _enc(x, sub, depth + 1)
            items.append(b"".join(sub))
        out.append(b"d%d{" % len(items))
        out.extend(sorted(items))
    elif t is set or t is frozenset:
        if len(v) > _MAX_ITEMS:
            raise _Unstable
        parts = []
        for x in v:
            part: list[bytes] = []
            _enc(x, part, depth + 1)
            parts.append(b"".join(part))
        out.append(b"S%d{" % len(parts))
        out.extend(sorted(parts))
    else:
        _enc_object(v, out, depth)


def _enc_object(v: Any, out: list[bytes], depth: int) -> None:
    t = type(v)
    out.append(f"o{t.__module__}.{t.__qualname__}(".encode())
    fields = getattr(v, "__dict__", None)
    if fields is None:
        slots = [s for c in t.__mro__ for s in getattr(c, "__slots__", ())]
        if not slots:
            # An object with no visible state: only its type can be compared.
            if all("__repr__" not in vars(c) for c in t.__mro__[:-1]):
                return
            raise _Unstable
        fields = {s: getattr(v, s, None) for s in slots}
    _enc(fields, out, depth + 1)
