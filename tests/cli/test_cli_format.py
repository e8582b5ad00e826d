"""The CLI's parsing and formatting helpers, in process."""

from __future__ import annotations

import time

import pytest

from durable._cli_format import (
    error_line,
    first_line,
    jsonable,
    parse_span,
    parse_when,
    preview,
    span,
    table,
    truncate,
)
from durable.errors import ConfigurationError


def test_durations_and_moments() -> None:
    """Ages, ISO datetimes and epoch seconds are read; anything else is a ConfigurationError naming the option."""
    assert [parse_span(t, "--older-than") for t in ("0s", "90", "30m", "2h", "3d", "1w", "1.5h")] == [
        0, 90, 1800, 7200, 259200, 604800, 5400,
    ]  # fmt: skip
    now = time.time()
    assert parse_when("2h", "--since", now=now) == now - 7200
    assert parse_when("1700000000", "--since") == 1700000000.0
    assert parse_when("2024-05-01T12:00:00+00:00", "--since") == 1714564800.0
    for bad in ("soon", "-3d", "2h ago"):
        with pytest.raises(ConfigurationError, match="--since"):
            parse_when(bad, "--since")
    with pytest.raises(ConfigurationError, match="--older-than 'x'"):
        parse_span("x", "--older-than")


def test_previews_and_errors() -> None:
    """Values are shown short and on one line; tracebacks by their last line; JSON falls back to repr."""
    assert preview("a" * 100) == repr("a" * 100)[:57] + "..." and len(preview("a" * 100)) == 60
    assert truncate("two\nlines") == "two\\nlines"  # a str() error text keeps to one line
    assert error_line(ValueError("bad\nmore")) == "ValueError: bad" and error_line(KeyError()) == "KeyError"
    assert first_line("Traceback (most recent call last):\n  File x\nValueError: bad 1\n") == "ValueError: bad 1"
    assert first_line("plain\nsecond") == "plain" and first_line(None) == ""
    assert jsonable({"a": [1, 2]}) == {"a": [1, 2]} and jsonable({1, 2}) == "{1, 2}"
    assert [span(s) for s in (0.0123, 5, 65, 7300, 90000)] == ["12ms", "5.0s", "1m05s", "2h01m", "1d01h"]


def test_plain_table_aligns_columns(capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal the table is plain text: columns padded by two spaces, no trailing blanks."""
    table(("KEY", "VALUE"), [["0", "x"], ["10", "[bold]y[/bold]"]])
    assert capsys.readouterr().out == "KEY  VALUE\n0    x\n10   [bold]y[/bold]\n"
