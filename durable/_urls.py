"""Turning ``checkpointer=`` (a store, a URL, or nothing) into a store."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit

from .errors import ConfigurationError
from .stores._base import Store
from .stores.memory import MemoryStore
from .stores.sqlite import SQLiteStore

DEFAULT_URL = "sqlite:///durable.db"


def resolve_store(checkpointer: Store | str | None) -> Store:
    """A store object as given; a URL; else ``$DURABLE_URL``; else ``durable.db`` in the working directory."""
    if isinstance(checkpointer, Store):
        return checkpointer
    if checkpointer is None:
        checkpointer = os.environ.get("DURABLE_URL") or DEFAULT_URL
    if not isinstance(checkpointer, str):
        raise ConfigurationError(
            f"checkpointer={checkpointer!r}: pass a store (SQLiteStore(...), MemoryStore()) or a URL "
            f"such as 'sqlite:///app.db' or 'memory://'"
        )
    return store_from_url(checkpointer)


def store_from_url(url: str) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` (options ``?synchronous=FULL&lease_seconds=...``), ``memory://``,
    ``postgresql://user@host:5432/db`` (options ``?schema=...&lease_seconds=...``; the rest go to libpq)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query))
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        # SQLAlchemy's convention: three slashes then a relative path, four for an absolute one.
        path = (parts.netloc + parts.path)[1:] if parts.path.startswith("/") else parts.netloc + parts.path
        if not path:
            raise ConfigurationError(f"{url!r} names no file: use 'sqlite:///app.db' or 'sqlite:////abs/app.db'")
        sync = options.pop("synchronous", "NORMAL").upper()
        lease = _seconds(url, options.pop("lease_seconds", "30"))
        if options:
            raise ConfigurationError(
                f"{url!r}: unknown option(s) {sorted(options)}; the known ones are 'synchronous' and 'lease_seconds'"
            )
        return SQLiteStore(path, synchronous=sync, lease_seconds=lease)  # type: ignore[arg-type]
    if scheme in ("postgres", "postgresql"):
        from .stores.postgres import PostgresStore

        # Our own options come off the URL; everything else is libpq's (sslmode, connect_timeout, ...).
        ours = {k: options.pop(k) for k in ("schema", "lease_seconds") if k in options}
        query = "&".join(f"{k}={v}" for k, v in parse_qsl(parts.query) if k not in ours)
        dsn = parts._replace(query=query).geturl()
        lease = _seconds(url, ours.get("lease_seconds", "30"))
        return PostgresStore(dsn, schema=ours.get("schema", "public"), lease_seconds=lease)
    raise ConfigurationError(
        f"checkpointer URL {url!r} has an unknown scheme {parts.scheme!r}: use 'sqlite:///path.db', "
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
