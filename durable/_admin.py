"""`Threads`: find, inspect, fork, export, import, diff, delete, prune and re-sign the threads of a store.

Nothing here needs the workflow's code, and nothing here lets the journal decide how it is read:
values are shown by the rules of `_peek` (JSON always; a pickle only when its signature verified
under the key given, or with ``unsafe_unpickle=True``; otherwise described, not run). Exports and
imports move the stored bytes as they are: a signed journal stays signed; an import verifies every
value first when a key is given, and lands its thread resumable by hand, never running by itself.
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

from . import _clock
from ._bundle import STATUS_NAMES
from ._bundle import parse as parse_bundle
from ._bundle import to_json as bundle_json
from ._codec import SIGNED, SIGNED_V1, Codec, Keyring, Secret, keyring, new_nonce, unsigned_part
from ._core import latest_rows
from ._drivers import drive
from ._engine import cancel_flow
from ._ids import check_thread_id
from ._interrupts import Interrupt
from ._leases import new_owner, owner_is_dead, retire
from ._peek import ToolReader
from ._phases import PHASES, STORED, Phase
from ._reseal import map_values, resealer, verifier
from ._serde import TAG_JSON, JsonSerializer, PickleSerializer, Serializer
from ._state import ThreadState, read_state
from ._urls import resolve_store
from ._versions import TAG as VERSIONED
from ._versions import peel, stamp
from .errors import ConfigurationError, DurableError, ThreadBusyError, ThreadNotFoundError
from .stores._base import OK, RUN_VALUES, JournalRow, RunRow, RunStatus, Store, ThreadFilter, ThreadRow, ThreadSummary


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
    """The serializer a run's stamp names, for *writing* a value into that run (reads never trust it)."""
    if stamp is not None and stamp.split(" ", 1)[0] == "json":
        return JsonSerializer()
    return PickleSerializer()


@dataclass(frozen=True, slots=True)
class ResignReport:
    """What `Threads.resign` did: the threads re-signed, those skipped while running, those it refused and why."""

    resigned: tuple[str, ...]
    busy: tuple[str, ...]
    failed: Mapping[str, str]


