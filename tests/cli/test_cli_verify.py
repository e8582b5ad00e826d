"""`durable verify` and `durable plan`: their exit codes, their text and JSON, and their answers to bad input.

Both dry-run journals against the code importable now: they must never run a task body (``calls.log`` stays
empty) nor write to the journal.
"""

from __future__ import annotations

import hashlib
from typing import Any

PLAN_KEYS = {
    "thread_id", "entrypoint", "status", "outcome", "replayed", "next", "runs", "interrupts", "wake_at", "output",
    "error", "repeats", "held_by", "notes",
}  # fmt: skip
CHECK_KEYS = PLAN_KEYS | {"ok", "skipped", "problem", "detail"}


def call(c: dict[str, Any] | None) -> dict[str, Any] | None:
    """A planned call without its words (``detail``)."""
    return None if c is None else {k: c[k] for k in ("key", "task", "why")}


def error(e: dict[str, Any] | None) -> dict[str, Any] | None:
    """A plan's error without its message."""
    return None if e is None else {k: e[k] for k in ("type", "key")}


GATE = """
from durable import entrypoint, interrupt

SCHEMA = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}


@entrypoint()
def gate(n):
    answer = interrupt({"how much?": n}, id="price", response_schema=SCHEMA)
    return answer["amount"] * n
"""


def rewrite(cli: Any, old: str, new: str) -> None:
    """Deploy a changed ``flows.py`` (the fixture's, with ``old`` replaced)."""
    path = cli.cwd / "flows.py"
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new))


URL = ("--url", "sqlite:///flows.db")  # $DURABLE_URL's file, named
DIVERGE = ("    b = double(a).result()", "    b = add(a, a).result()")  # pipeline's key 1: another task


def seed_all(cli: Any) -> None:
    """A crashed run (in `add`), a paused one, a failed one and a finished one."""
    crashed = cli.seed("flows.pipeline.invoke(4, thread_id='crashed')", CRASH_IN_ADD="1")
    assert crashed.returncode == 3, crashed.stderr
    seeded = cli.seed(
        """
        flows.pipeline.invoke(1, thread_id="done")
        flows.ask.invoke(2, thread_id="paused")
        try:
            flows.failing.invoke(3, thread_id="broken")
        except ValueError:
            pass
        """
    )
    assert seeded.returncode == 0, seeded.stderr
    cli.calls()


def journal_digest(cli: Any) -> str:
    return hashlib.sha256((cli.cwd / "flows.db").read_bytes()).hexdigest()


def test_verify_reports_each_unfinished_thread_and_exits_0_when_all_replay(cli: Any) -> None:
    """Exit 0: one line per unfinished thread (crashed, paused, failed) and a summary; --json the same verdicts.
    Nothing ran, nothing was written."""
    seed_all(cli)
    before = journal_digest(cli)
    text = cli("verify", "flows", *URL).stdout.splitlines()
    assert text[-1] == "3 unfinished threads checked: all replay cleanly."
    lines = {line.split()[1]: line for line in text[:-1]}
    assert set(lines) == {"crashed", "paused", "broken"}  # the finished thread is not checked
    assert all(line.startswith("ok ") for line in lines.values())
    assert "[pipeline, running]" in lines["crashed"] and "runs 'add' at key 2" in lines["crashed"]
    assert "[ask, interrupted]" in lines["paused"] and "waits for an answer" in lines["paused"]
    assert "[failing, failed]" in lines["broken"] and "runs 'boom' at key 0" in lines["broken"]  # retried

    doc = cli("verify", "flows", *URL, "--json").json
    assert set(doc) == {"ok", "threads"} and doc["ok"] is True
    assert all(set(t) == CHECK_KEYS for t in doc["threads"])
    checks = {t["thread_id"]: t for t in doc["threads"]}
    crashed = checks["crashed"]
    assert {k: crashed[k] for k in CHECK_KEYS - {"detail", "next", "runs"}} == {
        "thread_id": "crashed", "entrypoint": "pipeline", "status": "running", "ok": True, "skipped": False,
        "problem": None, "outcome": "runs", "replayed": ["0", "1"], "interrupts": [], "wake_at": None, "error": None,
        "output": None, "repeats": False, "held_by": None, "notes": [],
    }  # fmt: skip
    assert call(crashed["next"]) == {"key": "2", "task": "add", "why": "unrecorded"}
    assert [call(c) for c in crashed["runs"]] == [call(crashed["next"])]
    assert (checks["paused"]["outcome"], checks["paused"]["interrupts"], checks["paused"]["next"]) == (
        "waits", [checks["paused"]["interrupts"][0]], None,
    )  # fmt: skip
    assert (checks["broken"]["outcome"], call(checks["broken"]["next"])) == (
        "runs", {"key": "0", "task": "boom", "why": "failed"},
    )  # fmt: skip

    # Given one entrypoint of three, the store's threads of the other two have no owner in this deploy.
    only = cli("verify", "flows:pipeline", *URL, "--json", code=1).json
    assert {t["thread_id"]: (t["ok"], t["problem"]) for t in only["threads"]} == {
        "crashed": (True, None), "paused": (False, "missing-entrypoint"), "broken": (False, "missing-entrypoint"),
    }  # fmt: skip
    assert cli("verify", "flows:pipeline", "flows:ask", "flows:failing", *URL).stdout.splitlines()[-1] == (
        "3 unfinished threads checked: all replay cleanly."
    )
    assert cli.calls() == [] and journal_digest(cli) == before


