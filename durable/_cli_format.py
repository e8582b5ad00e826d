"""Output helpers for the ``durable`` operator commands: tables, previews, times, JSON, progress.

Tables are drawn with `rich` only when it is importable *and* stdout is a terminal; pipes, files
and tests get plain aligned text, so output stays greppable and stable. Progress goes to stderr,
and only when stderr is a terminal, so it never mixes into what a script reads from stdout.

Thread ids, names, values and error texts come from the journal, which someone else wrote: every
table cell, ``name: value`` line and error line goes through `clean`, so no control character,
escape sequence or bidi override reaches the terminal (``--json`` output is escaped by `json`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import takewhile
from typing import Any, TextIO

from .errors import ConfigurationError

PREVIEW_WIDTH = 60
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
# Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width marks), lone surrogates
# (which would make the print itself fail) and the Unicode line and paragraph separators.
_UNSAFE = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


# -- parsing ------------------------------------------------------------------------------------------


_SPAN_HELP = "use a duration such as 30s, 30m, 2h, 3d or 1w"
_WHEN_HELP = "use an ISO datetime (2024-05-01T12:00) or an age such as 30m, 2h or 3d"


def parse_span(text: str, what: str) -> float:
    """Seconds from ``30s``, ``30m``, ``2h``, ``3d``, ``1w`` or a bare number of seconds."""
    seconds = _span_seconds(text)
    if seconds is None:
        raise ConfigurationError(f"{what} {text!r}: {_SPAN_HELP}")
    return seconds


def parse_when(text: str, what: str, now: float | None = None) -> float:
    """Seconds since the epoch from an ISO datetime (local time when it has no offset) or an age
    such as ``2h`` (that long before ``now``)."""
    moment = _when_seconds(text, time.time() if now is None else now)
    if moment is None:
        raise ConfigurationError(f"{what} {text!r}: {_WHEN_HELP}")
    return moment


def _span_seconds(text: str) -> float | None:
    match = _SPAN.match(text)
    return None if match is None else float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def _when_seconds(text: str, now: float) -> float | None:
    stripped = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", stripped):
        return float(stripped)  # a bare number: seconds since the epoch, as --json prints times
    if (age := _span_seconds(stripped)) is not None:
        return now - age
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        return None
    return moment.timestamp()  # a naive datetime is read as local time, as the listing prints it


# argparse ``type``s: a malformed value is a usage error (exit 2) that argparse prints as
# "argument --NAME: MESSAGE", so each message quotes the value and says what is accepted.


def span_arg(text: str) -> float:
    """Seconds from a duration (as `parse_span`)."""
    seconds = _span_seconds(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r}: {_SPAN_HELP}")
    return seconds


def when_arg(text: str) -> float:
    """Seconds since the epoch from a moment or an age (as `parse_when`)."""
    moment = _when_seconds(text, time.time())
    if moment is None:
        raise argparse.ArgumentTypeError(f"{text!r}: {_WHEN_HELP}")
    return moment


def whole_arg(least: int, what: str = "a whole number") -> Callable[[str], int]:
    """An integer of ``least`` or more."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = least - 1
        if number < least:
            raise argparse.ArgumentTypeError(f"{text!r}: use {what}, {least} or more")
        return number

    return parse


def seconds_arg(text: str) -> float:
    """A number of seconds, more than 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of seconds, more than 0 (0.5, 2)")
    return seconds


def port_arg(text: str) -> int:
    """A TCP port: 0 (any free one) to 65535."""
    port = whole_arg(0, "a port")(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: use a port, 0 to 65535")
    return port


def key_arg(text: str) -> str:
    """A journal key as `durable show` lists them: ``3``, or ``3.1`` inside a group."""
    if re.fullmatch(r"\d+(\.\d+)*", text.strip()) is None:
        raise argparse.ArgumentTypeError(f"{text!r}: use a journal key as `durable show` lists them, such as 3")
    return text.strip()


def cursor_arg(text: str) -> str:
    """A listing's cursor, checked before the store is opened."""
    from ._admin import _decode_cursor

    try:
        _decode_cursor(text)
    except ConfigurationError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use the cursor the previous page printed (more: durable threads --cursor ...)"
        ) from None
    return text


