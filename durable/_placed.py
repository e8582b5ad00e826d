"""Where a `Memory` or a `Cache` keeps its rows: a store of its own, or the journal of the entrypoint it is given to."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ._urls import resolve_store
from .errors import ConfigurationError
from .stores._base import Store

P = TypeVar("P", bound="Placed")


class Placed:
    """A store of its own (a store object or a URL), or, given as ``where=None``, the journal of the first
    entrypoint it is handed to (`attach`): the object the program holds is that entrypoint's, before,
    during and after its runs, as LangGraph's ``store=`` object is."""

    _what = "object"

    def __init__(self, where: Store | str | None = None) -> None:
        self._store = None if where is None else resolve_store(where)
        self._owned = isinstance(where, str)  # made here from a URL: `close` closes it
        self._journal: Callable[[], Store] | None = None

    def __repr__(self) -> str:
        where = repr(self._store) if self._store is not None else "the journal of its entrypoint"
        return f"{type(self).__name__}({where if self._journal or self._store else 'unbound'})"

    def attach(self, journal: Callable[[], Store]) -> None:
        """Live in ``journal()`` (an entrypoint's store, resolved on first use) unless a store was given; given to
        several entrypoints, it lives in the first one's journal."""
        if self._store is None and self._journal is None:
            self._journal = journal

    def bind(self: P, store: Store) -> P:
        """This object, living in ``store`` if it had no place yet."""
        self.attach(lambda: store)
        return self

    @property
    def store(self) -> Store:
        """The store the rows live in (`ConfigurationError` while it has none)."""
        if self._store is None:
            if self._journal is None:
                name = type(self).__name__
                raise ConfigurationError(
                    f"this {name}() names no store and was given to no entrypoint: give it to @entrypoint(... = "
                    f"{name}()), or a place of its own: {name}('sqlite:///app.db'), {name}(SQLiteStore(...))"
                )
            self._store = self._journal()
        return self._store

    def close(self) -> None:
        """Close the store it opened from a URL (a store object, or a journal, is its owner's to close)."""
        if self._owned and self._store is not None:
            self._store.close()

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
