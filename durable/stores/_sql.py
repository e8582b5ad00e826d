"""What the SQL stores (SQLite and Postgres) share besides their dialects: how a run's columns read and write, the
statements whose text is the same in both (``{0}`` is the dialect's placeholder), and the listing's conditions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ._base import RUN_VALUES, JournalRow, Lease, RunOutcome, RunRow, ThreadFilter


def run_row(cols: Sequence[Any]) -> RunRow | None:
    """A run from the SQL stores' columns, in their shared order (``None`` for a thread without a run)."""
    if cols[0] is None:
        return None
    keys = cols[10]
    return RunRow(
        run_id=cols[0],
        entrypoint=cols[1],
        status=cols[2],
        input=cols[3],
        previous=cols[4],
        started_at=cols[5],
        output=cols[6],
        save=cols[7],
        error=cols[8],
        error_text=cols[9],
        retry_keys=tuple(keys.split(",")) if keys else (),
        finished_at=cols[11],
        interrupts=cols[12],
        stamp=cols[13],
        recoveries=cols[14],
        wake_at=cols[15],
    )


RUN_INSERT_COLUMNS = (
    "tid, run_id, entrypoint, status, input, previous, output, save, error, error_text, retry_keys, interrupts, "
    "started_at, finished_at, stamp, recoveries, wake_at"
)


def run_params(tid: int, r: RunRow) -> tuple[Any, ...]:
    """A whole run's values in `RUN_INSERT_COLUMNS` order (an import writes runs as they were)."""
    return (
        tid, r.run_id, r.entrypoint, r.status, r.input, r.previous, r.output, r.save, r.error, r.error_text,
        ",".join(r.retry_keys), r.interrupts, r.started_at, r.finished_at, r.stamp, r.recoveries, r.wake_at,
    )  # fmt: skip


# The SQL stores' `RunOutcome.forget_prior` (``{0}`` is the placeholder): the two runs before this one emptied of
# their values, and this one's previous. Each completed run empties the ones before it the same way, so older runs
# are empty already, and the range stays three rows however long the thread.
FORGET_PRIOR = (
    "UPDATE durable_runs SET previous = NULL, "
    "output = CASE WHEN run_id < {0} THEN NULL ELSE output END, "
    "save = CASE WHEN run_id < {0} THEN NULL ELSE save END "
    "WHERE tid = {0} AND run_id BETWEEN {0} AND {0} AND (previous IS NOT NULL OR (run_id < {0} AND "
    "(output IS NOT NULL OR save IS NOT NULL)))"
)


def forget_params(lease: Lease, run_id: int) -> tuple[Any, ...]:
    """`FORGET_PRIOR`'s parameters."""
    return (run_id, run_id, lease.tid, run_id - 2, run_id, run_id)


def rewrite_params(r: RunRow, tid: int) -> tuple[Any, ...]:
    """The SQL stores' ``rewrite_thread`` parameters for one run: its values, then the run's identity."""
    return (*(getattr(r, field) for field in RUN_VALUES), tid, r.run_id)


def outcome_params(outcome: RunOutcome, lease: Lease, run_id: int) -> tuple[Any, ...]:
    """The SQL stores' ``finish_run`` parameters: the outcome's columns, then the run and the fencing check."""
    return (
        outcome.status, outcome.output, outcome.save, outcome.error, outcome.error_text,
        ",".join(outcome.retry_keys), outcome.interrupts, outcome.wake_at, time.time(),
        lease.tid, run_id, lease.tid, lease.fence, lease.owner,
    )  # fmt: skip


def head_of(rows: list[JournalRow], limit: int) -> tuple[list[JournalRow], bool]:
    """`Store.journal_head` from up to ``limit + 1`` rows read in key order: whole, or cut before the last key
    read (whose later attempts may be past the cut)."""
    if len(rows) <= limit:
        return rows, True
    last = rows[-1].key
    return [r for r in rows if r.key != last], False


def filtered(base: str, where: ThreadFilter, mark: str) -> tuple[str, list[Any]]:
    """``base`` with the filter's conditions, order and limit (in the dialect's placeholder ``mark``).

    ``base`` joins the runs ``r`` to their threads ``t``. The latest runs are read newest first from an index of
    their starts (``durable_runs_started``) as far as the page goes; the cursor is a range of it too (started at or
    before the last one, and at the same start, a smaller thread id: the order's tie-break). A status or an
    entrypoint is a condition on the entries read: a page of a status few threads have reads further.
    """
    conds = ["r.latest"]
    params: list[Any] = []
    for cond, value in (
        ("r.status = {}", where.status),
        ("r.entrypoint = {}", where.entrypoint),
        ("r.started_at >= {}", where.since),
        ("r.started_at < {}", where.until),
    ):
        if value is not None:
            conds.append(cond.format(mark))
            params.append(value)
    if where.after is not None:
        conds.append(f"r.started_at <= {mark} AND (r.started_at < {mark} OR t.thread_id < {mark})")
        params += [where.after[0], where.after[0], where.after[1]]
    sql = f"{base} WHERE {' AND '.join(conds)} ORDER BY r.started_at DESC, t.thread_id DESC LIMIT {mark}"
    return sql, [*params, where.limit]
