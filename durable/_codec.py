"""Signed journal blobs: an HMAC-SHA256 over a blob and all that decides what it means, checked before it is read.

With a key configured (``secret=`` on the entrypoint or the store, or ``DURABLE_SECRET``) every blob
is stored as::

    b"T" | key id length (1 byte) | key id | HMAC-SHA256 (32 bytes) | the serializer's tagged bytes

The MAC (domain ``durable/journal/v2``) covers the key id, the thread id, the thread's nonce, and the
blob's slot: the run number, the journal key (a call-order key, or ``#input``, ``#output``, ``#save``,
``#error``, ``#interrupts`` for a run's own values), the task's name (the entrypoint's name for a
run's values, so a run cannot be dispatched to another entrypoint), the attempt number, the row's
status (a value, an error, a failed attempt, an answer) and the argument digest, then the tagged
bytes (so the format too). A blob moved to another slot, a row whose status was flipped (an error
read as a value), the input of one run given to another, a row of a deleted thread replayed into a
new thread of the same id (the nonce is new), a flipped bit, a key that is not in the keyring, or an
unsigned blob while a key is configured: each is an `IntegrityError`, raised before a single byte is
deserialized. The checks are plain ``if`` statements, so they hold under ``python -O``.

Version 1 (tag ``S``, domain ``durable/journal/v1``) covered the thread, run, key and name only. Its
blobs still verify on the threads written before version 2 existed (those have no nonce), so old
journals keep working; `durable resign` (`Threads.resign`) re-signs them in version 2 and gives them a
nonce, after which a version-1 blob is refused there too.

Key rotation: a keyring holds several keys by id; the first one (or ``write=``) signs, all verify.
``DURABLE_SECRET`` is one key, or ``id1=key1,id2=key2`` (the first signs); a key is its text's UTF-8
bytes, or ``base64:...`` / ``hex:...`` for binary keys. No error ever shows a key, or a key id taken
from the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from ._serde import (
    LARGE,
    TAG_JSON,
    JsonSerializer,
    PickleSerializer,
    Serializer,
    dump_error,
    dump_value,
    load_pickle,
    load_value,
    type_name,
    unwritable,
)
from .errors import ConfigurationError, IntegrityError, SerializationError

_JSON = JsonSerializer()
SIGNED = b"T"  # version 2
SIGNED_V1 = b"S"
_DOMAIN = b"durable/journal/v2"
_DOMAIN_V1 = b"durable/journal/v1"
_NO_DIGEST = b"\xff\xff\xff\xff"
_NUMBERS = struct.Struct("<qqq")  # run, attempt, status
_KEY_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
NONCE_BYTES = 16
_Blob = TypeVar("_Blob", bytes, memoryview)  # a blob is checked as it is given: a memoryview's slices are views


def unsigned_part(blob: bytes) -> bytes:
    """The serializer's bytes inside a blob, whatever its signature says (nothing is checked here)."""
    if blob[:1] in (SIGNED, SIGNED_V1) and len(blob) > 1:
        return blob[34 + blob[1] :]
    return blob


def new_nonce() -> bytes:
    """A thread's nonce: random, made when the thread is created, never reused."""
    return os.urandom(NONCE_BYTES)


@dataclass(frozen=True)
class Keyring:
    """Keys by id: ``write`` signs new blobs, every key verifies old ones."""

    keys: Mapping[str, bytes]
    write: str

    def __post_init__(self) -> None:
        if not self.keys or self.write not in self.keys:
            raise ConfigurationError("a Keyring needs at least one key, and its write key among them")
        for n, (kid, key) in enumerate(self.keys.items(), 1):
            if not isinstance(kid, str) or not kid or len(kid.encode("utf-8", "surrogatepass")) > 255:
                raise ConfigurationError(f"key #{n} of the keyring: a key id is a string of 1 to 255 bytes")
            if not isinstance(key, bytes) or len(key) < 16:
                raise ConfigurationError(
                    f"key #{n} of the keyring: a key is at least 16 bytes (make one with os.urandom(32))"
                )

    def __repr__(self) -> str:  # never print secrets
        return f"Keyring({len(self.keys)} key{'s' if len(self.keys) != 1 else ''})"


