"""The store interface: what the engine needs from a database, and nothing more.

A store keeps three things per thread: a lease (who may execute it now, until
when, and a fencing token), its runs (input, status, output or error), and the
journal (one insert-only row per task outcome, keyed by run, call-order key and
attempt). Every write names the lease it was made under; a store refuses a
write whose fencing token is no longer current, so a stale executor that wakes
up after losing its lease cannot record anything.

The same operations exist in a blocking form on `Store` and in an async form on
the `AsyncSession` that `Store.asession()` opens, so a networked database can
give each async run its own connection.

Besides the journal, a store keeps key-value rows (`KVRow`): the long-term memory
(`durable.Memory`) and the task cache (`durable.Cache`) live there, shared by every
thread. Those operations (``kv_*``) are blocking only; see "Key-value rows" below.

A new backend reads this file and `memory.MemoryStore` (the whole contract in plain Python); decides what every
store decides with `_rules` (which run a claim starts, whose lease is in the way, what a cancel applies to);
proves itself with `durable.conformance.StoreConformance`; and is opened by a URL through an entry point in the
``durable.stores`` group (see `durable._urls`). The SQL backends share their statement plumbing in `_sql`.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from ..errors import ConfigurationError

RunStatus = Literal["running", "interrupted", "completed", "failed"]
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "interrupted", "completed", "failed")

# Journal row statuses, stored as small integers.
OK = 0  # a task's value
ERROR = 1  # a task's exception
ANSWER = 2  # the answer to an interrupt
RETRY = 3  # a failed attempt that the task's retry policy tries again (not the task's outcome)


class JournalRow(NamedTuple):
    """One recorded outcome of a task call: its value (``OK``) or its exception (``ERROR``).

    A named tuple because one is built for every task call: it is the cheapest record Python has.
    """

    key: str
    attempt: int
    name: str
    status: int
    digest: bytes | None
    payload: bytes
    started_at: float
    finished_at: float


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run of an entrypoint on a thread. ``previous`` is what the run's ``previous`` parameter receives."""

    run_id: int
    entrypoint: str
    status: RunStatus
    input: bytes
    previous: bytes | None
    started_at: float
    output: bytes | None = None
    save: bytes | None = None
    error: bytes | None = None
    error_text: str | None = None
    retry_keys: tuple[str, ...] = ()
    finished_at: float | None = None
    interrupts: bytes | None = None
    stamp: str | None = None
    recoveries: int = 0  # how many times a worker took it over from an executor that died holding it
    wake_at: float | None = None  # a run suspended in a durable sleep: workers resume it from then on


RUN_VALUES = ("input", "previous", "output", "save", "error", "interrupts")  # a run's stored (signed) values


@dataclass(frozen=True, slots=True)
class ThreadRow:
    """A thread with its lease and its latest run (``None`` before the first run starts).

    ``tid`` is the store's own number for the thread (not its id). ``lease_expires`` is in
    this process's clock (``time.time()``): a store that keeps leases in another clock (the
    database server's) translates it. ``nonce`` is random, made when the thread is created and
    signed into every value of its journal, so a deleted thread's rows never verify in a new
    thread of the same id (``None``: a thread created before nonces existed).
    """

    thread_id: str
    tid: int
    owner: str | None
    lease_expires: float | None
    fence: int
    run: RunRow | None = None
    nonce: bytes | None = None


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """A thread in a listing: its latest run, without the run's values."""

    thread_id: str
    run_id: int
    entrypoint: str
    status: RunStatus
    started_at: float
    finished_at: float | None
    owner: str | None
    lease_expires: float | None
    wake_at: float | None
    recoveries: int
    error_text: str | None

    @property
    def phase(self) -> str:
        """What the run is doing now, in words a person can act on (``"crashed"``, ``"queued"``...: `_phases`)."""
        from .._phases import phase_of

        return phase_of(self.status, self.owner, self.lease_expires, self.wake_at, self.error_text, time.time())


