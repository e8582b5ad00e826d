"""Where task results are cached across runs and threads: opaque bytes by ``(task, key)``, in a journal store.

The rows are the store's key-value rows (`Store.kv_put`), under the namespace ``("__durable_cache", task)``,
which `Memory` refuses to touch. What is kept is the caller's: it serializes and signs the value, and
checks the signature when it reads it back (a row is only as trustworthy as the database).
"""

from __future__ import annotations

import math

from ._placed import Placed
from .errors import ConfigurationError
from .stores._base import kv_namespace

ROOT = "__durable_cache"  # starts with `_memory.RESERVED`
_ESCAPES = str.maketrans({"%": "%25", "\x1f": "%1F", "\x00": "%00"})


class Cache(Placed):
    """Cached task results: bytes by task name and cache key, each with an optional ttl in seconds.

    ``where`` is a store object or URL; ``None`` means the journal of the entrypoint it is given to
    (``@entrypoint(cache=Cache())`` calls `attach`).
    """

    def get(self, task: str, key: str) -> bytes | None:
        """The bytes cached for ``task`` under ``key``, or ``None`` (never cached, cleared, or expired)."""
        row = self.store.kv_get(_namespace(task), _text(key, "cache key"), False)
        return None if row is None else row.value

    def set(self, task: str, key: str, blob: bytes, ttl: float | None) -> None:
        """Cache ``blob`` for ``task`` under ``key``, replacing what was there, for ``ttl`` seconds (``None``:
        until cleared). A ttl of 0 or less expires at once, as in LangGraph: the entry is removed."""
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise ConfigurationError(f"a cache entry is bytes (the caller serializes it), not {type(blob).__name__}")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or math.isnan(ttl)):
            raise ConfigurationError(f"ttl={ttl!r}: give seconds as a number, or None to keep the entry until cleared")
        namespace, text = _namespace(task), _text(key, "cache key")
        if ttl is not None and ttl <= 0:
            self.store.kv_delete(namespace, text)
        else:
            self.store.kv_put(namespace, text, bytes(blob), None if ttl is None or math.isinf(ttl) else float(ttl))

    def clear(self, task: str | None = None) -> int:
        """Remove every entry of ``task`` (``None``: of every task); returns how many were live."""
        return self.store.kv_clear(kv_namespace((ROOT,)) if task is None else _namespace(task))

    # Blocking store calls, run in a worker thread so the event loop goes on (see `Memory.aget`).

    async def aget(self, task: str, key: str) -> bytes | None:
        """`get`, without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.get, task, key)

    async def aset(self, task: str, key: str, blob: bytes, ttl: float | None) -> None:
        """`set`, without blocking the event loop."""
        import asyncio

        await asyncio.to_thread(self.set, task, key, blob, ttl)

    async def aclear(self, task: str | None = None) -> int:
        """`clear`, without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.clear, task)


def _text(text: str, what: str) -> str:
    """``text`` escaped so that any str is a label the stores keep (no NUL, no separator), one-to-one."""
    if not isinstance(text, str):
        raise ConfigurationError(f"{what} {text!r}: give a str")
    escaped = text.translate(_ESCAPES)
    try:
        escaped.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{what} {text!r} is not valid Unicode (a lone surrogate): no store keeps it"
        ) from None
    return escaped


def _namespace(task: str) -> str:
    return kv_namespace((ROOT, _text(task, "task name")))
