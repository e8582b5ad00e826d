"""Thread bundles: a thread's runs and journal as versioned JSON, bytes as stored, checked field by field on the way in.

A bundle comes from outside (a file, another team), so nothing in it is trusted: every field is
checked for its type and range, unknown fields are refused, and the whole bundle is rejected before
anything is written. Values stay as the stored bytes (base64): a signed journal stays signed, and
nothing is deserialized here. Version 2 carries the thread's nonce; version 1 bundles (no nonce)
still import, as threads from before nonces existed.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._ids import check_thread_id
from .errors import ConfigurationError
from .stores._base import ANSWER, ERROR, OK, RETRY, RUN_VALUES, JournalRow, RunRow

FORMAT = "durable.thread"
VERSION = 2
READS = (1, 2)
STATUS_NAMES = {OK: "ok", ERROR: "error", ANSWER: "answer", RETRY: "retry"}
STATUS_CODES = {v: k for k, v in STATUS_NAMES.items()}
_RUN_STATUSES = ("running", "interrupted", "completed", "failed")
_MAX_INT = 2**31 - 1  # the SQL stores' INTEGER columns
_MAX_TEXT = 1 << 20


class Malformed(ConfigurationError):
    """Raised inside the checks; turned into one `ConfigurationError` naming the field."""


def to_json(
    thread_id: str, nonce: bytes | None, runs: Sequence[RunRow], rows: Sequence[tuple[int, JournalRow]]
) -> dict[str, Any]:
    """The bundle of a thread's runs and journal rows ``(run_id, row)``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": time.time(),
        "thread_id": thread_id,
        "nonce": _b64(nonce),
        "runs": [_run_to_json(run) for run in runs],
        "journal": [_row_to_json(run_id, row) for run_id, row in rows],
    }


def _b64(blob: bytes | None) -> str | None:
    return None if blob is None else base64.b64encode(blob).decode()


def _run_to_json(run: RunRow) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run_id": run.run_id, "entrypoint": run.entrypoint, "status": run.status, "started_at": run.started_at,
        "finished_at": run.finished_at, "error_text": run.error_text, "retry_keys": list(run.retry_keys),
        "stamp": run.stamp, "recoveries": run.recoveries, "wake_at": run.wake_at,
    }  # fmt: skip
    for field in RUN_VALUES:
        data[field] = _b64(getattr(run, field))
    return data


def _row_to_json(run_id: int, row: JournalRow) -> dict[str, Any]:
    return {
        "run_id": run_id, "key": row.key, "attempt": row.attempt, "task": row.name,
        "status": STATUS_NAMES.get(row.status, str(row.status)), "digest": _b64(row.digest),
        "payload": _b64(row.payload), "started_at": row.started_at, "finished_at": row.finished_at,
    }  # fmt: skip


# -- reading: every field checked -------------------------------------------------------------------

Check = Callable[[Any, str], Any]


def _integer(low: int) -> Check:
    def check(value: Any, where: str) -> int:
        if type(value) is not int or not low <= value <= _MAX_INT:
            raise Malformed(f"{where}: expected an integer from {low} to {_MAX_INT}, got {_show(value)}")
        return value

    return check


