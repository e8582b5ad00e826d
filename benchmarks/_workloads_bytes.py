"""Journal size: how much the SQLite file grows per task."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from _common import (
    PAYLOAD_10K,
    Config,
    Row,
    close_store,
    fail_row,
    floor_connect,
    floor_inserts,
    fresh_dir,
    make_blob_seq,
    make_seq,
    make_sqlite,
)


def db_bytes(path: Path) -> tuple[int, bool]:
    """Size of the database file after folding the WAL into it; (bytes, checkpoint_was_complete)."""
    conn = sqlite3.connect(str(path))
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return os.path.getsize(path), True
        # Another connection blocks the checkpoint: count the pages the db would have.
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return page_count * page_size, False
    finally:
        conn.close()


def bench_bytes(cfg: Config) -> list[Row]:
    sec = "journal size: SQLite file growth per task (after wal_checkpoint(TRUNCATE))"
    n = 1000
    rows: list[Row] = []
    for label, make_ep, value in [
        ("result = small int", make_seq, lambda i: i),
        ("result = 10 KB bytes", make_blob_seq, lambda i: PAYLOAD_10K),
    ]:
        row = Row(sec, label, f"{n:,}")
        try:
            d = fresh_dir(cfg, "bytes")
            db = d / "journal.db"
            store = make_sqlite(db, "NORMAL")
            ep = make_ep(store)
            ep.invoke(1, thread_id="warmup")
            before, ok1 = db_bytes(db)
            ep.invoke(n, thread_id="t1")
            after, ok2 = db_bytes(db)
            close_store(store)
            shutil.rmtree(d, ignore_errors=True)

            d = fresh_dir(cfg, "bytes-floor")
            conn = floor_connect(d / "floor.db", "NORMAL")
            floor_inserts(conn, 1, value)
            conn.close()
            f_before, _ = db_bytes(d / "floor.db")
            conn = sqlite3.connect(str(d / "floor.db"))
            conn.execute("DELETE FROM journal")
            floor_inserts(conn, n, value)
            conn.close()
            f_after, _ = db_bytes(d / "floor.db")
            shutil.rmtree(d, ignore_errors=True)

            per = (after - before) / n
            fper = (f_after - f_before) / n
            row = Row(sec, label, f"{n:,}", per, "bytes/task", fper, [per], [fper])
            if not (ok1 and ok2):
                row.note = "[c]"
            rows.append(row)
        except Exception as exc:
            rows.append(fail_row(cfg, row, exc))
    return rows
