"""`Memory` (LangGraph's long-term memory API) and `Cache` (task results by key), on every kind of journal store.

Where LangGraph is installed, the same calls run on `Memory` and on LangGraph's ``InMemoryStore`` and must give
the same values, keys, namespaces and order.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from durable import (
    Cache,
    ConfigurationError,
    DurableError,
    InvalidNamespaceError,
    Item,
    Memory,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SearchItem,
    SerializationError,
    SQLiteStore,
    Store,
    UsageError,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
HAS_LANGGRAPH = importlib.util.find_spec("langgraph") is not None
MINUTE_FRACTION = 0.3 / 60  # a ttl of 0.3 s, in LangGraph's unit (minutes)


@pytest.fixture
def memory(store: Store) -> Memory:
    return Memory(store)


def keys(items: list[Any]) -> list[tuple[tuple[str, ...], str]]:
    return [(i.namespace, i.key) for i in items]


def same_db(store: Store) -> Store:
    """A second store object on the same database (another connection, as another process would have)."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path)
    if isinstance(store, PostgresStore):
        return PostgresStore(store.dsn, schema=store.schema)
    pytest.skip("a MemoryStore is one process's memory")


# -- put, get, update, delete ------------------------------------------------------------------------------


def test_put_then_get_returns_an_item(memory: Memory) -> None:
    """A put value reads back as an Item with its namespace, key and timezone-aware times."""
    before = datetime.now(timezone.utc)
    memory.put(("users", "42"), "prefs", {"theme": "dark", "langs": ["en", "fr"], "n": 1.5, "ok": True, "x": None})
    item = memory.get(("users", "42"), "prefs")
    assert isinstance(item, Item) and not isinstance(item, SearchItem)
    assert item.value == {"theme": "dark", "langs": ["en", "fr"], "n": 1.5, "ok": True, "x": None}
    assert (item.namespace, item.key) == (("users", "42"), "prefs")
    assert item.created_at.tzinfo is not None and item.created_at == item.updated_at
    assert abs((item.created_at - before).total_seconds()) < 5
    assert memory.get(("users", "42"), "nope") is None and memory.get(("users", "43"), "prefs") is None


def test_put_again_updates_and_keeps_created_at(memory: Memory) -> None:
    """A second put replaces the value; created_at stays, updated_at moves on."""
    memory.put(("users", "42"), "prefs", {"theme": "dark"})
    first = memory.get(("users", "42"), "prefs")
    time.sleep(0.01)
    memory.put(("users", "42"), "prefs", {"theme": "light"})
    second = memory.get(("users", "42"), "prefs")
    assert first is not None and second is not None
    assert second.value == {"theme": "light"}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at


def test_delete_removes_the_item(memory: Memory) -> None:
    """A deleted item reads as None and is not found; deleting again, or what never was, does nothing."""
    memory.put(("users", "42"), "prefs", {"theme": "dark"})
    memory.put(("users", "42"), "other", {"a": 1})
    memory.delete(("users", "42"), "prefs")
    memory.delete(("users", "42"), "prefs")
    memory.delete(("nobody",), "nothing")
    assert memory.get(("users", "42"), "prefs") is None
    assert keys(memory.search(("users",))) == [(("users", "42"), "other")]


def test_keys_are_strings_as_in_langgraph(memory: Memory) -> None:
    """A key is str(key): 7 and "7" name the same item."""
    memory.put(("n",), 7, {"a": 1})  # type: ignore[arg-type]
    item = memory.get(("n",), "7")
    assert item is not None and item.key == "7"


