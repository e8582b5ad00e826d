"""`Threads`: find, inspect, fork, export, import, diff, delete and prune the threads of a store.

Nothing here needs the workflow's code. A run records the serializer it was
journaled with (its stamp), so values are read with that serializer, and with
the keyring of ``secret`` (or ``$DURABLE_SECRET``) when the journal is signed.
Exports and imports move the stored bytes as they are: a signed journal stays
signed, and nothing is deserialized on the way.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._codec import Codec, Keyring, Secret, keyring
from ._core import latest_rows
from ._engine import cancel_flow, drive
from ._interrupts import Interrupt
from ._leases import new_owner, owner_is_dead, retire
from ._serde import JsonSerializer, PickleSerializer, Serializer
from ._state import ThreadState, read_state
from ._urls import resolve_store
from .errors import ConfigurationError, ThreadBusyError, ThreadNotFoundError
from .stores._base import ANSWER, ERROR, OK, RETRY, JournalRow, RunRow, RunStatus, Store, ThreadFilter, ThreadSummary

BUNDLE_FORMAT = "durable.thread"
BUNDLE_VERSION = 1
_STATUS_NAMES = {OK: "ok", ERROR: "error", ANSWER: "answer", RETRY: "retry"}
_STATUS_CODES = {v: k for k, v in _STATUS_NAMES.items()}
_RUN_BLOBS = ("input", "previous", "output", "save", "error", "interrupts")
# The slot each run-level blob is signed under: (run, key); "*" is the run number for inputs.
_RUN_SLOTS = {
    "input": ("*", "#input"), "output": (None, "#output"), "save": (None, "#save"), "error": (None, "#error"),
    "interrupts": (None, "#interrupts"), "previous": ("prev", "#save"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """One page of `Threads.list`: pass ``next_cursor`` as ``cursor`` for the next (``None``: the last page)."""

    threads: tuple[ThreadSummary, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[ThreadSummary]:
        return iter(self.threads)

    def __len__(self) -> int:
        return len(self.threads)


@dataclass(frozen=True, slots=True)
class JournalDiff:
    """A key whose journal entries differ between two threads (``None``: absent on that side)."""

    key: str
    left: tuple[str, str, int, str] | None  # (task, status, attempt, payload digest)
    right: tuple[str, str, int, str] | None


def serializer_for(stamp: str | None) -> Serializer:
    """The serializer a run's stamp names (runs without a stamp were pickled)."""
    if stamp is not None and stamp.split(" ", 1)[0] == "json":
        return JsonSerializer()
    return PickleSerializer()


