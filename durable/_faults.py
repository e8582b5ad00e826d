"""Named fault points, for crash tests of the engine and of users' own workflows.

The engine calls `hit(point)` at the instants where a crash is most interesting.
Disarmed (the normal case) a hit is one global lookup. A test arms points with
the ``DURABLE_FAULTS`` environment variable before the process starts, or with
`arm()`; when an armed point is hit for the n-th time, the process kills itself
with SIGKILL: no ``finally``, no ``atexit``, no flush, as when a machine dies.

``DURABLE_FAULTS="after_body:3,before_finish"`` kills the process on the third
time any task passes ``after_body`` (or, failing that, at ``before_finish``).
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = (
    "before_body",  # a task is about to run its function
    "after_body",  # the function returned, its result is not committed yet
    "after_commit",  # the task's result is committed (in "sync" mode), its future not resolved yet
    "before_finish",  # the run's body ended; buffered rows and its outcome are not written yet
    "after_finish",  # the run's outcome is written; invoke has not returned yet
)

_armed: dict[str, int] | None = None
_lock = threading.Lock()


def arm(spec: str | None) -> None:
    """Arm points from a spec like ``"after_body:3,before_finish"`` (``None`` or ``""`` disarms)."""
    global _armed
    if not spec:
        _armed = None
        return
    armed: dict[str, int] = {}
    for part in spec.split(","):
        name, _, count = part.strip().partition(":")
        if name not in POINTS:
            raise ValueError(f"unknown fault point {name!r}: choose from {', '.join(POINTS)}")
        armed[name] = int(count or 1)
    _armed = armed


def hit(point: str) -> None:
    """Called by the engine at each fault point; kills the process when that point's count runs out."""
    armed = _armed
    if armed is None or point not in armed:
        return
    with _lock:
        armed[point] -= 1
        if armed[point] > 0:
            return
    os.kill(os.getpid(), signal.SIGKILL)


arm(os.environ.get("DURABLE_FAULTS"))