def test_item_and_search_item_behave_as_langgraphs(memory: Memory) -> None:
    """Items compare by value, key, namespace and times, hash by namespace and key, and dict() as LangGraph's do."""
    memory.put(("a",), "k", {"v": 1})
    item = memory.get(("a",), "k")
    (found,) = memory.search(("a",))
    assert item is not None and isinstance(found, SearchItem) and found.score is None
    assert found == item and hash(found) == hash(item) and item != "k"
    assert item.dict() == {
        "namespace": ["a"],
        "key": "k",
        "value": {"v": 1},
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }
    assert found.dict() == {**item.dict(), "score": None}
    stamp: Any = item.created_at.isoformat()  # LangGraph's Item takes ISO text too (a deserialized item)
    again = Item(value={"v": 1}, key="k", namespace=("a",), created_at=stamp, updated_at=item.updated_at)
    assert again == item and repr(item).startswith("Item(namespace=['a'], key='k'")


# -- namespaces and search -----------------------------------------------------------------------------------


def test_search_matches_namespace_prefixes_not_label_prefixes(memory: Memory) -> None:
    """("users",) finds ("users",) and everything below it, never ("users2",), in InMemoryStore's order."""
    memory.put(("users", "1"), "a", {"n": 1})
    memory.put(("users2",), "b", {"n": 2})
    memory.put(("users",), "c", {"n": 3})
    memory.put(("users", "1", "deep"), "d", {"n": 4})
    memory.put(("users", "2"), "e", {"n": 5})
    assert keys(memory.search(("users",))) == [
        (("users", "1"), "a"),
        (("users",), "c"),
        (("users", "1", "deep"), "d"),
        (("users", "2"), "e"),
    ]
    assert keys(memory.search(("users2",))) == [(("users2",), "b")]
    assert keys(memory.search(("users", "1"))) == [(("users", "1"), "a"), (("users", "1", "deep"), "d")]
    assert len(memory.search(())) == 5 and memory.search(("user",)) == []


def test_search_keeps_first_write_order(memory: Memory) -> None:
    """Namespaces in the order first written, keys in the order first put; an update keeps its place."""
    memory.put(("b",), "1", {})
    memory.put(("a",), "1", {})
    memory.put(("b",), "2", {})
    memory.put(("b",), "1", {"updated": True})
    assert keys(memory.search(())) == [(("b",), "1"), (("b",), "2"), (("a",), "1")]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"color": "red"}, ["1", "3"]),
        ({"color": "red", "size": 3}, ["3"]),
        ({"size": {"$eq": 2}}, ["2"]),
        ({"size": {"$ne": 2}}, ["1", "3", "4"]),
        ({"size": {"$gt": 2}}, ["3", "4"]),
        ({"size": {"$gte": 2}}, ["2", "3", "4"]),
        ({"size": {"$lt": 2}}, ["1"]),
        ({"size": {"$lte": 2}}, ["1", "2"]),
        ({"size": {"$gt": 1, "$lt": 4}}, ["2", "3"]),
        ({"meta": {"tier": "gold"}}, ["2"]),
        ({"tags": ["a", "b"]}, ["1"]),
        ({"missing": None}, ["1", "2", "3", "4"]),
    ],
)
def test_search_filters(memory: Memory, condition: dict[str, Any], expected: list[str]) -> None:
    """A filter keeps the items whose top-level fields equal the values given or satisfy each operator."""
    memory.put(("p",), "1", {"color": "red", "size": 1, "tags": ["a", "b"]})
    memory.put(("p",), "2", {"color": "blue", "size": 2, "meta": {"tier": "gold", "since": 2020}})
    memory.put(("p",), "3", {"color": "red", "size": 3})
    memory.put(("p",), "4", {"color": "green", "size": 4.5})
    assert [i.key for i in memory.search(("p",), filter=condition)] == expected


def test_a_comparison_skips_items_without_a_number(memory: Memory) -> None:
    """$gt and friends match numbers only (LangGraph's InMemoryStore raises TypeError on such an item)."""
    memory.put(("p",), "none", {"other": 1})
    memory.put(("p",), "text", {"size": "big"})
    memory.put(("p",), "num", {"size": 5})
    assert [i.key for i in memory.search(("p",), filter={"size": {"$gt": 1}})] == ["num"]


