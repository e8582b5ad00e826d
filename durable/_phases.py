"""What a thread's latest run is doing, in words a person can act on: its phase.

The stored status says how a run last ended or paused (``running``, ``interrupted``, ``completed``, ``failed``);
it cannot say whether anyone is still running it. A run whose process was SIGKILLed stays ``running`` in the
store until someone resumes it, exactly as a run a worker is carrying does. The phase tells them apart from the
lease and the run's own fields, with no I/O:

=================  ===========================================================  =================================
phase              meaning                                                      what to do
=================  ===========================================================  =================================
``queued``         submitted (or let go), no executor has it yet                start a worker
``running``        a live executor holds its lease                              wait
``crashed``        its executor died, or its lease ran out: resumable now       ``invoke(None)``, or a worker
``sleeping``       in a durable sleep until ``wake_at``                         a worker resumes it then
``interrupted``    paused for a person                                          answer it
``completed``      finished                                                     nothing
``failed``         its body or a task raised                                    fix, then ``invoke(None)``
``dead-lettered``  a worker set it aside after too many executors died on it   look into it, then resume
``cancelled``      cancelled (`Entrypoint.cancel`)                              resume it, or leave it
=================  ===========================================================  =================================
"""

from __future__ import annotations

from typing import Literal, get_args

from ._leases import owner_is_dead
from .stores._base import RunStatus

Phase = Literal[
    "queued", "running", "crashed", "sleeping", "interrupted", "completed", "failed", "dead-lettered", "cancelled"
]
PHASES: tuple[Phase, ...] = get_args(Phase)

# The stored status each phase is a part of: a listing by phase reads that status, then keeps the phase's runs.
STORED: dict[Phase, RunStatus] = {
    "queued": "running", "running": "running", "crashed": "running", "sleeping": "running",
    "interrupted": "interrupted", "completed": "completed",
    "failed": "failed", "dead-lettered": "failed", "cancelled": "failed",
}  # fmt: skip


def phase_of(
    status: RunStatus, owner: str | None, lease_expires: float | None, wake_at: float | None, error_text: str | None,
    now: float,
) -> Phase:  # fmt: skip
    """The phase of a run with these stored fields, at ``now`` (the time leases are kept in: real time)."""
    if status == "failed":
        head = (error_text or "").split(":", 1)[0]
        return (
            "cancelled" if head == "RunCancelledError" else "dead-lettered" if head == "DeadLetteredError" else "failed"
        )
    if status != "running":
        return status
    if owner is not None:
        alive = lease_expires is not None and lease_expires > now and not owner_is_dead(owner)
        return "running" if alive else "crashed"
    return "sleeping" if wake_at is not None else "queued"
