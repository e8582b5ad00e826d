"""The decisions every store makes the same way, with no I/O: a backend asks these instead of deciding again.

Which run a claim starts, whether a lease stands in a claimer's way, when a claim resumes a run by hand, which runs a
cancel applies to, and what a journal's schema version allows.
"""

from __future__ import annotations

from typing import TypeGuard

from ..errors import SchemaVersionError, StoreError
from ._base import NewRun, RunRow

CANCELLABLE = ("running", "interrupted")  # the states of a run a cancel fails


def run_to_start(last: RunRow | None, nonce: bytes | None, new_run: NewRun | None) -> int | None:
    """The number of the run a claim starts, or ``None`` to start none (every store decides it so).

    A run starts when one is asked for, the thread's latest run has finished (or there is none), and the
    thread is still the one the new run's input was signed for: the same nonce, and the next number is the
    one expected. Otherwise the claim only takes the lease, and its caller looks at the thread again.
    """
    if new_run is None or (last is not None and last.status != "completed"):
        return None
    number = (last.run_id if last is not None else 0) + 1
    return number if number == new_run.run_id and nonce == new_run.nonce else None


def held_by_another(
    holder: str | None, seconds_left: float | None, owner: str | None, steal_from: str | None = None
) -> bool:
    """Whether a thread's lease keeps ``owner`` out: held, not expired, and by neither ``owner`` nor the owner the
    claimer takes over from (``steal_from``). ``owner=None`` asks for anyone (a delete, a prune)."""
    return holder is not None and (seconds_left or 0.0) > 0 and holder not in (owner, steal_from)


def resumed_by_hand(last: RunRow | None, new_run: NewRun | None) -> TypeGuard[RunRow]:
    """Whether a claim resumes the thread's failed or paused run (it is marked running again, its count of crashed
    executors starting over): a claim that starts no run, on such a run."""
    return new_run is None and last is not None and last.status in ("failed", "interrupted")


def due_to_workers(run: RunRow, due: float) -> bool:
    """Whether a thread's latest run is work for a worker at ``due`` (once no live lease covers it): a running run
    that is not asleep past ``due``, or a paused one whose ``wake_at`` has come (a question's deadline, or answers
    journaled for a worker by `Threads.answer`). The SQL stores' reserve queries and Redis's queue index say the same
    in their own languages, each with an index for each branch."""
    if run.status == "running":
        return run.wake_at is None or run.wake_at <= due
    return run.status == "interrupted" and run.wake_at is not None and run.wake_at <= due


def cancellable(run: RunRow | None, run_id: int) -> TypeGuard[RunRow]:
    """Whether a cancel of run ``run_id`` applies: it is the thread's latest run, and unfinished."""
    return run is not None and run.run_id == run_id and run.status in CANCELLABLE


def newer_schema(found: int, known: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"the journal's schema is version {found} but this durable understands up to {known}: "
        f"upgrade durable-exec to read it"
    )


def check_version(found: int, known: int) -> None:
    """A read-only open reads only its own schema version: it migrates nothing (the fleet may still run the old one)."""
    if found > known:
        raise newer_schema(found, known)
    if found < known:
        raise StoreError(
            f"the journal's schema is version {found}, older than this durable's {known}; a read-only command "
            f"does not upgrade it (workers running the older durable would stop). Read it with the durable that "
            f"wrote it, or upgrade the journal: any write (a run of the application) migrates it"
        )