@dataclass(frozen=True, slots=True)
class ThreadFilter:
    """Which threads `Store.list_threads` returns: by their latest run's status, entrypoint and start time.

    ``after`` is the ``(started_at, thread_id)`` of the last thread of the previous page.
    """

    status: RunStatus | None = None
    entrypoint: str | None = None
    since: float | None = None  # started at or after
    until: float | None = None  # started before
    after: tuple[float, str] | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to start in the claim's own transaction, if the thread's latest run has finished (or none exists).

    Its input was signed for run number ``run_id`` of the thread with ``nonce``, as the caller last
    saw the thread: the claim starts the run only if that is still what it would be (see `run_to_start`),
    and a thread the claim creates gets that nonce.
    """

    entrypoint: str
    input: bytes
    stamp: str | None  # the serializer's format and versions, checked before a resume reads anything
    run_id: int
    nonce: bytes | None


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of ownership that every write carries; ``fence`` grows on every claim.

    ``thread`` is the thread as the claim left it; ``started`` says whether the claim
    started the `NewRun` it was given (then ``thread.run`` is that run).
    """

    thread_id: str
    tid: int
    owner: str
    fence: int
    thread: ThreadRow = field(compare=False)
    started: bool = False


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended (or paused); written by `Store.finish_run`."""

    status: RunStatus
    output: bytes | None = None
    save: bytes | None = None
    error: bytes | None = None
    error_text: str | None = None
    retry_keys: tuple[str, ...] = ()
    interrupts: bytes | None = None
    wake_at: float | None = None  # with status "running": suspended in a durable sleep until then
    # A completed run whose saved value holds all the next run needs (a graph's whole state): the thread's
    # earlier runs' copies of their values (output, save, previous) and this run's previous are dropped in
    # the same commit, so a thread keeps one copy of its state, not one per run.
    forget_prior: bool = False


def summary(thread_id: str, run: RunRow, owner: str | None, lease_expires: float | None) -> ThreadSummary:
    return ThreadSummary(
        thread_id, run.run_id, run.entrypoint, run.status, run.started_at, run.finished_at,
        owner, lease_expires, run.wake_at, run.recoveries, run.error_text,
    )  # fmt: skip


# -- key-value rows -----------------------------------------------------------------------------------
#
# A row is ``(namespace, key) -> value`` with its times. The store treats ``namespace`` as opaque text,
# encoded by `kv_namespace` so that a prefix of the text is exactly a prefix of the labels:
# ``("users", "1")`` is ``"users\x1f1\x1f"``, and ``"users\x1f"`` matches it but not ``("users2",)``.
# A SQL store compares namespaces in code point order (SQLite's BINARY collation, Postgres's "C"),
# so ``namespace >= prefix AND namespace < kv_prefix_end(prefix)`` is a range of an index on
# ``(namespace, key)``. Values are opaque bytes (JSON for the memory; signed blobs for the cache).
#
# A row with a ttl expires ``ttl`` seconds after its last write (or refresh), by the store's clock (the
# database server's for Postgres, as for leases). An expired row is invisible to every read, a put
# replaces it as if it were absent, and it is deleted eventually (each put deletes up to
# ``KV_SWEEP`` expired rows).

KV_SEP = "\x1f"  # ends every label of an encoded namespace (no label may contain it)
KV_SWEEP = 100  # expired rows a put deletes, at most


class KVRow(NamedTuple):
    """A live key-value row. ``created_at``/``updated_at`` are seconds since the epoch by the store's clock;
    ``expires_at`` is in this process's clock, as `ThreadRow.lease_expires` is (``None``: never);
    ``ttl`` is the seconds a write or a refresh gives it (``None``: no ttl)."""

    namespace: str
    key: str
    value: bytes
    created_at: float
    updated_at: float
    expires_at: float | None
    ttl: float | None


def kv_namespace(labels: Sequence[str]) -> str:
    """The stored form of a namespace (or of a namespace prefix): every label followed by `KV_SEP`."""
    return "".join(label + KV_SEP for label in labels)


def kv_labels(namespace: str) -> tuple[str, ...]:
    """The labels of a stored namespace (`kv_namespace` undone)."""
    return tuple(namespace.split(KV_SEP)[:-1])


def kv_prefix_end(prefix: str) -> str | None:
    """The least text above every text that starts with ``prefix`` (``None`` for ``""``: no bound).

    ``prefix <= namespace < kv_prefix_end(prefix)`` is, in code point order, exactly "starts with prefix".
    """
    chars = list(prefix)
    while chars:
        after = ord(chars.pop()) + 1
        after = 0xE000 if 0xD800 <= after < 0xE000 else after  # surrogates are no text
        if after <= 0x10FFFF:
            return "".join(chars) + chr(after)
    return None


class AsyncSession(Protocol):
    """The async twin of `Store`'s operations, bound to one connection for one run."""

    async def get_thread(self, thread_id: str) -> ThreadRow | None: ...

    async def claim(
        self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None
    ) -> Lease: ...

    async def release(self, lease: Lease) -> None: ...

    async def load_journal(self, tid: int, run_id: int) -> list[JournalRow]: ...

    async def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]: ...

    async def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]: ...

    async def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None: ...

    async def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None: ...


