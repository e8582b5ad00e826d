"""`durable backup` / `SQLiteStore.backup` and `restore`: a journal copied while it is in use, its -wal's commits
included, and put back; what they refuse."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

import durable
from durable import ConfigurationError, JournalNotFoundError, SQLiteStore
from durable._cli import main


def flow_on(path: Path) -> durable.Entrypoint[int, int]:
    @durable.task
    def step(i: int) -> int:
        return i * 2

    @durable.entrypoint(checkpointer=SQLiteStore(str(path)))
    def flow(n: int) -> int:
        return sum(step(i).result() for i in range(n))

    return flow


def test_a_backup_taken_while_the_journal_is_in_use_holds_every_commit(tmp_path: Path) -> None:
    journal = tmp_path / "app.db"
    flow = flow_on(journal)
    assert flow.invoke(5, thread_id="a") == 20
    # The last commits are still in the -wal (no checkpoint yet): copying app.db alone would lose them.
    assert (tmp_path / "app.db-wal").exists() and (tmp_path / "app.db-wal").stat().st_size > 0
    size = flow.checkpointer.backup(tmp_path / "copy.db")  # type: ignore[attr-defined]
    assert size == (tmp_path / "copy.db").stat().st_size and (tmp_path / "copy.db").stat().st_mode & 0o077 == 0
    copy = flow_on(tmp_path / "copy.db")
    assert copy.get_state(thread_id="a").output == 20 and len(copy.get_state(thread_id="a").entries) == 5

    # Taken again while another thread keeps committing.
    writing = threading.Thread(target=flow.invoke, args=(200,), kwargs={"thread_id": "b"})
    writing.start()
    flow.checkpointer.backup(tmp_path / "busy.db")  # type: ignore[attr-defined]
    writing.join(30)
    with sqlite3.connect(tmp_path / "busy.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_restore_puts_a_backup_back_and_refuses_what_it_must(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "app.db"
    flow = flow_on(journal)
    flow.invoke(3, thread_id="a")
    url = f"sqlite:///{journal}"
    assert main(["backup", str(tmp_path / "b.db"), "--url", url]) == 0
    assert "backed up" in capsys.readouterr().out
    assert main(["backup", str(tmp_path / "b.db"), "--url", url]) == 2  # never over a file
    assert "exists" in capsys.readouterr().err
    flow.invoke(4, thread_id="later")  # written after the backup
    flow.checkpointer.close()

    assert main(["restore", str(tmp_path / "b.db"), "--url", url]) == 2  # a journal is there: --force
    assert "--force" in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "b.db"), "--url", url, "--force"]) == 0
    restored = flow_on(journal)
    assert restored.get_state(thread_id="a").output == 6
    with pytest.raises(durable.ThreadNotFoundError):
        restored.get_state(thread_id="later")

    fresh = tmp_path / "fresh.db"  # a journal made from the backup
    assert main(["restore", str(tmp_path / "b.db"), "--url", f"sqlite:///{fresh}"]) == 0
    assert flow_on(fresh).get_state(thread_id="a").output == 6

    not_a_journal = tmp_path / "other.db"
    with sqlite3.connect(not_a_journal) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(ConfigurationError, match="not a durable journal"):
        SQLiteStore(str(tmp_path / "x.db")).restore(not_a_journal)
    with pytest.raises(JournalNotFoundError):
        SQLiteStore(str(tmp_path / "missing.db")).backup(tmp_path / "y.db")
    assert main(["backup", str(tmp_path / "z.db"), "--url", "memory://"]) == 2
    assert "SQLite" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.db")


def test_restore_is_refused_while_a_run_is_held(tmp_path: Path) -> None:
    gate = threading.Event()
    started = threading.Event()

    @durable.task
    def wait(block: bool) -> int:
        if block:
            started.set()
            gate.wait(30)
        return 1

    store = SQLiteStore(str(tmp_path / "app.db"))

    @durable.entrypoint(checkpointer=store)
    def flow(block: bool) -> int:
        return wait(block).result()

    flow.invoke(False, thread_id="done")
    store.backup(tmp_path / "b.db")
    running = threading.Thread(target=flow.invoke, args=(True,), kwargs={"thread_id": "live"})
    running.start()
    try:
        assert started.wait(30)
        with pytest.raises(ConfigurationError, match="is being run by"):
            SQLiteStore(str(tmp_path / "app.db")).restore(tmp_path / "b.db")
    finally:
        gate.set()
        running.join(30)
