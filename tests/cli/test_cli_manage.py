"""`durable fork`, `export`, `import`, `diff`, `delete` and `prune`, and the CLI's answers to bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest


def test_fork_with_override_replays_the_prefix_and_runs_the_tail(cli: Any) -> None:
    """A fork keeps the keys before --at (an override replacing one) and the resumed fork runs the rest."""
    assert cli.seed("flows.pipeline.invoke(3, thread_id='p')").returncode == 0
    cli.calls()
    assert cli("fork", "p", "--at", "2", "--new-thread", "p-fixed", "--override", "1=100").stdout == "p-fixed\n"
    forked = cli("show", "p-fixed", "--json").json
    assert forked["status"] == "failed" and "forked from thread 'p'" in forked["error_text"]
    assert [(e["key"], e["result"]) for e in forked["entries"]] == [("0", 6), ("1", 100)]

    assert cli("resume", "flows:pipeline", "p-fixed", "--json").json["output"] == {"a": 6, "b": 100, "sum": 106}
    assert cli.calls() == ["add(6, 100)"]  # keys 0 and 1 replayed from the journal; only the tail ran
    journal = cli("show", "p-fixed", "--json").json["entries"]
    assert [(e["key"], e["task"], e["result"]) for e in journal] == [
        ("0", "double", 6),
        ("1", "double", 100),
        ("2", "add", 106),
    ]
    assert cli("show", "p", "--json").json["output"] == {"a": 6, "b": 12, "sum": 18}  # the original is untouched

    auto = cli("fork", "p", "--at", "0", "--json").json
    assert auto["thread_id"].startswith("p-fork-") and auto["forked_from"] == "p"

    diffs = cli("diff", "p", "p-fixed", "--json").json
    assert [d["key"] for d in diffs] == ["1", "2"] and diffs[0]["left"]["task"] == "double"
    assert diffs[0]["left"]["attempt"] == 1 and diffs[0]["right"]["attempt"] == 2
    table = cli("diff", "p", "p-fixed").stdout.splitlines()
    assert table[0].split() == ["KEY", "LEFT", "RIGHT"] and table[1].startswith("1  ")
    assert cli("diff", "p", "p").stdout == "no differences\n"

    bad = cli("fork", "p", "--at", "2", "--override", "1=oops", code=2)
    assert "argument --override" in bad.stderr and "not JSON" in bad.stderr
    assert "KEY=JSON" in cli("fork", "p", "--at", "2", "--override", "novalue", code=2).stderr
    assert "keeps no recorded call" in cli("fork", "p", "--at", "1", "--override", "1=5", code=1).stderr
    assert "exists" in cli("fork", "p", "--at", "1", "--new-thread", "p-fixed", code=1).stderr
    assert "has no journal" in cli("fork", "ghost", "--at", "1", code=1).stderr
    assert "required: --at" in cli("fork", "p", code=2).stderr


@pytest.fixture(params=["postgres", "redis"])
def server_url(request: pytest.FixtureRequest) -> str:
    """A journal URL on a server, empty: a Postgres schema or a Redis key prefix of the test's own."""
    if request.param == "postgres":
        dsn, schema = request.getfixturevalue("pg_schema")
        return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    url, prefix = request.getfixturevalue("redis_prefix")
    return f"{url}?prefix={prefix}"


def test_export_import_resume_across_sqlite_and_a_server(cli: Any, server_url: str) -> None:
    """A run that crashed on SQLite is exported, imported into Postgres or Redis and finished there, and back."""
    pg = server_url
    assert cli.seed("flows.pipeline.invoke(4, thread_id='c1')", CRASH_IN_ADD="1").returncode == 3
    assert cli.seed("flows.pipeline.invoke(1, thread_id='d1'); flows.ask.invoke(2, thread_id='q1')").returncode == 0
    cli.calls()

    assert cli("export", "c1", "-o", "c1.json").stdout == "exported 1 thread to c1.json\n"
    bundle = json.loads((cli.cwd / "c1.json").read_text())
    assert (bundle["format"], bundle["thread_id"], bundle["runs"][0]["status"]) == ("durable.thread", "c1", "running")
    assert cli("import", "c1.json", "--url", pg).stdout == "imported c1\n"
    imported = cli("show", "c1", "--url", pg, "--json").json  # it lands resumable by hand: no worker takes it
    assert imported["status"] == "failed" and "imported from a bundle while running" in imported["error_text"]

    done = cli("resume", "flows:pipeline", "c1", "--url", pg, "--json").json  # the run goes to --url's store
    assert done["output"] == {"a": 8, "b": 16, "sum": 24} and cli.calls() == ["add(8, 16)"]
    assert cli("show", "c1", "--url", pg, "--json").json["status"] == "completed"
    assert cli("show", "c1", "--json").json["status"] == "running"  # the SQLite original still is

    # Several threads: one document, read back from stdin; the paused one answers on the server ($DURABLE_URL).
    many = cli("export", "d1", "q1").stdout
    assert [b["thread_id"] for b in json.loads(many)["threads"]] == ["d1", "q1"]
    assert cli("import", "-", "--url", pg, "--json", stdin=many).json == {"imported": ["d1", "q1"], "failed": []}
    assert cli("resume", "flows:ask", "q1", "--resume-json", '"no"', DURABLE_URL=pg).stdout == '"2: no"\n'
    assert cli("interrupts", "--json").json[0]["thread_id"] == "q1"  # still pending on SQLite

    # And back: the server -> a fresh SQLite file; the finished thread reads the same, and diffs as equal.
    cli("export", "c1", "d1", "q1", "--url", pg, "-o", "back.json")
    assert cli("import", "back.json", "--url", "sqlite:///copy.db").stdout.splitlines() == [
        "imported c1", "imported d1", "imported q1",
    ]  # fmt: skip
    assert cli("show", "q1", "--url", "sqlite:///copy.db", "--json").json["output"] == "2: no"
    assert cli("diff", "c1", "--file", "c1.json", "--url", "sqlite:///copy.db", "--json").json != []
    cli("export", "d1", "-o", "d1.json")
    assert cli("diff", "--file", "d1.json", "d1", "--url", pg).stdout == "no differences\n"

    again = cli("import", "back.json", "--url", pg, "--json", code=1)  # they exist: each is reported
    assert again.json["imported"] == [] and len(again.json["failed"]) == 3
    assert "durable import: 'c1': thread 'c1' already exists" in again.stderr