def json_arg(name: str) -> Any:
    """An argparse ``type`` reading JSON, so a malformed value is a usage error naming the argument."""

    def parse(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name} {text!r} is not JSON ({exc}); quote strings: '\"yes\"'") from None

    return parse


def override_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: use KEY=JSON, such as 3='\"fixed\"' or 2.1=42")
    return key, json_arg(f"the value for key {key!r}")(value)


# -- keys ----------------------------------------------------------------------------------------------


def read_secret(path: str) -> Any:
    """The keyring in a key file (what DURABLE_SECRET would hold; a binary file is one raw key)."""
    from ._codec import keyring, parse_secret

    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the key file {path!r}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return keyring(data)  # raw key bytes
    if not text:
        raise ConfigurationError(f"the key file {path!r} is empty")
    return parse_secret(text, f"the key file {path!r}")


# -- export files ---------------------------------------------------------------------------------------------

MANY_FORMAT = "durable.threads"


def write_private(path: str, text: str) -> None:
    """Write ``text`` to the file ``path``, readable by its owner only (0600 whatever the umask; an existing
    regular file is tightened too): an export holds a journal's contents."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            # Before anything is written. Only a regular file: `-o /dev/null` must not chmod a device.
            if hasattr(os, "fchmod") and stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchmod(fd, 0o600)
            out.write(text)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path!r}: {exc.strerror or exc}") from None


def read_bundles(path: str) -> list[dict[str, Any]]:
    """The thread bundles of an export file (one bundle, or several under ``durable.threads``)."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{path!r} is not JSON ({exc}): give a file `durable export` wrote") from None
    if isinstance(document, dict) and document.get("format") == MANY_FORMAT:
        if document.get("version") != 1 or not isinstance(document.get("threads"), list):
            raise ConfigurationError(f"{path!r}: a {MANY_FORMAT!r} file this durable does not read (version 1)")
        return list(document["threads"])
    return [document]  # one bundle: Threads.import_bundle says what is wrong with it, if anything


# -- formatting ---------------------------------------------------------------------------------------