def test_verify_exits_1_on_a_divergence_and_on_a_missing_entrypoint(cli: Any) -> None:
    """Code whose calls no longer fit the journal, or that no longer defines an entrypoint: exit 1, problems first."""
    seed_all(cli)
    before = journal_digest(cli)
    original = (cli.cwd / "flows.py").read_text()
    rewrite(cli, *DIVERGE)
    done = cli("verify", "flows", *URL, code=1)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("diverges ") and lines[0].split()[1] == "crashed"
    assert lines[-1] == "3 unfinished threads checked: 1 would not replay cleanly."
    doc = cli("verify", "flows", *URL, "--json", code=1).json
    crashed = doc["threads"][0]
    assert (doc["ok"], crashed["thread_id"], crashed["problem"], crashed["outcome"]) == (
        False, "crashed", "diverges", "diverges",
    )  # fmt: skip
    assert error(crashed["error"]) == {"type": "NonDeterminismError", "key": "1"} and crashed["next"] is None
    assert [t["ok"] for t in doc["threads"]] == [False, True, True]

    (cli.cwd / "flows.py").write_text(original)
    rewrite(cli, "def ask(n):", "def ask_v2(n):")
    doc = cli("verify", "flows", *URL, "--json", code=1).json
    problem = doc["threads"][0]
    assert (problem["thread_id"], problem["problem"], problem["entrypoint"]) == ("paused", "missing-entrypoint", "ask")
    assert "no entrypoint named 'ask'" in problem["detail"] and problem["outcome"] is None
    text = cli("verify", "flows", *URL, code=1).stdout
    assert text.startswith("missing-entrypoint paused  [ask, interrupted]")
    assert cli.calls() == [] and journal_digest(cli) == before


def test_verify_usage_errors_exit_2(cli: Any) -> None:
    """A module that does not import, a target that is no entrypoint, --url with --bundles: exit 2, one line."""
    seed_all(cli)
    bad = cli("verify", "no_such_module", code=2)
    assert bad.stdout == "" and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("durable verify: cannot import 'no_such_module'")
    assert "is not an entrypoint" in cli("verify", "flows:double", code=2).stderr
    assert "defines no @entrypoint" in cli("verify", "json", code=2).stderr
    both = cli("verify", "flows", "--url", "sqlite:///flows.db", "--bundles", "b", code=2)
    assert "not allowed with argument" in both.stderr and both.stdout == ""
    assert "required" in cli("verify", code=2).stderr
    nokey = cli("verify", "flows", "--secret-file", "nope.txt", code=2).stderr
    assert nokey.startswith("durable verify: ") and "'nope.txt'" in nokey and nokey.count("\n") == 1


