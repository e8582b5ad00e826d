"""A malformed value on the command line is bad usage: exit 2, and one error line saying what is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from durable._cli import main

WHEN = "use an ISO datetime (2024-05-01T12:00) or an age such as 30m, 2h or 3d"
AGE = "use a duration such as 30s, 30m, 2h, 3d or 1w"
KEY = "use a journal key as `durable show` lists them, such as 3"

BAD = [
    (("threads", "--since", "yesterday"), f"argument --since: 'yesterday': {WHEN}"),
    (("threads", "--until", "soon"), f"argument --until: 'soon': {WHEN}"),
    (("threads", "--since=-2h"), f"argument --since: '-2h': {WHEN}"),
    (("threads", "--limit", "-1"), "argument --limit: '-1': use a whole number, 1 or more"),
    (("threads", "--limit", "0"), "argument --limit: '0': use a whole number, 1 or more"),
    (("threads", "--limit", "ten"), "argument --limit: 'ten': use a whole number, 1 or more"),
    (("threads", "--cursor", "garbage"), "argument --cursor: 'garbage': use the cursor the previous page printed"),
    (("show", "t", "--run", "-1"), "argument --run: '-1': use a run number, 1 or more"),
    (("show", "t", "--run", "0"), "argument --run: '0': use a run number, 1 or more"),
    (("fork", "t", "--at", "x"), f"argument --at: 'x': {KEY}"),
    (("fork", "t", "--at", "-1"), f"argument --at: '-1': {KEY}"),
    (("fork", "t", "--at", "2", "--run", "last"), "argument --run: 'last': use a run number, 1 or more"),
    (("prune", "--older-than", "banana"), f"argument --older-than: 'banana': {AGE}"),
    (("prune", "--older-than=-3d"), f"argument --older-than: '-3d': {AGE}"),
    (("worker", "m", "--concurrency", "0"), "argument --concurrency: '0': use a number of runs, 1 or more"),
    (("worker", "m", "--poll-interval", "-1"), "argument --poll-interval: '-1': use a number of seconds, more than 0"),
    (("worker", "m", "--dead-letter-after", "0"), "argument --dead-letter-after: '0': use a number of dead executors"),
    (("ui", "--port", "70000"), "argument --port: '70000': use a port, 0 to 65535"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_bad_values_exit_2_saying_what_is_accepted(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each malformed value is refused by the parser, before any store is opened, on one line."""
    with pytest.raises(SystemExit) as raised:
        main(list(argv))
    assert raised.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: durable ")
    assert err.splitlines()[-1].startswith(f"durable {argv[0]}: error: {message}"), err


def test_bad_values_leave_the_journal_alone(cli: Any) -> None:
    """Run as an operator runs it: exit code 2, the message on stderr, nothing on stdout, no journal created."""
    done = cli("threads", "--since", "yesterday", code=2)
    assert done.stdout == "" and done.stderr.splitlines()[-1] == f"durable threads: error: {BAD[0][1]}"
    assert cli("prune", "--older-than", "banana", code=2).stderr.splitlines()[-1].endswith(AGE)
    assert not (cli.cwd / "flows.db").exists()  # prune writes: it was stopped before opening the store


def test_good_values_still_pass(cli: Any) -> None:
    """Ages, datetimes, keys and run numbers in the accepted forms reach the commands as before."""
    assert cli.seed("flows.pipeline.invoke(1, thread_id='p')").returncode == 0
    listed = cli("threads", "--json", "--since", "1h", "--until", "2999-01-01T00:00", "--limit", "1").json
    assert [t["thread_id"] for t in listed["threads"]] == ["p"] and listed["next_cursor"] is None
    assert cli("show", "p", "--run", "1", "--json").json["run_id"] == 1
    assert cli("fork", "p", "--at", "2", "--run", "1", "--new-thread", "p2").stdout == "p2\n"
    assert cli("prune", "--older-than", "30d", "--dry-run").stdout.endswith(
        "would prune 0 threads (dry run: nothing deleted)\n"
    )