def test_a_bad_filter_is_refused_before_searching(memory: Memory) -> None:
    """An unknown operator, or a comparison with something other than a number, is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match=r"\$regex"):
        memory.search(("p",), filter={"a": {"$regex": "x"}})
    with pytest.raises(ConfigurationError, match="number"):
        memory.search(("p",), filter={"a": {"$gt": "abc"}})
    with pytest.raises(ValueError, match="limit"):
        memory.search(("p",), limit=-1)


def test_limit_and_offset_page_through_matches(memory: Memory) -> None:
    """limit bounds the page and offset skips matches, after filtering."""
    for i in range(12):
        memory.put(("p",), f"k{i:02}", {"even": i % 2 == 0})
    assert [i.key for i in memory.search(("p",))] == [f"k{i:02}" for i in range(10)]
    assert [i.key for i in memory.search(("p",), limit=3, offset=4)] == ["k04", "k05", "k06"]
    assert [i.key for i in memory.search(("p",), filter={"even": True}, limit=2, offset=1)] == ["k02", "k04"]
    assert memory.search(("p",), offset=12) == [] and memory.search(("p",), limit=0) == []


def test_query_is_ignored_without_a_semantic_index(memory: Memory) -> None:
    """A natural-language query changes nothing (as on InMemoryStore without an index); score is None."""
    memory.put(("docs",), "1", {"text": "python"})
    memory.put(("docs",), "2", {"text": "rust"})
    found = memory.search(("docs",), query="rust programming")
    assert [i.key for i in found] == ["1", "2"] and {i.score for i in found} == {None}


def test_list_namespaces_with_prefix_suffix_depth_and_paging(memory: Memory) -> None:
    """list_namespaces filters by prefix and suffix ("*" matches a label), truncates to max_depth, sorts and pages."""
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f"), ("z",)]:
        memory.put(ns, "k", {})
    assert memory.list_namespaces() == [
        ("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f"), ("z",),
    ]  # fmt: skip
    assert memory.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert memory.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert memory.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert memory.list_namespaces(prefix=("a",), suffix=("d", "*")) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    assert memory.list_namespaces(max_depth=1) == [("a",), ("z",)]
    assert memory.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    assert memory.list_namespaces(prefix=("ab",)) == []


def test_a_namespace_without_items_is_not_listed(memory: Memory) -> None:
    """Deleting a namespace's last item removes it from list_namespaces (InMemoryStore would keep listing it)."""
    memory.put(("a",), "k", {})
    memory.put(("b",), "k", {})
    memory.delete(("a",), "k")
    assert memory.list_namespaces() == [("b",)]


# -- what is refused ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "namespace",
    [("a.b",), ("",), ("a", ""), ("a", 1), ("a\x00",), ("a\x1fb",), ("\ud800",), "users", None],
)
def test_invalid_namespaces_are_refused(memory: Memory, namespace: Any) -> None:
    """Labels must be non-empty strings without ".", NUL or the separator: InvalidNamespaceError, a ValueError."""
    for call in (
        lambda: memory.put(namespace, "k", {}),
        lambda: memory.get(namespace, "k"),
        lambda: memory.delete(namespace, "k"),
        lambda: memory.search(namespace),
        lambda: memory.list_namespaces(prefix=namespace or ["x", namespace]),
    ):
        with pytest.raises(InvalidNamespaceError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, DurableError)
    assert memory.list_namespaces() == []


def test_put_refuses_an_empty_namespace_and_langgraphs_root(memory: Memory) -> None:
    """As in LangGraph: a put needs a label, and not "langgraph" first (reads of () find nothing)."""
    with pytest.raises(InvalidNamespaceError, match="empty"):
        memory.put((), "k", {})
    with pytest.raises(InvalidNamespaceError, match="langgraph"):
        memory.put(("langgraph", "x"), "k", {})
    assert memory.get((), "k") is None