def test_verify_bundles(cli: Any) -> None:
    """Exported bundles (a directory, or one file) are verified without the store; a missing path is an error."""
    seed_all(cli)
    (cli.cwd / "bundles").mkdir()
    cli("export", "crashed", "-o", "bundles/crashed.json")
    cli("export", "paused", "broken", "-o", "bundles/more.json")
    (cli.cwd / "flows.db").unlink()

    doc = cli("verify", "flows", "--bundles", "bundles", "--json").json
    assert doc["ok"] is True and [t["thread_id"] for t in doc["threads"]] == ["broken", "crashed", "paused"]
    crashed = {t["thread_id"]: t for t in doc["threads"]}["crashed"]
    assert call(crashed["next"]) == {"key": "2", "task": "add", "why": "unrecorded"}
    one = cli("verify", "flows", "--bundles", "bundles/crashed.json").stdout.splitlines()
    assert one[-1] == "1 unfinished thread checked: all replay cleanly." and one[0].split()[:2] == ["ok", "crashed"]

    rewrite(cli, *DIVERGE)
    doc = cli("verify", "flows", "--bundles", "bundles", "--json", code=1).json
    assert [(t["thread_id"], t["problem"]) for t in doc["threads"]] == [
        ("crashed", "diverges"), ("broken", None), ("paused", None),
    ]  # fmt: skip

    gone = cli("verify", "flows", "--bundles", "nowhere", code=None)
    assert gone.returncode in (1, 2) and gone.stdout == ""
    assert "nowhere" in gone.stderr and "no such file or directory" in gone.stderr
    (cli.cwd / "junk.json").write_text("{not json")
    assert "not JSON" in cli("verify", "flows", "--bundles", "junk.json", code=None).stderr
    assert cli.calls() == [] and not (cli.cwd / "flows.db").exists()


def test_verify_secret_file_reads_a_signed_journal(cli: Any) -> None:
    """The journal was signed (DURABLE_SECRET) by code whose entrypoints carry no key: without the key each thread
    is `unreadable` (exit 1); with --secret-file it replays (exit 0)."""
    seed_all(cli)
    (cli.cwd / "key.txt").write_text(cli.env["DURABLE_SECRET"] + "\n")
    doc = cli("verify", "flows", *URL, "--json", code=1, DURABLE_SECRET="").json
    assert doc["ok"] is False and {t["problem"] for t in doc["threads"]} == {"unreadable"}
    assert len(doc["threads"]) == 3 and all(t["outcome"] is None for t in doc["threads"])
    assert cli("verify", "flows", *URL, code=1, DURABLE_SECRET="").stdout.startswith("unreadable ")
    wrong = cli("verify", "flows", *URL, "--json", code=1, DURABLE_SECRET="another-key-0123456789abcdef").json
    assert {t["problem"] for t in wrong["threads"]} == {"unreadable"}

    keyed = cli("verify", "flows", *URL, "--json", "--secret-file", "key.txt", DURABLE_SECRET="").json
    assert keyed["ok"] is True and len(keyed["threads"]) == 3
    plan = cli("plan", "flows:pipeline", "crashed", "--json", "--secret-file", "key.txt", DURABLE_SECRET="").json
    assert plan["next"]["task"] == "add"
    assert cli.calls() == []


