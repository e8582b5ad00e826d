"""Patching: changing what a workflow does while runs started under the old code are still going.

``if durable.patched("charge-in-cents"): new() else: old()`` takes the new branch in every run that reaches it
from now on and the old branch in every run that already went past that point under the old code, on every replay
and in every process, as Temporal's ``patched()`` and DBOS's ``patch()`` do.

The decision is journaled as a marker at the call's key (task name ``durable.patched``, the patch id's digest as
its argument digest, the id itself as its value). On replay a run finds one of three things at that key:

* the marker of this patch: the run took the new branch before, and takes it again;
* another row (a task the old code called there, or another patch's marker): the run was recorded by code from
  before the patch, so it keeps the old branch and the call takes no key (the old code did not call it either);
* nothing at this key, under it, nor after it in the same body, and no question waiting there: the run is at its
  frontier, where nothing the old code did is recorded, so it takes the new branch and journals the marker. With
  anything recorded there (a fan-out whose earlier call never finished, a task that died with some of its own
  calls recorded, a question waiting for its answer), the run is an old one mid-way: it keeps the old branch.

What the decision can see: the whole journal when a resume reads it whole (up to 4,096 rows), else the 256 calls
from the patch's on (a longer journal is read by windows). An old run whose fan-out left more than 256 calls
unfinished just at the patch point, with later ones recorded, would be taken for one at its frontier.

The first call of a patch in a run decides for the whole run (later calls with the same id return the same and
take no key), so one run never mixes the old branch and the new.

Once no run from before the patch is unfinished, replace ``patched(id)`` with ``deprecate_patch(id)`` and keep only
the new branch: it takes a recorded marker's key (so runs that did journal one still replay), and journals nothing.
When no run holding a marker is unfinished either, delete the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _clock, _context
from ._core import from_call
from ._digest import digest_call
from .errors import UsageError
from .stores._base import OK, JournalRow

if TYPE_CHECKING:
    from ._context import Scope

PATCHED = "durable.patched"


def patched(patch_id: str) -> bool:
    """Whether this run takes the new branch of the patch named ``patch_id`` (see the module docstring).

    New runs, and runs reaching the call for the first time, get ``True`` (journaled); runs recorded past this
    point by code without the patch get ``False``, on every replay. The first call in a run decides for the whole
    run: later calls with the same id return the same, taking no key. Outside a run it is ``True``.
    """
    _check_id(patch_id)
    scope = _context.current.get()
    if scope is None:
        return True
    run = scope.run
    decided = run.patches.get(patch_id)
    if decided is None:
        decided = run.patches[patch_id] = _decide(scope, patch_id)
    return decided


def _decide(scope: Scope, patch_id: str) -> bool:
    run, key, digest = scope.run, f"{scope.prefix}{scope.n}", digest_call((patch_id,), {})
    replay = run.replay
    row = replay.peek(key)
    if row is not None and row.name == PATCHED and row.digest == digest:
        if run.signed:  # a marker steers the run: it is verified as any recorded value is
            run.codec.open_row(row, run.run_id)
        scope.next_key()
        replay.lookup(key, PATCHED, digest)
        return True
    if row is not None or replay.reached(scope.prefix, scope.n) or from_call(run.asked, scope.prefix, scope.n):
        # Recorded by code from before the patch: its call here was something else (or is a question waiting for
        # its answer, or a task that died mid-way with its own calls recorded), so it keeps the old branch.
        return False
    scope.next_key()
    inner = run.codec.serialize_plain(patch_id, f"the marker of patch {patch_id!r}")
    payload = run.codec.seal(inner, run.run_id, key, PATCHED, 1, OK, digest)
    at = _clock.clock.time()
    marker = JournalRow(key, 1, PATCHED, OK, digest, payload, at, at)
    if run.on_loop():
        run.post(marker)
    else:
        run.write(marker)
    return True


def deprecate_patch(patch_id: str) -> None:
    """Keep replaying runs that journaled ``patched(patch_id)``'s marker once the old branch is gone: the call
    takes the marker's key when the run has one there, and journals nothing."""
    _check_id(patch_id)
    scope = _context.current.get()
    if scope is None:
        return
    key, digest = f"{scope.prefix}{scope.n}", digest_call((patch_id,), {})
    row = scope.run.replay.peek(key)
    if row is not None and row.name == PATCHED and row.digest == digest:
        scope.next_key()
        scope.run.replay.lookup(key, PATCHED, digest)


def _check_id(patch_id: str) -> None:
    if not isinstance(patch_id, str) or not patch_id:
        raise UsageError(f"patched({patch_id!r}): name the patch with a non-empty string, the same on every run")
