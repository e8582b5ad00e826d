"""Backing up and restoring a SQLite journal while it is in use: SQLite's online backup API.

A journal in WAL mode is three files: ``app.db``, ``app.db-wal`` (commits not yet copied into the main file) and
``app.db-shm``. Copying ``app.db`` alone, or deleting the ``-wal`` after a crash, loses the commits still in the
WAL: a thread can vanish. `backup` asks SQLite for a consistent copy instead, taken page by page while other
processes go on writing, into a single new file (owner-only, like the journal), then checks it. `restore` copies a
backup over a journal the same way, refusing while an executor holds a run there.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

from ..errors import ConfigurationError, JournalNotFoundError, StoreError


def backup(source: str, target: str) -> int:
    """Copy the journal at ``source`` into the new file ``target``; returns its size in bytes."""
    if not os.path.isfile(source):
        raise JournalNotFoundError(repr(source))
    if os.path.lexists(target):
        raise ConfigurationError(f"{target!r} exists: back up into a new file (nothing was written)")
    src = _open_read_only(source)
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            _check(dst, target)
        finally:
            dst.close()
    except BaseException:
        for leftover in (target, target + "-wal", target + "-shm"):
            if os.path.exists(leftover):
                os.remove(leftover)
        raise
    finally:
        src.close()
    return os.path.getsize(target)


def restore(backup_path: str, target: str) -> None:
    """Copy the backup at ``backup_path`` over the journal at ``target`` (made if missing), in one step."""
    if not os.path.isfile(backup_path):
        raise JournalNotFoundError(repr(backup_path))
    src = _open_read_only(backup_path)
    try:
        _check(src, backup_path)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)  # under SQLite's own locks: a reader sees the old journal or the restored one
        finally:
            dst.close()
    finally:
        src.close()


def _open_read_only(path: str) -> sqlite3.Connection:
    try:
        return sqlite3.connect("file:" + urllib.parse.quote(path) + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open SQLite file {path!r}: {exc}") from exc


def _check(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a file that is not a whole durable journal (or a backup of one)."""
    try:
        (verdict,) = conn.execute("PRAGMA integrity_check").fetchone()
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise ConfigurationError(f"{path!r} is not a SQLite database: {exc}") from exc
    if verdict != "ok":
        raise StoreError(f"{path!r} fails SQLite's integrity check: {verdict}")
    if "durable_runs" not in tables:
        raise ConfigurationError(f"{path!r} is not a durable journal (it has no durable_runs table)")
