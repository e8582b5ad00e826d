"""Where a call happens: the scope that numbers its keys, in the run it belongs to.

The current `Scope` lives in a ContextVar, so it follows the code that runs a
body: the entrypoint's thread, a pool thread running a task (entered
explicitly), or an asyncio task (which copies the context when it is created).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._futures import TaskFuture
    from ._run import Run


class Scope:
    """The calls made by one body: the entrypoint's, or one task's children.

    It numbers them (keys are hierarchical: the third call inside the task at
    key ``"4"`` is ``"4.2"``) and keeps the futures it has not seen finish, so
    the body's end can wait for them. Only the body itself calls into its
    scope, so no lock is needed.
    """

    __slots__ = ("attempt", "deferred", "n", "outstanding", "prefix", "run", "task")

    def __init__(self, run: Run, prefix: str, task: str = "", attempt: int = 0) -> None:
        self.run = run
        self.prefix = prefix
        # The task whose body this scope numbers the calls of ("" in the entrypoint's body), for task_context().
        self.task = task
        self.attempt = attempt
        self.n = 0
        # Sync futures not started yet: the next call or wait starts them (see TaskFuture).
        self.deferred: TaskFuture[Any] | None = None
        # Futures started in the pool or on the loop, for the body's end to wait for (made on first use).
        self.outstanding: list[TaskFuture[Any]] | None = None

    def next_key(self) -> str:
        n = self.n
        self.n = n + 1
        return f"{self.prefix}{n}"

    def track(self, fut: TaskFuture[Any]) -> None:
        out = self.outstanding
        if out is None:
            self.outstanding = out = []
        elif len(out) >= 64:
            out[:] = [f for f in out if not f.done()]
        out.append(fut)

    def start(self, fut: TaskFuture[Any]) -> None:
        """Hand a deferred future to the pool; the body's end waits for it."""
        fut.dispatch()
        self.track(fut)


current: ContextVar[Scope | None] = ContextVar("durable_scope", default=None)


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Where a task body runs: `durable.task_context()` returns it inside a ``@task``.

    ``idempotency_key`` names this call of this task in this run: the same on
    every attempt and after a crash and resume, different for any other call.
    Pass it to payment, email or ticketing APIs so a repeated attempt is
    recognised as the same request. ``attempt`` counts from 1 and keeps
    counting across resumes.
    """

    thread_id: str
    run_id: int
    key: str
    task: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.thread_id}\x00{self.run_id}\x00{self.key}"))


_NAMESPACE = uuid.UUID("5f0c7f52-3b1e-4d43-9d0e-6a1d7c6e2b10")  # durable's; never change it


def task_context() -> TaskContext:
    """The running task's `TaskContext` (thread, run, key, attempt, idempotency key).

    Raises `UsageError` outside a task body: the entrypoint's own code has no key of its own.
    """
    scope = current.get()
    if scope is None or not scope.task:
        from .errors import UsageError

        raise UsageError(
            "task_context() is only available inside a @task body (where a call has a key and attempts); "
            "call it from the task that talks to the outside world"
        )
    run = scope.run
    return TaskContext(run.thread_id, run.run_id, scope.prefix[:-1], scope.task, scope.attempt)