def iso(ts: float | None) -> str:
    """A timestamp as a local ISO datetime to the second ("" for none)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def span(seconds: float | None) -> str:
    """A duration for people: ``850ms``, ``12.3s``, ``4m05s``, ``2h10m``, ``3d04h``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def clean(text: str) -> str:
    """``text`` safe to print on a terminal: control and format characters (ESC, CR, backspace, newline, DEL,
    C1, bidi overrides, ...) shown as escapes: ``\\n``, ``\\r``, ``\\t``, ``\\x1b``, ``\\u202e``. Idempotent."""
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to escape
    return "".join(_escape(char) if unicodedata.category(char) in _UNSAFE else char for char in text)


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def truncate(text: str, width: int = PREVIEW_WIDTH) -> str:
    """One line of at most ``width`` characters, `clean` (newlines shown as ``\\n``), the cut marked with ``...``."""
    text = clean(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def preview(value: Any, width: int = PREVIEW_WIDTH) -> str:
    """A short repr of a value; a repr that raises is reported rather than crashing a listing. A value the
    tools did not read is shown whole: its reason, type, size and digest are what the operator needs."""
    from ._peek import SealedError, SealedValue

    if isinstance(value, SealedError):
        value = value.sealed
    if isinstance(value, SealedValue):
        return clean(repr(value))
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__ must not take the whole command down
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return truncate(text, width)


def error_line(exc: BaseException | None) -> str:
    """``Type: message`` (first line of the message), as a journal table shows an error."""
    whole = error_message(exc)
    return whole.split("\n", 1)[0]  # "\n" only: a "\r" or "\x0b" is shown by `clean`


def error_message(exc: BaseException | None) -> str:
    """``Type: message`` with the whole message, every line of it, as `durable show` gives a run's error."""
    if exc is None:
        return ""
    message = "\n".join(line.rstrip() for line in str(exc).strip().split("\n"))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


_TRACEBACK = "Traceback (most recent call last):"
_GROUP = "  + Exception Group Traceback (most recent call last):"  # its own lines are marked "  | "


def exception_text(text: str | None) -> str:
    """What a stored error text (or a process's stderr) says was raised: after a traceback's last frame, its
    ``Type: message`` to the end, every line; a text with no traceback, whole."""
    lines = [line.rstrip() for line in (text or "").split("\n")]  # "\n" only, as `error_line`
    starts = [i for i, line in enumerate(lines) if line in (_TRACEBACK, _GROUP)]
    whole = "\n".join(lines).strip()
    if not starts:
        return whole
    rest = lines[starts[-1] + 1 :]
    if lines[starts[-1]] == _GROUP:  # the group's own frames and message; its sub-exceptions follow from "  +-"
        rest = [line[4:] for line in takewhile(lambda line: line.startswith("  | "), rest)]
    # Frames ("  File ...", their source and carets) are indented; the exception is the first line that is not.
    first = next((i for i, line in enumerate(rest) if line and not line[0].isspace()), None)
    return whole if first is None else "\n".join(rest[first:]).strip()


def first_line(text: str | None) -> str:
    """The telling line of a stored error text: a traceback's ``Type: message`` (first line), else the first."""
    return exception_text(text).split("\n", 1)[0].strip()


def jsonable(value: Any) -> Any:
    """The value itself when JSON can carry it unchanged, else its repr (so ``--json`` never fails); a value
    the tools did not read, as ``{"sealed": {format, type, size, sha256, why, reason}}``."""
    from ._peek import SealedValue

    if isinstance(value, SealedValue):
        return value.to_json()
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return preview(value, width=10_000)
    return value


def emit_json(data: Any, out: TextIO | None = None) -> None:
    """One JSON document on stdout (the contract of every ``--json``)."""
    stream = out or sys.stdout
    stream.write(json.dumps(data, indent=2, default=repr) + "\n")


# -- tables ---------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
    """Rows under headers on stdout: a rich table on a terminal with `rich`, aligned plain text otherwise."""
    out = sys.stdout
    if _rich_available() and out.isatty():
        _rich_table(headers, rows, title)
        return
    headers = [clean(h) for h in headers]
    rows = [[clean(cell) for cell in row] for row in rows]
    if title:
        out.write(clean(title) + "\n")
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
    for line in (headers, *rows):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n")


# Columns of ids, which an operator copies into the next command: drawn whole, on one line when they fit.
_ID_COLUMNS = frozenset({"THREAD", "INTERRUPT", "KEY"})
_NARROWEST = 2  # what every other column keeps, at the least, beside the ids (at 0 rich would hide it)


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str | None) -> None:
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    headers = [clean(h) for h in headers]
    rows = [[clean(cell) for cell in row] for row in rows]
    widths = [max(cell_len(cell) for cell in [header, *(row[i] for row in rows)]) for i, header in enumerate(headers)]
    console = Console()
    # On a narrow terminal rich shrinks the columns that wrap and leaves alone those given a width: the ids keep
    # theirs, unless that would leave the others next to nothing. A cell too wide for its column folds onto more
    # lines rather than losing its end behind an ellipsis.
    ids = [i for i, header in enumerate(headers) if header in _ID_COLUMNS]
    room = console.width - (len(headers) + 1) - 2 * len(headers)  # less the borders and each cell's padding
    fixed = room - sum(widths[i] for i in ids) >= _NARROWEST * (len(headers) - len(ids))
    grid = Table(title=Text(clean(title)) if title else None, title_justify="left", header_style="bold")
    for i, header in enumerate(headers):
        grid.add_column(Text(header), width=widths[i] if fixed and i in ids else None, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))  # Text: a value's "[...]" is not rich markup
    console.print(grid)


