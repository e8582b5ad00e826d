"""What an operator acts on is shown whole: `durable show`'s error (a fork's instruction too), and ids in tables."""

from __future__ import annotations

import io
import sys
import traceback
from typing import Any

import pytest

from durable._cli_format import THREAD_HEADERS, exception_text, fields, first_line, table

ORDERS = """
from durable import entrypoint, task

REASONS = " ".join(f"reason-{i:02d}" for i in range(24))


@task
def charge(order):
    raise ValueError(f"card declined for {order}: {REASONS}; ask the customer for another card\\nthen resume it")


@entrypoint()
def pay(order):
    return charge(order).result()
"""

THREAD = "order-2026-12-06-0001"
REASONS = " ".join(f"reason-{i:02d}" for i in range(24))
FIRST = f"ValueError: card declined for {THREAD}: {REASONS}; ask the customer for another card"


def seed_orders(cli: Any) -> None:
    (cli.cwd / "orders.py").write_text(ORDERS)
    snippet = (
        f"import orders\ntry:\n    orders.pay.invoke({THREAD!r}, thread_id={THREAD!r})\nexcept ValueError:\n    pass"
    )
    assert cli.seed(snippet).returncode == 0


def error_lines(shown: str) -> list[str]:
    """The ``error:`` field of `durable show`'s header, with the lines that continue it."""
    header = shown.split("\n\n", 1)[0].splitlines()
    start = next(i for i, line in enumerate(header) if line.startswith("error:"))
    return [header[start], *(line for line in header[start + 1 :] if line.startswith(" "))]


def test_show_gives_a_long_error_whole(cli: Any) -> None:
    """A 300-character message is printed in full, and its second line indented under the first."""
    assert len(FIRST) > 300
    seed_orders(cli)
    for env in ({}, {"DURABLE_SECRET": ""}):  # read back with the key; sealed without it (the stored text then)
        lines = error_lines(cli("show", THREAD, **env).stdout)
        assert lines == [f"error:      {FIRST}", "            then resume it"], (env, lines)
    assert cli("show", THREAD, "--json").json["error"] == FIRST  # --json as before: the first line


def test_show_gives_a_forks_instruction_whole(cli: Any) -> None:
    """A fork's header says, in full, which key it was cut at and how to resume it."""
    seed_orders(cli)
    fork = f"{THREAD}-fork-retry-with-another-card"
    assert cli("fork", THREAD, "--at", "0", "--new-thread", fork).stdout == f"{fork}\n"
    assert error_lines(cli("show", fork).stdout) == [
        f"error:      forked from thread {THREAD!r} run #1 at key 0: resume it with invoke(None, thread_id={fork!r})"
    ]


def test_plain_tables_keep_ids_whole(cli: Any) -> None:
    """Off a terminal (and whatever COLUMNS says) ids are never shortened; an error preview may be."""
    seed_orders(cli)
    row = cli("threads", COLUMNS="80").stdout.splitlines()[1]
    assert row.split()[:3] == [THREAD, "pay", "failed"] and row.endswith("...")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("fork", ["", "-fork-0123abcd"])
def test_rich_tables_keep_ids_whole_at_80_columns(fork: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With rich on an 80-column terminal each id stays on one line, whole; the other columns wrap, losing nothing."""
    pytest.importorskip("rich")  # the `cli` extra; not in `dev`
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("COLUMNS", "80")
    ids = [f"order-2026-12-06-{i:04d}" for i in range(1, 4)] + [f"order-2026-12-06-0001{fork}"]
    error = "ValueError: the payment provider refused the card ..."
    rows = [[t, "pay", "failed", "1", "2026-12-06T05:58:11+00:00", "14ms", "", "", error] for t in ids]
    table(THREAD_HEADERS, rows)
    drawn = screen.getvalue().splitlines()
    assert all(len(line) <= 80 for line in drawn) and "…" not in screen.getvalue()
    for thread in ids:
        assert any(f"│ {thread} " in line for line in drawn), (thread, screen.getvalue())


def traceback_of(exc: BaseException) -> str:
    try:
        raise exc
    except BaseException as raised:
        return "".join(traceback.format_exception(raised))


def test_exception_text_reads_a_stored_traceback() -> None:
    """A stored error text gives its exception whole: every line of the message, the last of chained ones,
    an exception group's own line; a text without a traceback is given as it is."""
    multi = traceback_of(ValueError("one\n  two, indented\nthree"))
    assert exception_text(multi) == "ValueError: one\n  two, indented\nthree" and first_line(multi) == "ValueError: one"
    try:
        raise KeyError("inner")
    except KeyError:
        chained = traceback_of(RuntimeError("outer"))
    assert "KeyError" in chained and exception_text(chained) == "RuntimeError: outer"
    if sys.version_info >= (3, 11):
        group = traceback_of(ExceptionGroup("boom", [ValueError("x")]))  # noqa: F821 - 3.11+
        assert exception_text(group) == "ExceptionGroup: boom (1 sub-exception)"
    logged = "WARNING durable: run failed\n" + traceback_of(OSError("disk full"))
    assert first_line(logged) == "OSError: disk full"
    note = "forked from thread 't' run #1 at key 2: resume it with invoke(None, thread_id='t-fork')"
    assert exception_text(note) == note and exception_text(None) == ""


def test_fields_continue_a_value_of_several_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Later lines are indented under the value and `clean`; a plain value keeps a newline escaped."""
    fields([("thread", "a\nb"), ("error", ["ValueError: one", "status: forged\x1b[2J", ""])])
    assert (
        capsys.readouterr().out == "thread: a\\nb\nerror:  ValueError: one\n        status: forged\\x1b[2J\n        \n"
    )