@pytest.mark.parametrize(
    "value",
    [
        ["not", "a", "dict"],
        "text",
        None,
        {"t": (1, 2)},
        {"s": {1, 2}},
        {"b": b"bytes"},
        {1: "int key"},
        {"nested": {2: "x"}},
        {"nan": math.nan},
        {"inf": [math.inf]},
        {"obj": object()},
        {"when": datetime.now(timezone.utc)},
    ],
    ids=repr,
)
def test_values_that_are_not_json_data_are_refused(memory: Memory, value: Any) -> None:
    """A value must be a dict of JSON data (it is stored as JSON, never pickled); nothing is written otherwise."""
    with pytest.raises(UsageError, match=r"JSON|dict"):
        memory.put(("a",), "k", value)
    assert memory.get(("a",), "k") is None


def test_a_value_containing_itself_is_refused(memory: Memory) -> None:
    """A circular value is a clear error, not a crash."""
    value: dict[str, Any] = {}
    value["self"] = value
    with pytest.raises(UsageError, match="nested too deeply"):
        memory.put(("a",), "k", value)


def test_a_stored_value_that_is_not_json_is_an_error_not_code(store: Store) -> None:
    """A row whose bytes are not a JSON object (a tampered database) raises SerializationError; nothing is unpickled."""
    import pickle

    store.kv_put("a\x1f", "k", pickle.dumps({"x": 1}), None)
    with pytest.raises(SerializationError, match="memory item"):
        Memory(store).get(("a",), "k")


def test_durables_own_namespaces_are_refused_and_hidden(memory: Memory) -> None:
    """A first label starting with "__durable" is the task cache's: refused, and never listed or found."""
    Cache(memory.store).set("mod.task", "key", b"blob", None)
    memory.put(("users",), "k", {"a": 1})
    for call in (
        lambda: memory.put(("__durable_cache", "x"), "k", {}),
        lambda: memory.get(("__durable_cache", "task"), "key"),
        lambda: memory.search(("__durable_cache",)),
        lambda: memory.delete(("__durablex",), "k"),
        lambda: memory.list_namespaces(prefix=("__durable_cache",)),
    ):
        with pytest.raises(InvalidNamespaceError, match="durable's own"):
            call()
    assert keys(memory.search(())) == [(("users",), "k")]
    assert memory.list_namespaces() == [("users",)] and memory.list_namespaces(prefix=("*",)) == [("users",)]
    assert memory.list_namespaces(suffix=("__durable_x",)) == []


# -- ttl ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_items_expire_after_their_ttl(memory: Memory) -> None:
    """An item put with a ttl (minutes) is gone once it passes: get, search and list_namespaces skip it."""
    memory.put(("t",), "short", {"a": 1}, ttl=MINUTE_FRACTION)
    memory.put(("t",), "forever", {"a": 2}, ttl=None)
    memory.put(("gone",), "short", {"a": 3}, ttl=MINUTE_FRACTION)
    assert [i.key for i in memory.search(("t",), refresh_ttl=False)] == ["short", "forever"]
    time.sleep(0.45)
    assert memory.get(("t",), "short") is None
    assert [i.key for i in memory.search(())] == ["forever"]
    assert memory.list_namespaces() == [("t",)]
    memory.put(("t",), "short", {"a": 4})  # expired: a new item (last in the order)
    assert [i.key for i in memory.search(("t",))] == ["forever", "short"]


@pytest.mark.slow
def test_reads_refresh_the_ttl_unless_told_not_to(memory: Memory) -> None:
    """get and search restart an item's ttl by default (LangGraph's refresh_on_read); refresh_ttl=False does not."""
    ttl = 0.5 / 60
    for key in ("get", "search", "neither"):
        memory.put(("t",), key, {}, ttl=ttl)
    time.sleep(0.3)
    assert memory.get(("t",), "get") is not None
    assert memory.get(("t",), "neither", refresh_ttl=False) is not None
    assert [i.key for i in memory.search(("t",), filter={}, limit=1, offset=1, refresh_ttl=True)] == ["search"]
    assert len(memory.search(("t",), refresh_ttl=False)) == 3
    time.sleep(0.3)  # 0.6 s after the puts, 0.3 s after the refreshes
    assert [i.key for i in memory.search(("t",), refresh_ttl=False)] == ["get", "search"]


