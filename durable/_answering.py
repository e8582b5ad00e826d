"""Answering a paused run without running it: what the web console, the CLI and an application's own endpoints do
when the workflow's code is not at hand (`Threads.answer`).

The answers are checked and journaled exactly as ``invoke(Command(resume=..., by=...))`` journals them, under a
claim of the thread, and the run is left paused but *due* (its ``wake_at`` is now): a worker reserves it as it
reserves a durable sleep that is due, and carries it on; so does the next ``invoke(None, ...)`` of the application.
"""

from __future__ import annotations

from typing import Any

from . import _clock
from ._codec import SIGNED, SIGNED_V1, Codec, Keyring
from ._core import plan
from ._drivers import Flow
from ._drivers import Op as _Op
from ._engine import _claim, _raise_if_held
from ._interrupts import Command
from ._leases import new_owner, retire
from ._questions import answer_rows, answers_given, pending_questions, refuse_answered
from ._serde import TAG_PICKLE, Serializer
from .errors import ConfigurationError, ResumeError, ThreadNotFoundError
from .stores._base import RunOutcome, ThreadRow


def answer_flow(
    serde: Serializer, thread_id: str, command: Command[Any], ring: Keyring | None, unsafe_unpickle: bool = False,
    max_bytes: int | None = None,
) -> Flow:  # fmt: skip
    """Journal ``command``'s answers to the thread's paused run and leave the run due for a worker; returns the
    ids of the interrupts answered. Refuses, before writing, what ``invoke(command)`` would refuse."""
    thread: ThreadRow | None = yield _Op("get_thread", (thread_id,))
    if thread is None or thread.run is None:
        raise ThreadNotFoundError(thread_id)
    codec = _codec(serde, thread, ring, max_bytes)
    _check(thread_id, thread)
    _check_readable(codec, thread, unsafe_unpickle)
    answers_given(codec, thread, command, thread_id)  # refused here, before the claim, when it does not fit
    owner = new_owner()
    try:
        lease = yield from _claim(thread_id, owner, None)
        try:
            now = lease.thread
            _check(thread_id, now, ours=True)
            run = now.run
            assert run is not None and run.interrupts is not None
            if run.run_id != thread.run.run_id or run.interrupts != thread.run.interrupts:
                raise ResumeError(
                    f"thread {thread_id!r} moved on while it was being answered: look at its pending interrupts "
                    f"again (nothing was recorded)"
                )
            records = answers_given(codec, now, command, thread_id)
            rows = yield _Op("journal_keys", (now.tid, run.run_id, list(records)))
            refuse_answered(thread_id, pending_questions(codec, now), rows, records)
            yield _Op("append", (lease, run.run_id, answer_rows(codec, run.run_id, rows, records)))
            # Paused still, but due now: a worker reserves it (the claim marked it running; this puts it back).
            outcome = RunOutcome("interrupted", interrupts=run.interrupts, wake_at=_clock.clock.time())
            yield _Op("finish_run", (lease, run.run_id, outcome))
        except BaseException:
            yield _Op("release", (lease,))
            raise
    finally:
        retire(owner)
    by_key = {p.key: p.id for p in pending_questions(codec, thread)}
    return tuple(by_key[key] for key in records)


def _codec(serde: Serializer, thread: ThreadRow, ring: Keyring | None, max_bytes: int | None) -> Codec:
    run = thread.run
    assert run is not None
    if ring is None and run.input[:1] in (SIGNED, SIGNED_V1):
        # An unsigned answer in a signed journal would read as tampering to the application.
        raise ConfigurationError(
            f"thread {thread.thread_id!r} is signed: an answer is journaled signed, so give the key "
            f"(DURABLE_SECRET, secret=, or --secret-file); nothing was recorded"
        )
    return Codec(serde, ring, thread.thread_id, thread.nonce, run.entrypoint, max_bytes)


def _check_readable(codec: Codec, thread: ThreadRow, unsafe_unpickle: bool) -> None:
    """The questions are read to check the answers against them: a pickle nothing vouches for is not unpickled."""
    run = thread.run
    assert run is not None and run.interrupts is not None
    inner = codec.open(run.interrupts, run.run_id, "#interrupts")  # verified, when there is a key
    if inner[:1] == TAG_PICKLE and codec.keyring is None and not unsafe_unpickle:
        raise ConfigurationError(
            f"thread {thread.thread_id!r}: its questions were journaled as a pickle (not plain data) and nothing "
            f"vouches for them: sign the journal and give the key, or pass unsafe_unpickle=True (--unsafe-unpickle) "
            f"if you trust this journal as you trust your code; nothing was recorded"
        )


def _check(thread_id: str, thread: ThreadRow, ours: bool = False) -> None:
    """Only a paused run that nobody is resuming right now can be answered this way (``ours``: the lease is ours)."""
    plan(thread_id, thread, "command")  # ResumeError when nothing is pending
    run = thread.run
    assert run is not None
    if not ours:
        _raise_if_held(thread_id, thread)
    if run.status != "interrupted":  # a resume is carrying it (or died doing so): its questions are being answered
        raise ResumeError(
            f"thread {thread_id!r} is being resumed (its run is {run.status!r}): answer it once it pauses again"
        )
