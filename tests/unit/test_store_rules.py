"""The decisions every store shares (`durable.stores._rules`), without a store."""

from __future__ import annotations

import dataclasses

import pytest

from durable.stores import NewRun, RunRow
from durable.stores._rules import cancellable, due_to_workers, held_by_another, resumed_by_hand, run_to_start

RUN = RunRow(3, "ep", "completed", b"Pin", None, 1.0)
NEW = NewRun("ep", b"Pin", None, 4, b"n" * 16)


def status(s: str) -> RunRow:
    return dataclasses.replace(RUN, status=s)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("holder", "left", "owner", "steal_from", "kept_out"),
    [
        (None, None, "me", None, False),  # nobody holds it
        ("you", 10.0, "me", None, True),  # a live lease of someone else
        ("you", 0.0, "me", None, False),  # expired at this instant
        ("you", -3.0, "me", None, False),  # expired
        ("you", None, "me", None, False),  # held with no expiry: counts as expired
        ("me", 10.0, "me", None, False),  # my own lease
        ("you", 10.0, "me", "you", False),  # taken over from the owner named
        ("you", 10.0, None, None, True),  # anyone's live lease keeps a delete out
    ],
)
def test_held_by_another(holder: str | None, left: float | None, owner: str | None, steal_from: str | None,
                         kept_out: bool) -> None:  # fmt: skip
    assert held_by_another(holder, left, owner, steal_from) is kept_out


def test_a_claim_starts_the_next_run_only_for_the_thread_it_was_signed_for() -> None:
    assert run_to_start(None, b"n" * 16, dataclasses.replace(NEW, run_id=1)) == 1
    assert run_to_start(RUN, b"n" * 16, NEW) == 4
    assert run_to_start(RUN, b"x" * 16, NEW) is None  # another nonce: the thread was deleted and made again
    assert run_to_start(RUN, b"n" * 16, dataclasses.replace(NEW, run_id=5)) is None  # a run was added since
    assert run_to_start(status("failed"), b"n" * 16, NEW) is None  # the latest run is unfinished
    assert run_to_start(RUN, b"n" * 16, None) is None  # no run asked for


def test_resumed_by_hand_and_cancellable() -> None:
    assert resumed_by_hand(status("failed"), None) and resumed_by_hand(status("interrupted"), None)
    assert not resumed_by_hand(status("running"), None) and not resumed_by_hand(None, None)
    assert not resumed_by_hand(status("failed"), NEW)  # a claim starting a run resumes nothing
    assert cancellable(status("running"), 3) and cancellable(status("interrupted"), 3)
    assert not cancellable(status("running"), 2)  # not the latest run
    assert not cancellable(RUN, 3) and not cancellable(status("failed"), 3) and not cancellable(None, 3)


@pytest.mark.parametrize(
    ("state", "wake_at", "due"),
    [
        ("running", None, True),  # submitted, or its executor died
        ("running", 50.0, True),  # a durable sleep that is over
        ("running", 150.0, False),  # still asleep
        ("interrupted", None, False),  # waiting for a person, no deadline
        ("interrupted", 50.0, True),  # a deadline passed, or answered for a worker
        ("interrupted", 150.0, False),  # a deadline still ahead
        ("completed", 50.0, False),
        ("failed", None, False),
    ],
)
def test_due_to_workers(state: str, wake_at: float | None, due: bool) -> None:
    """What a worker's reserve takes at time 100 (once no live lease covers the thread)."""
    assert due_to_workers(dataclasses.replace(status(state), wake_at=wake_at), 100.0) is due
