"""Where a call happens: the scope that numbers its keys, in the run it belongs to.

The current `Scope` lives in a ContextVar, so it follows the code that runs a
body: the entrypoint's thread, a pool thread running a task (entered
explicitly), or an asyncio task (which copies the context when it is created).
"""

from __future__ import annotations

from contextvars import ContextVar
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

    __slots__ = ("deferred", "n", "outstanding", "prefix", "run")

    def __init__(self, run: Run, prefix: str) -> None:
        self.run = run
        self.prefix = prefix
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
