"""An in-process store: for tests and for runs that need no persistence across processes."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import LeaseLostError, StoreError, ThreadBusyError, ThreadExistsError
from ._base import (
    KV_SWEEP,
    AsyncSession,
    JournalRow,
    KVRow,
    Lease,
    NewRun,
    RunOutcome,
    RunRow,
    Store,
    ThreadFilter,
    ThreadRow,
    ThreadSummary,
    summary,
)
from ._rules import cancellable, due_to_workers, held_by_another, resumed_by_hand, run_to_start


@dataclass
class _Thread:
    thread_id: str
    tid: int
    owner: str | None = None
    lease_expires: float | None = None
    fence: int = 0
    runs: dict[int, RunRow] = field(default_factory=dict)
    journal: dict[int, list[JournalRow]] = field(default_factory=dict)
    recorded: set[tuple[int, str, int]] = field(default_factory=set)
    last_run: int = 0
    nonce: bytes | None = None


@dataclass(slots=True)
class _KV:
    value: bytes
    created_at: float
    updated_at: float
    expires_at: float | None
    ttl: float | None

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class MemoryStore(Store):
    """Keeps every journal in this process's memory; the same semantics as the durable stores.

    Values are still serialized, so a result that could not be stored in SQLite
    fails here too, and tests on this store say the truth about the others.
    """

    def __init__(self, *, lease_seconds: float = 30.0, secret: Any = None, max_result_bytes: int | None = None) -> None:
        self.lease_seconds = lease_seconds
        self.secret = secret
        self.max_result_bytes = max_result_bytes
        self._lock = threading.Lock()
        self._threads: dict[str, _Thread] = {}
        self._by_tid: dict[int, _Thread] = {}
        self._last_tid = 0
        # Key-value rows: namespace -> key -> row. Both dicts keep insertion order, which is `kv_search`'s.
        self._kv: dict[str, dict[str, _KV]] = {}
        self._kv_puts = 0

    def __repr__(self) -> str:
        return f"MemoryStore(threads={len(self._threads)})"

    def _row(self, t: _Thread) -> ThreadRow:
        run = t.runs.get(t.last_run)
        return ThreadRow(t.thread_id, t.tid, t.owner, t.lease_expires, t.fence, run, t.nonce)

    def _held(self, lease: Lease) -> _Thread:
        t = self._by_tid[lease.tid]
        if t.owner != lease.owner or t.fence != lease.fence:
            raise LeaseLostError(lease.thread_id)
        return t

    def _new(self, thread_id: str, nonce: bytes | None) -> _Thread:
        self._last_tid += 1
        t = _Thread(thread_id, self._last_tid, nonce=nonce)
        self._threads[thread_id] = self._by_tid[self._last_tid] = t
        return t

    def get_thread(self, thread_id: str) -> ThreadRow | None:
        with self._lock:
            t = self._threads.get(thread_id)
            return None if t is None else self._row(t)

    def claim(self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None) -> Lease:
        now = time.time()
        with self._lock:
            t = self._threads.get(thread_id)
            if t is None:
                t = self._new(thread_id, new_run.nonce if new_run is not None else os.urandom(16))
            if held_by_another(t.owner, (t.lease_expires or now) - now, owner, steal_from):
                raise ThreadBusyError(thread_id, t.owner, (t.lease_expires or now) - now)
            t.owner, t.lease_expires, t.fence = owner, now + self.lease_seconds, t.fence + 1
            last = t.runs.get(t.last_run)
            before = self._row(t)
            if resumed_by_hand(last, new_run):
                t.runs[t.last_run] = dataclasses.replace(last, status="running", recoveries=0, wake_at=None)
            number = run_to_start(last, t.nonce, new_run)
            started = number is not None
            if number is not None:
                assert new_run is not None
                run = RunRow(
                    run_id=number,
                    entrypoint=new_run.entrypoint,
                    status="running",
                    input=new_run.input,
                    previous=last.save if last else None,
                    started_at=now,
                    stamp=new_run.stamp,
                )
                t.runs[run.run_id] = run
                t.journal[run.run_id] = []
                t.last_run = run.run_id
            row = (
                self._row(t)
                if started
                else dataclasses.replace(before, owner=owner, lease_expires=t.lease_expires, fence=t.fence)
            )
            return Lease(thread_id, t.tid, owner, t.fence, row, started)

    def cancel_run(self, thread_id: str, run_id: int, outcome: RunOutcome) -> bool:
        with self._lock:
            t = self._threads.get(thread_id)
            run = None if t is None else t.runs.get(t.last_run)
            if t is None or not cancellable(run, run_id):
                return False
            t.runs[run_id] = dataclasses.replace(
                run,
                status=outcome.status,
                error=outcome.error,
                error_text=outcome.error_text,
                wake_at=None,
                finished_at=time.time(),
            )
            t.owner = t.lease_expires = None
            t.fence += 1
            return True

    def reserve(self, owner: str, entrypoints: Sequence[str], limit: int, now: float | None = None) -> list[Lease]:
        due = time.time() if now is None else now
        now = time.time()
        names = set(entrypoints)
        leases: list[Lease] = []
        with self._lock:
            waiting = [
                t
                for t in self._threads.values()
                if (run := t.runs.get(t.last_run)) is not None
                and run.entrypoint in names
                and (t.owner is None or (t.lease_expires or 0.0) <= now)
                and due_to_workers(run, due)
            ]
            waiting.sort(key=lambda t: t.runs[t.last_run].status == "interrupted")  # running runs first, as SQL's
            for t in waiting[: max(limit, 0)]:
                run = t.runs[t.last_run]
                if t.owner is not None:
                    run = t.runs[t.last_run] = dataclasses.replace(run, recoveries=run.recoveries + 1)
                t.owner, t.lease_expires, t.fence = owner, now + self.lease_seconds, t.fence + 1
                leases.append(Lease(t.thread_id, t.tid, owner, t.fence, self._row(t)))
        return leases

    def renew(self, lease: Lease) -> bool:
        with self._lock:
            try:
                t = self._held(lease)
            except LeaseLostError:
                return False
            t.lease_expires = time.time() + self.lease_seconds
            return True

    def release(self, lease: Lease) -> None:
        with self._lock:
            t = self._by_tid[lease.tid]
            if t.owner == lease.owner and t.fence == lease.fence:
                t.owner = t.lease_expires = None

    def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        with self._lock:
            t = self._by_tid.get(tid)
            return [] if t is None else list(t.journal.get(run_id, ()))

    def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        with self._lock:
            t = self._held(lease)
            recorded = t.recorded
            if len(rows) == 1:
                slot = (run_id, rows[0].key, rows[0].attempt)
                if slot in recorded:
                    raise StoreError(f"thread {lease.thread_id!r}: journal slot {slot} is already recorded")
                recorded.add(slot)
            else:
                slots = {(run_id, r.key, r.attempt) for r in rows}
                if len(slots) != len(rows) or not recorded.isdisjoint(slots):
                    raise StoreError(
                        f"thread {lease.thread_id!r}: a journal slot in {sorted(slots)} is already recorded"
                    )
                recorded |= slots
            t.journal[run_id] += rows

    def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        with self._lock:
            t = self._held(lease)
            t.runs[run_id] = dataclasses.replace(
                t.runs[run_id],
                status=outcome.status,
                output=outcome.output,
                save=outcome.save,
                error=outcome.error,
                error_text=outcome.error_text,
                retry_keys=outcome.retry_keys,
                finished_at=time.time(),
                interrupts=outcome.interrupts,
                wake_at=outcome.wake_at,
            )
            if outcome.forget_prior and outcome.status == "completed":
                for number in (run_id - 1, run_id - 2):  # the runs before were emptied by their own successors
                    run = t.runs.get(number)
                    if run is not None and (run.output, run.save, run.previous) != (None, None, None):
                        t.runs[number] = dataclasses.replace(run, output=None, save=None, previous=None)
                t.runs[run_id] = dataclasses.replace(t.runs[run_id], previous=None)
            t.owner = t.lease_expires = None

    def list_threads(self, where: ThreadFilter) -> list[ThreadSummary]:
        with self._lock:
            found = [
                summary(t.thread_id, run, t.owner, t.lease_expires)
                for t in self._threads.values()
                if (run := t.runs.get(t.last_run)) is not None
                and (where.status is None or run.status == where.status)
                and (where.entrypoint is None or run.entrypoint == where.entrypoint)
                and (where.since is None or run.started_at >= where.since)
                and (where.until is None or run.started_at < where.until)
                and (where.after is None or (run.started_at, t.thread_id) < where.after)
            ]
        found.sort(key=lambda s: (s.started_at, s.thread_id), reverse=True)
        return found[: where.limit]

    def list_runs(self, thread_id: str) -> list[RunRow]:
        with self._lock:
            t = self._threads.get(thread_id)
            return [] if t is None else [t.runs[k] for k in sorted(t.runs)]

    def _drop(self, t: _Thread) -> None:
        del self._threads[t.thread_id], self._by_tid[t.tid]

    def delete_thread(self, thread_id: str) -> bool:
        now = time.time()
        with self._lock:
            t = self._threads.get(thread_id)
            if t is None:
                return False
            if held_by_another(t.owner, (t.lease_expires or now) - now, None):
                raise ThreadBusyError(thread_id, t.owner, (t.lease_expires or now) - now)
            self._drop(t)
            return True

    def prune(self, finished_before: float, statuses: Sequence[str], limit: int) -> list[str]:
        now = time.time()
        with self._lock:
            doomed = [
                t
                for t in self._threads.values()
                if (run := t.runs.get(t.last_run)) is not None
                and run.status in statuses
                and run.finished_at is not None
                and run.finished_at < finished_before
                and (t.owner is None or (t.lease_expires or 0.0) <= now)
            ][: max(limit, 0)]
            for t in doomed:
                self._drop(t)
            return [t.thread_id for t in doomed]

    def import_thread(
        self, thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
    ) -> None:
        with self._lock:
            if thread_id in self._threads:
                raise ThreadExistsError(thread_id)
            slots = [(run_id, row.key, row.attempt) for run_id, row in journal]
            if len(set(slots)) != len(slots):
                raise StoreError(f"thread {thread_id!r}: the import repeats a journal slot; nothing was imported")
            t = self._new(thread_id, nonce)
            for run in runs:
                t.runs[run.run_id] = run
                t.journal[run.run_id] = []
            for run_id, row in journal:
                t.journal.setdefault(run_id, []).append(row)
                t.recorded.add((run_id, row.key, row.attempt))
            t.last_run = max(t.runs, default=0)

    def rewrite_thread(
        self, thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
    ) -> bool:
        with self._lock:
            t = self._threads.get(thread.thread_id)
            held = t is not None and t.owner is not None and (t.lease_expires or 0.0) > time.time()
            if t is None or t.tid != thread.tid or t.fence != thread.fence or held:
                return False
            t.nonce = nonce
            for run in runs:
                old = t.runs[run.run_id]
                t.runs[run.run_id] = dataclasses.replace(
                    old, input=run.input, previous=run.previous, output=run.output, save=run.save, error=run.error,
                    interrupts=run.interrupts,
                )  # fmt: skip
            payloads = {(run_id, row.key, row.attempt): row.payload for run_id, row in journal}
            for run_id, rows in t.journal.items():
                rows[:] = [r._replace(payload=payloads.get((run_id, r.key, r.attempt), r.payload)) for r in rows]
            return True

    # -- key-value rows ------------------------------------------------------------------------------

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_seconds: float | None) -> None:
        now = time.time()
        ttl_seconds = None if ttl_seconds is None else float(ttl_seconds)
        expires = None if ttl_seconds is None else now + ttl_seconds
        with self._lock:
            self._kv_puts += 1
            if self._kv_puts % KV_SWEEP == 0:  # the SQL stores sweep a few rows per put; this, all of them now and then
                for ns, rows in list(self._kv.items()):
                    for k in [k for k, r in rows.items() if not r.live(now)]:
                        self._kv_drop(ns, k)
            rows = self._kv.get(namespace, {})
            old = rows.get(key)
            if old is not None and old.live(now):
                old.value, old.updated_at, old.expires_at, old.ttl = value, now, expires, ttl_seconds
                return
            if old is not None:
                self._kv_drop(namespace, key)  # expired: gone, and the new row goes last
            self._kv.setdefault(namespace, {})[key] = _KV(value, now, now, expires, ttl_seconds)

    def _kv_drop(self, namespace: str, key: str) -> None:
        rows = self._kv.get(namespace)
        if rows is not None and rows.pop(key, None) is not None and not rows:
            del self._kv[namespace]  # a namespace without rows loses its place in the order

    def _kv_read(self, namespace: str, key: str, row: _KV, refresh: bool, now: float) -> KVRow:
        if refresh and row.ttl is not None:
            row.expires_at = now + row.ttl
        return KVRow(namespace, key, row.value, row.created_at, row.updated_at, row.expires_at, row.ttl)

    def kv_get(self, namespace: str, key: str, refresh: bool) -> KVRow | None:
        now = time.time()
        with self._lock:
            row = self._kv.get(namespace, {}).get(key)
            return None if row is None or not row.live(now) else self._kv_read(namespace, key, row, refresh, now)

    def kv_touch(self, items: Sequence[tuple[str, str]]) -> None:
        for namespace, key in items:
            self.kv_get(namespace, key, True)

    def kv_delete(self, namespace: str, key: str) -> None:
        with self._lock:
            self._kv_drop(namespace, key)

    def kv_search(self, prefix: str, refresh: bool) -> list[KVRow]:
        now = time.time()
        with self._lock:
            return [
                self._kv_read(ns, key, row, refresh, now)
                for ns, rows in self._kv.items()
                if ns.startswith(prefix)
                for key, row in rows.items()
                if row.live(now)
            ]

    def kv_namespaces(self, prefix: str) -> list[str]:
        now = time.time()
        with self._lock:
            return sorted(
                ns for ns, rows in self._kv.items() if ns.startswith(prefix) and any(r.live(now) for r in rows.values())
            )

    def kv_clear(self, prefix: str) -> int:
        now = time.time()
        with self._lock:
            doomed = [ns for ns in self._kv if ns.startswith(prefix)]
            live = sum(r.live(now) for ns in doomed for r in self._kv[ns].values())
            for ns in doomed:
                del self._kv[ns]
            return live

    @asynccontextmanager
    async def asession(self) -> AsyncIterator[AsyncSession]:
        yield _MemorySession(self)


class _MemorySession:
    """Memory operations never block, so the async session just calls them."""

    def __init__(self, store: MemoryStore) -> None:
        self._s = store

    async def get_thread(self, thread_id: str) -> ThreadRow | None:
        return self._s.get_thread(thread_id)

    async def claim(
        self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None
    ) -> Lease:
        return self._s.claim(thread_id, owner, steal_from, new_run)

    async def release(self, lease: Lease) -> None:
        self._s.release(lease)

    async def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        return self._s.load_journal(tid, run_id)

    async def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        return self._s.journal_head(tid, run_id, limit)

    async def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        return self._s.journal_keys(tid, run_id, keys)

    async def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        self._s.append(lease, run_id, rows)

    async def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        self._s.finish_run(lease, run_id, outcome)
