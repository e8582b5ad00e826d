"""What the pages and the API show of threads, runs, journal entries and interrupts: plain dicts.

Values come from `durable.Threads`, which never unpickles what no key vouches for: such a value is a
`SealedValue`, shown by its description. Everything here is data; the templates escape it all.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import _cli_format as fmt
from .._peek import SealedError, SealedValue
from ..stores._base import RunRow
from .forms import form_fields

FINISHED = ("completed", "failed")


def pretty(value: Any) -> str:
    """A value as people read it: a string as it is, JSON indented, anything else its repr (never run)."""
    if isinstance(value, SealedError):
        value = value.sealed
    if isinstance(value, SealedValue):
        return f"{value!r}: {value.reason}"
    if isinstance(value, str):
        return value
    shown = fmt.jsonable(value)
    if isinstance(shown, str) and not isinstance(value, str):
        return shown  # its repr: JSON could not carry it
    return json.dumps(shown, indent=2, ensure_ascii=False)


def held_by(s: Any, now: float) -> str:
    """Who holds the run, or when it wakes ("" for nobody)."""
    if s.wake_at is not None and s.status == "running":
        return f"sleeping until {fmt.iso(s.wake_at)}"
    if s.owner:
        left = (s.lease_expires or 0.0) - now
        return f"{s.owner} (lease {fmt.span(left)} left)" if left > 0 else f"{s.owner} (lease expired)"
    return ""


def summary(s: Any, now: float | None = None) -> dict[str, Any]:
    """A `ThreadSummary` (or `ThreadState`) for a table row or a page header."""
    now = time.time() if now is None else now
    took = fmt.span(s.finished_at - s.started_at) if s.finished_at is not None else ""
    return {
        **fmt.summary_json(s), "started": fmt.iso(s.started_at), "finished": fmt.iso(s.finished_at),
        "took": took or f"{fmt.span(max(0.0, now - s.started_at))} so far", "held_by": held_by(s, now),
        "error_line": fmt.first_line(s.error_text), "finished_run": s.status in FINISHED,
    }  # fmt: skip


def interrupt(thread_id: str, i: Any, now: float | None = None) -> dict[str, Any]:
    """A pending interrupt: its question, schema, deadline, and the form that answers it."""
    now = time.time() if now is None else now
    deadline = i.deadline
    schema = i.response_schema
    return {
        "thread_id": thread_id, "id": i.id, "value": fmt.jsonable(i.value), "text": pretty(i.value),
        "response_schema": schema, "deadline": deadline, "deadline_text": fmt.iso(deadline),
        "overdue": deadline is not None and deadline < now, "fields": form_fields(schema),
        "schema_text": json.dumps(schema, indent=2, ensure_ascii=False) if schema is not None else "",
        "errors": list(i.errors),
    }  # fmt: skip


def entry(e: Any) -> dict[str, Any]:
    """A journal entry, with who answered an interrupt and when, and the payload's size when known."""
    answered_at = e.answered_at
    failed = e.error is not None
    return {
        "key": e.key, "task": e.task, "status": e.status, "attempt": e.attempt,
        "started_at": e.started_at, "finished_at": e.finished_at, "duration_ms": round(e.duration * 1000, 3),
        "result": None if failed else fmt.jsonable(e.result), "error": fmt.error_line(e.error) or None,
        "size": e.size, "answered_by": e.answered_by,
        "answered_at": answered_at, "timed_out": e.timed_out,
        # For the page: one line each.
        "started": fmt.iso(e.started_at), "took": fmt.span(e.duration), "answered": fmt.iso(answered_at),
        "preview": fmt.error_cell(e.error) if failed else fmt.preview(e.result, width=120),
    }  # fmt: skip


def run(r: RunRow) -> dict[str, Any]:
    """A run's row without its values (which stay encoded)."""
    return {
        "run_id": r.run_id, "entrypoint": r.entrypoint, "status": r.status, "started_at": r.started_at,
        "finished_at": r.finished_at, "error_text": r.error_text, "recoveries": r.recoveries, "wake_at": r.wake_at,
        "stamp": r.stamp, "started": fmt.iso(r.started_at), "finished": fmt.iso(r.finished_at),
        "error_line": fmt.first_line(r.error_text),
    }  # fmt: skip


def state(st: Any, runs: list[RunRow]) -> dict[str, Any]:
    """A thread's latest run, in full: header, output or error, runs, journal, pending interrupts."""
    now = time.time()
    error = st.error.sealed if isinstance(st.error, SealedError) else None
    return {
        **summary(st, now),
        "output": fmt.jsonable(st.output) if st.status == "completed" else None,
        "output_text": pretty(st.output) if st.status == "completed" else "",
        "error": fmt.error_line(st.error) or None,
        "error_sealed": pretty(error) if error is not None else None,
        "runs": [run(r) for r in runs],
        "entries": [entry(e) for e in st.entries],
        "interrupts": [interrupt(st.thread_id, i, now) for i in st.interrupts],
    }


def for_json(view: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The API's part of a view (the page's display strings left out)."""
    return {k: view[k] for k in fields if k in view}


THREAD_FIELDS = (
    "thread_id", "entrypoint", "status", "phase", "run_id", "started_at", "finished_at", "owner", "lease_expires",
    "wake_at", "recoveries", "error_text",
)  # fmt: skip
STATE_FIELDS = (*THREAD_FIELDS, "output", "error", "runs", "entries", "interrupts")
ENTRY_FIELDS = (
    "key", "task", "status", "attempt", "started_at", "finished_at", "duration_ms", "result", "error", "size",
    "answered_by", "answered_at", "timed_out",
)  # fmt: skip
RUN_FIELDS = (
    "run_id", "entrypoint", "status", "started_at", "finished_at", "error_text", "recoveries", "wake_at", "stamp",
)  # fmt: skip
INTERRUPT_FIELDS = ("thread_id", "id", "value", "response_schema", "deadline", "overdue", "errors")


def state_json(view: dict[str, Any]) -> dict[str, Any]:
    """`state` for the API."""
    out = for_json(view, STATE_FIELDS)
    out["runs"] = [for_json(r, RUN_FIELDS) for r in view["runs"]]
    out["entries"] = [for_json(e, ENTRY_FIELDS) for e in view["entries"]]
    out["interrupts"] = [for_json(i, INTERRUPT_FIELDS) for i in view["interrupts"]]
    return out
