"""Backends found by URL scheme, and the "same database" question asked of the store.

A package adds a scheme through the ``durable.stores`` entry-point group: the test installs a real one (a
``*.dist-info`` directory with its ``entry_points.txt``, on ``sys.path``), as pip would, and opens its URLs through
every place that takes a URL. `register_scheme` does the same in one process.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable import ConfigurationError, MemoryStore, SQLiteStore, Store, Threads, Worker, _urls, entrypoint
from durable._urls import known_schemes, store_from_url
from durable.stores import register_scheme


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test sees the registry as a new process would (entry points read again, nothing registered)."""
    saved = dict(_urls._registered), _urls._installed
    _urls._registered.clear()
    _urls._installed = None
    yield
    _urls._registered.clear()
    _urls._registered.update(saved[0])
    _urls._installed = saved[1]


def install(site: Path, scheme: str, body: str) -> None:
    """Install a package ``durable_fake`` whose metadata names ``durable_fake:open_store`` for ``scheme``."""
    (site / "durable_fake.py").write_text(textwrap.dedent(body))
    info = site / "durable_fake-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: durable-fake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[durable.stores]\n{scheme} = durable_fake:open_store\n")


FAKE = """
    from durable import MemoryStore

    OPENED = []
    STORES = {}

    class FakeStore(MemoryStore):
        '''A memory journal per URL: the backend a third-party package would ship.'''

    def open_store(url, read_only):
        OPENED.append((url, read_only))
        return STORES.setdefault(url, FakeStore())
"""


def test_an_installed_package_adds_a_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheme named in an installed package's entry points opens its store for entrypoints, the operator's
    `Threads` and the worker, with no call to register it; read-only opens say so."""
    install(tmp_path, "fake", FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "durable_fake", raising=False)

    @entrypoint(checkpointer="fake://journal-1")
    def double(x: int) -> int:
        return 2 * x

    assert double.invoke(21, thread_id="t") == 42
    import durable_fake  # type: ignore[import-not-found]

    store = durable_fake.STORES["fake://journal-1"]
    assert type(store).__name__ == "FakeStore" and double.checkpointer is store
    assert [t.thread_id for t in Threads("fake://journal-1").list()] == ["t"]
    assert Worker([double], checkpointer="fake://journal-1").store is store
    store_from_url("fake://journal-1", read_only=True)
    assert durable_fake.OPENED[-1] == ("fake://journal-1", True)
    assert "fake" in known_schemes()


def test_an_installed_scheme_that_fails_to_import_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package whose opener fails to import is a ConfigurationError naming the scheme and the entry point."""
    install(tmp_path, "broken", "raise ImportError('no such driver')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "durable_fake", raising=False)
    with pytest.raises(ConfigurationError, match=r"'broken'.*durable_fake:open_store.*no such driver"):
        store_from_url("broken://x")


def test_register_scheme_in_one_process() -> None:
    """register_scheme opens its URLs; an opener that returns no Store, a bad scheme and durable's own
    schemes are refused; an unknown scheme's error lists the ones there are."""
    made: dict[str, Store] = {}
    register_scheme("inproc", lambda url, read_only: made.setdefault(url, MemoryStore()))

    @entrypoint(checkpointer="inproc://a")
    def flow(x: int) -> int:
        return x + 1

    assert flow.invoke(1, thread_id="t") == 2 and flow.checkpointer is made["inproc://a"]
    register_scheme("nostore", lambda url, read_only: "not a store")  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="returned str, not a Store"):
        store_from_url("nostore://x")
    with pytest.raises(ConfigurationError, match="durable's own"):
        register_scheme("sqlite", lambda url, read_only: MemoryStore())
    with pytest.raises(ConfigurationError, match="a letter"):
        register_scheme("1bad", lambda url, read_only: MemoryStore())
    with pytest.raises(ConfigurationError, match=r"unknown scheme 'nope'.*inproc"):
        store_from_url("nope://x")


def test_same_database_is_the_stores_answer(tmp_path: Path) -> None:
    """Two SQLite stores on one file (through a link, with other settings) are one database; two files, or a
    SQLite and a memory store, are not; a memory store is only itself. The worker asks the stores."""
    one = SQLiteStore(tmp_path / "j.db")
    os.symlink(tmp_path / "j.db", tmp_path / "link.db")
    same = SQLiteStore(tmp_path / "link.db", synchronous="FULL", lease_seconds=5)
    other = SQLiteStore(tmp_path / "k.db")
    memory = MemoryStore()
    assert one.same_database(same) and same.same_database(one)
    assert not one.same_database(other) and not one.same_database(memory) and not memory.same_database(one)
    assert memory.same_database(memory) and not memory.same_database(MemoryStore())

    def flow_on(store: Store, name: str) -> Any:
        @entrypoint(checkpointer=store, name=name)
        def flow(x: int) -> int:
            return x

        return flow

    assert Worker([flow_on(one, "a"), flow_on(same, "b")]).store is one
    with pytest.raises(ConfigurationError, match="different stores"):
        Worker([flow_on(one, "a"), flow_on(other, "b")])


def test_same_database_on_postgres(pg_schema: tuple[str, str]) -> None:
    """Two Postgres stores are one database when server, port, database and schema agree, however spelled."""
    from psycopg.conninfo import conninfo_to_dict

    from durable import PostgresStore

    dsn, schema = pg_schema
    a = PostgresStore(dsn, schema=schema)
    # The same server and database, in libpq's key=value spelling instead of a URL.
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if k in ("host", "port", "dbname", "user", "password")}
    b = PostgresStore(" ".join(f"{k}={v}" for k, v in params.items()), schema=schema, pool_size=2)
    elsewhere = PostgresStore(dsn, schema=schema + "_other")
    assert a.same_database(b) and b.same_database(a)
    assert not a.same_database(elsewhere) and not a.same_database(MemoryStore())