class Threads:
    """Operate on the threads of one store: ``Threads("sqlite:///app.db")``, ``Threads(store)``, or
    ``pipeline.threads`` (limited to that entrypoint's runs).

    ``secret`` reads (and, for forks and imports, writes) a signed journal; default ``$DURABLE_SECRET``.
    """

    def __init__(
        self, store: Store | str | None = None, *, secret: Secret | None = None, entrypoint: str | None = None
    ):
        self.store = resolve_store(store)
        self._ring: Keyring | None = keyring(secret if secret is not None else self.store.secret)
        self.entrypoint = entrypoint

    def __repr__(self) -> str:
        return f"Threads({self.store!r})"

    # -- finding and reading ---------------------------------------------------------------------

    def list(
        self,
        *,
        status: RunStatus | None = None,
        entrypoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ThreadPage:
        """Threads by their latest run, newest first: filter by status, entrypoint name and start time
        (seconds since the epoch: ``since`` inclusive, ``until`` exclusive), ``limit`` per page."""
        if status is not None and status not in ("running", "interrupted", "completed", "failed"):
            raise ConfigurationError(f"status={status!r}: use 'running', 'interrupted', 'completed' or 'failed'")
        if limit < 1:
            raise ConfigurationError(f"limit={limit!r}: use 1 or more")
        where = ThreadFilter(status, entrypoint or self.entrypoint, since, until, _decode_cursor(cursor), limit + 1)
        found = self.store.list_threads(where)
        more = len(found) > limit
        page = tuple(found[:limit])
        last = page[-1] if more and page else None
        return ThreadPage(page, _encode_cursor(last.started_at, last.thread_id) if last else None)

    def all(self, **filters: Any) -> Iterator[ThreadSummary]:
        """Every matching thread, page after page (the filters of `list`)."""
        cursor = None
        while True:
            page = self.list(cursor=cursor, **filters)
            yield from page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def state(self, thread_id: str, *, run_id: int | None = None) -> ThreadState:
        """A thread's latest run (or run ``run_id``) with its journal entries, as `Entrypoint.get_state` gives."""
        stamp = self._stamp(thread_id, run_id)
        return read_state(self.store, serializer_for(stamp), self._ring, thread_id, run_id)

    def runs(self, thread_id: str) -> builtins.list[RunRow]:
        """Every run of the thread, oldest first (raw rows: statuses, times, errors; values still encoded)."""
        runs = self.store.list_runs(thread_id)
        if not runs:
            raise ThreadNotFoundError(thread_id)
        return runs

    def interrupts(self, *, limit: int = 1000) -> builtins.list[tuple[str, Interrupt]]:
        """Every pending interrupt of every paused thread: ``(thread_id, Interrupt)``, newest thread first."""
        pending: builtins.list[tuple[str, Interrupt]] = []
        for summary in self.all(status="interrupted", limit=min(limit, 500)):
            pending += [(summary.thread_id, i) for i in self.state(summary.thread_id).interrupts]
            if len(pending) >= limit:
                break
        return pending[:limit]

    # -- changing -----------------------------------------------------------------------------------

    def cancel(self, thread_id: str) -> bool:
        """`Entrypoint.cancel` without the entrypoint (its serializer is read from the run's stamp)."""
        from ._engine import EntrypointSpec

        serde = serializer_for(self._stamp(thread_id, None))
        spec = EntrypointSpec("", _no_body, False, False, serde, "raise")
        return bool(drive(cancel_flow(spec, thread_id, self._ring), self.store))

    def delete(self, thread_id: str) -> bool:
        """Delete the thread, its runs and journal (`ThreadBusyError` while it runs); ``False`` if unknown.

        A lease held by a dead process on this machine does not stop it (as it would not stop a resume).
        """
        try:
            return self.store.delete_thread(thread_id)
        except ThreadBusyError as busy:
            dead = busy.owner
            if dead is None or not owner_is_dead(dead):
                raise
        owner = new_owner()
        try:
            self.store.release(self.store.claim(thread_id, owner, dead))
        finally:
            retire(owner)
        return self.store.delete_thread(thread_id)

    def prune(
        self,
        older_than: float,
        *,
        statuses: Sequence[str] = ("completed",),
        batch: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete threads whose latest run finished more than ``older_than`` seconds ago with one of
        ``statuses``; returns how many. ``progress`` is called with the running total after each batch."""
        if older_than < 0:
            raise ConfigurationError(f"older_than={older_than!r}: a number of seconds, 0 or more")
        bad = set(statuses) - {"completed", "failed"}
        if bad:
            raise ConfigurationError(f"statuses={sorted(bad)}: only finished runs are pruned ('completed', 'failed')")
        cutoff, total = time.time() - older_than, 0
        while gone := self.store.prune(cutoff, tuple(statuses), batch):
            total += len(gone)
            if progress is not None:
                progress(total)
        return total

    # -- moving -------------------------------------------------------------------------------------

    def export(self, thread_id: str) -> dict[str, Any]:
        """A portable, versioned JSON-ready bundle of the thread: every run and journal row, bytes as stored."""
        runs = self.runs(thread_id)
        thread = self.store.get_thread(thread_id)
        assert thread is not None
        rows = [(run.run_id, row) for run in runs for row in self.store.load_journal(thread.tid, run.run_id)]
        return {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "exported_at": time.time(),
            "thread_id": thread_id,
            "runs": [_run_to_json(run) for run in runs],
            "journal": [_row_to_json(run_id, row) for run_id, row in rows],
        }

    def import_bundle(self, bundle: Mapping[str, Any]) -> str:
        """Create the bundle's thread in this store (`ThreadExistsError` if it has one); returns its id.

        An imported unfinished run is resumable here with ``invoke(None, thread_id=...)``.
        """
        thread_id, runs, rows = _parse_bundle(bundle)
        self.store.import_thread(thread_id, runs, rows)
        return thread_id

    def fork(
        self,
        thread_id: str,
        *,
        at: int | str,
        new_thread_id: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        run_id: int | None = None,
    ) -> str:
        """Copy the thread's journal before top-level key ``at`` into a new thread; returns its id.

        The copied run (the latest, or ``run_id``) keeps its input and the results of the
        calls before ``at``; ``overrides`` replace recorded results by key (``{"3": fixed}``).
        The new thread's run is failed-and-resumable: ``invoke(None, thread_id=new)`` replays
        the copied prefix and runs the rest with today's code. The original is untouched.
        """
        import uuid

        new_id = new_thread_id or f"{thread_id}-fork-{uuid.uuid4().hex[:8]}"
        if new_id == thread_id:
            raise ConfigurationError("new_thread_id must differ from the thread being forked")
        cut = _top(at)
        runs = [r for r in self.runs(thread_id) if run_id is None or r.run_id <= run_id]
        if not runs or (run_id is not None and runs[-1].run_id != run_id):
            raise ConfigurationError(f"thread {thread_id!r} has no run #{run_id}")
        target = runs[-1]
        old = Codec(serializer_for(target.stamp), self._ring, thread_id)
        new = Codec(old.serde, self._ring, new_id)
        thread = self.store.get_thread(thread_id)
        assert thread is not None
        recorded_rows = self.store.load_journal(thread.tid, target.run_id)
        latest = latest_rows(row for row in recorded_rows if _top(row.key) < cut)
        kept = [
            row._replace(payload=_reseal(old, new, row.payload, target.run_id, row.key, row.name))
            for row in latest.values()
        ]
        for key, value in (overrides or {}).items():
            recorded = latest.get(key)
            if recorded is None:
                raise ConfigurationError(
                    f"override for key {key!r}: the fork keeps no recorded call there (keys before {cut} are kept: "
                    f"{sorted(latest, key=_sort_key)})"
                )
            payload = new.dump(value, target.run_id, key, recorded.name, f"the override for key {key!r}")
            kept = [r for r in kept if r.key != key]
            now = time.time()
            kept.append(JournalRow(key, recorded.attempt + 1, recorded.name, OK, recorded.digest, payload, now, now))
        copied = [_reseal_run(old, new, r) for r in runs[:-1]]
        forked = _reseal_run(old, new, target)
        forked = replace(
            forked, status="failed", output=None, save=None, error=None, interrupts=None, retry_keys=(),
            error_text=f"forked from thread {thread_id!r} run #{target.run_id} at key {cut}: "
            f"resume it with invoke(None, thread_id={new_id!r})",
            finished_at=time.time(), wake_at=None, recoveries=0,
        )  # fmt: skip
        journal = [(r.run_id, row) for r in copied for row in self._resealed_journal(thread.tid, r, old, new)]
        journal += [(target.run_id, row) for row in sorted(kept, key=lambda r: (_sort_key(r.key), r.attempt))]
        self.store.import_thread(new_id, [*copied, forked], journal)
        return new_id

    def diff(self, left: str | Mapping[str, Any], right: str | Mapping[str, Any]) -> builtins.list[JournalDiff]:
        """Keys whose latest journal entries differ between two threads' latest runs (thread ids or bundles)."""
        a, b = self._latest_rows(left), self._latest_rows(right)
        diffs = []
        for key in sorted(set(a) | set(b), key=_sort_key):
            if a.get(key) != b.get(key):
                diffs.append(JournalDiff(key, a.get(key), b.get(key)))
        return diffs

    # -- helpers ------------------------------------------------------------------------------------

    def _stamp(self, thread_id: str, run_id: int | None) -> str | None:
        thread = self.store.get_thread(thread_id)
        if thread is None or thread.run is None:
            raise ThreadNotFoundError(thread_id)
        if run_id is None or run_id == thread.run.run_id:
            return thread.run.stamp
        for run in self.store.list_runs(thread_id):
            if run.run_id == run_id:
                return run.stamp
        raise ConfigurationError(f"thread {thread_id!r} has no run #{run_id}")

    def _resealed_journal(self, tid: int, run: RunRow, old: Codec, new: Codec) -> builtins.list[JournalRow]:
        return [
            row._replace(payload=_reseal(old, new, row.payload, run.run_id, row.key, row.name))
            for row in self.store.load_journal(tid, run.run_id)
        ]

    def _latest_rows(self, which: str | Mapping[str, Any]) -> dict[str, tuple[str, str, int, str]]:
        if isinstance(which, str):
            which = self.export(which)
        _, runs, rows = _parse_bundle(which)
        last = runs[-1].run_id if runs else 0
        latest = latest_rows(row for run_id, row in rows if run_id == last)
        return {
            k: (
                r.name,
                _STATUS_NAMES.get(r.status, str(r.status)),
                r.attempt,
                hashlib.sha256(_inner(r.payload)).hexdigest()[:12],
            )
            for k, r in latest.items()
        }


def _no_body(_: Any) -> None:  # pragma: no cover - a cancel never runs a body
    raise AssertionError


def _inner(blob: bytes) -> bytes:
    """The serialized value inside a blob, without its signature (which differs between threads)."""
    if blob[:1] == b"S" and len(blob) > 1:
        return blob[34 + blob[1] :]
    return blob


def _top(key: int | str) -> int:
    try:
        return int(str(key).split(".", 1)[0])
    except ValueError:
        raise ConfigurationError(f"at={key!r}: a call-order key, such as 3 or '3'") from None


def _sort_key(key: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in key.split("."))


def _reseal(old: Codec, new: Codec, blob: bytes, run: object, key: str, name: str) -> bytes:
    if old.keyring is None and blob[:1] != b"S":
        return blob
    return new.seal(old.open(blob, run, key, name), run, key, name)


def _reseal_run(old: Codec, new: Codec, run: RunRow) -> RunRow:
    changes: dict[str, Any] = {}
    for field in _RUN_BLOBS:
        blob = getattr(run, field)
        if blob is None:
            continue
        slot_run, key = _RUN_SLOTS[field]
        where = run.run_id - 1 if slot_run == "prev" else (slot_run or run.run_id)
        changes[field] = _reseal(old, new, blob, where, key, "")
    return replace(run, **changes)


def _encode_cursor(started_at: float, thread_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([started_at, thread_id]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    try:
        started_at, thread_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(thread_id, str):
            raise TypeError(thread_id)
        return float(started_at), thread_id
    except (ValueError, TypeError, binascii.Error):
        raise ConfigurationError(f"cursor={cursor!r} is not a cursor a listing returned") from None


def _b64(blob: bytes | None) -> str | None:
    return None if blob is None else base64.b64encode(blob).decode()


def _unb64(text: Any, what: str) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode(str(text).encode(), validate=True)
    except (ValueError, binascii.Error):
        raise ConfigurationError(f"the bundle's {what} is not base64") from None


def _run_to_json(run: RunRow) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run_id": run.run_id, "entrypoint": run.entrypoint, "status": run.status, "started_at": run.started_at,
        "finished_at": run.finished_at, "error_text": run.error_text, "retry_keys": list(run.retry_keys),
        "stamp": run.stamp, "recoveries": run.recoveries, "wake_at": run.wake_at,
    }  # fmt: skip
    for field in _RUN_BLOBS:
        data[field] = _b64(getattr(run, field))
    return data


def _row_to_json(run_id: int, row: JournalRow) -> dict[str, Any]:
    return {
        "run_id": run_id, "key": row.key, "attempt": row.attempt, "task": row.name,
        "status": _STATUS_NAMES.get(row.status, str(row.status)), "digest": _b64(row.digest),
        "payload": _b64(row.payload), "started_at": row.started_at, "finished_at": row.finished_at,
    }  # fmt: skip


def _parse_bundle(bundle: Mapping[str, Any]) -> tuple[str, list[RunRow], list[tuple[int, JournalRow]]]:
    """Validate a bundle and turn it into rows, or raise `ConfigurationError` saying what is wrong."""
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        raise ConfigurationError(f"not a durable thread bundle (its 'format' must be {BUNDLE_FORMAT!r})")
    version = bundle.get("version")
    if version != BUNDLE_VERSION:
        raise ConfigurationError(
            f"bundle version {version!r} is not one this durable reads ({BUNDLE_VERSION}): upgrade durable-exec"
        )
    try:
        thread_id = str(bundle["thread_id"])
        runs = [
            RunRow(
                run_id=int(r["run_id"]), entrypoint=str(r["entrypoint"]), status=r["status"],
                input=_unb64(r["input"], "run input") or b"", previous=_unb64(r.get("previous"), "previous"),
                started_at=float(r["started_at"]), output=_unb64(r.get("output"), "output"),
                save=_unb64(r.get("save"), "save"), error=_unb64(r.get("error"), "error"),
                error_text=r.get("error_text"), retry_keys=tuple(r.get("retry_keys") or ()),
                finished_at=r.get("finished_at"), interrupts=_unb64(r.get("interrupts"), "interrupts"),
                stamp=r.get("stamp"), recoveries=int(r.get("recoveries") or 0), wake_at=r.get("wake_at"),
            )
            for r in bundle["runs"]
        ]  # fmt: skip
        rows = [
            (int(j["run_id"]), JournalRow(
                str(j["key"]), int(j["attempt"]), str(j["task"]), _STATUS_CODES[j["status"]],
                _unb64(j.get("digest"), "digest"), _unb64(j["payload"], "payload") or b"",
                float(j["started_at"]), float(j["finished_at"]),
            ))
            for j in bundle["journal"]
        ]  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"the bundle is malformed ({type(exc).__name__}: {exc}); nothing was imported"
        ) from None
    if not runs:
        raise ConfigurationError("the bundle has no runs; nothing was imported")
    if any(r.status not in ("running", "interrupted", "completed", "failed") for r in runs):
        raise ConfigurationError("the bundle has a run with an unknown status; nothing was imported")
    known = {r.run_id for r in runs}
    if any(run_id not in known for run_id, _ in rows):
        raise ConfigurationError("the bundle has journal rows of a run it does not contain; nothing was imported")
    return thread_id, sorted(runs, key=lambda r: r.run_id), rows
