"""A paused run's questions and their answers, as the engine and `Threads.answer` read and write them (no I/O but the
reads a flow yields).

- `pending_questions` reads the questions a pause recorded;
- `due` says whether a paused run has something to go on with (an answer not yet used, or a deadline passed);
- `answers_given` checks a `Command` against the questions before anything is written, and makes each answer's
  record (who, when);
- `refuse_answered` keeps an answer waiting to be carried on from being replaced;
- `answer_rows` and `timeout_rows` make the journal rows.
"""

from __future__ import annotations

from typing import Any

from . import _answers, _clock
from ._codec import Codec
from ._drivers import Flow
from ._drivers import Op as _Op
from ._interrupts import INTERRUPT, Command, PendingInterrupt, answers_for, pending_from_data
from .errors import AnswerRejectedError, ResumeError
from .stores._base import ANSWER, JournalRow, ThreadRow


def pending_questions(codec: Codec, thread: ThreadRow | None) -> tuple[PendingInterrupt, ...]:
    """The questions the thread's run recorded when it last paused (none: it has not paused)."""
    run = thread.run if thread is not None else None
    if run is None or run.interrupts is None:
        return ()
    return pending_from_data(read_questions(codec, run.interrupts, run.run_id))


def read_questions(codec: Codec, blob: bytes, run_id: int) -> Any:
    """A run's recorded pending interrupts (JSON when they were plain data, whatever the serializer)."""
    return codec.load_plain(codec.open(blob, run_id, "#interrupts"), "the pending interrupts")


def pending_rows(thread: ThreadRow, pending: tuple[PendingInterrupt, ...]) -> Flow:
    """The journal rows at the keys of the run's pending interrupts (whether they are answered, and how often)."""
    run = thread.run
    assert run is not None
    keys = [p.key for p in pending]
    if not keys:
        return []
    return (yield _Op("journal_keys", (thread.tid, run.run_id, keys)))


def due(pending: tuple[PendingInterrupt, ...], rows: list[JournalRow]) -> bool:
    """Whether a paused run with these questions has something to go on with: an answer in the journal to one of
    them (one not refused already), or a question whose deadline passed (by the clock durable sleeps use)."""
    now = _clock.clock.time()
    seen = {p.key: p.seen for p in pending}
    if any(r.status == ANSWER and r.key in seen and r.attempt > seen[r.key] for r in rows):
        return True
    return any(p.deadline is not None and p.deadline <= now for p in pending)


def answers_given(
    codec: Codec, thread: ThreadRow, command: Command[Any], thread_id: str,
    pending: tuple[PendingInterrupt, ...] | None = None,
) -> dict[str, bytes]:  # fmt: skip
    """A `Command`'s answers by journal key, checked against their questions' schemas (``pending``: the thread's,
    when already read) and serialized as the records their rows will hold (who answered, when): everything that
    can refuse them, before any write."""
    by = _answers.check_by(command.by)
    if pending is None:
        pending = pending_questions(codec, thread)
    chosen = answers_for(pending, command.resume, thread_id)
    problems = []
    for p in pending:
        if p.key in chosen and p.schema is not None:
            # What is checked is what is journaled: the answer as the JSON data the schema describes.
            chosen[p.key] = _answers.plain(chosen[p.key])
            problems += _answers.check(p.schema, chosen[p.key], p.id)
    if problems:
        raise AnswerRejectedError(thread_id, problems)
    now = _clock.clock.time()
    return {
        key: _answers.record(codec.serialize_plain(value, f"the answer to interrupt {key}"), by, now)
        for key, value in chosen.items()
    }


def refuse_answered(
    thread_id: str, pending: tuple[PendingInterrupt, ...], rows: list[JournalRow], records: dict[str, bytes]
) -> None:  # fmt: skip
    """A question that already has an answer waiting to be carried on (given through `Threads.answer`, by a resume
    that then died, or by its deadline) is not answered again: the run takes the answer given first."""
    seen = {p.key: p.seen for p in pending}
    taken = {r.key for r in rows if r.status == ANSWER and r.key in records and r.attempt > seen.get(r.key, 0)}
    if taken:
        ids = [p.id for p in pending if p.key in taken]
        raise ResumeError(
            f"thread {thread_id!r}: interrupt(s) {ids} already have an answer waiting to be carried on; nothing was "
            f"recorded (the run takes the answer given first): resume it with invoke(None, thread_id=...)"
        )


def answer_rows(codec: Codec, run_id: int, rows: list[JournalRow], records: dict[str, bytes]) -> list[JournalRow]:
    """The journal rows of these answers (their records by key, as `_answers.record` made them), each the next
    attempt at its key."""
    now = _clock.clock.time()
    last: dict[str, int] = {}
    for r in rows:
        if r.key in records:
            last[r.key] = max(r.attempt, last.get(r.key, 0))
    made = []
    for key, inner in records.items():
        attempt = last.get(key, 0) + 1
        payload = codec.seal(inner, run_id, key, INTERRUPT, attempt, ANSWER, _answers.RECORD)
        made.append(JournalRow(key, attempt, INTERRUPT, ANSWER, _answers.RECORD, payload, now, now))
    return made


def timeout_rows(
    codec: Codec, run_id: int, rows: list[JournalRow], asked: tuple[PendingInterrupt, ...], answered: set[str]
) -> list[JournalRow]:  # fmt: skip
    """The rows that answer the questions whose deadline passed, unanswered: each with its default, or with none
    (then the `interrupt` call raises `InterruptTimeoutError`)."""
    now = _clock.clock.time()
    latest = {r.key: r.attempt for r in rows if r.status == ANSWER}
    records = {}
    for p in asked:
        if p.deadline is None or p.deadline > now or p.key in answered or latest.get(p.key, 0) > p.seen:
            continue
        value = p.default[0] if p.default is not None else None
        inner = codec.serialize_plain(value, f"the default answer to interrupt {p.key}")
        records[p.key] = _answers.record(inner, None, now, timed_out=True, defaulted=p.default is not None)
    return answer_rows(codec, run_id, rows, records) if records else []
