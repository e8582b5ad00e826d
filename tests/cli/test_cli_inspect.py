"""`durable threads`, `show`, `interrupts`, `resume` and `cancel`, run as an operator runs them."""

from __future__ import annotations

from typing import Any

SEED = """
for i in range(5):
    flows.pipeline.invoke(i, thread_id=f"p{i}")
flows.ask.invoke(7, thread_id="q1")
try:
    flows.failing.invoke(1, thread_id="f1")
except ValueError:
    pass
"""


def test_threads_lists_filters_and_pages(cli: Any) -> None:
    """Every thread is listed once across pages; the filters narrow; the plain table names each column."""
    assert cli.seed(SEED).returncode == 0
    listed = cli("threads", "--json").json
    assert {t["thread_id"] for t in listed["threads"]} == {"p0", "p1", "p2", "p3", "p4", "q1", "f1"}
    assert listed["next_cursor"] is None
    by_id = {t["thread_id"]: t for t in listed["threads"]}
    assert (by_id["q1"]["status"], by_id["f1"]["status"], by_id["p3"]["status"]) == (
        "interrupted",
        "failed",
        "completed",
    )
    assert "ValueError: bad input 1" in by_id["f1"]["error_text"]

    seen, cursor, pages = [], None, 0
    while True:
        page = cli("threads", "--json", "--limit", "3", *(["--cursor", cursor] if cursor else [])).json
        seen += [t["thread_id"] for t in page["threads"]]
        pages, cursor = pages + 1, page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(by_id)

    assert [t["thread_id"] for t in cli("threads", "--json", "--status", "failed").json["threads"]] == ["f1"]
    assert [t["thread_id"] for t in cli("threads", "--json", "--entrypoint", "ask").json["threads"]] == ["q1"]
    assert len(cli("threads", "--json", "--since", "1h").json["threads"]) == 7
    assert cli("threads", "--json", "--until", "1h").json["threads"] == []
    assert len(cli("threads", "--json", "--since", "2000-01-01T00:00", "--until", "2999-01-01").json["threads"]) == 7

    plain = cli("threads", "--limit", "2").stdout
    header, *rows = plain.splitlines()
    assert header.split()[:5] == ["THREAD", "ENTRYPOINT", "STATUS", "RUN", "STARTED"]
    assert rows[-1].startswith("more: durable threads --cursor ")
    failed = cli("threads", "--status", "failed").stdout.splitlines()[1]
    assert failed.split()[:3] == ["f1", "failing", "failed"] and failed.endswith("ValueError: bad input 1")

    bad = cli("threads", "--since", "yesterday", code=2)  # bad usage (test_cli_usage has every such value)
    assert bad.stderr.splitlines()[-1].startswith("durable threads: error: argument --since: 'yesterday': use ")
    assert "argument --cursor: 'nonsense'" in cli("threads", "--cursor", "nonsense", code=2).stderr
    assert "argument --limit: '0'" in cli("threads", "--limit", "0", code=2).stderr
    assert "invalid choice" in cli("threads", "--status", "done", code=2).stderr


def test_show_prints_header_journal_and_interrupts(cli: Any) -> None:
    """`show` gives the journal with results and errors; an unknown thread or run exits 1."""
    assert cli.seed(SEED).returncode == 0
    state = cli("show", "p2", "--json").json
    assert (state["status"], state["entrypoint"], state["run_id"], state["output"]) == (
        "completed", "pipeline", 1, {"a": 4, "b": 8, "sum": 12},
    )  # fmt: skip
    assert [(e["key"], e["task"], e["status"], e["result"]) for e in state["entries"]] == [
        ("0", "double", "ok", 4), ("1", "double", "ok", 8), ("2", "add", "ok", 12),
    ]  # fmt: skip
    assert all(e["duration_ms"] >= 0 and e["attempt"] == 1 for e in state["entries"])

    failed = cli("show", "f1", "--json").json
    assert failed["error"] == "ValueError: bad input 1"
    assert failed["entries"][0]["error"] == "ValueError: bad input 1" and failed["entries"][0]["result"] is None

    plain = cli("show", "p2").stdout
    assert "status:     completed" in plain and "output:     {'a': 4, 'b': 8, 'sum': 12}" in plain
    journal = plain.split("journal\n", 1)[1].splitlines()
    assert journal[0].split() == ["KEY", "TASK", "STATUS", "ATTEMPT", "MS", "RESULT"]
    assert journal[3].split()[:3] == ["2", "add", "ok"] and journal[3].split()[-1] == "12"
    assert "ValueError: bad input 1" in cli("show", "f1").stdout

    paused = cli("show", "q1")
    assert "pending" in paused.stdout and "{'question': 'approve 7?'}" in paused.stdout
    assert cli("show", "q1", "--json").json["interrupts"] == [
        {
            "id": "0",
            "value": {"question": "approve 7?"},
            "response_schema": None,
            "deadline": None,
            "overdue": False,
            "errors": [],
        }
    ]

    missing = cli("show", "nope", code=1)
    assert missing.stderr.startswith("durable show: thread 'nope' has no journal") and missing.stdout == ""
    assert "no run #9" in cli("show", "p2", "--run", "9", code=1).stderr
    assert "argument --run: 'x': use a run number, 1 or more" in cli("show", "p2", "--run", "x", code=2).stderr