@pytest.mark.slow
def test_ttl_config_gives_a_default_ttl_and_can_turn_refresh_off(store: Store) -> None:
    """Memory(ttl={...}) is LangGraph's TTLConfig: default_ttl for puts without ttl=, refresh_on_read for reads."""
    memory = Memory(store, ttl={"default_ttl": 0.5 / 60, "refresh_on_read": False})
    memory.put(("t",), "default", {})
    memory.put(("t",), "kept", {}, ttl=None)
    time.sleep(0.3)
    assert memory.get(("t",), "default") is not None  # not refreshed
    time.sleep(0.3)
    assert [i.key for i in memory.search(("t",))] == ["kept"]
    with pytest.raises(ConfigurationError, match="TTLConfig"):
        Memory(store, ttl={"ttl": 5})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(ConfigurationError, match="ttl"):
        memory.put(("t",), "k", {}, ttl="soon")  # type: ignore[arg-type]


# -- async twins --------------------------------------------------------------------------------------------


def test_async_twins_do_what_the_blocking_methods_do(memory: Memory) -> None:
    """aput, aget, asearch, adelete and alist_namespaces give the blocking methods' results."""

    async def scenario() -> None:
        await memory.aput(("users", "1"), "prefs", {"theme": "dark"})
        await memory.aput(("users", "2"), "prefs", {"theme": "light"}, ttl=None)
        item = await memory.aget(("users", "1"), "prefs")
        assert item is not None and item.value == {"theme": "dark"}
        found = await memory.asearch(("users",), filter={"theme": "light"}, limit=5)
        assert keys(found) == [(("users", "2"), "prefs")]
        assert await memory.alist_namespaces(prefix=("users",), max_depth=1) == [("users",)]
        await memory.adelete(("users", "1"), "prefs")
        assert await memory.aget(("users", "1"), "prefs") is None
        with pytest.raises(InvalidNamespaceError):
            await memory.aput(("a.b",), "k", {})

    asyncio.run(scenario())


# -- binding, and sharing one database ------------------------------------------------------------------------


def test_an_unbound_memory_says_how_to_bind_it(store: Store) -> None:
    """Memory() names no store until it is given one (bind, or @entrypoint(store=Memory())): that very object then
    lives there; a Memory with a store of its own keeps it."""
    unbound = Memory()
    with pytest.raises(ConfigurationError, match="entrypoint"):
        unbound.get(("a",), "k")
    assert unbound.bind(store) is unbound and unbound.store is store
    unbound.put(("a",), "k", {"v": 1})
    own = Memory(MemoryStore())
    assert own.bind(store) is own and own.get(("a",), "k") is None
    with pytest.raises(ConfigurationError, match="entrypoint"):
        Cache().get("task", "key")


def test_a_memory_from_a_url(tmp_path: Path) -> None:
    """Memory("sqlite:///...") opens that journal (and closes it); Memory("memory://") keeps it in this process."""
    path = tmp_path / "mem.db"
    with Memory(f"sqlite:///{path}") as memory:
        memory.put(("a",), "k", {"v": 1})
    with Memory(SQLiteStore(path)) as again:
        item = again.get(("a",), "k")
        assert item is not None and item.value == {"v": 1}
    assert isinstance(Memory("memory://").store, MemoryStore)
    with pytest.raises(ConfigurationError, match="scheme"):
        Memory("mongodb://x")


