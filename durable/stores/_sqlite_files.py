"""What a SQLite journal file must be: a path SQLite can open, owner-only, and whole.

A new journal is created 0600 before SQLite opens it (SQLite gives its ``-wal`` and
``-shm`` files the same mode); an existing one that others can write to warns, since
whoever can write to it can change what a resume replays. A file that is not a whole
number of pages is refused rather than read as zeros.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import stat
import sys
import warnings

from .._ids import check_text
from ..errors import InsecureJournalWarning


def guard_file(path: str, *, warn: bool) -> bool:
    """Create the journal owner-only (0600) if it is new; with ``warn``, warn if an existing one is open to
    others. Returns whether it warned (a store warns once).

    SQLite gives the ``-wal`` and ``-shm`` files the main file's permissions, so
    creating the main file first, before SQLite opens it, covers all three.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:  # an existing journal, or another process created it just now
        pass
    except OSError:
        return False  # no such directory, no permission: sqlite3 says so, in its own words
    else:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask took away
        finally:
            os.close(fd)
        return False
    if not warn or os.name != "posix":  # elsewhere the mode bits do not say who may write
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    problems, fixes = [], []
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(f"is writable by {'everyone' if st.st_mode & stat.S_IWOTH else 'its group'}")
    if st.st_uid != os.geteuid():
        problems.append(f"is owned by another user (uid {st.st_uid})")
        fixes.append("chown it to the user that runs the workflows")
    if not problems:
        return False
    warnings.warn(
        f"SQLite journal {path!r} {' and '.join(problems)}: whoever can write to it can change the "
        f"results a resume replays, and so what runs. Run `chmod 600 {shlex.quote(path)}`"
        + "".join(f" and {fix}" for fix in fixes),
        InsecureJournalWarning,
        stacklevel=caller_level(),
    )
    return True


def check_path(path: str) -> str:
    """``path``, or a `ConfigurationError` if SQLite cannot open it as given (a NUL, a lone surrogate)."""
    return check_text(path, f"SQLite path {path!r}", "SQLite needs a UTF-8 path: rename the file or directory")


def caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside the `durable` package."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        level, frame = level + 1, frame.f_back
    return level


def refuse_truncated(path: str) -> None:
    """Raise if the file is not a whole number of pages: SQLite would read the missing bytes as zeros.

    Only checked when no write-ahead log holds pages beyond the file (a checkpoint may be
    half done), and for files past SQLite's 100-byte header (smaller ones are new or empty).
    """
    try:
        size = os.path.getsize(path)
        wal = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
        if size <= 100 or wal:
            return
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError:
        return
    if header[:16] != b"SQLite format 3\x00":
        return  # not a database at all: sqlite3 says so, with its own error
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    if page and size % page:
        raise sqlite3.DatabaseError(
            f"the file is {size} bytes, not a whole number of {page}-byte pages: it is truncated or damaged; "
            f"restore it from a backup (durable never reads a damaged journal as an empty one)"
        )
