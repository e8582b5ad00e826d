"""All of the SQLite store's SQL, as I/O-free operations.

Each operation is a generator: it yields a `Stmt`, receives the statement's
result (a row, all rows, the last row id or the row count) and finally returns
the operation's value. It never touches a connection, so one definition serves
the blocking and the async runner alike.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Generator, Sequence
from typing import Any, Literal, NamedTuple, TypeVar

from ..errors import JournalNotFoundError, LeaseLostError, ThreadBusyError, ThreadExistsError
from ._base import (
    JournalRow,
    Lease,
    NewRun,
    RunOutcome,
    RunRow,
    ThreadFilter,
    ThreadRow,
    ThreadSummary,
)
from ._rules import cancellable, check_version, held_by_another, newer_schema, resumed_by_hand, run_to_start
from ._sql import (
    FORGET_PRIOR,
    RUN_INSERT_COLUMNS,
    filtered,
    forget_params,
    head_of,
    outcome_params,
    rewrite_params,
    run_params,
    run_row,
)

T = TypeVar("T")
Fetch = Literal["one", "all", "lastrowid", "rowcount"]


class Stmt(NamedTuple):
    sql: str
    params: Any = ()
    fetch: Fetch = "rowcount"
    many: bool = False


Op = Generator[Stmt, Any, T]

# Each entry migrates the schema from version i to i + 1; never edit a shipped one, append.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE durable_threads (
            tid INTEGER PRIMARY KEY,
            thread_id TEXT NOT NULL UNIQUE,
            owner TEXT,
            lease_expires REAL,
            fence INTEGER NOT NULL DEFAULT 0,
            last_run INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE durable_runs (
            tid INTEGER NOT NULL,
            run_id INTEGER NOT NULL,
            entrypoint TEXT NOT NULL,
            status TEXT NOT NULL,
            input BLOB NOT NULL,
            previous BLOB,
            output BLOB,
            save BLOB,
            error BLOB,
            error_text TEXT,
            retry_keys TEXT NOT NULL DEFAULT '',
            interrupts BLOB,
            started_at REAL NOT NULL,
            finished_at REAL,
            PRIMARY KEY (tid, run_id)
        ) WITHOUT ROWID""",
        # Insert-only: a re-run of a key is a new attempt, never an update.
        """CREATE TABLE durable_journal (
            tid INTEGER NOT NULL,
            run_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            name TEXT NOT NULL,
            status INTEGER NOT NULL,
            digest BLOB,
            payload BLOB NOT NULL,
            started_at REAL NOT NULL,
            duration_us INTEGER NOT NULL,
            PRIMARY KEY (tid, run_id, key, attempt)
        ) WITHOUT ROWID""",
    ),
    # 2: each run records the serializer's format and versions it was journaled with.
    ("ALTER TABLE durable_runs ADD COLUMN stamp TEXT",),
    # 3: how many times a worker took a run over from an executor that died holding it.
    ("ALTER TABLE durable_runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0",),
    # 4: a run suspended in a durable sleep, and when it is due.
    ("ALTER TABLE durable_runs ADD COLUMN wake_at REAL",),
    # 5: a thread's nonce, signed into its values (threads from before have none).
    ("ALTER TABLE durable_threads ADD COLUMN nonce BLOB",),
    # 6: key-value rows, shared by every thread: the long-term memory and the task cache (`_sqlite_kv`).
    # ``seq`` orders keys by insertion; ``ns_order`` is the ``seq`` that opened the row's namespace
    # (NULL: this row did). The unique index makes a namespace-prefix search a range scan.
    (
        """CREATE TABLE durable_kv (
            seq INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            expires_at REAL,
            ttl REAL,
            ns_order INTEGER
        )""",
        "CREATE UNIQUE INDEX durable_kv_key ON durable_kv (namespace, key)",
        "CREATE INDEX durable_kv_expiry ON durable_kv (expires_at) WHERE expires_at IS NOT NULL",
    ),
    # 7: each thread's latest run is marked (``latest``; every earlier run of a thread has finished) and indexed by
    # its start, and runs marked running are indexed by theirs: a listing reads a page of the first index (newest
    # first), a worker's poll and a prune a short range of one of them, instead of joining every thread to its last
    # run. Neither index has the status in its key, so a run's pause, resume and finish do not move its entries:
    # only starting a run and leaving or entering the running state do (a few index writes per run).
    (
        "ALTER TABLE durable_runs ADD COLUMN latest INTEGER NOT NULL DEFAULT 0",
        "UPDATE durable_runs SET latest = 1 "
        "WHERE run_id = (SELECT t.last_run FROM durable_threads t WHERE t.tid = durable_runs.tid)",
        "CREATE INDEX durable_runs_started ON durable_runs (started_at) WHERE latest",
        "CREATE INDEX durable_runs_running ON durable_runs (started_at) WHERE status = 'running'",
        # A payload of `SPILL` bytes or more lives in ``durable_blobs`` (``blob`` names it; ``payload`` is empty):
        # the journal is a WITHOUT ROWID table, whose every seek that compares a key with an overflowing row
        # reads that whole row, so one 10 MB row made each lookup near it cost a 10 MB read. A rowid table's
        # seeks compare integers only: the bytes are read when they are asked for, once.
        "CREATE TABLE durable_blobs (id INTEGER PRIMARY KEY, bytes BLOB NOT NULL)",
        "ALTER TABLE durable_journal ADD COLUMN blob INTEGER",
    ),
    # 8: a paused run with a question's deadline, or with answers journaled for a worker (`Threads.answer`), is
    # due to the workers at ``wake_at``: indexed apart from the running runs, as few are ever in it.
    ("CREATE INDEX durable_runs_due ON durable_runs (wake_at) WHERE status = 'interrupted' AND wake_at IS NOT NULL",),
)
SCHEMA_VERSION = len(MIGRATIONS)