def test_two_store_objects_on_one_database_share_the_memory(store: Store) -> None:
    """What one connection puts, another (on the same file or schema) reads, updates and deletes."""
    other = same_db(store)
    try:
        Memory(store).put(("users", "1"), "prefs", {"theme": "dark"})
        theirs = Memory(other)
        item = theirs.get(("users", "1"), "prefs")
        assert item is not None and item.value == {"theme": "dark"}
        theirs.put(("users", "1"), "prefs", {"theme": "light"})
        mine = Memory(store).get(("users", "1"), "prefs")
        assert mine is not None and mine.value == {"theme": "light"} and mine.created_at == item.created_at
        Cache(other).set("t", "k", b"blob", None)
        assert Cache(store).get("t", "k") == b"blob"
    finally:
        other.close()


def test_concurrent_puts_from_threads_all_land(store: Store) -> None:
    """Threads putting at once (new keys, and one shared key) lose nothing; the shared key holds one whole value."""
    import threading

    memory = Memory(store)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(15):
                memory.put(("load", str(n)), f"k{i}", {"n": n, "i": i})
                memory.put(("load",), "shared", {"by": n, "i": i})
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(memory.search(("load",), limit=1000)) == 6 * 15 + 1
    shared = memory.get(("load",), "shared")
    assert shared is not None and shared.value["i"] == 14


_WRITER = """
import sys
from durable import Cache, Memory, SQLiteStore, PostgresStore, RedisStore
kind, where, schema = sys.argv[1:4]
if kind == "sqlite":
    store = SQLiteStore(where)
elif kind == "redis":
    store = RedisStore(where, prefix=schema)
else:
    store = PostgresStore(where, schema=schema)
memory = Memory(store)
seen = memory.get(("shared",), "from-parent")
memory.put(("shared",), "from-child", {"saw": seen.value if seen else None})
Cache(store).set("mod.task", "k", b"child-blob", 60)
store.close()
"""


@pytest.mark.subprocess
def test_another_process_sees_the_same_memory(store: Store) -> None:
    """A second process on the same SQLite file, Postgres schema or Redis prefix reads what this one put, and
    writes back."""
    if isinstance(store, MemoryStore):
        pytest.skip("a MemoryStore is one process's memory")
    memory = Memory(store)
    memory.put(("shared",), "from-parent", {"n": 1})
    if isinstance(store, SQLiteStore):
        kind, where, schema = "sqlite", str(store.path), ""
    elif isinstance(store, RedisStore):
        kind, where, schema = "redis", store.url, store.prefix
    else:
        kind, where, schema = "postgres", store.dsn, store.schema  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-c", _WRITER, kind, where, schema], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    item = memory.get(("shared",), "from-child")
    assert item is not None and item.value == {"saw": {"n": 1}}
    assert Cache(store).get("mod.task", "k") == b"child-blob"


# -- the task cache ----------------------------------------------------------------------------------------


def test_cache_keeps_bytes_by_task_and_key(store: Store) -> None:
    """get returns what set stored for (task, key); other tasks and keys are apart; set replaces."""
    cache = Cache(store)
    assert cache.get("mod.task", "k1") is None
    cache.set("mod.task", "k1", b"\x00one", None)
    cache.set("mod.task", "k2", b"two", None)
    cache.set("mod.other", "k1", b"other", None)
    cache.set("mod.task", "k1", b"\x00uno", None)
    assert (cache.get("mod.task", "k1"), cache.get("mod.task", "k2"), cache.get("mod.other", "k1")) == (
        b"\x00uno",
        b"two",
        b"other",
    )


def test_cache_names_with_any_characters_stay_apart(store: Store) -> None:
    """Task names and keys with dots, separators, NUL or percent signs are kept apart, never mixed up."""
    cache = Cache(store)
    names = ["a.b", "a\x1fb", "a%1Fb", "a\x00b", "a", "a\x1f"]
    for i, name in enumerate(names):
        cache.set(name, name, str(i).encode(), None)
    assert [cache.get(name, name) for name in names] == [str(i).encode() for i in range(len(names))]
    assert cache.clear("a") == 1 and cache.get("a.b", "a.b") == b"0"