def _number(value: Any, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise Malformed(f"{where}: expected a time in seconds since the epoch, got {_show(value)}")
    return float(value)


def _text(value: Any, where: str) -> str:
    if type(value) is not str or not value or len(value) > _MAX_TEXT:
        raise Malformed(f"{where}: expected a non-empty string, got {_show(value)}")
    if "\x00" in value:
        raise Malformed(f"{where}: a NUL character is not allowed")
    return value


def _free_text(value: Any, where: str) -> str:
    if type(value) is not str or len(value) > _MAX_TEXT:
        raise Malformed(f"{where}: expected a string, got {_show(value)}")
    return value


def _blob(value: Any, where: str) -> bytes:
    if type(value) is not str:
        raise Malformed(f"{where}: expected base64 text, got {_show(value)}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):
        raise Malformed(f"{where}: not valid base64") from None


def _optional(check: Check) -> Check:
    return lambda value, where: None if value is None else check(value, where)


def _choice(*allowed: str) -> Check:
    def check(value: Any, where: str) -> str:
        if value not in allowed or type(value) is not str:
            raise Malformed(f"{where}: expected one of {', '.join(allowed)}, got {_show(value)}")
        return value

    return check


def _keys(value: Any, where: str) -> tuple[str, ...]:
    if type(value) is not list:
        raise Malformed(f"{where}: expected a list of journal keys, got {_show(value)}")
    return tuple(_text(key, f"{where}[{i}]") for i, key in enumerate(value))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_RUN_FIELDS: dict[str, tuple[Check, bool]] = {  # name: (check, required)
    "run_id": (_integer(1), True), "entrypoint": (_text, True), "status": (_choice(*_RUN_STATUSES), True),
    "started_at": (_number, True), "finished_at": (_optional(_number), False),
    "error_text": (_optional(_free_text), False),
    "retry_keys": (_keys, False), "stamp": (_optional(_text), False), "recoveries": (_integer(0), False),
    "wake_at": (_optional(_number), False), "input": (_blob, True), "previous": (_optional(_blob), False),
    "output": (_optional(_blob), False), "save": (_optional(_blob), False), "error": (_optional(_blob), False),
    "interrupts": (_optional(_blob), False),
}  # fmt: skip
_ROW_FIELDS: dict[str, tuple[Check, bool]] = {
    "run_id": (_integer(1), True), "key": (_text, True), "attempt": (_integer(1), True), "task": (_text, True),
    "status": (_choice(*STATUS_CODES), True), "digest": (_optional(_blob), False), "payload": (_blob, True),
    "started_at": (_number, True), "finished_at": (_number, True),
}  # fmt: skip
_DEFAULTS = {"retry_keys": (), "recoveries": 0}


def _record(data: Any, fields: Mapping[str, tuple[Check, bool]], where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise Malformed(f"{where}: expected an object, got {_show(data)}")
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise Malformed(f"{where}: unknown field(s) {unknown}")
    out: dict[str, Any] = {}
    for name, (check, required) in fields.items():
        if name not in data:
            if required:
                raise Malformed(f"{where}: the field {name!r} is missing")
            out[name] = _DEFAULTS.get(name)
            continue
        out[name] = check(data[name], f"{where}.{name}")
    return out


_TOP_FIELDS = {"format", "version", "exported_at", "thread_id", "nonce", "runs", "journal"}


def parse(bundle: Any) -> tuple[str, bytes | None, list[RunRow], list[tuple[int, JournalRow]]]:
    """A bundle's thread id, nonce, runs and journal rows; `ConfigurationError` saying what is wrong."""
    try:
        return _parse(bundle)
    except Malformed as exc:
        raise ConfigurationError(f"the bundle is malformed: {exc}; nothing was imported") from None


def _parse(bundle: Any) -> tuple[str, bytes | None, list[RunRow], list[tuple[int, JournalRow]]]:
    if not isinstance(bundle, Mapping) or bundle.get("format") != FORMAT:
        raise Malformed(f"not a durable thread bundle (its 'format' must be {FORMAT!r})")
    version = bundle.get("version")
    if version not in READS or type(version) is not int:
        raise Malformed(f"bundle version {_show(version)} is not one this durable reads {READS}: upgrade durable-exec")
    unknown = sorted(str(k) for k in bundle if k not in _TOP_FIELDS or (k == "nonce" and version < 2))
    if unknown:
        raise Malformed(f"unknown field(s) {unknown}")
    try:
        thread_id = check_thread_id(bundle.get("thread_id"))
    except ConfigurationError as exc:
        raise Malformed(f"thread_id: {exc}") from None
    if "exported_at" in bundle:
        _number(bundle["exported_at"], "exported_at")
    nonce = _optional(_blob)(bundle.get("nonce"), "nonce") if version >= 2 else None
    if nonce is not None and not 8 <= len(nonce) <= 64:
        raise Malformed(f"nonce: expected 8 to 64 bytes, got {len(nonce)}")
    raw_runs, raw_rows = bundle.get("runs"), bundle.get("journal")
    if type(raw_runs) is not list or not raw_runs:
        raise Malformed("runs: expected a non-empty list of runs")
    if type(raw_rows) is not list:
        raise Malformed("journal: expected a list of journal rows")
    runs = sorted((_run(r, f"runs[{i}]") for i, r in enumerate(raw_runs)), key=lambda r: r.run_id)
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise Malformed("runs: two runs have the same run_id")
    if any(r.status != "completed" for r in runs[:-1]):
        raise Malformed("runs: only the latest run may be unfinished (a new run starts when the last one completed)")
    rows = [_row(j, f"journal[{i}]") for i, j in enumerate(raw_rows)]
    known = set(ids)
    slots = set()
    for i, (run_id, row) in enumerate(rows):
        if run_id not in known:
            raise Malformed(f"journal[{i}]: a row of run {run_id}, which the bundle does not contain")
        slot = (run_id, row.key, row.attempt)
        if slot in slots:
            raise Malformed(f"journal[{i}]: run {run_id} key {row.key!r} attempt {row.attempt} appears twice")
        slots.add(slot)
    return thread_id, nonce, runs, rows


def _run(data: Any, where: str) -> RunRow:
    r = _record(data, _RUN_FIELDS, where)
    if r["finished_at"] is not None and r["finished_at"] < r["started_at"]:
        raise Malformed(f"{where}.finished_at: before started_at")
    return RunRow(
        run_id=r["run_id"], entrypoint=r["entrypoint"], status=r["status"], input=r["input"], previous=r["previous"],
        started_at=r["started_at"], output=r["output"], save=r["save"], error=r["error"], error_text=r["error_text"],
        retry_keys=r["retry_keys"], finished_at=r["finished_at"], interrupts=r["interrupts"], stamp=r["stamp"],
        recoveries=r["recoveries"], wake_at=r["wake_at"],
    )  # fmt: skip


def _row(data: Any, where: str) -> tuple[int, JournalRow]:
    j = _record(data, _ROW_FIELDS, where)
    if j["finished_at"] < j["started_at"]:
        raise Malformed(f"{where}.finished_at: before started_at")
    row = JournalRow(
        j["key"],
        j["attempt"],
        j["task"],
        STATUS_CODES[j["status"]],
        j["digest"],
        j["payload"],
        j["started_at"],
        j["finished_at"],
    )
    return j["run_id"], row