Secret = str | bytes | Keyring | Mapping[str, bytes]


def keyring(secret: Secret | None) -> Keyring | None:
    """The keyring for ``secret`` (a key, a mapping of id to key, or a `Keyring`), else ``$DURABLE_SECRET``."""
    if secret is None:
        env = os.environ.get("DURABLE_SECRET")
        return parse_secret(env, "DURABLE_SECRET") if env else None
    if isinstance(secret, Keyring):
        return secret
    if isinstance(secret, str):
        return parse_secret(secret, "secret=")
    if isinstance(secret, bytes):
        return _one_key(secret, "secret=")
    if isinstance(secret, Mapping):
        keys = {str(k): _key_bytes(v, f"key #{n} of secret=") for n, (k, v) in enumerate(secret.items(), 1)}
        return Keyring(keys, next(iter(keys))) if keys else Keyring({}, "")
    raise ConfigurationError(
        f"secret={type(secret).__name__}: pass a str or bytes key, a {{id: key}} map, or a Keyring"
    )


def parse_secret(text: str, where: str) -> Keyring:
    """One key, or ``id1=key1,id2=key2`` (the first signs); values may be ``base64:...`` or ``hex:...``.

    A part is read as ``id=key`` only when the id looks like one (letters, digits, ``_.-``) and a key
    follows, so a base64 key whose padding ends in ``=`` is one key, not an id with an empty key.
    """
    parts = text.split(",")
    pairs = [_pair(part) for part in parts]
    if all(pair is not None for pair in pairs):
        keys: dict[str, bytes] = {}
        for n, pair in enumerate(pairs, 1):
            assert pair is not None
            kid, value = pair
            if kid in keys:
                raise ConfigurationError(f"{where}: key #{n} repeats the id of an earlier key; give each its own id")
            keys[kid] = _key_bytes(value, f"key #{n} of {where}")
        return Keyring(keys, next(iter(keys)))
    if any(pair is not None for pair in pairs):
        raise ConfigurationError(
            f"{where} mixes id=key pairs with bare keys: give one key, or id1=key1,id2=key2 "
            f"(write binary keys as base64:... or hex:...)"
        )
    return _one_key(_key_bytes(text, where), where)


def _pair(part: str) -> tuple[str, str] | None:
    kid, sep, value = part.partition("=")
    kid = kid.strip()
    if not sep or not _KEY_ID.fullmatch(kid) or not value.strip().strip("="):
        return None
    return kid, value.strip()


