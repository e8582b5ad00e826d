"""Long-term memory shared across threads: LangGraph's ``BaseStore`` API, kept in a journal store's key-value rows.

In LangGraph it is the entrypoint's ``store=``; in durable "store" names the journal's backend, so the
memory is `Memory`. It has ``BaseStore``'s methods, parameters, defaults and results (`Item`,
`SearchItem`), and the semantics of LangGraph's ``InMemoryStore`` (the tests run the same calls on both),
on whichever journal store it is given: in memory, in a SQLite file, or in Postgres, where every process
sees the same memory.

A namespace is stored as `kv_namespace` encodes it, a value as JSON text (never pickled: what the database
holds cannot make this process run code). Filters, order and paging are applied here, in Python, to the
rows of the namespace prefix (`Store.kv_search`; ``search(())`` reads the task cache's rows too, and drops them).

Where it differs from ``InMemoryStore``, it does as LangGraph's database stores do, or refuses: an update
keeps ``created_at``; a namespace whose items are all deleted is no longer listed (nor remembered by a
``get``); ``put(ns, key, None)`` is an error, not a delete; a ``$gt``-like filter skips an item without a
number there instead of raising ``TypeError``; a negative ``limit`` or ``offset`` is an error; a label
cannot hold ``"\x1f"`` (the separator) or a lone surrogate. There is no semantic index (``query`` and
``index`` are ignored, ``score`` is ``None``), and no ``batch``/``abatch``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict

from ._memory_match import check_filter, ends, matches
from ._placed import Placed
from .errors import ConfigurationError, InvalidNamespaceError, SerializationError, UsageError
from .stores._base import KV_SEP, KVRow, Store, kv_labels, kv_namespace

RESERVED = "__durable"  # a namespace whose first label starts so holds durable's own rows (the task cache)
Value = dict[str, Any]


class NotProvided:
    """The default of ``put(ttl=...)``: the memory's ``default_ttl`` applies (LangGraph's ``NOT_PROVIDED``)."""

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_PROVIDED = NotProvided()


class TTLConfig(TypedDict, total=False):
    """LangGraph's ``TTLConfig``: ``refresh_on_read`` (default True) and ``default_ttl`` (minutes; default None).

    ``sweep_interval_minutes`` and ``omit_expired`` are accepted and change nothing: expired items are never
    returned, and every put deletes a few of them.
    """

    refresh_on_read: bool
    default_ttl: float | None
    sweep_interval_minutes: int | None
    omit_expired: bool


class Item:
    """A stored value with its namespace, key and times (LangGraph's ``Item``)."""

    __slots__ = ("created_at", "key", "namespace", "updated_at", "value")

    def __init__(
        self, *, value: Value, key: str, namespace: tuple[str, ...], created_at: datetime, updated_at: datetime
    ) -> None:
        self.value = value
        self.key = key
        self.namespace = tuple(namespace)
        self.created_at = datetime.fromisoformat(created_at) if isinstance(created_at, str) else created_at
        self.updated_at = datetime.fromisoformat(updated_at) if isinstance(updated_at, str) else updated_at

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Item):
            return NotImplemented
        return (self.value, self.key, self.namespace, self.created_at, self.updated_at) == (
            other.value, other.key, other.namespace, other.created_at, other.updated_at,
        )  # fmt: skip

    def __hash__(self) -> int:
        return hash((self.namespace, self.key))

    def dict(self) -> Value:
        return {
            "namespace": list(self.namespace),
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.dict().items())})"


class SearchItem(Item):
    """An item found by `Memory.search`; ``score`` is ``None`` (there is no semantic index)."""

    __slots__ = ("score",)

    def __init__(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Value,
        created_at: datetime,
        updated_at: datetime,
        score: float | None = None,
    ) -> None:
        super().__init__(value=value, key=key, namespace=namespace, created_at=created_at, updated_at=updated_at)
        self.score = score

    def dict(self) -> Value:
        result = super().dict()
        result["score"] = self.score
        return result