class Store(abc.ABC):
    """Base class of journal stores. All blocking methods are thread-safe.

    ``lease_seconds`` is how long a claim lasts without renewal; a running
    executor renews it every third of that.
    """

    lease_seconds: float = 30.0
    # A key (or keyring) to sign this store's journal with, for entrypoints that set none themselves.
    secret: Any = None
    # The largest serialized task result the store accepts (None: the database's own limit).
    max_result_bytes: int | None = None

    def same_database(self, other: Store) -> bool:
        """Whether ``other`` reads and writes the same journal as this store (a worker serving entrypoints
        configured with two store objects on one database treats them as one). This default: the same object."""
        return other is self

    @abc.abstractmethod
    def get_thread(self, thread_id: str) -> ThreadRow | None:
        """The thread with its latest run, or ``None`` if the store has never seen it."""

    @abc.abstractmethod
    def claim(self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None) -> Lease:
        """Take the thread's lease (creating the thread if new) or raise `ThreadBusyError`.

        A free or expired lease is taken; ``steal_from`` also takes a live lease
        held by exactly that owner (the engine passes it for an owner it knows
        is dead). Every claim increments the fencing token. With ``new_run``, the
        same transaction starts that run if the thread's latest run has finished
        or there is none: its number is the next one, its ``previous`` the last
        run's ``save``. Without it, a failed or interrupted latest run is marked
        ``running`` (the claimer resumes it); the lease's ``thread`` shows the run
        as it was before the claim.
        """

    @abc.abstractmethod
    def renew(self, lease: Lease) -> bool:
        """Extend the lease; ``False`` if it was lost to another owner."""

    @abc.abstractmethod
    def release(self, lease: Lease) -> None:
        """Give the lease up (a no-op if it was already lost)."""

    @abc.abstractmethod
    def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        """Every journal row of one run, in insertion order."""

    # A replay starts from `journal_head`. A store that can read a run's rows by key with an index (`journal_keys`)
    # returns at most ``limit`` rows there, and the replay reads the rest a window of calls at a time, as far as the
    # run gets, instead of loading a journal of any length whole first (see `_core.Replay`).

    def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        """One run's rows, and whether they are all of them: all when the run has at most ``limit`` rows (or the
        store does not read by keys); else some of them (every attempt of each key given), the rest left to
        `journal_keys`. This default loads the journal whole."""
        return self.load_journal(tid, run_id), True

    def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        """Every row (every attempt) of one run at these keys, in no particular order."""
        wanted = set(keys)
        return [r for r in self.load_journal(tid, run_id) if r.key in wanted] if wanted else []

    @abc.abstractmethod
    def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        """Insert rows in one transaction, or raise `LeaseLostError` and insert none."""

    @abc.abstractmethod
    def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        """Record the run's status and output or error and release the lease, or raise `LeaseLostError`."""

    @abc.abstractmethod
    def cancel_run(self, thread_id: str, run_id: int, outcome: RunOutcome) -> bool:
        """Fail run ``run_id`` with ``outcome`` if it is the thread's latest and unfinished; takes the lease away.

        The fencing token moves on, so an executor still running the run has its
        next write refused. Returns whether the run was cancelled (``False``: it had
        already completed or failed, or a newer run exists).
        """

    @abc.abstractmethod
    def reserve(self, owner: str, entrypoints: Sequence[str], limit: int, now: float | None = None) -> list[Lease]:
        """Lease up to ``limit`` runs of these entrypoints that are marked running but held by nobody.

        These are runs submitted for a worker, runs suspended in a durable sleep due
        by ``now`` (the caller's clock, the one sleeps are journaled by; default
        ``time.time()``), and runs whose executor died (its lease expired while
        held): each of those has its ``recoveries`` count raised by one in the
        same transaction. The leases belong to ``owner``;
        ``lease.thread.run`` is the run. Concurrent callers never get the same
        run (Postgres skips rows another worker is locking).
        """

    # -- operating on threads (listing, deleting, copying); not on any run's path --------------

    @abc.abstractmethod
    def list_threads(self, where: ThreadFilter) -> list[ThreadSummary]:
        """Threads whose latest run matches ``where``, newest start first (then thread id, descending)."""

    @abc.abstractmethod
    def list_runs(self, thread_id: str) -> list[RunRow]:
        """Every run of the thread, oldest first (empty for an unknown thread)."""

    @abc.abstractmethod
    def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its runs and its journal; ``False`` if unknown.

        Raises `ThreadBusyError` while an executor holds a live lease on it.
        """

    @abc.abstractmethod
    def prune(self, finished_before: float, statuses: Sequence[str], limit: int) -> list[str]:
        """Delete up to ``limit`` threads whose latest run has one of ``statuses`` and finished before
        ``finished_before``, and that nobody holds; returns their ids (call again until it is empty)."""

    @abc.abstractmethod
    def import_thread(
        self, thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
    ) -> None:
        """Create a thread holding these runs and journal rows ``(run_id, row)``, unleased, in one transaction.

        The thread gets ``nonce`` (its values were signed with it). Raises `ThreadExistsError` if the
        store has the thread already.
        """

    @abc.abstractmethod
    def rewrite_thread(
        self, thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
    ) -> bool:
        """Replace a thread's stored values in one transaction (re-signing them): its nonce, the value
        columns of each run given (by run id) and the payload of each journal row given (by run id, key and
        attempt); nothing else changes.

        Only if nobody holds the thread and nobody has claimed it since ``thread`` was read (the same
        ``tid`` and ``fence``); otherwise nothing is written and it returns ``False``.
        """

    # -- key-value rows (see the section above `AsyncSession`); not abstract: a store without them
    # still journals, and only `Memory` and `Cache` refuse it. ---------------------------------------

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_seconds: float | None) -> None:
        """Insert the row, or replace a live row's value: it keeps its ``created_at`` and its place in the
        order (see `kv_search`); ``updated_at`` is now, and it expires ``ttl_seconds`` from now (``None``:
        never). A put over an expired row inserts anew. Deletes up to `KV_SWEEP` expired rows too."""
        raise _no_kv(self)

    def kv_get(self, namespace: str, key: str, refresh: bool) -> KVRow | None:
        """The live row, or ``None``. With ``refresh``, a row with a ttl first expires ``ttl`` from now."""
        raise _no_kv(self)

    def kv_touch(self, items: Sequence[tuple[str, str]]) -> None:
        """Refresh these ``(namespace, key)`` rows as `kv_get` does (rows absent, expired or without ttl: ignored)."""
        raise _no_kv(self)

    def kv_delete(self, namespace: str, key: str) -> None:
        """Delete the row, if there is one."""
        raise _no_kv(self)

    def kv_search(self, prefix: str, refresh: bool) -> list[KVRow]:
        """Every live row whose namespace starts with ``prefix`` (refreshed, with ``refresh``).

        In this order: by namespace, namespaces in the order they were opened (a put into a namespace
        without rows opens it; it keeps its place while any of its rows remains, even when the first is
        deleted; one left with expired rows only may lose it), then keys in the order they were inserted
        (an update keeps a key's place; a delete, or expiry, then a put moves it last). It is the order of
        LangGraph's ``InMemoryStore``.
        """
        raise _no_kv(self)

    def kv_namespaces(self, prefix: str) -> list[str]:
        """The distinct namespaces of the live rows under ``prefix``, in code point order."""
        raise _no_kv(self)

    def kv_clear(self, prefix: str) -> int:
        """Delete every row under ``prefix`` (``""``: all); returns how many of them were live."""
        raise _no_kv(self)

    @abc.abstractmethod
    def asession(self) -> AbstractAsyncContextManager[AsyncSession]:
        """Open an async session for one run (the async paths use it instead of the methods above)."""

    def listen_for_work(self, wake: threading.Event) -> Callable[[], None] | None:
        """Set ``wake`` whenever a run is left for a worker, until the returned function is called.

        ``None`` (the default): this store cannot tell, and workers find work by polling alone.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store reopens them if it is used again."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_kv(store: Store) -> ConfigurationError:
    return ConfigurationError(
        f"{type(store).__name__} keeps no key-value rows, which durable.Memory and durable.Cache need: use "
        f"MemoryStore, SQLiteStore, PostgresStore or RedisStore, or implement the kv_* methods of durable.stores.Store"
    )