def test_delete_and_prune(cli: Any) -> None:
    """Prune removes finished threads only (its dry run lists them first); delete reports unknown threads."""
    seeded = cli.seed(
        """
        flows.pipeline.invoke(1, thread_id="done1"); flows.pipeline.invoke(2, thread_id="done2")
        flows.ask.invoke(3, thread_id="paused")
        try:
            flows.failing.invoke(4, thread_id="broken")
        except ValueError:
            pass
        """
    )
    assert seeded.returncode == 0, seeded.stderr
    assert cli.seed("flows.pipeline.invoke(5, thread_id='crashed')", CRASH_IN_ADD="1").returncode == 3

    assert cli("prune", "--older-than", "30d", "--json").json["pruned"] == 0
    dry = cli("prune", "--older-than", "0s", "--dry-run", "--json").json
    assert sorted(t["thread_id"] for t in dry["would_prune"]) == ["done1", "done2"]
    plain = cli("prune", "--older-than", "0s", "--dry-run", "--status", "completed", "--status", "failed").stdout
    assert plain.splitlines()[-1] == "would prune 3 threads (dry run: nothing deleted)"
    assert len(cli("threads", "--json").json["threads"]) == 5

    assert cli("prune", "--older-than", "0s").stdout == "pruned 2 threads\n"
    left = {t["thread_id"] for t in cli("threads", "--json").json["threads"]}
    assert left == {"paused", "broken", "crashed"}
    assert cli("prune", "--older-than", "0s", "--status", "failed", "--json").json["pruned"] == 1
    assert {t["thread_id"] for t in cli("threads", "--json").json["threads"]} == {"paused", "crashed"}

    assert "argument --older-than: 'soon'" in cli("prune", "--older-than", "soon", code=2).stderr
    assert "invalid choice" in cli("prune", "--older-than", "1d", "--status", "running", code=2).stderr

    gone = cli("delete", "paused", "ghost", "--json", code=1)
    assert gone.json == {"deleted": ["paused"], "missing": ["ghost"], "failed": []}
    assert gone.stderr == "durable delete: no thread 'ghost' in this store\n"
    # The crashed run's lease outlives its process, but a dead owner on this machine does not stop a delete
    # (as it would not stop a resume).
    assert cli("delete", "crashed").stdout == "deleted crashed\n"
    assert cli("threads").stdout == "no threads match\n"


def test_bad_input_exits_with_a_message(cli: Any) -> None:
    """Wrong stores, files and arguments: exit 1 (or 2 for usage) with a line naming what is wrong."""
    for url in ("flows.db", ""):
        bad = cli("threads", "--url", url, code=1)
        assert bad.stderr.startswith("durable threads: checkpointer URL") and "unknown scheme" in bad.stderr
    assert "unknown scheme" in cli("show", "x", code=1, DURABLE_URL="nope://x").stderr
    assert (
        cli("import", "missing.json", code=1).stderr
        == "durable import: cannot read 'missing.json': No such file or directory\n"
    )
    (cli.cwd / "bad.json").write_text("{not json")
    assert "'bad.json' is not JSON" in cli("import", "bad.json", code=1).stderr
    (cli.cwd / "other.json").write_text('{"format": "something"}')
    assert "not a durable thread bundle" in cli("import", "other.json", "--json", code=1).stderr
    assert "not JSON" in cli("import", "-", code=1, stdin="").stderr
    missing = cli("export", "ghost", code=2).stderr  # no journal file yet: named, and not created
    assert "no durable journal at" in missing and "flows.db" in missing and not (cli.cwd / "flows.db").exists()
    cli.seed("flows.pipeline.invoke(1, thread_id='p')")
    assert "has no journal" in cli("export", "ghost", code=1).stderr
    assert "cannot write '/nonexistent/x.json'" in cli("export", "p", "-o", "/nonexistent/x.json", code=1).stderr
    assert "give two sides" in cli("diff", "a", code=2).stderr
    assert "invalid choice" in cli("frobnicate", code=2).stderr
    assert "required" in cli("show", code=2).stderr
    assert "--older-than" in cli("prune", code=2).stderr