class Threads:
    """Operate on the threads of one store: ``Threads("sqlite:///app.db")``, ``Threads(store)``, or
    ``pipeline.threads`` (limited to that entrypoint's runs).

    ``secret`` checks (and, for forks, imports and `resign`, signs) a signed journal; default
    ``$DURABLE_SECRET``. Values read back are unpickled only when their signature verified under it:
    ``unsafe_unpickle=True`` unpickles unsigned ones too, which runs whatever code they hold (only for
    a journal you trust as you trust your code). Others come back as `durable.SealedValue`.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        secret: Secret | None = None,
        entrypoint: str | None = None,
        unsafe_unpickle: bool = False,
    ):
        self.store = resolve_store(store)
        self._ring: Keyring | None = keyring(secret if secret is not None else self.store.secret)
        self.entrypoint = entrypoint
        self.unsafe_unpickle = unsafe_unpickle
        self.signed_unread = 0  # signed values shown sealed because no key was given (the CLI says so)

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
        phase: Phase | None = None,
    ) -> ThreadPage:
        """Threads by their latest run, newest first: filter by stored status or by ``phase`` (what the run is
        doing now: ``"crashed"``, ``"queued"``, ``"sleeping"``, ``"cancelled"``..., see `ThreadState.phase`),
        entrypoint name and start time (seconds since the epoch: ``since`` inclusive, ``until`` exclusive),
        ``limit`` per page."""
        if status is not None and status not in ("running", "interrupted", "completed", "failed"):
            raise ConfigurationError(f"status={status!r}: use 'running', 'interrupted', 'completed' or 'failed'")
        if phase is not None and phase not in PHASES:
            raise ConfigurationError(f"phase={phase!r}: use one of {', '.join(PHASES)}")
        if phase is not None and status is not None and STORED[phase] != status:
            raise ConfigurationError(f"phase={phase!r} is part of status {STORED[phase]!r}, not {status!r}")
        if limit < 1:
            raise ConfigurationError(f"limit={limit!r}: use 1 or more")
        stored = STORED[phase] if phase is not None else status
        after = _decode_cursor(cursor)
        found: builtins.list[ThreadSummary] = []
        while True:  # a phase is part of a stored status: read that status's threads until the page is full
            where = ThreadFilter(stored, entrypoint or self.entrypoint, since, until, after, limit + 1)
            batch = self.store.list_threads(where)
            found += batch if phase is None else [s for s in batch if s.phase == phase]
            if phase is None or len(found) > limit or len(batch) <= limit:
                break
            after = (batch[-1].started_at, batch[-1].thread_id)
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
        """A thread's latest run (or run ``run_id``) with its journal entries, as `Entrypoint.get_state` gives,
        except that values nothing vouches for come back as `SealedValue` (see the class docstring)."""

        def reader(thread: ThreadRow, run: RunRow) -> ToolReader:
            made = ToolReader(self._ring, thread.thread_id, thread.nonce, run.entrypoint, self.unsafe_unpickle)
            readers.append(made)
            return made

        readers: builtins.list[ToolReader] = []
        try:
            return read_state(self.store, thread_id, reader, run_id)
        finally:
            self.signed_unread += sum(r.signed_unread for r in readers)

    def runs(self, thread_id: str) -> builtins.list[RunRow]:
        """Every run of the thread, oldest first (raw rows: statuses, times, errors; values still encoded)."""
        runs = self.store.list_runs(thread_id)
        if not runs:
            raise ThreadNotFoundError(thread_id)
        return runs

    def interrupts(self, *, limit: int = 1000, overdue: bool = False) -> builtins.list[tuple[str, Interrupt]]:
        """Every pending interrupt of every paused thread: ``(thread_id, Interrupt)``, newest thread first.

        ``overdue=True``: only those whose deadline (``interrupt(..., timeout=)``) has passed and that no worker
        or resume has carried on yet (a worker answers them with their default as soon as it polls).
        """
        pending: builtins.list[tuple[str, Interrupt]] = []
        now = _clock.clock.time()
        for summary in self.all(status="interrupted", limit=min(limit, 500)):
            found = self.state(summary.thread_id).interrupts
            if overdue:
                found = tuple(i for i in found if i.deadline is not None and i.deadline <= now)
            pending += [(summary.thread_id, i) for i in found]
            if len(pending) >= limit:
                break
        return pending[:limit]

    def answer(self, thread_id: str, resume: Any, *, by: str | None = None) -> tuple[str, ...]:
        """Answer a paused thread's interrupts without running it: ``resume`` follows `Command`'s rules (an id map,
        or the answer to the one pending interrupt), ``by`` says who answered. Returns the ids answered.

        Each answer is checked against its question's ``response_schema`` first (`AnswerRejectedError`, nothing
        written), then journaled with who and when, signed when the journal is. The run stays paused but due: a
        worker carries it on at its next poll, as does the application's next ``invoke(None, thread_id=...)``.
        The workflow's code is not needed (the web console answers this way).
        """
        from ._answering import answer_flow
        from ._interrupts import Command

        serde = serializer_for(self._stamp(thread_id, None))
        answered: tuple[str, ...] = drive(
            answer_flow(
                serde, thread_id, Command(resume, by=by), self._ring, self.unsafe_unpickle, self.store.max_result_bytes
            ),
            self.store,
        )
        return answered

    # -- changing -----------------------------------------------------------------------------------

    def cancel(self, thread_id: str) -> bool:
        """`Entrypoint.cancel` without the entrypoint (the error is written with the run's serializer)."""
        serde = serializer_for(self._stamp(thread_id, None))
        return bool(drive(cancel_flow(None, serde, thread_id, self._ring), self.store))

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
        self._take_from_dead(thread_id, dead)
        return self.store.delete_thread(thread_id)

    def _take_from_dead(self, thread_id: str, dead: str) -> None:
        """Take the lease a dead process on this machine left, and let it go (its run stays as it was)."""
        owner = new_owner()
        try:
            self.store.release(self.store.claim(thread_id, owner, dead))
        finally:
            retire(owner)

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

    def resign(
        self,
        thread_ids: Sequence[str] | None = None,
        *,
        sign_unsigned: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ResignReport:
        """Re-sign threads (default: every thread) with this keyring's write key, in the current signature format.

        Each value is checked first, with every key of the keyring, and a thread with a value that
        fails is left as it is (reported in ``failed``). Threads written before thread nonces
        existed get one, after which a version-1 signature is refused there. Unsigned values (a journal
        written before a key was set) are signed only with ``sign_unsigned=True``: that vouches for
        them, so do it on a journal you trust. Running threads are skipped (``busy``): run it again.
        To retire a key, re-sign with a keyring whose write key is the new one, then drop the old key.
        """
        if self._ring is None:
            raise ConfigurationError(
                "resign needs the key to sign with: set DURABLE_SECRET (new key first, then the old ones: "
                "new=...,old=...), or pass secret="
            )
        ids = thread_ids if thread_ids is not None else [t.thread_id for t in self.all()]
        done: builtins.list[str] = []
        busy: builtins.list[str] = []
        failed: dict[str, str] = {}
        for n, thread_id in enumerate(ids, 1):
            try:
                (done if self._resign_one(thread_id, sign_unsigned) else busy).append(thread_id)
            except DurableError as exc:
                failed[thread_id] = str(exc)
            if progress is not None:
                progress(n)
        return ResignReport(tuple(done), tuple(busy), failed)

    def _resign_one(self, thread_id: str, sign_unsigned: bool) -> bool:
        for _ in range(3):
            thread = self.store.get_thread(thread_id)
            if thread is None:
                raise ThreadNotFoundError(thread_id)
            if thread.owner is not None and (thread.lease_expires or 0.0) > time.time():
                if not owner_is_dead(thread.owner):
                    return False
                self._take_from_dead(thread_id, thread.owner)  # as a resume would, without waiting out the lease
                continue
            runs, rows = self._values(thread)
            if not sign_unsigned and _unsigned(runs, rows):
                raise ConfigurationError(
                    f"thread {thread_id!r} has unsigned values (it was journaled before a key was set): re-sign "
                    f"it with sign_unsigned=True (durable resign --sign-unsigned) if you trust this journal"
                )
            nonce = thread.nonce or new_nonce()
            old = Codec(JsonSerializer(), self._ring, thread_id, thread.nonce, "")
            new = old.for_thread(nonce)
            runs, rows = map_values(runs, rows, resealer(old, new, sign_unsigned=sign_unsigned, allow_v1=True,
                                                         what="resign"))  # fmt: skip
            if self.store.rewrite_thread(thread, nonce, runs, rows):
                return True
        return False

    # -- moving -------------------------------------------------------------------------------------

    def export(self, thread_id: str) -> dict[str, Any]:
        """A portable, versioned JSON-ready bundle of the thread: every run and journal row, bytes as stored."""
        thread = self.store.get_thread(thread_id)
        if thread is None or thread.run is None:
            raise ThreadNotFoundError(thread_id)
        runs, rows = self._values(thread)
        return bundle_json(thread_id, thread.nonce, runs, rows)

    def import_bundle(self, bundle: Mapping[str, Any], *, runnable: bool = False) -> str:
        """Create the bundle's thread in this store (`ThreadExistsError` if it has one); returns its id.

        Every field is checked first (a malformed bundle is a `ConfigurationError`), and with a key every
        value is verified (`IntegrityError`): nothing is written unless all of it passes. An unfinished run
        lands failed-and-resumable, so no worker runs it until someone resumes it with
        ``invoke(None, thread_id=...)``; ``runnable=True`` keeps it as it was (a migration between stores).
        """
        thread_id, nonce, runs, rows = parse_bundle(bundle)
        if self._ring is not None:
            # The bundle's slots name the entrypoints of its runs; verification checks those too.
            codec = Codec(JsonSerializer(), self._ring, thread_id, nonce, "")
            map_values(runs, rows, verifier(codec))
        last = runs[-1]
        if not runnable and last.status == "running":
            runs[-1] = replace(
                last, status="failed", wake_at=None, finished_at=time.time(),
                error_text=f"imported from a bundle while running; nothing runs until it is resumed: "
                f"invoke(None, thread_id={thread_id!r}) or durable resume MODULE:ENTRYPOINT {thread_id}",
            )  # fmt: skip
        self.store.import_thread(thread_id, runs, rows, nonce)
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
        calls before ``at``; ``overrides`` replace recorded results by key (``{"3": fixed}``), each in the
        shape of the value it replaces (a versioned task's, as the version that recorded it: a resume upgrades it).
        The new thread's run is failed-and-resumable: ``invoke(None, thread_id=new)`` replays
        the copied prefix and runs the rest with today's code. The original is untouched.
        Every copied value is verified (with the key) and re-signed for the new thread: a value
        that fails its check stops the fork, so a forged row is never laundered into a new thread.
        """
        import uuid

        new_id = check_thread_id(new_thread_id or f"{thread_id}-fork-{uuid.uuid4().hex[:8]}")
        if new_id == thread_id:
            raise ConfigurationError("new_thread_id must differ from the thread being forked")
        cut = _top(at)
        thread = self.store.get_thread(thread_id)
        if thread is None or thread.run is None:
            raise ThreadNotFoundError(thread_id)
        every, journal = self._values(thread)
        runs = [r for r in every if run_id is None or r.run_id <= run_id]
        if not runs or (run_id is not None and runs[-1].run_id != run_id):
            raise ConfigurationError(f"thread {thread_id!r} has no run #{run_id}")
        target = runs[-1]
        latest = latest_rows(row for rid, row in journal if rid == target.run_id and _top(row.key) < cut)
        kept = [(rid, row) for rid, row in journal if rid < target.run_id]
        kept += [(target.run_id, row) for row in sorted(latest.values(), key=lambda r: (_sort_key(r.key), r.attempt))]
        forked = replace(
            target, status="failed", output=None, save=None, error=None, interrupts=None, retry_keys=(),
            error_text=f"forked from thread {thread_id!r} run #{target.run_id} at key {cut}: "
            f"resume it with invoke(None, thread_id={new_id!r})",
            finished_at=time.time(), wake_at=None, recoveries=0,
        )  # fmt: skip
        old = Codec(JsonSerializer(), self._ring, thread_id, thread.nonce, "")
        nonce = new_nonce()
        new = Codec(JsonSerializer(), self._ring, new_id, nonce, "")
        runs, kept = map_values([*runs[:-1], forked], kept,
                                resealer(old, new, sign_unsigned=False, allow_v1=False, what="fork"))  # fmt: skip
        for key, value in (overrides or {}).items():
            recorded = latest.get(key)
            if recorded is None:
                raise ConfigurationError(
                    f"override for key {key!r}: the fork keeps no recorded call there (keys before {cut} are kept: "
                    f"{sorted(latest, key=_sort_key)})"
                )
            # Written in the format the recorded value has, which is what the workflow reads, and as the same
            # version of a versioned task (the override stands in for the value that version recorded).
            inner = unsigned_part(recorded.payload)
            version, inner = peel(inner) if inner[:1] == VERSIONED else (None, inner)
            serde = JsonSerializer() if inner[:1] == TAG_JSON else serializer_for(target.stamp)
            writer = Codec(serde, self._ring, new_id, nonce, target.entrypoint)
            attempt = recorded.attempt + 1
            written = writer.serialize(value, f"the override for key {key!r}")
            if version is not None:
                written = stamp(version, written)
            payload = writer.seal(written, target.run_id, key, recorded.name, attempt, OK, recorded.digest)
            now = time.time()
            kept = [(rid, r) for rid, r in kept if not (rid == target.run_id and r.key == key)]
            kept.append(
                (target.run_id, JournalRow(key, attempt, recorded.name, OK, recorded.digest, payload, now, now))
            )
        self.store.import_thread(new_id, runs, kept, nonce)
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

    def _values(self, thread: ThreadRow) -> tuple[builtins.list[RunRow], builtins.list[tuple[int, JournalRow]]]:
        """Every run of the thread and every journal row, as stored."""
        runs = self.store.list_runs(thread.thread_id)
        rows = [(run.run_id, row) for run in runs for row in self.store.load_journal(thread.tid, run.run_id)]
        return runs, rows

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

    def _latest_rows(self, which: str | Mapping[str, Any]) -> dict[str, tuple[str, str, int, str]]:
        if isinstance(which, str):
            which = self.export(which)
        _, _, runs, rows = parse_bundle(which)
        last = runs[-1].run_id if runs else 0
        latest = latest_rows(row for run_id, row in rows if run_id == last)
        return {
            k: (
                r.name,
                STATUS_NAMES.get(r.status, str(r.status)),
                r.attempt,
                hashlib.sha256(unsigned_part(r.payload)).hexdigest()[:12],
            )
            for k, r in latest.items()
        }


def _unsigned(runs: Sequence[RunRow], rows: Sequence[tuple[int, JournalRow]]) -> bool:
    """Whether any value of these runs and rows is unsigned."""
    blobs = [getattr(run, field) for run in runs for field in RUN_VALUES] + [row.payload for _, row in rows]
    return any(blob is not None and blob[:1] not in (SIGNED, SIGNED_V1) for blob in blobs)


def _top(key: int | str) -> int:
    try:
        return int(str(key).split(".", 1)[0])
    except ValueError:
        raise ConfigurationError(f"at={key!r}: a call-order key, such as 3 or '3'") from None


def _sort_key(key: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in key.split("."))


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