@pytest.mark.slow
def test_cache_entries_expire_after_their_ttl_in_seconds(store: Store) -> None:
    """A ttl (seconds) expires the entry; a ttl of 0 or less removes it at once, as in LangGraph."""
    cache = Cache(store)
    cache.set("t", "short", b"v", 0.3)
    cache.set("t", "long", b"v", 60)
    cache.set("t", "zero", b"v", None)
    cache.set("t", "zero", b"v", 0)
    assert cache.get("t", "short") == b"v" and cache.get("t", "zero") is None
    time.sleep(0.45)
    assert cache.get("t", "short") is None and cache.get("t", "long") == b"v"
    with pytest.raises(ConfigurationError, match="ttl"):
        cache.set("t", "k", b"v", "1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="bytes"):
        cache.set("t", "k", "text", None)  # type: ignore[arg-type]


def test_cache_clear_by_task_or_all(store: Store) -> None:
    """clear(task) removes that task's entries, clear() every task's; both say how many; the memory is untouched."""
    cache = Cache(store)
    Memory(store).put(("users",), "k", {"a": 1})
    for task in ("t1", "t2", "t1.sub"):
        cache.set(task, "a", b"v", None)
        cache.set(task, "b", b"v", None)
    assert cache.clear("t1") == 2
    assert cache.get("t1", "a") is None and cache.get("t1.sub", "a") == b"v"
    assert cache.clear() == 4 and cache.get("t2", "a") is None
    assert Memory(store).get(("users",), "k") is not None


def test_cache_async_twins(store: Store) -> None:
    """aset, aget and aclear do what set, get and clear do."""
    cache = Cache(store)

    async def scenario() -> None:
        await cache.aset("t", "k", b"v", None)
        assert await cache.aget("t", "k") == b"v"
        assert await cache.aclear() == 1

    asyncio.run(scenario())


# -- the same calls on LangGraph's InMemoryStore ------------------------------------------------------------------

langgraph = pytest.mark.skipif(not HAS_LANGGRAPH, reason="langgraph is not installed")


def _same_results(ours: Any, theirs: Any) -> None:
    """Items compared by value, key and namespace (InMemoryStore resets created_at on update: times differ)."""
    if isinstance(theirs, list) and theirs and hasattr(theirs[0], "key"):
        assert [(i.namespace, i.key, i.value, i.score) for i in ours] == [
            (i.namespace, i.key, i.value, i.score) for i in theirs
        ]
    elif hasattr(theirs, "key"):
        assert ours is not None
        assert (ours.namespace, ours.key, ours.value) == (theirs.namespace, theirs.key, theirs.value)
        assert set(ours.dict()) == set(theirs.dict())
    else:
        assert ours == theirs


@langgraph
def test_a_scripted_sequence_matches_langgraphs_in_memory_store(memory: Memory) -> None:
    """Puts, updates, deletes, gets, filtered and paged searches and namespace listings agree with InMemoryStore."""
    from langgraph.store.memory import InMemoryStore

    theirs = InMemoryStore()
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("put", (("users", "1"), "prefs", {"theme": "dark", "size": 3}), {}),
        ("put", (("users2",), "prefs", {"theme": "light", "size": 1}), {}),
        ("put", (("docs",), "d1", {"text": "a", "meta": {"tier": "gold"}, "tags": ["x", "y"]}), {}),
        ("put", (("users", "2"), "prefs", {"theme": "light", "size": 5}), {}),
        ("put", (("users", "1"), "extra", {"theme": "dark", "size": 7}), {}),
        ("put", (("users", "1"), "prefs", {"theme": "blue", "size": 4}), {}),  # an update keeps its place
        ("put", (("docs", "sub"), "d2", {"text": "b", "meta": {"tier": "silver"}, "tags": ["x"]}), {}),
        ("put", (("users", "1"), "later", {"size": 2}), {}),
        ("delete", (("users", "1"), "prefs"), {}),  # the first key: users/1 keeps its place
        ("put", (("users", "1"), "prefs", {"theme": "again", "size": 6}), {}),  # and goes last in it
        ("get", (("users", "1"), "prefs"), {}),
        ("get", (("users", "1"), "missing"), {}),
        ("search", (("users",),), {}),
        ("search", ((),), {}),
        ("search", (("users",),), {"filter": {"theme": "dark"}}),
        ("search", (("users",),), {"filter": {"size": {"$gte": 4}}}),
        ("search", (("users",),), {"filter": {"size": {"$gt": 2, "$lte": 6}}, "limit": 2, "offset": 1}),
        ("search", (("users",),), {"filter": {"size": {"$ne": 6}}}),
        ("search", (("users",),), {"filter": {"size": {"$lt": 5}, "theme": {"$eq": "dark"}}}),
        ("search", (("docs",),), {"filter": {"meta": {"tier": "gold"}}}),
        ("search", (("docs",),), {"filter": {"tags": ["x"]}, "query": "anything"}),
        ("search", ((),), {"limit": 3, "offset": 2}),
        ("list_namespaces", (), {}),
        ("list_namespaces", (), {"prefix": ("users",)}),
        ("list_namespaces", (), {"prefix": ("users", "*")}),
        ("list_namespaces", (), {"suffix": ("sub",)}),
        ("list_namespaces", (), {"max_depth": 1}),
        ("list_namespaces", (), {"limit": 2, "offset": 1}),
    ]
    for name, args, kwargs in calls:
        _same_results(getattr(memory, name)(*args, **kwargs), getattr(theirs, name)(*args, **kwargs))
    for bad in (("a.b",), ("",), ("a", 3)):
        with pytest.raises(ValueError):
            theirs.put(bad, "k", {})
        with pytest.raises(ValueError):
            memory.put(bad, "k", {})


