"""What `durable` trusts: it never unpickles what no key vouches for, imports land resumable by hand, read-only
commands never create or migrate a journal, and `durable resign` signs a journal or rotates its key."""

from __future__ import annotations

import json
import pickle
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
OLD_KEY, NEW_KEY = "o" * 32, "n" * 32


class Evil:
    """Unpickling this creates the file named by its argument: proof that a value was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def db(cli: Any, name: str = "flows.db") -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(cli.cwd / name))


def plant(cli: Any, thread_id: str, column: str, blob: bytes) -> None:
    """Replace a run value of the thread (and its journal key 0's payload, if any); its stamp becomes NULL."""
    of_thread = "tid = (SELECT tid FROM durable_threads WHERE thread_id = ?)"
    with db(cli) as conn, conn:
        conn.execute(f"UPDATE durable_runs SET stamp = NULL, {column} = ? WHERE {of_thread}", (blob, thread_id))
        conn.execute(f"UPDATE durable_journal SET payload = ? WHERE key = '0' AND {of_thread}", (blob, thread_id))


def seeded(cli: Any, snippet: str, **env: str) -> str:
    """Run ``snippet`` as the application (``flows`` imported); its stdout."""
    done = cli.seed(snippet, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout  # type: ignore[no-any-return]


def stored_values(cli: Any) -> list[bytes]:
    """Every value stored in flows.db: the runs' own values and every journal payload."""
    with db(cli) as conn:
        runs = conn.execute("SELECT input, previous, output, save, error, interrupts FROM durable_runs").fetchall()
        rows = conn.execute("SELECT payload FROM durable_journal").fetchall()
    return [blob for row in runs + rows for blob in row if blob is not None]


def key_id(blob: bytes) -> str | None:
    """The key id a signed value names (``None``: unsigned)."""
    return blob[2 : 2 + blob[1]].decode() if blob[:1] == b"T" else None


# -- stored data never chooses how it is deserialized ------------------------------------------------


def test_a_planted_pickle_is_described_and_never_run(cli: Any) -> None:
    """show and interrupts print a planted pickle's format and size, create no file; --unsafe-unpickle runs it."""
    seeded(cli, "flows.pipeline.invoke(2, thread_id='p'); flows.ask.invoke(3, thread_id='q')", DURABLE_SECRET="")
    marker = cli.cwd / "marker"
    bad = b"P" + pickle.dumps(Evil(marker))
    plant(cli, "p", "output", bad)
    plant(cli, "q", "interrupts", bad)
    described = f"{len(bad):,} bytes"

    shown = cli("show", "p", DURABLE_SECRET="").stdout
    assert "pickle" in shown and described in shown
    pending = cli("interrupts", DURABLE_SECRET="").stdout
    assert "q" in pending and "pickle" in pending and described in pending
    sealed = cli("show", "p", "--json", DURABLE_SECRET="").json["output"]["sealed"]
    assert (sealed["format"], sealed["size"], sealed["why"]) == ("pickle", len(bad), "unsigned-pickle")
    assert not marker.exists()

    cli("show", "p", "--unsafe-unpickle", DURABLE_SECRET="")
    assert marker.exists()


def test_a_signed_journal_needs_its_key(cli: Any) -> None:
    """Without a key the values are sealed and stderr says so; --secret-file reads them; --json shows "sealed"."""
    seeded(cli, "flows.pipeline.invoke(2, thread_id='p')")
    unread = cli("show", "p", DURABLE_SECRET="")
    assert "signed, no key" in unread.stdout
    assert "this journal is signed and no key was given" in unread.stderr
    sealed = cli("show", "p", "--json", DURABLE_SECRET="").json["output"]
    assert sealed["sealed"]["why"] == "signed-no-key" and sealed["sealed"]["format"] == "pickle"

    (cli.cwd / "key.txt").write_text(cli.env["DURABLE_SECRET"] + "\n")
    read = cli("show", "p", "--json", "--secret-file", "key.txt", DURABLE_SECRET="")
    assert read.json["output"] == {"a": 4, "b": 8, "sum": 12} and read.stderr == ""
    assert [e["result"] for e in read.json["entries"]] == [4, 8, 12]


# -- importing a bundle never runs anything --------------------------------------------------------


def test_import_lands_a_running_run_failed_unless_runnable(cli: Any) -> None:
    """A submitted run imports failed (resumable by hand); --runnable keeps it running; a bad field exits 1."""
    seeded(cli, "flows.pipeline.submit(2, thread_id='s')")
    cli("export", "s", "-o", "s.json")

    assert cli("import", "s.json", "--url", "sqlite:///held.db").stdout == "imported s\n"
    held = cli("show", "s", "--url", "sqlite:///held.db", "--json").json
    assert held["status"] == "failed" and "imported" in held["error_text"]
    assert cli("resume", "flows:pipeline", "s", "--url", "sqlite:///held.db", "--json").json["output"]["sum"] == 12

    cli("import", "s.json", "--runnable", "--url", "sqlite:///moved.db")
    assert cli("show", "s", "--url", "sqlite:///moved.db", "--json").json["status"] == "running"

    bundle = json.loads((cli.cwd / "s.json").read_text())
    bundle["runs"][0]["run_id"] = "1"
    (cli.cwd / "bad.json").write_text(json.dumps(bundle))
    bad = cli("import", "bad.json", "--url", "sqlite:///bad.db", code=1)
    assert "runs[0].run_id" in bad.stderr and "malformed" in bad.stderr


# -- read-only commands never create or change a journal ----------------------------------------------

READ_ONLY = {
    "threads": ("threads",),
    "show": ("show", "t"),
    "interrupts": ("interrupts",),
    "export": ("export", "t"),
    "diff": ("diff", "a", "b"),
    "prune-dry-run": ("prune", "--older-than", "1d", "--dry-run"),
}


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_a_read_only_command_never_creates_a_journal(cli: Any, command: str) -> None:
    """A mistyped SQLite path exits 2 naming it, and no file appears."""
    missing = cli(*READ_ONLY[command], "--url", "sqlite:///typo.db", code=2)
    assert "typo.db" in missing.stderr
    assert sorted(p.name for p in cli.cwd.iterdir() if p.name.startswith("typo")) == []


def test_a_read_only_command_never_creates_a_postgres_schema(cli: Any, pg_schema: tuple[str, str]) -> None:
    """show on a Postgres schema that does not exist exits 2 naming it, and the schema is not created."""
    import psycopg

    dsn, schema = pg_schema
    missing = cli("show", "t", "--url", f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}", code=2)
    assert schema in missing.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None


def test_a_read_only_command_never_migrates_an_older_journal(cli: Any) -> None:
    """A schema-4 journal read with `durable threads` is left at version 4, and the command says why."""
    copy = cli.cwd / "copy.db"
    shutil.copyfile(GOLDEN / "v4" / "pickle-completed.db", copy)
    copy.chmod(0o600)
    old = cli("threads", "--url", "sqlite:///copy.db", code=1)
    assert "version 4" in old.stderr and "does not upgrade" in old.stderr
    with db(cli, "copy.db") as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM durable_schema ORDER BY version")] == [1, 2, 3, 4]


# -- durable resign ------------------------------------------------------------------------------------

RESUME = """
from durable import Command, IntegrityError
try:
    print(flows.pipeline.invoke(None, thread_id="p"))
    print(flows.ask.invoke(Command(resume="yes"), thread_id="q"))
except IntegrityError as exc:
    print("IntegrityError:", exc)
"""


def test_resign_signs_an_unsigned_journal_only_when_asked(cli: Any) -> None:
    """A journal written without a key is refused once a key is set; resign needs --sign-unsigned, then it resumes."""
    seeded(cli, "flows.pipeline.invoke(2, thread_id='p'); flows.ask.invoke(3, thread_id='q')", DURABLE_SECRET="")
    cli.calls()
    assert seeded(cli, RESUME).startswith("IntegrityError:")

    refused = cli("resign", code=1)
    assert "--sign-unsigned" in refused.stderr
    assert {key_id(blob) for blob in stored_values(cli)} == {None}  # nothing was signed

    assert cli("resign", "--sign-unsigned").stdout == "re-signed 2 threads\n"
    assert seeded(cli, RESUME) == "{'a': 4, 'b': 8, 'sum': 12}\n3: yes\n"
    assert cli.calls() == []  # replayed from the re-signed journal: no task ran again


def test_resign_rotates_to_a_new_key(cli: Any) -> None:
    """With new=...,old=... every value is re-signed under "new", and the application resumes with "new" alone."""
    old, new, both = f"old={OLD_KEY}", f"new={NEW_KEY}", f"new={NEW_KEY},old={OLD_KEY}"
    seeded(cli, "flows.pipeline.invoke(2, thread_id='p'); flows.ask.invoke(3, thread_id='q')", DURABLE_SECRET=old)
    assert {key_id(blob) for blob in stored_values(cli)} == {"old"}
    assert seeded(cli, RESUME, DURABLE_SECRET=new).startswith("IntegrityError:")

    assert cli("resign", DURABLE_SECRET=both).stdout == "re-signed 2 threads\n"
    assert {key_id(blob) for blob in stored_values(cli)} == {"new"}
    assert seeded(cli, RESUME, DURABLE_SECRET=new) == "{'a': 4, 'b': 8, 'sum': 12}\n3: yes\n"


HOLD = '''
"""A run that holds its lease until the file "go" appears."""
import os
import time

from durable import entrypoint, task


@task
def wait_for_go(x):
    open("started", "w").close()
    deadline = time.monotonic() + 50
    while not os.path.exists("go") and time.monotonic() < deadline:
        time.sleep(0.01)
    return x


@entrypoint()
def hold(n):
    return wait_for_go(n).result()
'''


def test_resign_leaves_a_running_thread_alone(cli: Any) -> None:
    """A thread held by a live lease is reported busy and left unsigned; the next resign signs it."""
    seeded(cli, "flows.pipeline.invoke(2, thread_id='p')", DURABLE_SECRET="")
    (cli.cwd / "hold.py").write_text(HOLD)
    running = subprocess.Popen(
        [sys.executable, "-c", "import hold; hold.hold.invoke(1, thread_id='busy')"],
        cwd=cli.cwd, env={**cli.env, "DURABLE_SECRET": ""}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (cli.cwd / "started").exists() and running.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (cli.cwd / "started").exists(), running.communicate(timeout=30)

        busy = cli("resign", "--sign-unsigned", code=1)
        assert "'busy' is running: skipped" in busy.stderr and busy.stdout == "re-signed 1 thread\n"
        with db(cli) as conn:
            (held,) = conn.execute("SELECT r.input FROM durable_runs r JOIN durable_threads t USING (tid) "
                                   "WHERE t.thread_id = 'busy'").fetchone()  # fmt: skip
        assert key_id(held) is None
    finally:
        (cli.cwd / "go").touch()
        _, err = running.communicate(timeout=60)
    assert running.returncode == 0, err

    assert cli("resign", "--sign-unsigned").stdout == "re-signed 2 threads\n"
    assert None not in {key_id(blob) for blob in stored_values(cli)}


def test_resign_does_not_wait_out_a_dead_processs_lease(cli: Any) -> None:
    """A run whose process died on this host is not running: resign signs it at once, and it resumes under the key."""
    assert cli.seed("flows.pipeline.invoke(2, thread_id='c')", CRASH_IN_ADD="1", DURABLE_SECRET="").returncode == 3
    assert cli("resign", "--sign-unsigned").stdout == "re-signed 1 thread\n"
    assert seeded(cli, "print(flows.pipeline.invoke(None, thread_id='c'))") == "{'a': 4, 'b': 8, 'sum': 12}\n"