def fields(pairs: Sequence[tuple[str, str | list[str]]]) -> None:
    """``name: value`` lines, names aligned, empty values left out, both `clean`. A value given as a list of
    lines (an error's message) is shown whole: its later lines indented under the first, so none of them can
    pass for a field of its own."""
    shown = [(clean(k), [clean(line) for line in ([v] if isinstance(v, str) else v)]) for k, v in pairs if v]
    width = max((len(k) for k, _ in shown), default=0)
    for key, (first, *more) in shown:
        sys.stdout.write(f"{(key + ':').ljust(width + 1)} {first}\n")
        for line in more:
            sys.stdout.write(" " * (width + 2) + line + "\n")  # indented even when blank: the header goes on


def fail(command: str, message: object) -> None:
    """The line ``durable COMMAND: MESSAGE`` on stderr, `clean` (a message may quote a thread id or a journal)."""
    print(f"durable {command}: {clean(str(message))}", file=sys.stderr)


# -- progress ---------------------------------------------------------------------------------------------


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Yields ``update(done)``: a progress bar (rich) or a counter line on stderr when it is a terminal,
    else a no-op, so redirected runs and tests see nothing but the result."""
    err = sys.stderr
    if not err.isatty():
        yield lambda done: None
        return
    if _rich_available():
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda done: bar.update(task, completed=done)
        return

    def update(done: int) -> None:
        err.write(f"\r{label}: {done}" + (f"/{total}" if total is not None else ""))
        err.flush()

    try:
        yield update
    finally:
        err.write("\r\033[K")  # clear the counter line: the result follows on stdout
        err.flush()


# -- shaping the library's records ------------------------------------------------------------------------

THREAD_HEADERS = ("THREAD", "ENTRYPOINT", "STATUS", "RUN", "STARTED", "TOOK", "HELD BY / WAKES", "RECOV", "ERROR")


def summary_row(s: Any, now: float) -> list[str]:
    """A `ThreadSummary` (or `ThreadState`) as a row under `THREAD_HEADERS`."""
    if s.finished_at is not None:
        took = span(s.finished_at - s.started_at)
    else:
        took = f"{span(max(0.0, now - s.started_at))} so far"
    if s.wake_at is not None and s.status == "running":
        held = f"sleeping until {iso(s.wake_at)}"
    elif s.owner:
        left = (s.lease_expires or 0.0) - now
        held = f"{s.owner} (lease {span(left)} left)" if left > 0 else f"{s.owner} (lease expired)"
    else:
        held = ""
    return [
        s.thread_id, s.entrypoint, s.phase, str(s.run_id), iso(s.started_at), took, held,
        str(s.recoveries or ""), truncate(first_line(s.error_text)),
    ]  # fmt: skip


def summary_json(s: Any) -> dict[str, Any]:
    """A `ThreadSummary` for ``--json``: its fields, times as seconds since the epoch."""
    return {
        "thread_id": s.thread_id, "entrypoint": s.entrypoint, "status": s.status, "phase": s.phase,
        "run_id": s.run_id,
        "started_at": s.started_at, "finished_at": s.finished_at, "owner": s.owner,
        "lease_expires": s.lease_expires, "wake_at": s.wake_at, "recoveries": s.recoveries,
        "error_text": s.error_text,
    }  # fmt: skip


ENTRY_HEADERS = ("KEY", "TASK", "STATUS", "ATTEMPT", "MS", "RESULT")


def error_cell(exc: BaseException | None) -> str:
    """An error in a table: ``Type: message`` cut to width; one the tools did not read, described whole."""
    from ._peek import SealedError

    return preview(exc) if isinstance(exc, SealedError) else truncate(error_line(exc))


def entry_row(e: Any) -> list[str]:
    """A `JournalEntry` as a row under `ENTRY_HEADERS`: an error as ``Type: message``, else the result's repr;
    an answer says who gave it, or that its deadline did."""
    shown = error_cell(e.error) if e.error is not None else preview(e.result)
    if e.timed_out:
        shown = f"{shown} (timed out)"
    elif e.answered_by is not None:
        shown = f"{shown} (by {e.answered_by})"
    task = e.task if getattr(e, "version", None) is None else f"{e.task} (v{e.version})"
    return [e.key, task, e.status, str(e.attempt), f"{e.duration * 1000:.0f}", shown]


def deadline(when: float | None) -> str:
    """An interrupt's deadline in a table: the time, and "overdue" once it passed ("" for none)."""
    if when is None:
        return ""
    return iso(when) + (" (overdue)" if when <= time.time() else "")


