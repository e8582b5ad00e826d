"""Turning ``checkpointer=`` (a store, a URL, or nothing) into a store."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit

from .errors import ConfigurationError
from .stores._base import Store
from .stores.memory import MemoryStore
from .stores.sqlite import SQLiteStore

DEFAULT_URL = "sqlite:///durable.db"


def resolve_store(checkpointer: Store | str | None, *, read_only: bool = False) -> Store:
    """A store object as given; a URL; else ``$DURABLE_URL``; else ``durable.db`` in the working directory.

    ``read_only`` opens a URL's journal read-only: it must exist, and nothing is created or migrated.
    """
    if isinstance(checkpointer, Store):
        return checkpointer
    if checkpointer is None:
        checkpointer = os.environ.get("DURABLE_URL") or DEFAULT_URL
    if not isinstance(checkpointer, str):
        raise ConfigurationError(
            f"checkpointer={checkpointer!r}: pass a store (SQLiteStore(...), MemoryStore()) or a URL "
            f"such as 'sqlite:///app.db' or 'memory://'"
        )
    return store_from_url(checkpointer, read_only=read_only)


def store_from_url(url: str, *, read_only: bool = False) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` (options ``?synchronous=FULL&lease_seconds=...``), ``memory://``,
    ``postgresql://user@host:5432/db`` (options ``?schema=...&lease_seconds=...``; the rest go to libpq)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query))
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        # SQLAlchemy's convention: three slashes then a relative path, four for an absolute one.
        if parts.netloc:
            # "sqlite://dir/x.db": the host was most likely the path's first directory ("localhost" as in a
            # file URL means this machine). Opening some other file than that would be worse than refusing.
            host = parts.netloc
            meant = (parts.path if host.lower() == "localhost" else host + parts.path).lstrip("/") or "app.db"
            rest = f"?{parts.query}" if parts.query else ""
            raise ConfigurationError(
                f"{url!r} has a host part ({host!r}), which a SQLite URL cannot have: write "
                f"'sqlite:///{meant}{rest}' (three slashes) for the path {meant!r} relative to the working "
                f"directory, or 'sqlite:////{meant}{rest}' (four slashes) for the absolute path '/{meant}'"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ConfigurationError(f"{url!r} names no file: use 'sqlite:///app.db' or 'sqlite:////abs/app.db'")
        sync = options.pop("synchronous", "NORMAL").upper()
        lease = _seconds(url, options.pop("lease_seconds", "30"))
        if options:
            raise ConfigurationError(
                f"{url!r}: unknown option(s) {sorted(options)}; the known ones are 'synchronous' and 'lease_seconds'"
            )
        return SQLiteStore(path, synchronous=sync, lease_seconds=lease, read_only=read_only)  # type: ignore[arg-type]
    if scheme in ("postgres", "postgresql"):
        from .stores.postgres import PostgresStore

        # The store takes its own options (schema, lease_seconds) off the URL; the rest are libpq's, as written.
        return PostgresStore(url, read_only=read_only)
    from .stores._pg_dsn import redact  # a mistyped postgres:// URL may carry a password

    raise ConfigurationError(
        f"checkpointer URL {redact(url, url)!r} has an unknown scheme {parts.scheme!r}: use 'sqlite:///path.db', "
        f"'postgresql://user@host/db' or 'memory://'"
    )


def _seconds(url: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigurationError(f"{url!r}: lease_seconds={text!r} must be a positive number of seconds")
    return seconds
