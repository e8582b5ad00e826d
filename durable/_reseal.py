"""Walking every stored value of a thread with its slot: to verify a bundle, re-sign a fork, re-sign a journal.

A run's own values are signed under the run's number and the entrypoint's name (``previous`` is a
copy of the run before's ``save``, so it is signed under that run's slot); a journal row's payload
under its key, task name, attempt, status and digest. `map_values` hands each value to a function
with that slot, and builds the runs and rows again from what it returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from ._codec import SIGNED, SIGNED_V1, Codec
from .errors import ConfigurationError
from .stores._base import RUN_VALUES, JournalRow, RunRow


class OnValue(Protocol):
    def __call__(
        self, blob: bytes, run: int, slot: str, name: str, attempt: int, status: int, digest: bytes | None
    ) -> bytes: ...


def map_values(
    runs: Sequence[RunRow], rows: Sequence[tuple[int, JournalRow]], fn: OnValue
) -> tuple[list[RunRow], list[tuple[int, JournalRow]]]:
    """The runs and rows with each stored value replaced by ``fn(value, slot...)``."""
    by_id = {r.run_id: r for r in runs}
    new_runs = []
    for run in runs:
        changes: dict[str, Any] = {}
        for field in RUN_VALUES:
            blob = getattr(run, field)
            if blob is None:
                continue
            if field == "previous":
                before = by_id.get(run.run_id - 1, run)
                changes[field] = fn(blob, run.run_id - 1, "#save", before.entrypoint, 0, 0, None)
            else:
                changes[field] = fn(blob, run.run_id, f"#{field}", run.entrypoint, 0, 0, None)
        new_runs.append(dataclasses.replace(run, **changes))
    new_rows = [
        (run_id, row._replace(payload=fn(row.payload, run_id, row.key, row.name, row.attempt, row.status, row.digest)))
        for run_id, row in rows
    ]
    return new_runs, new_rows


def verifier(codec: Codec) -> OnValue:
    """Checks each value as the application will (`IntegrityError` for the first that fails); keeps it as it is."""

    def verify(blob: bytes, run: int, slot: str, name: str, attempt: int, status: int, digest: bytes | None) -> bytes:
        codec.open(blob, run, slot, name, attempt, status, digest)
        return blob

    return verify


def resealer(old: Codec, new: Codec, *, sign_unsigned: bool, allow_v1: bool, what: str) -> OnValue:
    """Opens each value under ``old`` (its thread, nonce and keys) and signs it under ``new``.

    A value that fails its check is never re-signed (that would launder a forged row). Version-1
    signatures (which do not cover a row's status or attempt) are re-signed only by `Threads.resign`
    (``allow_v1``), the documented step that trusts them; unsigned values only with ``sign_unsigned``.
    """

    def reseal(blob: bytes, run: int, slot: str, name: str, attempt: int, status: int, digest: bytes | None) -> bytes:
        tag = blob[:1]
        if tag == SIGNED_V1 and not allow_v1 and old.keyring is not None:
            raise ConfigurationError(
                f"{what}: thread {old.thread_id!r} is signed in the version-1 format, which does not cover a "
                f"row's status: re-sign it first with `durable resign {old.thread_id}` (Threads.resign)"
            )
        if tag in (SIGNED, SIGNED_V1) or not sign_unsigned:
            inner = old.open(blob, run, slot, name, attempt, status, digest)
        else:
            inner = blob
        return new.seal(inner, run, slot, name, attempt, status, digest)

    return reseal
