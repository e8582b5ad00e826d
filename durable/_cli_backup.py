"""``durable backup`` and ``durable restore``: a SQLite journal copied while in use, and put back
(`SQLiteStore.backup`, `SQLiteStore.restore`).

Exit codes as the other commands: 0 done, 1 it failed (a run is held, the file is not a journal), 2 bad usage (a
target that exists, a store that is not SQLite, a journal that does not exist).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from . import _cli_format as fmt
from .errors import ConfigurationError, DurableError, JournalNotFoundError
from .stores.sqlite import SQLiteStore


def add_commands(commands: Any) -> None:
    backup = commands.add_parser(
        "backup",
        help="copy a SQLite journal into a new file while it is in use",
        description="Copy the journal (its -wal file's commits included) into the new file OUT with SQLite's online "
        "backup API, while workers and applications go on using it; the copy is checked. Never copy the .db file "
        "alone nor delete its -wal and -shm files: commits not yet checkpointed live in the -wal.",
    )
    backup.add_argument("out", metavar="OUT", help="the new file (refused if it exists)")
    backup.add_argument("--url", help="the journal (default: $DURABLE_URL, else sqlite:///durable.db)")
    restore = commands.add_parser(
        "restore",
        help="put a backup back as the journal",
        description="Replace the journal with BACKUP (a file `durable backup` made), or create it from BACKUP. "
        "Refused while an executor holds a run in the journal: stop the workers first.",
    )
    restore.add_argument("backup", metavar="BACKUP")
    restore.add_argument("--url", help="the journal (default: $DURABLE_URL, else sqlite:///durable.db)")
    restore.add_argument("--force", action="store_true", help="replace a journal that exists (else refused)")


class _Usage(Exception):
    """Bad usage found once the store is known (exit 2): a store that is not SQLite, a file in the way."""


def run(args: argparse.Namespace) -> int:
    store = None
    try:
        store = _store(args)
        if args.command == "backup":
            _backup(store, args)
        else:
            _restore(store, args)
        return 0
    except (_Usage, JournalNotFoundError) as exc:
        fmt.fail(args.command, exc)
        return 2
    except DurableError as exc:
        fmt.fail(args.command, exc)
        return 1
    finally:
        if store is not None:
            store.close()


def _store(args: argparse.Namespace) -> SQLiteStore:
    from ._urls import resolve_store

    try:
        store = resolve_store(args.url, read_only=args.command == "backup")
    except ConfigurationError as exc:  # a malformed URL
        raise _Usage(str(exc)) from exc
    if not isinstance(store, SQLiteStore):
        store.close()
        raise _Usage(
            f"{args.command} copies SQLite journals; {store!r} is not one (use the database's own tools: "
            f"pg_dump for Postgres, the append-only file or RDB snapshots for Redis)"
        )
    return store


def _backup(store: SQLiteStore, args: argparse.Namespace) -> None:
    if os.path.lexists(args.out):
        raise _Usage(f"{args.out!r} exists: back up into a new file (nothing was written)")
    size = store.backup(args.out)
    print(fmt.clean(f"backed up {store.path} to {os.path.abspath(args.out)} ({size:,} bytes)"))


def _restore(store: SQLiteStore, args: argparse.Namespace) -> None:
    if os.path.exists(store.path) and os.path.getsize(store.path) and not args.force:
        raise _Usage(f"{store.path!r} exists: give --force to replace it with {args.backup!r}")
    store.restore(args.backup)
    print(fmt.clean(f"restored {store.path} from {os.path.abspath(args.backup)}"))