_RUN_COLUMNS = (
    "r.run_id, r.entrypoint, r.status, r.input, r.previous, r.started_at, r.output, r.save, "
    "r.error, r.error_text, r.retry_keys, r.finished_at, r.interrupts, r.stamp, r.recoveries, r.wake_at"
)
_THREAD_SQL = (
    f"SELECT t.tid, t.owner, t.lease_expires, t.fence, t.nonce, {_RUN_COLUMNS} FROM durable_threads t "
    "LEFT JOIN durable_runs r ON r.tid = t.tid AND r.run_id = t.last_run WHERE t.thread_id = ?"
)
_HELD = "EXISTS (SELECT 1 FROM durable_threads WHERE tid = ? AND fence = ? AND owner = ?)"


def migrate() -> Op[None]:
    yield Stmt("CREATE TABLE IF NOT EXISTS durable_schema (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    row = yield Stmt("SELECT MAX(version) FROM durable_schema", fetch="one")
    current = row[0] or 0
    if current > SCHEMA_VERSION:
        raise newer_schema(current, SCHEMA_VERSION)
    for version in range(current, SCHEMA_VERSION):
        for sql in MIGRATIONS[version]:
            yield Stmt(sql)
        yield Stmt("INSERT INTO durable_schema VALUES (?, ?)", (version + 1, time.time()))


def check_schema(where: str) -> Op[None]:
    """For a read-only open: the file is a journal of exactly this schema version (nothing is migrated)."""
    found = yield Stmt("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'durable_schema'", (), "one")
    if found is None:
        raise JournalNotFoundError(where)
    row = yield Stmt("SELECT MAX(version) FROM durable_schema", fetch="one")
    check_version(row[0] or 0, SCHEMA_VERSION)


def get_thread(thread_id: str) -> Op[ThreadRow | None]:
    row = yield Stmt(_THREAD_SQL, (thread_id,), "one")
    if row is None:
        return None
    return ThreadRow(thread_id, row[0], row[1], row[2], row[3], run_row(row[5:]), row[4])


def claim(
    thread_id: str, owner: str, steal_from: str | None, new_run: NewRun | None, lease_seconds: float
) -> Op[Lease]:
    now = time.time()
    expires_at = now + lease_seconds
    row = yield Stmt(_THREAD_SQL, (thread_id,), "one")
    last = None if row is None else run_row(row[5:])
    nonce = row[4] if row is not None else new_run.nonce if new_run is not None else os.urandom(16)
    number = run_to_start(last, nonce, new_run)
    start = number is not None
    run_id = number if number is not None else (last.run_id if last else 0)
    if row is None:
        tid = yield Stmt(
            "INSERT INTO durable_threads (thread_id, owner, lease_expires, fence, last_run, created_at, updated_at, "
            "nonce) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
            (thread_id, owner, expires_at, run_id, now, now, nonce),
            "lastrowid",
        )
        fence = 1
    else:
        tid, held_by, expires, fence = row[:4]
        if held_by_another(held_by, (expires or now) - now, owner, steal_from):
            raise ThreadBusyError(thread_id, held_by, (expires or now) - now)
        fence += 1
        yield Stmt(
            "UPDATE durable_threads SET owner = ?, lease_expires = ?, fence = ?, last_run = ?, updated_at = ? "
            "WHERE tid = ?",
            (owner, expires_at, fence, run_id, now, tid),
        )
    if resumed_by_hand(last, new_run):
        # The claimer resumes it: say so (the lease returns the row as it was, for the caller to judge).
        # Its count of crashed executors starts over too.
        yield Stmt(
            "UPDATE durable_runs SET status = 'running', recoveries = 0, wake_at = NULL WHERE tid = ? AND run_id = ?",
            (tid, last.run_id),
        )
    if start:
        assert new_run is not None
        previous = last.save if last else None
        if last is not None:
            yield Stmt("UPDATE durable_runs SET latest = 0 WHERE tid = ? AND run_id = ?", (tid, last.run_id))
        last = RunRow(run_id, new_run.entrypoint, "running", new_run.input, previous, now, stamp=new_run.stamp)
        yield Stmt(
            "INSERT INTO durable_runs (tid, run_id, entrypoint, status, input, previous, started_at, stamp, latest) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (tid, run_id, last.entrypoint, last.status, last.input, last.previous, now, new_run.stamp),
        )
    thread = ThreadRow(thread_id, tid, owner, expires_at, fence, last, nonce)
    return Lease(thread_id, tid, owner, fence, thread, start)


# A worker's poll reads durable_runs_running, oldest first: the work left to do and the runs being executed or
# asleep, never the threads' history; then durable_runs_due, the paused runs that are due.
_CANDIDATES = (
    f"SELECT t.thread_id, t.tid, t.owner, t.lease_expires, t.fence, t.nonce, {_RUN_COLUMNS} "
    "FROM durable_runs r JOIN durable_threads t ON t.tid = r.tid AND t.last_run = r.run_id "
    "WHERE r.status = 'running' AND r.latest AND (r.wake_at IS NULL OR r.wake_at <= ?) AND r.entrypoint IN ({}) "
    "AND (t.owner IS NULL OR t.lease_expires <= ?) ORDER BY r.started_at LIMIT ?"
)
_DUE = (
    f"SELECT t.thread_id, t.tid, t.owner, t.lease_expires, t.fence, t.nonce, {_RUN_COLUMNS} "
    "FROM durable_runs r JOIN durable_threads t ON t.tid = r.tid AND t.last_run = r.run_id "
    "WHERE r.status = 'interrupted' AND r.wake_at <= ? AND r.entrypoint IN ({}) "
    "AND (t.owner IS NULL OR t.lease_expires <= ?) ORDER BY r.wake_at LIMIT ?"
)


def reserve(
    owner: str, entrypoints: Sequence[str], limit: int, lease_seconds: float, due: float | None
) -> Op[list[Lease]]:
    """See `Store.reserve`; the runner's ``BEGIN IMMEDIATE`` keeps two reservers apart (for a few index reads)."""
    now = time.time()
    marks = ", ".join("?" * len(entrypoints))
    when = now if due is None else due
    rows = yield Stmt(_CANDIDATES.format(marks), (when, *entrypoints, now, limit), "all")
    if len(rows) < limit:
        rows += yield Stmt(_DUE.format(marks), (when, *entrypoints, now, limit - len(rows)), "all")
    leases = []
    for r in rows:
        thread_id, tid, held_by, _, fence, nonce = r[:6]
        run = run_row(r[6:])
        assert run is not None
        if held_by is not None:
            run = dataclasses.replace(run, recoveries=run.recoveries + 1)
            yield Stmt(
                "UPDATE durable_runs SET recoveries = ? WHERE tid = ? AND run_id = ?",
                (run.recoveries, tid, run.run_id),
            )
        yield Stmt(
            "UPDATE durable_threads SET owner = ?, lease_expires = ?, fence = ?, updated_at = ? WHERE tid = ?",
            (owner, now + lease_seconds, fence + 1, now, tid),
        )
        thread = ThreadRow(thread_id, tid, owner, now + lease_seconds, fence + 1, run, nonce)
        leases.append(Lease(thread_id, tid, owner, fence + 1, thread, False))
    return leases


def cancel_run(thread_id: str, run_id: int, outcome: RunOutcome) -> Op[bool]:
    row = yield Stmt(_THREAD_SQL, (thread_id,), "one")
    run = None if row is None else run_row(row[5:])
    if not cancellable(run, run_id):
        return False
    tid, now = row[0], time.time()
    yield Stmt(
        "UPDATE durable_runs SET status = ?, error = ?, error_text = ?, wake_at = NULL, finished_at = ? "
        "WHERE tid = ? AND run_id = ?",
        (outcome.status, outcome.error, outcome.error_text, now, tid, run_id),
    )
    yield Stmt(
        "UPDATE durable_threads SET owner = NULL, lease_expires = NULL, fence = fence + 1, updated_at = ? "
        "WHERE tid = ?",
        (now, tid),
    )
    return True


def renew(lease: Lease, lease_seconds: float) -> Op[bool]:
    n = yield Stmt(
        "UPDATE durable_threads SET lease_expires = ? WHERE tid = ? AND fence = ? AND owner = ?",
        (time.time() + lease_seconds, lease.tid, lease.fence, lease.owner),
    )
    return bool(n == 1)


def release(lease: Lease) -> Op[None]:
    yield Stmt(
        "UPDATE durable_threads SET owner = NULL, lease_expires = NULL, updated_at = ? "
        "WHERE tid = ? AND fence = ? AND owner = ?",
        (time.time(), lease.tid, lease.fence, lease.owner),
    )


SPILL = 4096  # a payload this large or larger is kept in durable_blobs (see schema 7)

# A journal row's columns as a JournalRow, its payload fetched from durable_blobs when it was spilled there.
_ROW_COLUMNS = (
    "key, attempt, name, status, digest, "
    "CASE WHEN blob IS NULL THEN payload ELSE (SELECT bytes FROM durable_blobs WHERE id = blob) END, "
    "started_at, started_at + duration_us / 1e6"
)


def load_journal(tid: int, run_id: int) -> Op[list[JournalRow]]:
    rows = yield Stmt(
        f"SELECT {_ROW_COLUMNS} FROM durable_journal WHERE tid = ? AND run_id = ? ORDER BY started_at, key, attempt",
        (tid, run_id),
        "all",
    )
    return list(map(JournalRow._make, rows))


# A row keeps its start and an integer duration in microseconds (rounded down, so a task never
# seems to end after the next one started): 10 bytes or so where two REALs take 16, in a row of 50.
APPEND_SQL = (
    "INSERT INTO durable_journal (tid, run_id, key, attempt, name, status, digest, payload, started_at, "
    f"duration_us) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE {_HELD}"
)


def append_params(lease: Lease, run_id: int, r: JournalRow) -> tuple[Any, ...]:
    """The parameters of `APPEND_SQL` for one row (the store's fast path executes it directly)."""
    tid = lease.tid
    return (
        tid, run_id, r.key, r.attempt, r.name, r.status, r.digest, r.payload,
        r.started_at, int((r.finished_at - r.started_at) * 1e6),
        tid, lease.fence, lease.owner,
    )  # fmt: skip


_INSERT_SQL = (
    "INSERT INTO durable_journal (tid, run_id, key, attempt, name, status, digest, payload, started_at, "
    "duration_us, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _insert(rows: Sequence[tuple[int, int, JournalRow]]) -> Op[None]:
    """Insert journal rows (thread, run, row), a large payload into durable_blobs first."""
    params = []
    for tid, run_id, r in rows:
        payload, blob = r.payload, None
        if len(payload) >= SPILL:
            blob = yield Stmt("INSERT INTO durable_blobs (bytes) VALUES (?)", (payload,), "lastrowid")
            payload = b""
        params.append((
            tid, run_id, r.key, r.attempt, r.name, r.status, r.digest, payload,
            r.started_at, int((r.finished_at - r.started_at) * 1e6), blob,
        ))  # fmt: skip
    yield Stmt(_INSERT_SQL, params, many=True)


def append_one(lease: Lease, run_id: int, row: JournalRow) -> Op[None]:
    """One row: a single statement, atomic without a transaction, checking the lease as it inserts.

    Only for a payload under `SPILL` (see `spills`): a larger one takes `append`, in a transaction."""
    n = yield Stmt(APPEND_SQL, append_params(lease, run_id, row))
    if n != 1:
        raise LeaseLostError(lease.thread_id)


def spills(row: JournalRow) -> bool:
    """Whether a row's payload goes to durable_blobs (then it is not a single statement: `append` writes it)."""
    return len(row.payload) >= SPILL


def append(lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> Op[None]:
    """Several rows, in the transaction the runner opened: the lease is checked once, not per row."""
    held = yield Stmt(f"SELECT {_HELD}", (lease.tid, lease.fence, lease.owner), "one")
    if not held[0]:
        raise LeaseLostError(lease.thread_id)
    yield from _insert([(lease.tid, run_id, r) for r in rows])


def finish_run(lease: Lease, run_id: int, outcome: RunOutcome) -> Op[None]:
    n = yield Stmt(
        "UPDATE durable_runs SET status = ?, output = ?, save = ?, error = ?, error_text = ?, retry_keys = ?, "
        f"interrupts = ?, wake_at = ?, finished_at = ? WHERE tid = ? AND run_id = ? AND {_HELD}",
        outcome_params(outcome, lease, run_id),
    )
    if n != 1:
        raise LeaseLostError(lease.thread_id)
    if outcome.forget_prior and outcome.status == "completed":
        yield Stmt(FORGET_PRIOR.format("?"), forget_params(lease, run_id))
    yield from release(lease)


# -- operating on threads ---------------------------------------------------------------------------

_SUMMARY = (
    "SELECT t.thread_id, r.run_id, r.entrypoint, r.status, r.started_at, r.finished_at, t.owner, t.lease_expires, "
    "r.wake_at, r.recoveries, r.error_text FROM durable_runs r JOIN durable_threads t ON t.tid = r.tid"
)


def list_threads(where: ThreadFilter) -> Op[list[ThreadSummary]]:
    sql, params = filtered(_SUMMARY, where, "?")
    rows = yield Stmt(sql, params, "all")
    return [ThreadSummary(*r) for r in rows]


def list_runs(thread_id: str) -> Op[list[RunRow]]:
    rows = yield Stmt(
        f"SELECT {_RUN_COLUMNS} FROM durable_runs r JOIN durable_threads t ON t.tid = r.tid "
        "WHERE t.thread_id = ? ORDER BY r.run_id",
        (thread_id,),
        "all",
    )
    return [run for r in rows if (run := run_row(r)) is not None]


def _delete(tids: Sequence[int]) -> Op[None]:
    yield Stmt(
        "DELETE FROM durable_blobs WHERE id IN (SELECT blob FROM durable_journal WHERE tid = ? AND blob IS NOT NULL)",
        [(tid,) for tid in tids],
        many=True,
    )
    for table in ("durable_journal", "durable_runs", "durable_threads"):
        yield Stmt(f"DELETE FROM {table} WHERE tid = ?", [(tid,) for tid in tids], many=True)


def delete_thread(thread_id: str) -> Op[bool]:
    row = yield Stmt("SELECT tid, owner, lease_expires FROM durable_threads WHERE thread_id = ?", (thread_id,), "one")
    if row is None:
        return False
    tid, owner, expires = row
    now = time.time()
    if held_by_another(owner, (expires or now) - now, None):
        raise ThreadBusyError(thread_id, owner, (expires or now) - now)
    yield from _delete([tid])
    return True


def prune(finished_before: float, statuses: Sequence[str], limit: int) -> Op[list[str]]:
    # A run that finished before the cut started before it: the range of durable_runs_started before the cut is
    # what is read (nothing, when every thread is younger), not every thread.
    marks = ", ".join("?" * len(statuses))
    rows = yield Stmt(
        "SELECT t.tid, t.thread_id FROM durable_runs r JOIN durable_threads t ON t.tid = r.tid "
        f"WHERE r.latest AND r.started_at < ? AND r.status IN ({marks}) AND r.finished_at < ? "
        "AND (t.owner IS NULL OR t.lease_expires <= ?) LIMIT ?",
        (finished_before, *statuses, finished_before, time.time(), limit),
        "all",
    )
    if rows:
        yield from _delete([r[0] for r in rows])
    return [r[1] for r in rows]


def import_thread(
    thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
) -> Op[None]:
    exists = yield Stmt("SELECT 1 FROM durable_threads WHERE thread_id = ?", (thread_id,), "one")
    if exists is not None:
        raise ThreadExistsError(thread_id)
    now, last = time.time(), max((r.run_id for r in runs), default=0)
    tid = yield Stmt(
        "INSERT INTO durable_threads (thread_id, owner, lease_expires, fence, last_run, created_at, updated_at, "
        "nonce) VALUES (?, NULL, NULL, 0, ?, ?, ?, ?)",
        (thread_id, last, now, now, nonce),
        "lastrowid",
    )
    marks = ", ".join("?" * 18)
    yield Stmt(
        f"INSERT INTO durable_runs ({RUN_INSERT_COLUMNS}, latest) VALUES ({marks})",
        [(*run_params(tid, r), r.run_id == last) for r in runs],
        many=True,
    )
    if journal:
        yield from _insert([(tid, run_id, row) for run_id, row in journal])


def rewrite_thread(
    thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
) -> Op[bool]:
    """See `Store.rewrite_thread`; the runner's ``BEGIN IMMEDIATE`` keeps claimers out until it commits."""
    row = yield Stmt(
        "SELECT owner, lease_expires, fence FROM durable_threads WHERE tid = ? AND thread_id = ?",
        (thread.tid, thread.thread_id),
        "one",
    )
    if row is None or row[2] != thread.fence or (row[0] is not None and (row[1] or 0.0) > time.time()):
        return False
    yield Stmt("UPDATE durable_threads SET nonce = ? WHERE tid = ?", (nonce, thread.tid))
    if runs:
        yield Stmt(
            "UPDATE durable_runs SET input = ?, previous = ?, output = ?, save = ?, error = ?, interrupts = ? "
            "WHERE tid = ? AND run_id = ?",
            [rewrite_params(r, thread.tid) for r in runs],
            many=True,
        )
    if journal:
        # Each row's payload, in place or in durable_blobs as its new size says; a blob it leaves is deleted.
        where = "tid = ? AND run_id = ? AND key = ? AND attempt = ?"
        keys = [(thread.tid, run_id, row.key, row.attempt) for run_id, row in journal]
        yield Stmt(
            f"DELETE FROM durable_blobs WHERE id = (SELECT blob FROM durable_journal WHERE {where})", keys, many=True
        )
        for at, (_, row) in zip(keys, journal, strict=True):
            payload, blob = row.payload, None
            if len(payload) >= SPILL:
                blob = yield Stmt("INSERT INTO durable_blobs (bytes) VALUES (?)", (payload,), "lastrowid")
                payload = b""
            yield Stmt(f"UPDATE durable_journal SET payload = ?, blob = ? WHERE {where}", (payload, blob, *at))
    return True


# -- reading a journal by keys (a replay's windows) ---------------------------------------------------------


def journal_head(tid: int, run_id: int, limit: int) -> Op[tuple[list[JournalRow], bool]]:
    """See `Store.journal_head`: the first ``limit`` rows in key order, with one more to tell whether that is all."""
    sql = f"SELECT {_ROW_COLUMNS} FROM durable_journal WHERE tid = ? AND run_id = ? LIMIT ?"
    rows = yield Stmt(sql, (tid, run_id, limit + 1), "all")
    return head_of(list(map(JournalRow._make, rows)), limit)


KEYS_WINDOW = 256  # the keys one read asks for: always this many, so the statement is prepared once


def journal_keys(tid: int, run_id: int, keys: Sequence[str]) -> Op[list[JournalRow]]:
    """Every row of one run at these keys: a lookup of the primary key per key, in one statement."""
    found: list[JournalRow] = []
    for at in range(0, len(keys), KEYS_WINDOW):
        window = list(keys[at : at + KEYS_WINDOW])
        window += [""] * (KEYS_WINDOW - len(window))  # "" is no key: padding keeps the statement's text fixed
        rows = yield Stmt(_KEYS_SQL, (tid, run_id, *window), "all")
        found.extend(map(JournalRow._make, rows))
    return found


# A replay needs a row's times too: a retried call's backoff runs from when its failed attempt was journaled.
_KEYS_SQL = (
    f"SELECT {_ROW_COLUMNS} FROM durable_journal "
    f"WHERE tid = ? AND run_id = ? AND key IN ({', '.join('?' * KEYS_WINDOW)})"
)
