"""``checkpointer=``: a store, a URL, else $DURABLE_URL, else ``durable.db`` in the working directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable import ConfigurationError, MemoryStore, SQLiteStore, Store
from durable._urls import store_from_url

Flavor = Any  # the `flavor` fixture from tests/conftest.py


@pytest.fixture
def made(flavor: Flavor) -> Iterator[Any]:
    """Builds a one-task entrypoint with some ``checkpointer``; closes the stores it resolved afterwards."""
    built: list[Any] = []

    def make(**options: Any) -> Any:
        @flavor.task
        def double(x: int) -> int:
            return 2 * x

        @flavor.entrypoint(**options)
        def flow(x: int) -> Any:
            return (yield double(x))

        built.append(flow)
        return flow

    yield make
    for flow in built:
        try:
            store = flow.checkpointer
        except ConfigurationError:
            continue
        store.close()


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no DURABLE_URL from the environment."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("DURABLE_URL", raising=False)
    return work


def test_memory_url_gives_a_memory_store(flavor: Flavor, made: Any, cwd: Path) -> None:
    """``"memory://"`` journals in memory and writes no file."""
    flow = made(checkpointer="memory://")
    assert flavor.invoke(flow, 2, thread_id="t") == 4
    assert isinstance(flow.checkpointer, MemoryStore)
    assert flavor.invoke(flow, None, thread_id="t") == 4
    assert os.listdir(cwd) == []


def test_relative_sqlite_url_is_relative_to_the_working_directory(flavor: Flavor, made: Any, cwd: Path) -> None:
    """``"sqlite:///rel.db"`` (three slashes) is a file relative to the working directory."""
    flow = made(checkpointer="sqlite:///rel.db")
    assert flavor.invoke(flow, 2, thread_id="t") == 4
    assert isinstance(flow.checkpointer, SQLiteStore)
    assert Path(flow.checkpointer.path) == cwd / "rel.db"
    assert (cwd / "rel.db").is_file()


def test_absolute_sqlite_url_names_an_absolute_path(flavor: Flavor, made: Any, cwd: Path, tmp_path: Path) -> None:
    """``"sqlite:////abs/path.db"`` (four slashes) is an absolute path."""
    target = tmp_path / "elsewhere" / "abs.db"
    target.parent.mkdir()
    flow = made(checkpointer=f"sqlite:///{target}")
    assert str(target).startswith("/")
    assert flavor.invoke(flow, 2, thread_id="t") == 4
    assert Path(flow.checkpointer.path) == target
    assert target.is_file()
    assert os.listdir(cwd) == []


def test_sqlite_url_takes_the_synchronous_option(flavor: Flavor, made: Any, cwd: Path) -> None:
    """``?synchronous=FULL`` sets SQLite's synchronous mode."""
    flow = made(checkpointer="sqlite:///full.db?synchronous=FULL")
    assert flavor.invoke(flow, 2, thread_id="t") == 4
    assert flow.checkpointer.synchronous == "FULL"


def test_sqlite_url_takes_the_lease_seconds_option(flavor: Flavor, made: Any, cwd: Path) -> None:
    """``?lease_seconds=`` sets how long a claim lasts without renewal."""
    flow = made(checkpointer="sqlite:///leased.db?lease_seconds=2.5&synchronous=FULL")
    assert flavor.invoke(flow, 2, thread_id="t") == 4
    assert (flow.checkpointer.lease_seconds, flow.checkpointer.synchronous) == (2.5, "FULL")


def test_entrypoints_on_one_sqlite_url_share_the_journal(flavor: Flavor, made: Any, cwd: Path) -> None:
    """Two entrypoints built on the same SQLite URL see each other's threads."""
    writer = made(checkpointer="sqlite:///shared.db")
    reader = made(checkpointer="sqlite:///shared.db")
    assert flavor.invoke(writer, 5, thread_id="t") == 10
    assert writer.checkpointer is not reader.checkpointer
    assert flavor.invoke(reader, None, thread_id="t") == 10
    assert reader.get_state(thread_id="t").output == 10