def test_plan_text_and_json(cli: Any) -> None:
    """What resuming would do: a crashed run runs its next task, a paused one waits or (answered) finishes, a
    finished one returns its output. Nothing runs and nothing is journaled: the answer stays pending."""
    seed_all(cli)
    before = journal_digest(cli)
    text = cli("plan", "flows:pipeline", "crashed").stdout
    assert text.startswith("crashed [pipeline, running]: replays 2 recorded calls, then runs 'add' at key 2 (")
    assert text.count("\n") == 1
    plan = cli("plan", "flows:pipeline", "crashed", "--json").json
    assert set(plan) == PLAN_KEYS
    assert (plan["thread_id"], plan["entrypoint"], plan["status"], plan["outcome"], plan["replayed"]) == (
        "crashed", "pipeline", "running", "runs", ["0", "1"],
    )  # fmt: skip
    assert set(plan["next"]) == {"key", "task", "why", "detail"}
    assert (plan["next"]["key"], plan["next"]["task"], plan["next"]["why"]) == ("2", "add", "unrecorded")
    assert (plan["error"], plan["held_by"], plan["output"]) == (None, None, None)  # its process is dead

    waits = cli("plan", "flows:ask", "paused", "--json").json
    assert waits["outcome"] == "waits" and len(waits["interrupts"]) == 1
    assert waits["interrupts"][0]["value"] == {"question": "approve 2?"}
    assert cli("plan", "flows:ask", "paused").stdout.startswith("paused [ask, interrupted]: paused: waits for an")
    answered = cli("plan", "flows:ask", "paused", "--resume-json", '"yes"', "--by", "ann", "--json").json
    assert (answered["outcome"], answered["output"], answered["next"]) == ("finishes", "2: yes", None)
    assert (
        "finishes: every call it needs is recorded" in cli("plan", "flows:ask", "paused", "--resume-json", "1").stdout
    )

    done = cli("plan", "flows:pipeline", "done", "--json").json
    assert (done["status"], done["outcome"], done["output"]) == ("completed", "returns", {"a": 2, "b": 4, "sum": 6})
    failed = cli("plan", "flows:failing", "broken", "--json").json  # a failed task is run again
    assert (failed["outcome"], failed["next"]["task"], failed["next"]["why"]) == ("runs", "boom", "failed")

    assert cli.calls() == [] and journal_digest(cli) == before
    assert [i["thread_id"] for i in cli("interrupts", "--json").json] == ["paused"]  # still unanswered


def test_plan_exits_1_when_the_journal_no_longer_fits(cli: Any) -> None:
    seed_all(cli)
    rewrite(cli, *DIVERGE)
    plan = cli("plan", "flows:pipeline", "crashed", "--json", code=1).json
    assert plan["outcome"] == "diverges" and plan["next"] is None and "NonDeterminismError" in plan["error"]["message"]
    assert "diverges" in cli("plan", "flows:pipeline", "crashed", code=1).stdout
    assert cli.calls() == []


def test_plan_bad_input(cli: Any) -> None:
    """--by without an answer: 2. An answer the question's schema refuses, an unknown thread: 1, with a message."""
    seed_all(cli)
    (cli.cwd / "gate.py").write_text(GATE)
    assert cli.seed("import gate; gate.gate.invoke(3, thread_id='g')").returncode == 0

    by = cli("plan", "flows:ask", "paused", "--by", "ann", code=2)
    assert by.stderr == "durable plan: --by says who would answer: give the answer with --resume-json too\n"

    rejected = cli("plan", "gate:gate", "g", "--resume-json", '{"amount": "lots"}', code=1)
    assert rejected.stdout == "" and rejected.stderr.startswith("durable plan: ")
    assert "does not fit the question's response_schema" in rejected.stderr and "amount" in rejected.stderr
    good = cli("plan", "gate:gate", "g", "--resume-json", '{"amount": 5}', "--json").json
    assert (good["outcome"], good["output"]) == ("finishes", 15)
    assert "not JSON" in cli("plan", "gate:gate", "g", "--resume-json", "{oops", code=2).stderr

    ghost = cli("plan", "flows:pipeline", "ghost", code=1)
    assert ghost.stdout == "" and "thread 'ghost' has no journal" in ghost.stderr
    assert "cannot import 'nope'" in cli("plan", "nope:flow", "x", code=2).stderr
    several = cli("plan", "flows", "crashed", code=None)  # a module with 3 entrypoints: name one
    assert several.returncode == 2 and "name one" in several.stderr
    assert "required" in cli("plan", "flows:pipeline", code=2).stderr
    assert cli.calls() == []


def test_verify_does_not_create_a_journal_at_a_mistyped_url(cli: Any) -> None:
    """A CI gate given a wrong path must not pass on an empty journal it created itself (as `plan` refuses)."""
    seed_all(cli)
    done = cli("verify", "flows", "--url", "sqlite:///flwos.db", code=None)
    assert not (cli.cwd / "flwos.db").exists()
    assert done.returncode == 2 and "no durable journal" in done.stderr


def test_verify_checks_each_thread_once_when_entrypoints_share_a_store(cli: Any) -> None:
    """`flows` has three entrypoints journaling to $DURABLE_URL: each unfinished thread is one verdict, not three."""
    seed_all(cli)
    assert cli("verify", "flows").stdout.splitlines()[-1] == "3 unfinished threads checked: all replay cleanly."