class Memory(Placed):
    """Long-term memory with LangGraph's ``BaseStore`` methods, kept by a journal store.

    ``where`` is a store object or URL (``"sqlite:///app.db"``, ``"postgresql://..."``, ``"memory://"``);
    ``None`` means the journal of the entrypoint it is given to (``@entrypoint(store=Memory())`` calls
    `attach`). ``ttl`` is LangGraph's `TTLConfig`. An item's ttl is in minutes, as in LangGraph: it
    expires that long after its last write, or its last read with ``refresh_ttl`` (the default).
    """

    supports_ttl: bool = True

    def __init__(self, where: Store | str | None = None, *, ttl: TTLConfig | None = None) -> None:
        super().__init__(where)
        self.ttl_config = _ttl_config(ttl)

    # -- LangGraph's BaseStore ---------------------------------------------------------------------

    def get(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> Item | None:
        """The item at ``namespace``/``key``, or ``None``; reading it refreshes its ttl unless ``refresh_ttl=False``."""
        labels = _namespace(namespace)
        row = self.store.kv_get(kv_namespace(labels), _key(key), self._refresh(refresh_ttl))
        return None if row is None else _item(Item, row, labels)

    def search(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Items in every namespace that starts with ``namespace_prefix`` and match ``filter``, ``limit`` of
        them after skipping ``offset``, ordered as LangGraph's ``InMemoryStore`` orders them (namespaces in
        the order they were first written to, then keys in the order they were first put).

        ``filter`` maps top-level keys of the value to a value it must equal (a dict matches a sub-dict, a
        list element by element) or to operators: ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``
        (the last four compare numbers; an item without a number there does not match). ``query`` is
        ignored, as ``InMemoryStore`` ignores it without an ``index``: there is no semantic index, and
        ``score`` is ``None``. The items returned have their ttl refreshed unless ``refresh_ttl=False``.
        """
        labels = _namespace(namespace_prefix)
        conditions = check_filter(filter)
        _check_page(limit, offset)
        rows = self.store.kv_search(kv_namespace(labels), False)
        if not labels:
            rows = [r for r in rows if not r.namespace.startswith(RESERVED)]
        if conditions:
            found = [i for r in rows if matches((i := _item(SearchItem, r)).value, conditions)][offset:][:limit]
        else:
            found = [_item(SearchItem, r) for r in rows[offset:][:limit]]
        if self._refresh(refresh_ttl):
            ttl = {(r.namespace, r.key) for r in rows if r.ttl is not None}
            touched = [(kv_namespace(i.namespace), i.key) for i in found]
            self.store.kv_touch([item for item in touched if item in ttl])
        return found

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """Store ``value`` (a dict of JSON data) at ``namespace``/``key``, replacing what is there (which keeps
        its ``created_at``). ``ttl``: minutes until it expires (``None``: never; not given: ``default_ttl``).
        ``index`` is ignored: there is no semantic index."""
        labels = _namespace(namespace, writing=True)
        minutes = self.ttl_config.get("default_ttl") if isinstance(ttl, NotProvided) else ttl
        if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int | float)):
            raise ConfigurationError(f"ttl={minutes!r}: give minutes as a number, or None for no expiry")
        if minutes is not None and not math.isfinite(minutes):
            raise ConfigurationError(f"ttl={minutes!r}: give a finite number of minutes, or None for no expiry")
        blob = _encode(value, labels, key)
        self.store.kv_put(kv_namespace(labels), _key(key), blob, None if minutes is None else minutes * 60.0)

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """Delete the item at ``namespace``/``key`` (nothing happens if there is none)."""
        self.store.kv_delete(kv_namespace(_namespace(namespace)), _key(key))

    def list_namespaces(
        self,
        *,
        prefix: tuple[str, ...] | None = None,
        suffix: tuple[str, ...] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """The namespaces holding items, sorted, that start with ``prefix`` and end with ``suffix`` (``"*"``
        matches any one label), cut to ``max_depth`` labels (and then deduplicated), ``limit`` of them
        after skipping ``offset``."""
        head = _namespace(prefix or ())
        tail = _namespace(suffix or (), root=False)
        _check_page(limit, offset)
        literal = head[: head.index("*")] if "*" in head else head
        found = [kv_labels(n) for n in self.store.kv_namespaces(kv_namespace(literal))]
        found = [ns for ns in found if not ns[0].startswith(RESERVED) and ends(head, ns) and ends(tail, ns, -1)]
        names = sorted({ns[:max_depth] for ns in found}) if max_depth is not None else sorted(found)
        return names[offset:][:limit]

    # The key-value operations are blocking only (a store's `AsyncSession` serves a run's journal, not
    # this), so the async twins run them in a worker thread: the event loop goes on meanwhile.

    async def aget(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None) -> Item | None:
        """`get`, without blocking the event loop."""
        import asyncio  # only async programs pay for it

        return await asyncio.to_thread(self.get, namespace, key, refresh_ttl=refresh_ttl)

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """`search`, without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(
            lambda: self.search(
                namespace_prefix, query=query, filter=filter, limit=limit, offset=offset, refresh_ttl=refresh_ttl
            )
        )

    async def aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """`put`, without blocking the event loop."""
        import asyncio

        await asyncio.to_thread(self.put, namespace, key, value, index, ttl=ttl)

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        """`delete`, without blocking the event loop."""
        import asyncio

        await asyncio.to_thread(self.delete, namespace, key)

    async def alist_namespaces(
        self,
        *,
        prefix: tuple[str, ...] | None = None,
        suffix: tuple[str, ...] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """`list_namespaces`, without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(
            lambda: self.list_namespaces(prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset)
        )

    def _refresh(self, refresh_ttl: bool | None) -> bool:
        return bool(self.ttl_config.get("refresh_on_read", True)) if refresh_ttl is None else bool(refresh_ttl)


def _ttl_config(ttl: TTLConfig | None) -> TTLConfig:
    if ttl is None:
        return {}
    if not isinstance(ttl, Mapping) or set(ttl) - set(TTLConfig.__annotations__):
        raise ConfigurationError(
            f"ttl={ttl!r}: give LangGraph's TTLConfig, a dict of {sorted(TTLConfig.__annotations__)}"
        )
    return TTLConfig(**ttl)


def _namespace(namespace: Iterable[str], *, writing: bool = False, root: bool = True) -> tuple[str, ...]:
    """The namespace's labels, or `InvalidNamespaceError` where LangGraph raises it (and for durable's own)."""
    if isinstance(namespace, str) or not isinstance(namespace, tuple | list):
        raise InvalidNamespaceError(f"namespace {namespace!r}: give a tuple of strings, such as ('users', '42')")
    labels = tuple(namespace)
    for label in labels:
        if not isinstance(label, str):
            raise InvalidNamespaceError(f"namespace {labels!r}: label {label!r} is a {type(label).__name__}, not a str")
        if not label:
            raise InvalidNamespaceError(f"namespace {labels!r}: labels cannot be empty strings")
        for char, name in ((".", "a period"), ("\x00", "a NUL character"), (KV_SEP, "the character '\\x1f'")):
            if char in label:
                raise InvalidNamespaceError(f"namespace {labels!r}: label {label!r} contains {name}")
        try:
            label.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidNamespaceError(f"namespace {labels!r}: label {label!r} is not valid Unicode") from None
    if root and labels and labels[0].startswith(RESERVED):
        raise InvalidNamespaceError(
            f"namespace {labels!r}: a first label starting with {RESERVED!r} is durable's own (the task cache)"
        )
    if writing and not labels:
        raise InvalidNamespaceError("the namespace cannot be empty: give at least one label, such as ('users',)")
    if writing and labels[0] == "langgraph":
        raise InvalidNamespaceError(f"namespace {labels!r}: the first label cannot be 'langgraph' (LangGraph's own)")
    return labels


def _key(key: object) -> str:
    text = str(key)  # as LangGraph does
    if "\x00" in text:
        raise ConfigurationError(f"key {text!r} contains a NUL character, which no store keeps: remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"key {text!r} is not valid Unicode (a lone surrogate): no store keeps it") from None
    return text


def _encode(value: object, labels: tuple[str, ...], key: object) -> bytes:
    where = f"the value put at {labels!r}, key {str(key)!r},"
    if not isinstance(value, Mapping):
        raise UsageError(f"{where} is a {type(value).__name__}: a memory item's value is a dict of JSON data")
    value = dict(value)
    try:
        _check_json(value, "value")
    except RecursionError:
        raise UsageError(f"{where} is nested too deeply (or contains itself): store plain JSON data") from None
    except ValueError as exc:
        raise UsageError(
            f"{where} is not JSON data: {exc}. Store dicts, lists, strings, numbers, bools, None"
        ) from None
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode("ascii")


def _check_json(value: object, path: str) -> None:
    """Only what JSON holds and gives back unchanged: dicts with str keys, lists, str, int, finite float, bool, None."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value!r}")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path} has the key {k!r} (JSON keys are strings)")
            _check_json(v, f"{path}[{k!r}]")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]")
        return
    hint = " (use a list)" if isinstance(value, tuple) else ""
    raise ValueError(f"{path} is a {type(value).__name__}{hint}")


def _item(cls: type[Any], row: KVRow, labels: tuple[str, ...] | None = None) -> Any:
    namespace = labels if labels is not None else kv_labels(row.namespace)
    try:
        value = json.loads(row.value)
    except ValueError as exc:
        value = exc
    if not isinstance(value, dict):
        raise SerializationError(f"the memory item at {namespace!r}, key {row.key!r}", "bytes", f"{value}", True)
    times = datetime.fromtimestamp(row.created_at, timezone.utc), datetime.fromtimestamp(row.updated_at, timezone.utc)
    if cls is Item:
        return Item(value=value, key=row.key, namespace=namespace, created_at=times[0], updated_at=times[1])
    return SearchItem(namespace, row.key, value, *times)


def _check_page(limit: int, offset: int) -> None:
    for name, n in (("limit", limit), ("offset", offset)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigurationError(f"{name}={n!r}: give a whole number, 0 or more")
