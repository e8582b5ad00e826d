"""What the console does, for its pages and its API alike: find threads, answer, resume, and say why not.

Every call blocks on the store; the routes run them in Starlette's thread pool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .._admin import Threads, _encode_cursor
from ..errors import (
    AnswerRejectedError,
    ConfigurationError,
    DurableError,
    IntegrityError,
    ResumeError,
    ThreadBusyError,
    ThreadExistsError,
    ThreadNotFoundError,
    UsageError,
)
from ..stores._base import RunStatus, ThreadSummary
from .auth import csrf_token
from .runner import Runner

STATUSES = ("running", "interrupted", "completed", "failed")
MAX_SCANNED = 10_000  # threads looked at for one page of a text search
NO_WORKER = "answered; waiting for a worker (durable worker MODULE) to carry the run"
RESUMING = "answered — resuming"


class Conflict(DurableError):
    """What the console cannot do now, and what would let it: an HTTP 409."""


def status_for(exc: BaseException) -> int:
    """The HTTP status of a `DurableError`: 404 unknown thread, 409 not now, 422 rejected answer, 400 bad input."""
    if isinstance(exc, ThreadNotFoundError):
        return 404
    if isinstance(exc, AnswerRejectedError):
        return 422
    if isinstance(exc, ResumeError | ThreadBusyError | ThreadExistsError | Conflict | IntegrityError):
        return 409
    if isinstance(exc, ConfigurationError | UsageError):
        return 400
    return 500


@dataclass
class Console:
    """The console's one journal (through `Threads`), its token, and its runner when it has MODULEs."""

    threads: Threads
    token: str
    read_only: bool = False
    runner: Runner | None = None
    url: str = ""
    csrf: str = field(init=False)

    def __post_init__(self) -> None:
        self.csrf = csrf_token(self.token)

    @property
    def carries(self) -> bool:
        return self.runner is not None

    def find(
        self, *, status: str | None, entrypoint: str | None, q: str | None, limit: int, cursor: str | None
    ) -> tuple[list[ThreadSummary], str | None]:
        """A page of threads, newest first; ``q`` keeps those whose id contains it (case-insensitive)."""
        if status is not None and status not in STATUSES:
            raise ConfigurationError(f"status={status!r}: use one of {', '.join(STATUSES)}")
        if not 1 <= limit <= 500:
            raise ConfigurationError(f"limit={limit!r}: use 1 to 500")
        wanted: RunStatus | None = status  # type: ignore[assignment]
        if not q:
            page = self.threads.list(status=wanted, entrypoint=entrypoint, limit=limit, cursor=cursor)
            return list(page), page.next_cursor
        needle, found, scanned = q.casefold(), [], 0
        last: ThreadSummary | None = None
        while True:
            page = self.threads.list(status=wanted, entrypoint=entrypoint, limit=min(500, limit * 4), cursor=cursor)
            for summary in page:
                scanned, last = scanned + 1, summary
                if needle in summary.thread_id.casefold():
                    found.append(summary)
                    if len(found) > limit:
                        top = found[limit - 1]
                        return found[:limit], _encode_cursor(top.started_at, top.thread_id)
            if page.next_cursor is None:
                return found, None
            cursor = page.next_cursor
            if scanned >= MAX_SCANNED and last is not None:  # a page's worth of looking: go on from here
                return found, _encode_cursor(last.started_at, last.thread_id)

    def interrupts(self, *, overdue: bool = False, limit: int = 1000) -> list[tuple[str, Any]]:
        return self.threads.interrupts(limit=limit, overdue=overdue)

    def answer(self, thread_id: str, resume: Any, by: str | None) -> dict[str, Any]:
        """Journal the answer(s) (checked against each question's schema first); the runner, if any, carries on."""
        ids = self.threads.answer(thread_id, resume, by=by)
        if self.runner is not None:
            self.runner.poke()
        message = RESUMING if self.carries else NO_WORKER
        return {"thread_id": thread_id, "answered": list(ids), "carried": self.carries, "message": message}

    def resume(self, thread_id: str) -> dict[str, Any]:
        """Resume a failed or crashed run with the MODULEs' code, in the background."""
        thread = self.threads.store.get_thread(thread_id)
        if thread is None or thread.run is None:
            raise ThreadNotFoundError(thread_id)
        run = thread.run
        if self.runner is None:
            raise Conflict(
                f"resuming thread {thread_id!r} runs its code: start the console with its modules "
                f"(durable ui MODULE ...), or run durable resume MODULE:ENTRYPOINT {thread_id}"
            )
        if run.status == "completed":
            raise Conflict(f"thread {thread_id!r} completed: nothing to resume (fork it to run part of it again)")
        if run.status == "interrupted":
            raise Conflict(f"thread {thread_id!r} is waiting for an answer: answer its interrupts to resume it")
        left = (thread.lease_expires or 0.0) - time.time()
        if run.status == "running" and thread.owner is not None and left > 0:
            raise ThreadBusyError(thread_id, thread.owner, left)
        ep = self.runner.entrypoint(run.entrypoint)
        if ep is None:
            raise Conflict(
                f"thread {thread_id!r} ran entrypoint {run.entrypoint!r}, which the console's modules do not define "
                f"(they define {', '.join(self.runner.names)})"
            )
        self.runner.resume(ep, thread_id)
        return {"thread_id": thread_id, "resuming": True, "message": "resuming"}
