"""The Postgres store's key-value SQL (table ``durable_kv``, migration 4 of `_pg_ops`), as I/O-free operations.

The same shape as `_pg_ops`. Times are the database's clock (``now()``), as leases are: a ttl expires at
the same instant for every machine, whatever their clocks say, and a row's ``expires_at`` reaches the
caller translated into its own clock. See the key-value section of `_base` for what each operation promises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ._base import KV_SWEEP, KVRow, kv_prefix_end
from ._pg_ops import SQL, Op, Stmt

_COLUMNS = (
    "namespace, key, value, extract(epoch FROM created_at)::float8, extract(epoch FROM updated_at)::float8, "
    "extract(epoch FROM expires_at - now())::float8, ttl"
)
_LIVE = "(expires_at IS NULL OR expires_at > now())"
_REFRESHED = "expires_at = now() + ttl * interval '1 second' WHERE ttl IS NOT NULL AND expires_at > now()"


def _row(r: Sequence[Any]) -> KVRow:
    remaining = r[5]
    return KVRow(r[0], r[1], bytes(r[2]), r[3], r[4], None if remaining is None else time.time() + remaining, r[6])


def under(prefix: str) -> tuple[str, list[Any]]:
    """ "The namespace starts with ``prefix``" as a range of the ``(namespace, key)`` index, with its parameters."""
    if not prefix:
        return "TRUE", []
    end = kv_prefix_end(prefix)
    if end is None:
        return "namespace >= %s", [prefix]
    return "namespace >= %s AND namespace < %s", [prefix, end]


def put(q: SQL, namespace: str, key: str, value: bytes, ttl: float | None) -> Op[None]:
    """See `Store.kv_put`; runs in the runner's transaction."""
    yield Stmt(
        f"DELETE FROM {q.kv} WHERE seq IN (SELECT seq FROM {q.kv} WHERE expires_at <= now() "
        f"LIMIT {KV_SWEEP} FOR UPDATE SKIP LOCKED)"
    )
    # An expired row is gone: the put below inserts anew (a new created_at, last in its namespace's order).
    yield Stmt(f"DELETE FROM {q.kv} WHERE namespace = %s AND key = %s AND expires_at <= now()", (namespace, key))
    yield Stmt(
        f"INSERT INTO {q.kv} (namespace, key, value, expires_at, ttl, ns_order) "
        "VALUES (%s, %s, %s, now() + %s::float8 * interval '1 second', %s::float8, "
        f"(SELECT COALESCE(ns_order, seq) FROM {q.kv} WHERE namespace = %s LIMIT 1)) "
        "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = now(), "
        "expires_at = excluded.expires_at, ttl = excluded.ttl",
        (namespace, key, value, ttl, ttl, namespace),
    )


def get(q: SQL, namespace: str, key: str, refresh: bool) -> Op[KVRow | None]:
    row = yield Stmt(
        f"SELECT {_COLUMNS} FROM {q.kv} WHERE namespace = %s AND key = %s AND {_LIVE}", (namespace, key), "one"
    )
    if row is None:
        return None
    if refresh and row[6] is not None:
        refreshed = yield Stmt(
            f"UPDATE {q.kv} SET {_REFRESHED} AND namespace = %s AND key = %s RETURNING {_COLUMNS}",
            (namespace, key),
            "one",
        )
        row = refreshed or row
    return _row(row)


def touch(q: SQL, items: Sequence[tuple[str, str]]) -> Op[None]:
    yield Stmt(f"UPDATE {q.kv} SET {_REFRESHED} AND namespace = %s AND key = %s", list(items), many=True)


def delete(q: SQL, namespace: str, key: str) -> Op[None]:
    yield Stmt(f"DELETE FROM {q.kv} WHERE namespace = %s AND key = %s", (namespace, key))


def search(q: SQL, prefix: str, refresh: bool) -> Op[list[KVRow]]:
    cond, params = under(prefix)
    rows = yield Stmt(
        f"SELECT {_COLUMNS} FROM {q.kv} WHERE {cond} AND {_LIVE} "
        "ORDER BY min(COALESCE(ns_order, seq)) OVER (PARTITION BY namespace), seq",
        params,
        "all",
    )
    found = [_row(r) for r in rows]
    if refresh and any(r.ttl is not None for r in found):
        yield Stmt(f"UPDATE {q.kv} SET {_REFRESHED} AND {cond}", params)
        now = time.time()
        found = [r if r.ttl is None else r._replace(expires_at=now + r.ttl) for r in found]
    return found


def namespaces(q: SQL, prefix: str) -> Op[list[str]]:
    cond, params = under(prefix)
    rows = yield Stmt(
        f"SELECT DISTINCT namespace FROM {q.kv} WHERE {cond} AND {_LIVE} ORDER BY namespace", params, "all"
    )
    return [r[0] for r in rows]


def clear(q: SQL, prefix: str) -> Op[int]:
    """See `Store.kv_clear`; runs in the runner's transaction."""
    cond, params = under(prefix)
    live: int = yield Stmt(f"DELETE FROM {q.kv} WHERE {cond} AND {_LIVE}", params)
    yield Stmt(f"DELETE FROM {q.kv} WHERE {cond}", params)
    return live