def _key_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        key = value
    elif not isinstance(value, str):
        raise ConfigurationError(f"{what}: a key is a str or bytes")
    elif value.startswith("base64:"):
        try:
            text = value[7:].strip()
            key = base64.b64decode(text, altchars=b"-_" if "-" in text or "_" in text else None, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{what}: the base64: value is not valid base64") from None
    elif value.startswith("hex:"):
        try:
            key = bytes.fromhex(value[4:].strip())
        except ValueError:
            raise ConfigurationError(f"{what}: the hex: value is not valid hexadecimal") from None
    else:
        try:
            key = value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigurationError(f"{what}: the key is not valid text; write it as base64:... or hex:...") from None
    if len(key) < 16:
        raise ConfigurationError(
            f"{what}: the key is {len(key)} bytes, and keys are at least 16 (make one with os.urandom(32), and "
            f"give it as base64:...)"
        )
    return key


def _one_key(key: bytes, where: str) -> Keyring:
    if len(key) < 16:
        raise ConfigurationError(f"{where}: the key is {len(key)} bytes, and keys are at least 16")
    # One key: its id is derived from it, so a wrong key is told apart from a tampered blob.
    kid = hashlib.sha256(key).hexdigest()[:8]
    return Keyring({kid: key}, kid)


def _lp(part: bytes) -> bytes:
    return len(part).to_bytes(4, "little") + part


def _text(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


class Verified(NamedTuple):
    """What `Codec.check` found: the tagged bytes inside the blob, and whether a key vouched for them."""

    inner: bytes
    verified: bool  # signed and checked under a key of the keyring
    signed: bool


class Codec:
    """Serializes the values of one thread's journal, signing and verifying each by its slot.

    ``nonce`` is the thread's (``None``: a thread written before nonces existed, which still accepts
    version-1 signatures); ``entrypoint`` names the entrypoint the thread's runs belong to, and is
    signed into each run's own values. ``max_bytes`` bounds every serialized value.

    Under the default pickle serializer a large value's bytes are read once on the way in (the pickler's
    pieces are hashed, then joined behind the signature: `dump`) and not copied on the way out (a blob of
    `LARGE` bytes or more is verified and unpickled through memoryviews: `load`, `load_row`).
    """

    __slots__ = ("_bases", "_pickle", "entrypoint", "keyring", "max_bytes", "nonce", "serde", "thread_id")

    def __init__(
        self,
        serde: Serializer,
        ring: Keyring | None,
        thread_id: str,
        nonce: bytes | None,
        entrypoint: str,
        max_bytes: int | None = None,
    ) -> None:
        self.serde, self.keyring, self.thread_id, self.nonce = serde, ring, thread_id, nonce
        self.entrypoint, self.max_bytes = entrypoint, max_bytes
        self._bases: dict[str, Any] = {}
        # The serializer whose pieces and views the large-value paths use (a subclass may read differently).
        self._pickle = serde if type(serde) is PickleSerializer else None

    def for_thread(self, nonce: bytes | None, entrypoint: str | None = None) -> Codec:
        """This codec for the same thread as the store says it is (its nonce, its entrypoint)."""
        if nonce == self.nonce and (entrypoint is None or entrypoint == self.entrypoint):
            return self
        return Codec(self.serde, self.keyring, self.thread_id, nonce, entrypoint or self.entrypoint, self.max_bytes)

    # -- the MAC ----------------------------------------------------------------------------------

    def _base(self, kid: str, key: bytes) -> Any:
        # The part of every MAC that is the same for the whole thread, hashed once and copied per blob.
        base = self._bases.get(kid)
        if base is None:
            head = _DOMAIN + _lp(_text(kid)) + _lp(_text(self.thread_id)) + _lp(self.nonce or b"")
            base = self._bases[kid] = hmac.new(key, head, hashlib.sha256)
        return base

    def _mac(
        self, kid: str, key: bytes, run: int, slot: str, name: str, attempt: int, status: int, digest: bytes | None,
        inner: bytes | memoryview,
    ) -> bytes:  # fmt: skip
        mac = self._base(kid, key).copy()
        mac.update(_NUMBERS.pack(run, attempt, status) + _lp(_text(slot)) + _lp(_text(name)))
        mac.update(_NO_DIGEST if digest is None else _lp(digest))
        mac.update(inner)
        return mac.digest()  # type: ignore[no-any-return]

    def _mac_v1(self, key: bytes, kid: bytes, run: int, slot: str, name: str, inner: bytes | memoryview) -> bytes:
        # Version 1 signed a run's input under the run "*" and a run's own values under the name "".
        parts = (str("*" if slot == "#input" else run), slot, "" if slot.startswith("#") else name)
        mac = hmac.new(key, _DOMAIN_V1, hashlib.sha256)
        for part in (kid, _text(self.thread_id), *(_text(p) for p in parts)):
            mac.update(_lp(part))
        mac.update(inner)
        return mac.digest()

    # -- sealing and opening ----------------------------------------------------------------------

    def seal(
        self, inner: bytes, run: int, slot: str, name: str = "", attempt: int = 0, status: int = 0,
        digest: bytes | None = None,
    ) -> bytes:  # fmt: skip
        """Sign ``inner`` for its slot: a journal row's (key, task name, attempt, status, digest), or a
        run's own value (``#input``...: the name is the entrypoint's)."""
        ring = self.keyring
        if ring is None:
            return inner
        kid = ring.write
        name = name or (self.entrypoint if slot.startswith("#") else name)
        raw = _text(kid)
        mac = self._mac(kid, ring.keys[kid], run, slot, name, attempt, status, digest, inner)
        return SIGNED + bytes([len(raw)]) + raw + mac + inner

    def _seal_pieces(
        self, ring: Keyring, pieces: list[Any], run: int, slot: str, name: str, attempt: int, status: int,
        digest: bytes | None,
    ) -> bytes:  # fmt: skip
        # `seal` for a value in pieces: the MAC reads each, and one join copies them behind the signature.
        kid = ring.write
        name = name or (self.entrypoint if slot.startswith("#") else name)
        raw = _text(kid)
        mac = self._base(kid, ring.keys[kid]).copy()
        mac.update(_NUMBERS.pack(run, attempt, status) + _lp(_text(slot)) + _lp(_text(name)))
        mac.update(_NO_DIGEST if digest is None else _lp(digest))
        for piece in pieces:
            mac.update(piece)
        return b"".join((SIGNED, bytes([len(raw)]), raw, mac.digest(), *pieces))

    def open(
        self, blob: bytes, run: int, slot: str, name: str = "", attempt: int = 0, status: int = 0,
        digest: bytes | None = None,
    ) -> bytes:  # fmt: skip
        """The tagged bytes inside a verified blob, or `IntegrityError`; nothing is deserialized here."""
        inner, _, signed = self._check(blob, run, slot, name, attempt, status, digest)
        if signed != (self.keyring is not None):
            raise self._refused(run, slot, name, signed)
        return inner

    def _open_view(
        self, blob: bytes, run: int, slot: str, name: str, attempt: int, status: int, digest: bytes | None
    ) -> memoryview:
        # `open` for a large blob: a view of its tagged bytes, not a copy.
        inner, _, signed = self._check(memoryview(blob), run, slot, name, attempt, status, digest)
        if signed != (self.keyring is not None):
            raise self._refused(run, slot, name, signed)
        return inner

    def _refused(self, run: int, slot: str, name: str, signed: bool) -> IntegrityError:
        if signed:
            return IntegrityError(
                f"{self._where(run, slot, name)} is signed, but no key is configured: set DURABLE_SECRET "
                f"(or secret=) to the key it was written with"
            )
        return IntegrityError(
            f"{self._where(run, slot, name)} is not signed while a key is configured: it was written "
            f"without a key, or altered; it will not be read (`durable resign --sign-unsigned` signs a "
            f"journal that was written before a key was set)"
        )

    def check(
        self, blob: bytes, run: int, slot: str, name: str = "", attempt: int = 0, status: int = 0,
        digest: bytes | None = None,
    ) -> Verified:  # fmt: skip
        """Verify a signed blob if a key can (`IntegrityError` if it fails); unsigned ones pass unverified."""
        return Verified(*self._check(blob, run, slot, name, attempt, status, digest))

    def _check(
        self, blob: _Blob, run: int, slot: str, name: str, attempt: int, status: int, digest: bytes | None
    ) -> tuple[_Blob, bool, bool]:  # the tagged bytes, verified, signed
        tag = blob[:1]
        if tag != SIGNED and tag != SIGNED_V1:
            return blob, False, False
        ring = self.keyring
        n = blob[1] if len(blob) > 1 else 0
        kid, mac, inner = blob[2 : 2 + n], blob[2 + n : 34 + n], blob[34 + n :]
        if ring is None:
            return inner, False, True
        name = name or (self.entrypoint if slot.startswith("#") else name)
        kid_text = str(kid, "utf-8", "replace")
        key = ring.keys.get(kid_text)
        if key is None or len(mac) != 32:
            raise IntegrityError(
                f"{self._where(run, slot, name)} is signed with key id {kid_text!r}, which "
                f"is not in the keyring ({len(ring.keys)} key{'s' if len(ring.keys) != 1 else ''}): add that key "
                f"to read it"
            )
        if tag == SIGNED_V1:
            if self.nonce is not None:
                raise IntegrityError(
                    f"{self._where(run, slot, name)} carries a version-1 signature, which this thread never "
                    f"uses (it was created, or re-signed, with version 2): it was planted; it will not be read"
                )
            expected = self._mac_v1(key, bytes(kid), run, slot, name, inner)
        else:
            expected = self._mac(kid_text, key, run, slot, name, attempt, status, digest, inner)
        if not hmac.compare_digest(mac, expected):
            raise IntegrityError(
                f"{self._where(run, slot, name)} fails its signature check: it was altered, or moved from "
                f"another slot, run or thread; it will not be read"
            )
        return inner, True, True

    def open_row(self, row: Any, run: int) -> bytes:
        """`open` for a journal row (a `JournalRow`): its payload, verified for its key, name, attempt and status."""
        return self.open(row.payload, run, row.key, row.name, row.attempt, row.status, row.digest)

    def load_row(self, row: Any, run: int, what: str) -> Any:
        """The value of a journal row (`open_row`, then the serializer), not copying a large payload on the way."""
        return self.load(row.payload, run, row.key, what, row.name, row.attempt, row.status, row.digest)

    # -- values -----------------------------------------------------------------------------------

    def serialize(self, value: Any, what: str) -> bytes:
        """The serializer's tagged bytes for ``value``, within ``max_bytes`` (`SerializationError` if not)."""
        inner = dump_value(self.serde, value, what)
        if self.max_bytes is not None and len(inner) > self.max_bytes:
            raise too_large(what, value, len(inner), self.max_bytes)
        return inner

    def serialize_plain(self, value: Any, what: str) -> bytes:
        """`serialize`, but as JSON whenever ``value`` is plain data, whatever the serializer: for what people and
        tools read without the workflow's code or the key (questions, answers). JSON never runs code when read."""
        if not isinstance(self.serde, PickleSerializer) or isinstance(value, BaseException):
            # A serializer of the application's own (one that encrypts, say) is never bypassed; JSON would keep an
            # exception only as its text.
            return self.serialize(value, what)
        try:
            inner = _JSON.dumps(value)
        except Exception:  # not plain data: the serializer's own format
            return self.serialize(value, what)
        if self.max_bytes is not None and len(inner) > self.max_bytes:
            raise too_large(what, value, len(inner), self.max_bytes)
        return inner

    def load_plain(self, inner: bytes, what: str) -> Any:
        """Read what `serialize_plain` wrote (already opened)."""
        plain = isinstance(self.serde, PickleSerializer) and inner[:1] == TAG_JSON
        return load_value(_JSON if plain else self.serde, inner, what)

    def dump(
        self, value: Any, run: int, slot: str, what: str, name: str = "", attempt: int = 0, status: int = 0,
        digest: bytes | None = None,
    ) -> bytes:  # fmt: skip
        """`serialize` then `seal`, reading a large value's bytes once for the MAC and copying them once."""
        ring, pickler = self.keyring, self._pickle
        if ring is None or pickler is None:
            return self.seal(self.serialize(value, what), run, slot, name, attempt, status, digest)
        try:
            pieces = pickler.pieces(value)
        except Exception as exc:
            raise unwritable(what, value, exc) from exc
        size = sum(map(len, pieces))
        if self.max_bytes is not None and size > self.max_bytes:
            raise too_large(what, value, size, self.max_bytes)
        if len(pieces) == 1:
            return self.seal(pieces[0], run, slot, name, attempt, status, digest)
        return self._seal_pieces(ring, pieces, run, slot, name, attempt, status, digest)

    def dump_error(self, exc: BaseException, run: int, slot: str, name: str = "", **row: Any) -> bytes:
        return self.seal(dump_error(self.serde, exc), run, slot, name, **row)

    def load(
        self, blob: bytes, run: int, slot: str, what: str, name: str = "", attempt: int = 0, status: int = 0,
        digest: bytes | None = None,
    ) -> Any:  # fmt: skip
        """`open` then the serializer; a large blob under the pickle serializer goes through memoryviews."""
        if self._pickle is None or len(blob) < LARGE:
            return load_value(self.serde, self.open(blob, run, slot, name, attempt, status, digest), what)
        return load_pickle(self._pickle, self._open_view(blob, run, slot, name, attempt, status, digest), what)

    def _where(self, run: object, slot: str, name: str) -> str:
        what = f"the run's {slot[1:]}" if slot.startswith("#") else f"the journal entry {slot!r} ({name})"
        return f"{what} of run {run} of thread {self.thread_id!r}"


def too_large(what: str, value: Any, size: int, limit: int) -> SerializationError:
    return SerializationError(
        what,
        type_name(value),
        f"it is {size:,} bytes, over the store's max_result_bytes={limit:,}; pass a reference "
        f"(a path, a URL, an id) to large data instead",
    )
