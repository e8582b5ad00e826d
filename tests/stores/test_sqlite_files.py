"""The SQLite journal's files: created owner-only, a warning when others can write them, paths SQLite can open.

- A new journal and its ``-wal`` and ``-shm`` files are mode 0600 whatever the umask (SQLite gives the
  ``-wal`` and ``-shm`` files the main file's mode), from the blocking connection and the async session alike.
- Opening an existing journal that its group or everyone can write, or that another user owns, emits one
  `InsecureJournalWarning` per store naming the path and ``chmod 600``; the journal still opens.
- A path with a NUL character or a lone surrogate is a `ConfigurationError`, and no file is created.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from durable import ConfigurationError, InsecureJournalWarning, SQLiteStore, entrypoint, task


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block under ``mask``, then restore the process's umask."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(db: Path) -> dict[str, int]:
    """The permission bits of the journal and its ``-wal`` and ``-shm`` files (each must exist)."""
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))}


def journal(db: Path) -> None:
    """Create a journal with one finished thread at ``db``, and close it."""

    @task
    def one() -> int:
        return 1

    with SQLiteStore(db) as store:

        @entrypoint(checkpointer=store)
        def flow(x: int) -> int:
            return one().result() + x

        assert flow.invoke(1, thread_id="t") == 2


@pytest.mark.parametrize("mask", [0o000, 0o022], ids=["umask-000", "umask-022"])
def test_a_new_journal_and_its_wal_and_shm_files_are_owner_only(tmp_path: Path, mask: int) -> None:
    """Under a permissive umask, a new journal and its -wal and -shm files are created 0600."""
    db = tmp_path / "new.db"
    with umask(mask):
        store = SQLiteStore(db)
        try:
            assert store.get_thread("t") is None  # opens the connection: WAL mode, so -wal and -shm exist
            assert modes(db) == {"new.db": 0o600, "new.db-wal": 0o600, "new.db-shm": 0o600}
        finally:
            store.close()


async def test_a_journal_created_by_an_async_session_is_owner_only(tmp_path: Path) -> None:
    """The async session creates a new journal, and its -wal and -shm files, 0600 as well."""
    db = tmp_path / "async.db"
    with umask(0o000):
        async with SQLiteStore(db).asession() as session:
            assert await session.get_thread("t") is None
            assert modes(db) == {"async.db": 0o600, "async.db-wal": 0o600, "async.db-shm": 0o600}


def test_an_existing_owner_only_journal_keeps_its_mode_and_opens_quietly(tmp_path: Path) -> None:
    """A journal only its owner can write opens without a warning, and its mode is left as it is."""
    db = tmp_path / "kept.db"
    journal(db)
    db.chmod(0o644)
    with SQLiteStore(db) as store:  # pytest turns any warning into an error
        assert store.get_thread("t") is not None
    assert stat.S_IMODE(db.stat().st_mode) == 0o644


@pytest.mark.parametrize(("mode", "who"), [(0o666, "everyone"), (0o660, "its group")], ids=["world", "group"])
def test_a_journal_others_can_write_warns_once_and_still_opens(tmp_path: Path, mode: int, who: str) -> None:
    """A group- or world-writable journal emits one InsecureJournalWarning per store, naming the fix; it opens."""
    db = tmp_path / "open.db"
    journal(db)
    db.chmod(mode)
    store = SQLiteStore(db)
    try:
        with pytest.warns(InsecureJournalWarning) as record:
            assert store.get_thread("t") is not None
        assert len(record) == 1
        message = str(record[0].message)
        assert str(db) in message
        assert f"chmod 600 {db}" in message
        assert f"writable by {who}" in message
        assert record[0].filename == __file__  # it points at the caller, not inside durable
        store.close()
        assert store.get_thread("t") is not None  # reopening the same store does not warn again
    finally:
        store.close()
    assert stat.S_IMODE(db.stat().st_mode) == mode  # a warning, not a chmod behind the user's back


async def test_the_async_session_warns_about_a_journal_others_can_write(tmp_path: Path) -> None:
    """Opening an async session on a world-writable journal emits InsecureJournalWarning too."""
    db = tmp_path / "open.db"
    journal(db)
    db.chmod(0o666)
    store = SQLiteStore(db)
    with pytest.warns(InsecureJournalWarning, match="chmod 600"):
        async with store.asession() as session:
            assert await session.get_thread("t") is not None
    async with store.asession() as session:  # once per store
        assert await session.get_thread("t") is not None


def test_a_journal_owned_by_another_user_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal owned by another user than the effective one emits InsecureJournalWarning; it still opens."""
    db = tmp_path / "theirs.db"
    journal(db)
    owner = db.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # we are someone else now
    with (
        SQLiteStore(db) as store,
        pytest.warns(InsecureJournalWarning, match=f"owned by another user \\(uid {owner}\\)"),
    ):
        assert store.get_thread("t") is not None


PATHS = {"nul": ("bad\x00name.db", "NUL character"), "lone-surrogate": ("bad\ud800name.db", "lone surrogate")}


@pytest.mark.parametrize(("name", "message"), PATHS.values(), ids=PATHS.keys())
def test_a_path_sqlite_cannot_open_raises_configuration_error(tmp_path: Path, name: str, message: str) -> None:
    """A SQLite path with a NUL character or a lone surrogate raises ConfigurationError; no file is created."""
    with pytest.raises(ConfigurationError, match=message):
        SQLiteStore(tmp_path / name)
    with pytest.raises(ConfigurationError, match=message):
        SQLiteStore(str(tmp_path / name))
    assert os.listdir(tmp_path) == []


def test_an_undecodable_working_directory_raises_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path under a working directory whose name is not valid UTF-8 raises ConfigurationError."""
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    os.mkdir(odd)
    monkeypatch.chdir(odd)
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        SQLiteStore("journal.db")
    assert os.listdir(odd) == []
