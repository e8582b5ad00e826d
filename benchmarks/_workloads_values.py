"""Large values: a task's 1 MB / 10 MB result, written and replayed, next to raw sqlite3 doing the same.

- write: ``invoke`` of a fresh thread whose one task returns the value (random bytes, so nothing compresses);
  durability ``sync``, ``synchronous=NORMAL``. Floor: ``pickle.dumps`` of the value, one ``INSERT`` of it into a
  fresh row of a table keyed like the journal, ``COMMIT`` (the floor connection's default page size).
- replay: ``invoke(None)`` of a thread whose run recorded the value and then failed, so the task replays (and the
  body fails again: each sample replays the same journal). Floor: ``SELECT`` of that row's payload by its key and
  ``pickle.loads``.
- signed: the same with a secret (every value carries an HMAC-SHA256 over its bytes: one more pass over them).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import sqlite3
import time
from typing import Any

from _common import FLOOR_INSERT, FLOOR_SCHEMA, Config, Row, check, close_store, fail_row, fresh_dir, median

from durable import SQLiteStore, entrypoint, task

SIZES = (1_000_000, 10_000_000)
BOOM = "durable-bench: the body fails after its task"
_payload: dict[str, bytes] = {}


@task(name="bench_big_value")
def big() -> bytes:
    return _payload["value"]


def _entrypoint(store: SQLiteStore) -> Any:
    @entrypoint(checkpointer=store, name="bench_values")
    def carry(fail: bool) -> int:
        n = len(big().result())
        if fail:
            raise RuntimeError(BOOM)
        return n

    return carry


def _durable(cfg: Config, size: int, secret: bytes | None) -> tuple[list[float], list[float]]:
    store = SQLiteStore(fresh_dir(cfg, f"values-{size}") / "v.db", secret=secret)
    carry = _entrypoint(store)
    ids = itertools.count()
    writes, replays = [], []
    with contextlib.suppress(RuntimeError):
        carry.invoke(True, thread_id="replayed")
    for _ in range(cfg.repeat):
        t0 = time.perf_counter()
        n = carry.invoke(False, thread_id=f"w{next(ids)}")
        writes.append((time.perf_counter() - t0) * 1e3)
        check(n == size, "the task's value came back whole")
        t0 = time.perf_counter()
        try:
            carry.invoke(None, thread_id="replayed")
        except RuntimeError as exc:
            check(BOOM in str(exc), "the replayed run fails in its body, after the task replayed")
        replays.append((time.perf_counter() - t0) * 1e3)
    close_store(store)
    return writes, replays


def _floor(cfg: Config, size: int) -> tuple[list[float], list[float]]:
    conn = sqlite3.connect(fresh_dir(cfg, f"values-floor-{size}") / "f.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(FLOOR_SCHEMA)
    writes, replays = [], []
    for i in range(cfg.repeat):
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(FLOOR_INSERT, ("t", str(i), "0", "big", pickle.dumps(_payload["value"], protocol=5)))
        conn.execute("COMMIT")
        writes.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        (blob,) = conn.execute(
            "SELECT payload FROM journal WHERE thread = ? AND run = ? AND key = ?", ("t", "0", "0")
        ).fetchone()
        check(len(pickle.loads(blob)) == size, "the floor's value came back whole")
        replays.append((time.perf_counter() - t0) * 1e3)
    conn.close()
    return writes, replays


def bench_values(cfg: Config) -> list[Row]:
    sec = "Large values: one task's result, SQLite NORMAL [lv]"
    rows: list[Row] = []
    for size in SIZES:
        n = f"{size // 1_000_000} MB"
        try:
            _payload["value"] = os.urandom(size)
            floor_w, floor_r = _floor(cfg, size)
            for label, secret in (("", None), (", signed", b"bench-secret-" * 3)):
                w, r = _durable(cfg, size, secret)
                rows.append(Row(sec, f"write{label}", n, median(w), "ms", median(floor_w), w, floor_w, note="[lv]"))
                rows.append(Row(sec, f"replay{label}", n, median(r), "ms", median(floor_r), r, floor_r, note="[lv]"))
        except Exception as exc:
            rows.append(fail_row(cfg, Row(sec, "values", n, note="[lv]"), exc))
        finally:
            _payload.pop("value", None)
    return rows
