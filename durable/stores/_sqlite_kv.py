"""The SQLite store's key-value SQL (table ``durable_kv``, migration 6 of `_sqlite_ops`), as I/O-free operations.

The same shape as `_sqlite_ops`: each operation yields `Stmt` and receives its result. Times are this
process's ``time.time()``, as the SQLite store's leases are. See the key-value section of `_base` for what
each operation promises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ._base import KV_SWEEP, KVRow, kv_prefix_end
from ._sqlite_ops import Op, Stmt

_COLUMNS = "namespace, key, value, created_at, updated_at, expires_at, ttl"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_REFRESH = "UPDATE durable_kv SET expires_at = ? + ttl WHERE ttl IS NOT NULL AND expires_at > ?"


def under(prefix: str) -> tuple[str, list[Any]]:
    """ "The namespace starts with ``prefix``" as a range of the ``(namespace, key)`` index, with its parameters."""
    if not prefix:
        return "1", []
    end = kv_prefix_end(prefix)
    if end is None:
        return "namespace >= ?", [prefix]
    return "namespace >= ? AND namespace < ?", [prefix, end]


def put(namespace: str, key: str, value: bytes, ttl: float | None) -> Op[None]:
    """See `Store.kv_put`; runs in the runner's write transaction."""
    now = time.time()
    yield Stmt(
        f"DELETE FROM durable_kv WHERE seq IN (SELECT seq FROM durable_kv WHERE expires_at <= ? LIMIT {KV_SWEEP})",
        (now,),
    )
    # An expired row is gone: the put below inserts anew (a new created_at, last in its namespace's order).
    yield Stmt("DELETE FROM durable_kv WHERE namespace = ? AND key = ? AND expires_at <= ?", (namespace, key, now))
    yield Stmt(
        "INSERT INTO durable_kv (namespace, key, value, created_at, updated_at, expires_at, ttl, ns_order) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(ns_order, seq) FROM durable_kv WHERE namespace = ? LIMIT 1)) "
        "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
        "expires_at = excluded.expires_at, ttl = excluded.ttl",
        (namespace, key, value, now, now, None if ttl is None else now + ttl, ttl, namespace),
    )


def get(namespace: str, key: str, refresh: bool) -> Op[KVRow | None]:
    now = time.time()
    row = yield Stmt(
        f"SELECT {_COLUMNS} FROM durable_kv WHERE namespace = ? AND key = ? AND {_LIVE}", (namespace, key, now), "one"
    )
    if row is None:
        return None
    found = KVRow(*row)
    if refresh and found.ttl is not None:
        yield Stmt(f"{_REFRESH} AND namespace = ? AND key = ?", (now, now, namespace, key))
        found = found._replace(expires_at=now + found.ttl)
    return found


def touch(items: Sequence[tuple[str, str]]) -> Op[None]:
    now = time.time()
    yield Stmt(f"{_REFRESH} AND namespace = ? AND key = ?", [(now, now, ns, key) for ns, key in items], many=True)


def delete(namespace: str, key: str) -> Op[None]:
    yield Stmt("DELETE FROM durable_kv WHERE namespace = ? AND key = ?", (namespace, key))


def search(prefix: str, refresh: bool) -> Op[list[KVRow]]:
    now = time.time()
    cond, params = under(prefix)
    rows = yield Stmt(
        f"SELECT {_COLUMNS} FROM durable_kv WHERE {cond} AND {_LIVE} "
        "ORDER BY MIN(COALESCE(ns_order, seq)) OVER (PARTITION BY namespace), seq",
        (*params, now),
        "all",
    )
    found = [KVRow(*r) for r in rows]
    if refresh and any(r.ttl is not None for r in found):
        yield Stmt(f"{_REFRESH} AND {cond}", (now, now, *params))
        found = [r if r.ttl is None else r._replace(expires_at=now + r.ttl) for r in found]
    return found


def namespaces(prefix: str) -> Op[list[str]]:
    cond, params = under(prefix)
    rows = yield Stmt(
        f"SELECT DISTINCT namespace FROM durable_kv WHERE {cond} AND {_LIVE} ORDER BY namespace",
        (*params, time.time()),
        "all",
    )
    return [r[0] for r in rows]


def clear(prefix: str) -> Op[int]:
    """See `Store.kv_clear`; runs in the runner's write transaction."""
    cond, params = under(prefix)
    live: int = yield Stmt(f"DELETE FROM durable_kv WHERE {cond} AND {_LIVE}", (*params, time.time()))
    yield Stmt(f"DELETE FROM durable_kv WHERE {cond}", params)
    return live