def test_durable_url_is_used_without_a_checkpointer(
    flavor: Flavor, made: Any, cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``checkpointer=``, the DURABLE_URL environment variable picks the store."""
    target = tmp_path / "from-env.db"
    monkeypatch.setenv("DURABLE_URL", f"sqlite:///{target}")
    flow = made()
    assert flavor.invoke(flow, 3, thread_id="t") == 6
    assert Path(flow.checkpointer.path) == target
    assert target.is_file()
    assert os.listdir(cwd) == []


def test_durable_url_can_name_a_memory_store(
    flavor: Flavor, made: Any, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DURABLE_URL may be any store URL, such as ``memory://``."""
    monkeypatch.setenv("DURABLE_URL", "memory://")
    flow = made()
    assert flavor.invoke(flow, 3, thread_id="t") == 6
    assert isinstance(flow.checkpointer, MemoryStore)
    assert os.listdir(cwd) == []


def test_an_explicit_checkpointer_wins_over_durable_url(
    flavor: Flavor, made: Any, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``checkpointer=`` is used even when DURABLE_URL is set."""
    monkeypatch.setenv("DURABLE_URL", "sqlite:///from-env.db")
    store = MemoryStore()
    flow = made(checkpointer=store)
    assert flavor.invoke(flow, 3, thread_id="t") == 6
    assert flow.checkpointer is store
    assert os.listdir(cwd) == []


def test_default_is_durable_db_in_the_working_directory(flavor: Flavor, made: Any, cwd: Path) -> None:
    """With neither ``checkpointer=`` nor DURABLE_URL, the journal is ``durable.db`` in the working directory."""
    flow = made()
    assert flavor.invoke(flow, 4, thread_id="t") == 8
    assert isinstance(flow.checkpointer, SQLiteStore)
    assert Path(flow.checkpointer.path) == cwd / "durable.db"
    assert (cwd / "durable.db").is_file()


BAD_URLS = {
    "unknown-scheme": "mongodb://localhost/0",
    "redis-bad-lease": "redis://localhost/0?lease_seconds=soon",
    "redis-bad-prefix": "redis://localhost/0?prefix=a%20b",
    "no-scheme": "journal.db",
    "sqlite-without-path": "sqlite://",
    "unknown-option": "sqlite:///x.db?fsync=always",
    "bad-synchronous": "sqlite:///x.db?synchronous=SOMETIMES",
    "bad-lease": "sqlite:///x.db?lease_seconds=soon",
    "zero-lease": "sqlite:///x.db?lease_seconds=0",
    "sqlite-with-a-host": "sqlite://dir/x.db",
    "sqlite-with-localhost": "sqlite://localhost/x.db",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_a_bad_url_raises_configuration_error_and_writes_nothing(
    flavor: Flavor, made: Any, cwd: Path, url: str
) -> None:
    """An unusable checkpointer URL raises ConfigurationError; no task runs and no file is created."""
    flow = made(checkpointer=url)
    with pytest.raises(ConfigurationError):
        flavor.invoke(flow, 1, thread_id="t")
    with pytest.raises(ConfigurationError):
        flow.get_state(thread_id="t")
    assert os.listdir(cwd) == []


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_a_bad_durable_url_raises_configuration_error(
    flavor: Flavor, made: Any, cwd: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """An unusable DURABLE_URL raises ConfigurationError rather than falling back to another store."""
    monkeypatch.setenv("DURABLE_URL", url)
    flow = made()
    with pytest.raises(ConfigurationError):
        flavor.invoke(flow, 1, thread_id="t")
    assert os.listdir(cwd) == []


def test_a_store_object_is_used_as_given(flavor: Flavor, made: Any, store: Store) -> None:
    """A store passed as ``checkpointer=`` is the entrypoint's checkpointer."""
    flow = made(checkpointer=store)
    assert flavor.invoke(flow, 1, thread_id="t") == 2
    assert flow.checkpointer is store


def test_relative_sqlite_url_may_name_a_subdirectory(flavor: Flavor, made: Any, cwd: Path) -> None:
    """``"sqlite:///dir/x.db"`` is ``dir/x.db`` under the working directory."""
    (cwd / "dir").mkdir()
    flow = made(checkpointer="sqlite:///dir/x.db")
    assert flavor.invoke(flow, 2, thread_id="t") == 4
    assert Path(flow.checkpointer.path) == cwd / "dir" / "x.db"


HOSTS = {
    "dir": ("sqlite://dir/x.db", "'sqlite:///dir/x.db'", "'sqlite:////dir/x.db'"),
    "nested": ("sqlite://data/jobs/x.db", "'sqlite:///data/jobs/x.db'", "'sqlite:////data/jobs/x.db'"),
    "localhost": ("sqlite://localhost/x.db", "'sqlite:///x.db'", "'sqlite:////x.db'"),
    "options": (
        "sqlite://dir/x.db?synchronous=FULL",
        "'sqlite:///dir/x.db?synchronous=FULL'",
        "'sqlite:////dir/x.db?synchronous=FULL'",
    ),
}


@pytest.mark.parametrize(("url", "relative", "absolute"), HOSTS.values(), ids=HOSTS.keys())
def test_a_sqlite_url_with_a_host_shows_the_two_right_spellings(
    cwd: Path, url: str, relative: str, absolute: str
) -> None:
    """``sqlite://dir/x.db`` is a ConfigurationError showing the three-slash and four-slash spellings of the path."""
    with pytest.raises(ConfigurationError, match="host part") as info:
        store_from_url(url)
    assert relative in str(info.value)
    assert absolute in str(info.value)


PATH_CHARACTERS = {
    "nul": ("sqlite:///bad\x00name.db", "NUL character"),
    "lone-surrogate": ("sqlite:///bad\ud800.db", "lone surrogate"),
}


@pytest.mark.parametrize(("url", "message"), PATH_CHARACTERS.values(), ids=PATH_CHARACTERS.keys())
def test_a_sqlite_url_with_a_path_sqlite_cannot_open_raises_configuration_error(
    flavor: Flavor, made: Any, cwd: Path, url: str, message: str
) -> None:
    """A NUL character or a lone surrogate in a SQLite URL's path raises ConfigurationError; nothing is written."""
    with pytest.raises(ConfigurationError, match=message):
        store_from_url(url)
    flow = made(checkpointer=url)
    with pytest.raises(ConfigurationError, match=message):
        flavor.invoke(flow, 1, thread_id="t")
    assert os.listdir(cwd) == []
