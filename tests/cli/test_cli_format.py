"""The CLI's parsing and formatting helpers, in process."""

from __future__ import annotations

import io
import sys
import time
import unicodedata

import pytest

from durable._cli_format import (
    clean,
    error_line,
    fail,
    fields,
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


# Every character a terminal could act on rather than show: C0 controls, DEL, C1 controls, bidi overrides
# and isolates, zero-width and other format characters, a lone surrogate, the Unicode line separators.
HOSTILE = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0)])) + "\u061c\u200b\u200e\u200f\u2028\u2029"
HOSTILE += "".join(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])) + "\ufeff\U000e0001\ud800"


def test_clean_escapes_every_control_and_format_character() -> None:
    """`clean` shows controls, bidi and format characters as escapes, keeps printable text, and is idempotent."""
    assert clean("a\x1b[2Jb\x1b]0;title\x07c") == "a\\x1b[2Jb\\x1b]0;title\\x07c"
    assert clean("x\ry\x08z\tw\nv") == "x\\ry\\x08z\\tw\\nv"
    assert clean("\x7f\x85\x9b") == "\\x7f\\x85\\x9b"  # DEL and C1 (NEL, CSI)
    assert clean("\u202eevil\u2066\u2069") == "\\u202eevil\\u2066\\u2069"
    assert clean("tag\U000e0041") == "tag\\U000e0041" and clean("\ud800") == "\\ud800"
    escaped = clean(HOSTILE)
    assert escaped.isascii() and escaped.isprintable() and clean(escaped) == escaped
    for char in HOSTILE:
        assert clean(char) != char and clean(char).startswith("\\"), repr(char)
    every = (chr(c) for c in range(0x110000))
    assert all(unicodedata.category(c) not in ("Cc", "Cf") or clean(c) != c for c in every)
    for fine in ("plain [bold]x[/bold] 'q' \\x1b", "café 中文 🙂 ü\u00a0nbsp", ""):
        assert clean(fine) == fine  # a backslash is shown as it is: `clean` never escapes its own output again
    assert truncate("two\nlines\x1b") == clean("two\nlines\x1b") == truncate(clean("two\nlines\x1b"))
    assert preview(_Shouting()) == "<shout \\x1b[31m\\r\\x08\\u202e>"
    # A "\r" does not end an error's line, so it cannot hide the message's start behind a forged one.
    assert truncate(error_line(ValueError("bad\rKeyError: fine\nmore"))) == "ValueError: bad\\rKeyError: fine"
    assert truncate(first_line("Traceback (most recent call last):\nValueError: x\ry\n")) == "ValueError: x\\ry"


class _Shouting:
    def __repr__(self) -> str:
        return "<shout \x1b[31m\r\x08\u202e>"


def test_tables_fields_and_error_lines_are_clean(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Table cells and titles, ``name: value`` lines and error lines never carry a raw control character."""
    table(("K", "V"), [["a\x1b[2J", "\u202ex\ry"]], title="t\x08")
    fields([("thread", "id\x1b]0;pwned\x07"), ("error", "")])
    fail("show", ValueError("thread 'x\x1b[2Jy' has no journal"))
    out, err = capsys.readouterr()
    assert out == "t\\x08\nK         V\na\\x1b[2J  \\u202ex\\ry\nthread: id\\x1b]0;pwned\\x07\n"
    assert err == "durable show: thread 'x\\x1b[2Jy' has no journal\n"

    pytest.importorskip("rich")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("TERM", "dumb")  # rich draws the table but adds no escape sequences of its own
    monkeypatch.setenv("COLUMNS", "200")
    table(("K", "V"), [["a\x1b[2J", "\u202ex\ry\x08"]], title="t\x1b")
    drawn = screen.getvalue()
    assert "│" in drawn and "a\\x1b[2J" in drawn and "\\u202ex\\ry\\x08" in drawn and "t\\x1b" in drawn
    assert not set(drawn) & {"\x1b", "\r", "\x08", "\u202e"}, repr(drawn)