def interrupt_json(i: Any) -> dict[str, Any]:
    """A pending `Interrupt` for ``--json``."""
    return {
        "id": i.id, "value": jsonable(i.value), "response_schema": i.response_schema, "deadline": i.deadline,
        "overdue": i.deadline is not None and i.deadline <= time.time(), "errors": list(i.errors),
    }  # fmt: skip


def _entry_extras(e: Any) -> dict[str, Any]:
    """What some entries have besides the common fields: who answered (an answer), a versioned task's version."""
    if e.status != "answer":
        return {} if getattr(e, "version", None) is None else {"version": e.version}
    return {"answered_by": e.answered_by, "answered_at": e.answered_at, "timed_out": e.timed_out}


def state_json(st: Any) -> dict[str, Any]:
    """A `ThreadState` for ``--json``: values as JSON when they are JSON-able, else their repr."""
    return {
        **summary_json(st),
        "output": jsonable(st.output),
        "error": error_line(st.error) or None,
        "interrupts": [interrupt_json(i) for i in st.interrupts],
        "entries": [
            {
                "key": e.key, "task": e.task, "status": e.status, "attempt": e.attempt,
                "started_at": e.started_at, "finished_at": e.finished_at,
                "duration_ms": round(e.duration * 1000, 3), "result": jsonable(e.result),
                "error": error_line(e.error) or None, "size": e.size, **_entry_extras(e),
            }
            for e in st.entries
        ],
    }  # fmt: skip


def run_error(st: Any) -> list[str]:
    """A run's error for `durable show`, whole, as lines: the exception read back, else what the stored error
    text says was raised (an error the tools did not read, a fork's or a cancel's note saying what to do)."""
    from ._peek import SealedError

    if st.error is not None and not isinstance(st.error, SealedError):
        text = error_message(st.error)
    else:
        text = exception_text(st.error_text) or (preview(st.error) if st.error is not None else "")
    return text.split("\n") if text else []


def state_header(st: Any) -> list[tuple[str, str | list[str]]]:
    """The ``name: value`` lines above a thread's journal."""
    now = time.time()
    row = dict(zip(THREAD_HEADERS, summary_row(st, now), strict=True))
    return [
        ("thread", st.thread_id), ("status", _status(st)), ("entrypoint", st.entrypoint), ("run", str(st.run_id)),
        ("started", iso(st.started_at)), ("finished", iso(st.finished_at)), ("took", row["TOOK"]),
        ("held by", row["HELD BY / WAKES"]), ("recoveries", str(st.recoveries or "")),
        ("output", preview(st.output) if st.status == "completed" else ""),
        ("error", run_error(st)),
    ]  # fmt: skip


def _status(st: Any) -> str:
    """A run's phase, and its stored status where they differ (a crashed run is stored as running)."""
    return st.phase if st.phase == st.status else f"{st.phase} (stored: {st.status})"


def diff_side(side: tuple[str, str, int, str] | None) -> dict[str, Any] | None:
    """One side of a `JournalDiff` for ``--json`` (``None``: the key is absent there)."""
    if side is None:
        return None
    task, status, attempt, digest = side
    return {"task": task, "status": status, "attempt": attempt, "digest": digest}


def diff_cell(side: tuple[str, str, int, str] | None) -> str:
    """One side of a `JournalDiff` in a table."""
    return "(absent)" if side is None else f"{side[0]} {side[1]} #{side[2]} {side[3]}"