@langgraph
def test_random_sequences_match_langgraphs_in_memory_store(memory: Memory) -> None:
    """Random puts, updates and deletes leave every namespace, search order and page as InMemoryStore has them.

    (A namespace is never emptied, and never read before it is written: InMemoryStore remembers those
    namespaces, where a database keeps only namespaces with items.)
    """
    from langgraph.store.memory import InMemoryStore

    rng = random.Random(20260)
    theirs = InMemoryStore()
    spaces = [("a",), ("a", "x"), ("b",), ("a", "y", "z"), ("ab",)]
    live: dict[tuple[str, ...], set[str]] = {}
    for step in range(150):
        ns = rng.choice(spaces)
        key = f"k{rng.randrange(6)}"
        if rng.random() < 0.25 and len(live.get(ns, ())) > 1 and key in live[ns]:
            memory.delete(ns, key)
            theirs.delete(ns, key)
            live[ns].discard(key)
        else:
            value = {"n": rng.randrange(10), "step": step, "tag": rng.choice(["p", "q"])}
            memory.put(ns, key, value)
            theirs.put(ns, key, value)
            live.setdefault(ns, set()).add(key)
        if step % 10 == 0:
            prefix = rng.choice([(), ("a",), ("a", "x"), ("b",), ("ab",)])
            page = {"limit": rng.randrange(1, 12), "offset": rng.randrange(4)}
            condition = rng.choice([None, {"tag": "p"}, {"n": {"$gte": 5}}, {"n": {"$lt": 3}, "tag": {"$ne": "q"}}])
            _same_results(
                memory.search(prefix, filter=condition, **page), theirs.search(prefix, filter=condition, **page)
            )
            seen = [ns for ns in spaces if ns in live]
            if seen:
                probe = rng.choice(seen)
                for k in ("k0", "k1", "k2"):
                    _same_results(memory.get(probe, k), theirs.get(probe, k))
            _same_results(memory.list_namespaces(), theirs.list_namespaces())
    _same_results(memory.search((), limit=100), theirs.search((), limit=100))
