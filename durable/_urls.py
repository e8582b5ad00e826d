"""Turning ``checkpointer=`` (a store, a URL, or nothing) into a store."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
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


# -- the registry of URL schemes ---------------------------------------------------------------------------------

Opener = Callable[[str, bool], Store]
"""What opens a store for a URL: ``opener(url, read_only)``."""

ENTRY_POINTS = "durable.stores"  # the entry-point group where packages name the openers of their schemes
_registered: dict[str, Opener] = {}
_installed: dict[str, Any] | None = None  # the group's entry points by scheme, read once, on first need


def register_scheme(scheme: str, opener: Opener) -> None:
    """Open ``scheme://`` URLs with ``opener(url, read_only)`` (a `Store`), in this process.

    A package makes its backend available to every program that has it installed, with no call at all, by
    naming the opener in its metadata instead::

        [project.entry-points."durable.stores"]
        foo = "durable_foo:open_store"

    A scheme durable has (``sqlite``, ``memory``, ``postgres``, ``postgresql``, ``redis``, ``rediss``) cannot be
    taken over.
    """
    scheme = scheme.lower()
    if not scheme[:1].isalpha() or not all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme):
        raise ConfigurationError(f"scheme {scheme!r}: a letter, then letters, digits, '+', '-' or '.'")
    if scheme in _BUILTIN:
        raise ConfigurationError(f"the scheme {scheme!r} is durable's own and cannot be registered again")
    _registered[scheme] = opener


def _opener(scheme: str) -> Opener | None:
    """The opener of a scheme: durable's own, one registered in this process, or an installed package's."""
    global _installed
    found = _BUILTIN.get(scheme) or _registered.get(scheme)
    if found is not None:
        return found
    if _installed is None:
        from importlib.metadata import entry_points

        _installed = {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINTS) if ep.name.lower() not in _BUILTIN}
    point = _installed.get(scheme)
    if point is None:
        return None
    try:
        opener = point.load()
    except Exception as exc:
        raise ConfigurationError(
            f"the {scheme!r} store of the installed package that names it ({point.value}) cannot be imported: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    _registered[scheme] = opener
    return opener  # type: ignore[no-any-return]


def known_schemes() -> list[str]:
    """Every scheme a URL may use here: durable's, those registered, those installed packages name."""
    _opener("")  # reads the installed entry points once
    return sorted({*_BUILTIN, *_registered, *(_installed or {})})


def store_from_url(url: str, *, read_only: bool = False) -> Store:
    """The store a URL names, by its scheme (see `register_scheme`): ``sqlite:///relative.db``,
    ``sqlite:////absolute.db`` (options ``?synchronous=FULL&lease_seconds=...``), ``memory://``,
    ``postgresql://user@host:5432/db`` (options ``?schema=...&lease_seconds=...``; the rest go to libpq),
    ``redis://host:6379/0`` or ``rediss://`` (options ``?prefix=...&lease_seconds=...&wait_aof=...&wait_replicas=...``;
    the rest go to redis-py)."""
    scheme = urlsplit(url).scheme.lower()
    opener = _opener(scheme) if scheme else None
    if opener is None:
        from .stores._pg_dsn import redact  # a mistyped postgres:// URL may carry a password

        raise ConfigurationError(
            f"checkpointer URL {redact(url, url)!r} has an unknown scheme {scheme!r}: use 'sqlite:///path.db', "
            f"'postgresql://user@host/db', 'redis://host:6379/0' or 'memory://'" + _others()
        )
    store = opener(url, read_only)
    if not isinstance(store, Store):
        raise ConfigurationError(f"the opener of {scheme}:// URLs returned {type(store).__name__}, not a Store")
    return store


def _others() -> str:
    others = [s for s in known_schemes() if s not in _BUILTIN]
    return f" (or a scheme an installed package adds: {', '.join(others)})" if others else ""


# -- durable's own schemes ----------------------------------------------------------------------------------------


def _memory(url: str, read_only: bool) -> Store:
    return MemoryStore()


def _sqlite(url: str, read_only: bool) -> Store:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
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


def _postgres(url: str, read_only: bool) -> Store:
    from .stores.postgres import PostgresStore

    # The store takes its own options (schema, lease_seconds) off the URL; the rest are libpq's, as written.
    return PostgresStore(url, read_only=read_only)


def _redis(url: str, read_only: bool) -> Store:
    from .stores.redis import RedisStore

    # The store takes its own options (prefix, lease_seconds, wait_*) off the URL; the rest are redis-py's.
    return RedisStore(url, read_only=read_only)


_BUILTIN: dict[str, Opener] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
    "postgresql": _postgres,
    "redis": _redis,
    "rediss": _redis,
}


def _seconds(url: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigurationError(f"{url!r}: lease_seconds={text!r} must be a positive number of seconds")
    return seconds
