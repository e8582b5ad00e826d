"""Signed journal blobs: an HMAC-SHA256 over a blob and the slot it belongs to, checked before it is read.

With a key configured (``secret=`` on the entrypoint or the store, or ``DURABLE_SECRET``) every blob
is stored as::

    b"S" | key id length (1 byte) | key id | HMAC-SHA256 (32 bytes) | the serializer's tagged bytes

and the MAC covers the key id, the thread, the run, the journal key, the task name and the tagged
bytes (so the format too). A blob moved to another slot, two rows swapped, one flipped bit, a key
that is not in the keyring, or an unsigned blob while a key is configured: each is an
`IntegrityError`, raised before a single byte is deserialized. The checks are plain ``if``
statements, so they hold under ``python -O``.

Key rotation: a keyring holds several keys by id; the first one (or ``write=``) signs, all verify.
``DURABLE_SECRET`` is either one secret, or ``id1=secret1,id2=secret2`` (the first signs).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._serde import Serializer, dump_error, dump_value, load_value
from .errors import ConfigurationError, IntegrityError

SIGNED = b"S"
_DOMAIN = b"durable/journal/v1"


@dataclass(frozen=True)
class Keyring:
    """Keys by id: ``write`` signs new blobs, every key verifies old ones."""

    keys: Mapping[str, bytes]
    write: str

    def __post_init__(self) -> None:
        if not self.keys or self.write not in self.keys:
            raise ConfigurationError("a Keyring needs at least one key, and its write key among them")
        for kid, key in self.keys.items():
            if not kid or len(kid.encode()) > 255 or not isinstance(key, bytes) or len(key) < 16:
                raise ConfigurationError(
                    f"key {kid!r}: key ids are 1-255 bytes, keys at least 16 bytes (use os.urandom(32))"
                )

    def __repr__(self) -> str:  # never print secrets
        return f"Keyring(ids={sorted(self.keys)}, write={self.write!r})"


Secret = str | bytes | Keyring | Mapping[str, bytes]


def keyring(secret: Secret | None) -> Keyring | None:
    """The keyring for ``secret`` (a key, a mapping of id to key, or a `Keyring`), else ``$DURABLE_SECRET``."""
    if secret is None:
        env = os.environ.get("DURABLE_SECRET")
        if not env:
            return None
        if "=" in env:
            pairs = [part.split("=", 1) for part in env.split(",") if part]
            return Keyring({kid.strip(): key.encode() for kid, key in pairs}, pairs[0][0].strip())
        secret = env
    if isinstance(secret, Keyring):
        return secret
    if isinstance(secret, str):
        secret = secret.encode()
    if isinstance(secret, bytes):
        # One key: its id is derived from it, so a wrong key is told apart from a tampered blob.
        return Keyring({hashlib.sha256(secret).hexdigest()[:8]: secret}, hashlib.sha256(secret).hexdigest()[:8])
    if isinstance(secret, Mapping):
        keys = {str(k): (v.encode() if isinstance(v, str) else v) for k, v in secret.items()}
        return Keyring(keys, next(iter(keys)))
    raise ConfigurationError(
        f"secret={type(secret).__name__}: pass a str or bytes key, a {{id: key}} map, or a Keyring"
    )


def _mac(key: bytes, kid: bytes, slot: tuple[str, str, str, str], inner: bytes) -> bytes:
    mac = hmac.new(key, _DOMAIN, hashlib.sha256)
    for part in (kid, *(s.encode("utf-8", "surrogatepass") for s in slot)):
        mac.update(len(part).to_bytes(4, "little"))
        mac.update(part)
    mac.update(inner)
    return mac.digest()


class Codec:
    """Serializes the values of one thread's journal, signing and verifying each by its slot.

    A slot is (thread id, run, key, name): for a task result, the run number, its call-order key
    and the task's name; for a run's own values, a ``#``-key such as ``#output``.
    """

    __slots__ = ("keyring", "serde", "thread_id")

    def __init__(self, serde: Serializer, ring: Keyring | None, thread_id: str) -> None:
        self.serde, self.keyring, self.thread_id = serde, ring, thread_id

    def seal(self, inner: bytes, run: object, key: str, name: str) -> bytes:
        ring = self.keyring
        if ring is None:
            return inner
        kid = ring.write.encode()
        slot = (self.thread_id, str(run), key, name)
        return SIGNED + bytes([len(kid)]) + kid + _mac(ring.keys[ring.write], kid, slot, inner) + inner

    def open(self, blob: bytes, run: object, key: str, name: str) -> bytes:
        """The tagged bytes inside a verified blob, or `IntegrityError`; nothing is deserialized here."""
        ring = self.keyring
        signed = blob[:1] == SIGNED
        if ring is None:
            if signed:
                raise IntegrityError(
                    f"{self._where(run, key, name)} is signed, but no key is configured: set DURABLE_SECRET "
                    f"(or secret=) to the key it was written with"
                )
            return blob
        if not signed:
            raise IntegrityError(
                f"{self._where(run, key, name)} is not signed while a key is configured: it was written "
                f"without a key, or altered; it will not be read"
            )
        n = blob[1] if len(blob) > 1 else 0
        kid, mac, inner = blob[2 : 2 + n], blob[2 + n : 34 + n], blob[34 + n :]
        key_bytes = ring.keys.get(kid.decode("utf-8", "replace"))
        if key_bytes is None or len(mac) != 32:
            raise IntegrityError(
                f"{self._where(run, key, name)} is signed with key id {kid.decode('utf-8', 'replace')!r}, "
                f"which is not in the keyring ({sorted(ring.keys)}): add that key to read it"
            )
        slot = (self.thread_id, str(run), key, name)
        if not hmac.compare_digest(mac, _mac(key_bytes, kid, slot, inner)):
            raise IntegrityError(
                f"{self._where(run, key, name)} fails its signature check: it was altered, or moved from "
                f"another slot; it will not be read"
            )
        return inner

    def dump(self, value: Any, run: object, key: str, name: str, what: str) -> bytes:
        return self.seal(dump_value(self.serde, value, what), run, key, name)

    def dump_error(self, exc: BaseException, run: object, key: str, name: str) -> bytes:
        return self.seal(dump_error(self.serde, exc), run, key, name)

    def load(self, blob: bytes, run: object, key: str, name: str, what: str) -> Any:
        return load_value(self.serde, self.open(blob, run, key, name), what)

    def _where(self, run: object, key: str, name: str) -> str:
        return f"the journal entry {key!r} ({name}) of run {run} of thread {self.thread_id!r}"
