"""All of the Postgres store's SQL, as I/O-free operations (the same shape as `_sqlite_ops`).

Each operation is a generator that yields a `Stmt` and receives its result, so
one definition serves the blocking (psycopg ``Connection``) and the async
(``AsyncConnection``) runner alike.

Leases are kept in the database's clock: a claim, a renewal and the workers'
search for expired leases all compare with ``now()``, so two machines whose
clocks disagree still agree on who holds a thread. The lease a store hands back
is translated into this process's clock (``time.time()`` plus the seconds the
database says are left), which is all the engine compares with.

Every journal write checks the writer's fencing token under ``FOR KEY SHARE``
on the thread's row. A claim locks that row ``FOR UPDATE`` before it moves the
token, and the two lock modes conflict, so a write either commits before the
claim reads the journal or waits for the claim and then sees the new token and
inserts nothing. Without the lock, under READ COMMITTED, a stale writer could
pass the check against the old token and commit after the new owner had read
the journal.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
Fetch = Literal["one", "all", "rowcount"]


class Stmt(NamedTuple):
    sql: str
    params: Any = ()
    fetch: Fetch = "rowcount"
    many: bool = False


Op = Generator[Stmt, Any, T]

# Each entry migrates the schema from version i to i + 1; never edit a shipped one, append.
# ``{s}`` is the quoted schema name.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE {s}.durable_threads (
            tid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            thread_id TEXT NOT NULL UNIQUE,
            owner TEXT,
            lease_expires TIMESTAMPTZ,
            fence BIGINT NOT NULL DEFAULT 0,
            last_run INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE {s}.durable_runs (
            tid BIGINT NOT NULL REFERENCES {s}.durable_threads (tid) ON DELETE CASCADE,
            run_id INTEGER NOT NULL,
            entrypoint TEXT NOT NULL,
            status TEXT NOT NULL,
            input BYTEA NOT NULL,
            previous BYTEA,
            output BYTEA,
            save BYTEA,
            error BYTEA,
            error_text TEXT,
            retry_keys TEXT NOT NULL DEFAULT '',
            interrupts BYTEA,
            stamp TEXT,
            recoveries INTEGER NOT NULL DEFAULT 0,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            PRIMARY KEY (tid, run_id)
        )""",
        # Insert-only: a re-run of a key is a new attempt, never an update.
        """CREATE TABLE {s}.durable_journal (
            tid BIGINT NOT NULL,
            run_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            name TEXT NOT NULL,
            status SMALLINT NOT NULL,
            digest BYTEA,
            payload BYTEA NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            duration_us BIGINT NOT NULL,
            -- No foreign key to durable_runs: every insert is already checked against the thread's lease
            -- (under a row lock), and a second row lock per task costs ~30 us (benchmarks/README.md).
            PRIMARY KEY (tid, run_id, key, attempt)
        )""",
        # What the workers scan for: runs still marked running (a crashed or submitted run).
        "CREATE INDEX durable_runs_running ON {s}.durable_runs (tid) WHERE status = 'running'",
    ),
    # 2: a run suspended in a durable sleep, and when it is due (seconds since the epoch).
    ("ALTER TABLE {s}.durable_runs ADD COLUMN wake_at DOUBLE PRECISION",),
    # 3: a thread's nonce, signed into its values (threads from before have none).
    ("ALTER TABLE {s}.durable_threads ADD COLUMN nonce BYTEA",),
    # 4: key-value rows, shared by every thread: the long-term memory and the task cache (`_pg_kv`).
    # ``seq`` orders keys by insertion; ``ns_order`` is the ``seq`` that opened the row's namespace (NULL:
    # this row did). The namespace compares bytewise ("C"), so the unique index makes a prefix search a
    # range scan whatever the database's collation.
    (
        """CREATE TABLE {s}.durable_kv (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            namespace TEXT COLLATE "C" NOT NULL,
            key TEXT NOT NULL,
            value BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at TIMESTAMPTZ,
            ttl DOUBLE PRECISION,
            ns_order BIGINT,
            CONSTRAINT durable_kv_key UNIQUE (namespace, key)
        )""",
        "CREATE INDEX durable_kv_expiry ON {s}.durable_kv (expires_at) WHERE expires_at IS NOT NULL",
    ),
    # 5: each thread's latest run is marked and indexed by its start (listings, prune): SQLite's schema 7, which says
    # why. (Runs marked running have their index since version 1.)
    (
        "ALTER TABLE {s}.durable_runs ADD COLUMN latest BOOLEAN NOT NULL DEFAULT false",
        "UPDATE {s}.durable_runs r SET latest = true FROM {s}.durable_threads t "
        "WHERE t.tid = r.tid AND t.last_run = r.run_id",
        "CREATE INDEX durable_runs_started ON {s}.durable_runs (started_at) WHERE latest",
    ),
    # 6: paused runs due to the workers at ``wake_at`` (a question's deadline, or answers journaled for a worker):
    # SQLite's schema 8.
    (
        "CREATE INDEX durable_runs_due ON {s}.durable_runs (wake_at) "
        "WHERE status = 'interrupted' AND wake_at IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SQL:
    """The statements, with the schema's name filled in once per store."""

    def __init__(self, schema: str) -> None:
        s = '"' + schema.replace('"', '""') + '"'
        self.schema = s
        # Where releases announce work to idle workers (LISTEN takes an identifier: keep it plain and short).
        self.channel = "durable_work_" + hashlib.sha256(schema.encode()).hexdigest()[:16]
        self.threads = f"{s}.durable_threads"
        self.runs = f"{s}.durable_runs"
        self.journal = f"{s}.durable_journal"
        self.kv = f"{s}.durable_kv"
        self.run_cols = run_cols = (
            "r.run_id, r.entrypoint, r.status, r.input, r.previous, r.started_at, r.output, r.save, "
            "r.error, r.error_text, r.retry_keys, r.finished_at, r.interrupts, r.stamp, r.recoveries, r.wake_at"
        )
        # The seconds left on the lease, by the database's clock (negative once it has expired).
        head = "t.tid, t.owner, extract(epoch FROM t.lease_expires - now())::float8, t.fence, t.nonce"
        self.thread = (
            f"SELECT {head}, {run_cols} FROM {self.threads} t "
            f"LEFT JOIN {self.runs} r ON r.tid = t.tid AND r.run_id = t.last_run WHERE t.thread_id = %s"
        )
        self.lock_thread = self.thread + " FOR UPDATE OF t"
        self.reservable = (
            f"SELECT t.thread_id, {head}, {run_cols} FROM {self.threads} t "
            f"JOIN {self.runs} r ON r.tid = t.tid AND r.run_id = t.last_run "
            "WHERE r.entrypoint = ANY(%s) AND (t.owner IS NULL OR t.lease_expires <= now()) "
            # A sleep's wake-up time is in the sleeping process's clock; the worker's decides when it is due.
            # A paused run is due at its ``wake_at`` too (each branch has its partial index).
            "AND ((r.status = 'running' AND (r.wake_at IS NULL OR r.wake_at <= %s)) "
            "OR (r.status = 'interrupted' AND r.wake_at <= %s)) "
            # Both rows locked: a row that changed since the statement's snapshot is re-read and re-checked
            # whole (locking only t would re-check t's columns against a stale run: a run another worker
            # finished meanwhile would match again).
            "ORDER BY t.updated_at LIMIT %s FOR UPDATE OF t, r SKIP LOCKED"
        )
        held = f"SELECT 1 FROM {self.threads} WHERE tid = %s AND fence = %s AND owner = %s FOR KEY SHARE"
        self.held = held
        self.append = (
            f"INSERT INTO {self.journal} (tid, run_id, key, attempt, name, status, digest, payload, started_at, "
            f"duration_us) SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s WHERE EXISTS ({held})"
        )
        self.insert = (
            f"INSERT INTO {self.journal} (tid, run_id, key, attempt, name, status, digest, payload, started_at, "
            "duration_us) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self.take = (
            f"UPDATE {self.threads} SET owner = %s, lease_expires = now() + %s * interval '1 second', "
            "fence = fence + 1, last_run = %s, updated_at = now() WHERE tid = %s RETURNING fence"
        )


def migrate(q: SQL) -> Op[None]:
    """Create or upgrade the schema; concurrent workers wait on an advisory lock and migrate once."""
    yield Stmt("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"durable-migrate:{q.schema}",), "one")
    yield Stmt(f"CREATE SCHEMA IF NOT EXISTS {q.schema}")
    yield Stmt(
        f"CREATE TABLE IF NOT EXISTS {q.schema}.durable_schema "
        "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    row = yield Stmt(f"SELECT MAX(version) FROM {q.schema}.durable_schema", (), "one")
    current = row[0] or 0
    if current > SCHEMA_VERSION:
        raise newer_schema(current, SCHEMA_VERSION)
    for version in range(current, SCHEMA_VERSION):
        for sql in MIGRATIONS[version]:
            yield Stmt(sql.format(s=q.schema))
        yield Stmt(f"INSERT INTO {q.schema}.durable_schema (version) VALUES (%s)", (version + 1,))


def check_schema(q: SQL, where: str) -> Op[None]:
    """For a read-only open: the schema holds a journal of exactly this version (nothing is created or migrated)."""
    found = yield Stmt("SELECT to_regclass(%s)", (f"{q.schema}.durable_schema",), "one")
    if found[0] is None:
        raise JournalNotFoundError(where)
    row = yield Stmt(f"SELECT MAX(version) FROM {q.schema}.durable_schema", (), "one")
    check_version(row[0] or 0, SCHEMA_VERSION)


def _local(remaining: float | None) -> float | None:
    """A lease expiry in this process's clock, from the seconds the database says are left."""
    return None if remaining is None else time.time() + remaining


def get_thread(q: SQL, thread_id: str) -> Op[ThreadRow | None]:
    row = yield Stmt(q.thread, (thread_id,), "one")
    if row is None:
        return None
    return ThreadRow(thread_id, row[0], row[1], _local(row[2]), row[3], run_row(row[5:]), row[4])


def claim(
    q: SQL, thread_id: str, owner: str, steal_from: str | None, new_run: NewRun | None, lease_seconds: float
) -> Op[Lease]:
    row = yield Stmt(q.lock_thread, (thread_id,), "one")
    while row is None:
        # A new thread. Two claimers may race to create it: the loser's insert waits for the
        # winner's commit, inserts nothing, and the loser then locks (and judges) the winner's row.
        nonce = new_run.nonce if new_run is not None else os.urandom(16)
        made = yield Stmt(
            f"INSERT INTO {q.threads} (thread_id, nonce) VALUES (%s, %s) ON CONFLICT (thread_id) DO NOTHING "
            "RETURNING tid",
            (thread_id, nonce),
            "one",
        )
        if made is not None:
            row = (made[0], None, None, 0, nonce) + (None,) * 16
        else:
            row = yield Stmt(q.lock_thread, (thread_id,), "one")
    tid, held_by, remaining, _, nonce = row[:5]
    last = run_row(row[5:])
    if held_by_another(held_by, remaining, owner, steal_from):
        raise ThreadBusyError(thread_id, held_by, remaining)
    number = run_to_start(last, nonce, new_run)
    start = number is not None
    run_id = number if number is not None else (last.run_id if last else 0)
    taken = yield Stmt(q.take, (owner, lease_seconds, run_id, tid), "one")
    fence = taken[0]
    expires = time.time() + lease_seconds
    if resumed_by_hand(last, new_run):
        # Resumed by hand: its count of crashed executors starts over.
        yield Stmt(
            f"UPDATE {q.runs} SET status = 'running', recoveries = 0, wake_at = NULL WHERE tid = %s AND run_id = %s",
            (tid, last.run_id),
        )
    if start:
        assert new_run is not None
        now = time.time()
        previous = last.save if last else None
        if last is not None:
            yield Stmt(f"UPDATE {q.runs} SET latest = false WHERE tid = %s AND run_id = %s", (tid, last.run_id))
        last = RunRow(run_id, new_run.entrypoint, "running", new_run.input, previous, now, stamp=new_run.stamp)
        yield Stmt(
            f"INSERT INTO {q.runs} (tid, run_id, entrypoint, status, input, previous, started_at, stamp, latest) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true)",
            (tid, run_id, last.entrypoint, last.status, last.input, last.previous, now, new_run.stamp),
        )
    thread = ThreadRow(thread_id, tid, owner, expires, fence, last, nonce)
    return Lease(thread_id, tid, owner, fence, thread, start)


def reserve(
    q: SQL, owner: str, entrypoints: Sequence[str], limit: int, lease_seconds: float, due: float
) -> Op[list[Lease]]:
    """Lease up to ``limit`` runs that nobody is executing, skipping rows another worker is taking.

    A run whose lease expired while still held was abandoned by a crashed
    executor: its ``recoveries`` count goes up by one.
    """
    rows = yield Stmt(q.reservable, (list(entrypoints), due, due, limit), "all")
    leases = []
    for r in rows:
        thread_id, tid, held_by, _, _, nonce = r[:6]
        run = run_row(r[6:])
        assert run is not None
        if held_by is not None:
            bumped = yield Stmt(
                f"UPDATE {q.runs} SET recoveries = recoveries + 1 WHERE tid = %s AND run_id = %s RETURNING recoveries",
                (tid, run.run_id),
                "one",
            )
            run = dataclasses.replace(run, recoveries=bumped[0])
        taken = yield Stmt(q.take, (owner, lease_seconds, run.run_id, tid), "one")
        thread = ThreadRow(thread_id, tid, owner, time.time() + lease_seconds, taken[0], run, nonce)
        leases.append(Lease(thread_id, tid, owner, taken[0], thread, False))
    return leases


def cancel_run(q: SQL, thread_id: str, run_id: int, outcome: RunOutcome) -> Op[bool]:
    row = yield Stmt(q.lock_thread, (thread_id,), "one")
    run = None if row is None else run_row(row[5:])
    if not cancellable(run, run_id):
        return False
    tid = row[0]
    yield Stmt(
        f"UPDATE {q.runs} SET status = %s, error = %s, error_text = %s, wake_at = NULL, finished_at = %s "
        "WHERE tid = %s AND run_id = %s",
        (outcome.status, outcome.error, outcome.error_text, time.time(), tid, run_id),
    )
    yield Stmt(
        f"UPDATE {q.threads} SET owner = NULL, lease_expires = NULL, fence = fence + 1, updated_at = now() "
        "WHERE tid = %s",
        (tid,),
    )
    return True


def renew(q: SQL, lease: Lease, lease_seconds: float) -> Op[bool]:
    n = yield Stmt(
        f"UPDATE {q.threads} SET lease_expires = now() + %s * interval '1 second' "
        "WHERE tid = %s AND fence = %s AND owner = %s",
        (lease_seconds, lease.tid, lease.fence, lease.owner),
    )
    return bool(n == 1)


def release(q: SQL, lease: Lease) -> Op[None]:
    # A run let go unfinished (submitted, or left by an executor that gave up) is work for a worker:
    # tell the listening ones (the notice goes out when the transaction commits).
    yield Stmt(
        f"WITH freed AS (UPDATE {q.threads} SET owner = NULL, lease_expires = NULL, updated_at = now() "
        "WHERE tid = %s AND fence = %s AND owner = %s RETURNING tid, last_run) "
        f"SELECT pg_notify(%s, '') FROM freed JOIN {q.runs} r ON r.tid = freed.tid AND r.run_id = freed.last_run "
        "WHERE r.status = 'running' OR (r.status = 'interrupted' AND r.wake_at IS NOT NULL)",
        (lease.tid, lease.fence, lease.owner, q.channel),
    )


def load_journal(q: SQL, tid: int, run_id: int) -> Op[list[JournalRow]]:
    rows = yield Stmt(
        "SELECT key, attempt, name, status, digest, payload, started_at, started_at + duration_us / 1e6::float8 "
        f"FROM {q.journal} WHERE tid = %s AND run_id = %s ORDER BY started_at, key, attempt",
        (tid, run_id),
        "all",
    )
    return list(map(JournalRow._make, rows))


def row_params(tid: int, run_id: int, r: JournalRow) -> tuple[Any, ...]:
    return (
        tid, run_id, r.key, r.attempt, r.name, r.status, r.digest, r.payload,
        r.started_at, int((r.finished_at - r.started_at) * 1e6),
    )  # fmt: skip


def append_one(q: SQL, lease: Lease, run_id: int, row: JournalRow) -> Op[None]:
    """One row: one statement, atomic without a transaction, checking the lease as it inserts."""
    n = yield Stmt(q.append, (*row_params(lease.tid, run_id, row), lease.tid, lease.fence, lease.owner))
    if n != 1:
        raise LeaseLostError(lease.thread_id)


def append(q: SQL, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> Op[None]:
    """Several rows in the runner's transaction: the lease is checked (and share-locked) once."""
    held = yield Stmt(q.held, (lease.tid, lease.fence, lease.owner), "one")
    if held is None:
        raise LeaseLostError(lease.thread_id)
    yield Stmt(q.insert, [row_params(lease.tid, run_id, r) for r in rows], many=True)


def finish_run(q: SQL, lease: Lease, run_id: int, outcome: RunOutcome) -> Op[None]:
    n = yield Stmt(
        f"UPDATE {q.runs} SET status = %s, output = %s, save = %s, error = %s, error_text = %s, retry_keys = %s, "
        f"interrupts = %s, wake_at = %s, finished_at = %s WHERE tid = %s AND run_id = %s AND EXISTS ({q.held})",
        outcome_params(outcome, lease, run_id),
    )
    if n != 1:
        raise LeaseLostError(lease.thread_id)
    if outcome.forget_prior and outcome.status == "completed":
        # In the same transaction as the outcome, under the lease its update just checked.
        yield Stmt(FORGET_PRIOR.replace("durable_runs", q.runs).format("%s"), forget_params(lease, run_id))
    yield from release(q, lease)


# -- operating on threads ---------------------------------------------------------------------------


def list_threads(q: SQL, where: ThreadFilter) -> Op[list[ThreadSummary]]:

    base = (
        "SELECT t.thread_id, r.run_id, r.entrypoint, r.status, r.started_at, r.finished_at, t.owner, "
        "extract(epoch FROM t.lease_expires - now())::float8, r.wake_at, r.recoveries, r.error_text "
        f"FROM {q.runs} r JOIN {q.threads} t ON t.tid = r.tid"
    )
    sql, params = filtered(base, where, "%s")
    rows = yield Stmt(sql, params, "all")
    return [ThreadSummary(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _local(r[7]), r[8], r[9], r[10]) for r in rows]


def list_runs(q: SQL, thread_id: str) -> Op[list[RunRow]]:
    rows = yield Stmt(
        f"SELECT {q.run_cols} FROM {q.runs} r JOIN {q.threads} t ON t.tid = r.tid "
        "WHERE t.thread_id = %s ORDER BY r.run_id",
        (thread_id,),
        "all",
    )
    return [run for r in rows if (run := run_row(r)) is not None]


def _delete(q: SQL, tids: list[int]) -> Op[None]:
    for table in (q.journal, q.runs, q.threads):
        yield Stmt(f"DELETE FROM {table} WHERE tid = ANY(%s)", (tids,))


def delete_thread(q: SQL, thread_id: str) -> Op[bool]:
    row = yield Stmt(
        f"SELECT tid, owner, extract(epoch FROM lease_expires - now())::float8 FROM {q.threads} "
        "WHERE thread_id = %s FOR UPDATE",
        (thread_id,),
        "one",
    )
    if row is None:
        return False
    tid, owner, remaining = row
    if held_by_another(owner, remaining, None):
        raise ThreadBusyError(thread_id, owner, remaining)
    yield from _delete(q, [tid])
    return True


def prune(q: SQL, finished_before: float, statuses: Sequence[str], limit: int) -> Op[list[str]]:
    # A run that finished before the cut started before it: a range of durable_runs_started (see `_sqlite_ops`).
    rows = yield Stmt(
        f"SELECT t.tid, t.thread_id FROM {q.runs} r JOIN {q.threads} t ON t.tid = r.tid "
        "WHERE r.latest AND r.started_at < %s AND r.status = ANY(%s) AND r.finished_at < %s "
        "AND (t.owner IS NULL OR t.lease_expires <= now()) "
        "LIMIT %s FOR UPDATE OF t SKIP LOCKED",
        (finished_before, list(statuses), finished_before, limit),
        "all",
    )
    if rows:
        yield from _delete(q, [r[0] for r in rows])
    return [r[1] for r in rows]


def import_thread(
    q: SQL, thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
) -> Op[None]:
    last = max((r.run_id for r in runs), default=0)
    made = yield Stmt(
        f"INSERT INTO {q.threads} (thread_id, last_run, nonce) VALUES (%s, %s, %s) "
        "ON CONFLICT (thread_id) DO NOTHING RETURNING tid",
        (thread_id, last, nonce),
        "one",
    )
    if made is None:
        raise ThreadExistsError(thread_id)
    tid = made[0]
    if runs:
        marks = ", ".join(["%s"] * 18)
        rows = [(*run_params(tid, r), r.run_id == last) for r in runs]
        yield Stmt(f"INSERT INTO {q.runs} ({RUN_INSERT_COLUMNS}, latest) VALUES ({marks})", rows, many=True)
    if journal:
        yield Stmt(q.insert, [row_params(tid, run_id, row) for run_id, row in journal], many=True)


def rewrite_thread(
    q: SQL, thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
) -> Op[bool]:
    """See `Store.rewrite_thread`. The thread's row is locked ``FOR UPDATE`` first, as a claim locks it, so no
    executor can claim the thread (or append under an old lease) while its values are being replaced."""
    row = yield Stmt(
        f"SELECT owner, extract(epoch FROM lease_expires - now())::float8, fence FROM {q.threads} "
        "WHERE tid = %s AND thread_id = %s FOR UPDATE",
        (thread.tid, thread.thread_id),
        "one",
    )
    if row is None or row[2] != thread.fence or (row[0] is not None and row[1] is not None and row[1] > 0):
        return False
    yield Stmt(f"UPDATE {q.threads} SET nonce = %s WHERE tid = %s", (nonce, thread.tid))
    if runs:
        yield Stmt(
            f"UPDATE {q.runs} SET input = %s, previous = %s, output = %s, save = %s, error = %s, interrupts = %s "
            "WHERE tid = %s AND run_id = %s",
            [rewrite_params(r, thread.tid) for r in runs],
            many=True,
        )
    if journal:
        yield Stmt(
            f"UPDATE {q.journal} SET payload = %s WHERE tid = %s AND run_id = %s AND key = %s AND attempt = %s",
            [(row.payload, thread.tid, run_id, row.key, row.attempt) for run_id, row in journal],
            many=True,
        )
    return True


def journal_head(q: SQL, tid: int, run_id: int, limit: int) -> Op[tuple[list[JournalRow], bool]]:
    """See `Store.journal_head`: the first ``limit`` rows in key order, with one more to tell whether that is all."""
    rows = yield Stmt(
        "SELECT key, attempt, name, status, digest, payload, started_at, started_at + duration_us / 1e6::float8 "
        f"FROM {q.journal} WHERE tid = %s AND run_id = %s ORDER BY key, attempt LIMIT %s",
        (tid, run_id, limit + 1),
        "all",
    )
    return head_of(list(map(JournalRow._make, rows)), limit)


def journal_keys(q: SQL, tid: int, run_id: int, keys: Sequence[str]) -> Op[list[JournalRow]]:
    """Every row of one run at these keys: an index lookup per key, in one statement."""
    if not keys:
        return []
    rows = yield Stmt(
        "SELECT key, attempt, name, status, digest, payload, started_at, started_at + duration_us / 1e6::float8 "
        f"FROM {q.journal} WHERE tid = %s AND run_id = %s AND key = ANY(%s)",
        (tid, run_id, list(keys)),
        "all",
    )
    return list(map(JournalRow._make, rows))