def test_interrupts_and_resume(cli: Any) -> None:
    """Pending interrupts are listed and answered; a failing run or a bad argument says so and exits non-zero."""
    assert cli.seed(SEED + "flows.ask.invoke(8, thread_id='q2')").returncode == 0
    pending = cli("interrupts", "--json").json
    assert sorted((p["thread_id"], p["id"], p["value"]["question"]) for p in pending) == [
        ("q1", "0", "approve 7?"), ("q2", "0", "approve 8?"),
    ]  # fmt: skip
    lines = cli("interrupts").stdout.splitlines()
    assert lines[0].split() == ["THREAD", "INTERRUPT", "DEADLINE", "VALUE"]
    assert any(line.split()[:2] == ["q1", "0"] and line.endswith("{'question': 'approve 7?'}") for line in lines)

    bad = cli("resume", "flows:ask", "q1", "--resume-json", "yes", code=2)
    assert "--resume-json 'yes' is not JSON" in bad.stderr
    again = cli("resume", "flows:ask", "q1", "--json")  # no answer: still paused, interrupts shown again
    assert again.json["status"] == "interrupted" and again.json["interrupts"][0]["value"]["question"] == "approve 7?"

    assert cli("resume", "flows:ask", "q1", "--resume-json", '"yes"').stdout == '"7: yes"\n'
    assert cli("resume", "flows:ask", "q2", "--resume-json", '{"ok": true}', "--json").json == {
        "thread_id": "q2", "status": "completed", "output": "8: {'ok': True}",
    }  # fmt: skip
    assert cli("interrupts", "--json").json == []
    assert cli("interrupts").stdout == "no pending interrupts\n"
    assert cli("show", "q1", "--json").json["status"] == "completed"

    failed = cli("resume", "flows:failing", "f1", code=1)
    assert failed.stderr == "durable resume: thread 'f1' failed: ValueError: bad input 1\n"
    assert "is not an entrypoint" in cli("resume", "flows:nope", "f1", code=1).stderr
    assert "cannot import 'nowhere'" in cli("resume", "nowhere:flow", "f1", code=1).stderr
    assert "name one" in cli("resume", "flows", "f1", code=1).stderr
    assert "has no journal" in cli("resume", "flows:pipeline", "ghost", code=1).stderr


def test_cancel_and_resume_after_a_crash(cli: Any) -> None:
    """A run whose process died is resumed by `durable resume`, or cancelled by `durable cancel`."""
    crashed = cli.seed(
        "flows.pipeline.invoke(5, thread_id='c1'); flows.pipeline.invoke(6, thread_id='c2')", CRASH_IN_ADD="1"
    )
    assert crashed.returncode == 3
    assert cli("show", "c1", "--json").json["status"] == "running"
    assert cli.calls() == ["double(5)", "double(10)", "add(10, 20)"]

    assert cli("resume", "flows:pipeline", "c1", "--json").json["output"] == {"a": 10, "b": 20, "sum": 30}
    assert cli.calls() == ["add(10, 20)"]  # the journaled prefix replayed; only the unfinished call ran

    cli.seed("flows.pipeline.invoke(6, thread_id='c2')", CRASH_IN_ADD="1")
    assert cli("cancel", "c2", "--json").json == {"thread_id": "c2", "cancelled": True}
    assert cli("show", "c2", "--json").json["status"] != "running"
    assert cli("cancel", "c2").stdout == "nothing to cancel: c2 has no unfinished run\n"
    assert cli("cancel", "ghost", code=1).stderr.startswith("durable cancel: thread 'ghost' has no journal")


def test_answer_by_and_overdue(cli: Any) -> None:
    """`durable answer` journals an answer (with --by) without the code and a worker carries it; `show` says who
    answered; `interrupts --overdue` lists only questions past their deadline; `resume --by` needs an answer."""
    assert cli.seed(SEED).returncode == 0
    late = "from durable import interrupt\nflows.ask.invoke(9, thread_id='q9')\n"
    assert cli.seed(late).returncode == 0
    assert cli("interrupts", "--overdue").stdout == "no overdue interrupts\n"
    out = cli("answer", "q1", "--resume-json", '"ok"', "--by", "dana")
    assert out.stdout == "answered 0 on q1: a worker carries the run on\n"
    assert [p["thread_id"] for p in cli("interrupts", "--json").json] == ["q9"]
    again = cli("answer", "q1", "--resume-json", '"no"', code=1)
    assert "already have an answer waiting" in again.stderr
    assert cli("worker", "flows", "--until-idle").returncode == 0
    shown = cli("show", "q1")
    assert "'ok' (by dana)" in shown.stdout
    entry = cli("show", "q1", "--json").json["entries"][0]
    assert (entry["answered_by"], entry["timed_out"], entry["result"]) == ("dana", False, "ok")
    assert "--by says who answers" in cli("resume", "flows:ask", "q9", "--by", "x", code=2).stderr
    assert cli("answer", "ghost", "--resume-json", "1", code=1).stderr.startswith("durable answer: thread 'ghost'")
