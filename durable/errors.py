"""Every error `durable` raises derives from :class:`DurableError`.

The tree::

    DurableError
    ├── ConfigurationError        bad options, a missing or malformed thread id, an unknown store URL
    │   ├── JournalNotFoundError      a read-only command named a journal (file, schema) that does not exist
    │   └── InvalidNamespaceError     a `Memory` namespace that is empty, has a bad label, or is durable's own
    ├── UsageError                an API used the wrong way (a sync wait on an async task, ...)
    ├── ThreadNotFoundError       `None` or `get_state` on a thread that has no journal
    ├── UnfinishedRunError        new input while the thread's last run is unfinished
    ├── ResumeError               a Command that answers nothing pending, or not what is pending
    │   └── AnswerRejectedError       an answer that does not satisfy its interrupt's ``response_schema``
    ├── ThreadBusyError           another executor holds the thread's lease
    ├── ThreadExistsError         an import or fork names a thread the store already has
    ├── EntrypointMismatchError   a thread is invoked by another entrypoint than the one it belongs to
    ├── LeaseLostError            our lease was taken over; our writes are refused
    ├── DeadLetteredError         a run whose executors kept dying, set aside by a worker (a failed run's error)
    ├── RunCancelledError         the run was cancelled (`Entrypoint.cancel`); it is failed and resumable
    ├── TaskTimeoutError          a task ran past its `timeout=` (also a `TimeoutError`; retry policies see it)
    ├── InterruptTimeoutError     nobody answered an interrupt by its ``timeout=`` and it has no ``default=``
    ├── InvalidUpdateError        a graph node's update does not fit the state (two values for a plain key, ...)
    ├── GraphRecursionError       a graph ran more supersteps than its ``recursion_limit`` (a `RecursionError`)
    ├── NonDeterminismError       a replayed call differs from the journal
    │   └── ArgumentsChangedError     same task, different arguments
    ├── SerializationError        a value cannot be stored, or a stored one cannot be read
    │   ├── IncompatibleJournalError  written by a Python (or serializer) that cannot be read here
    │   └── RecordedValueError        a recorded value the current code cannot read (a class that changed, a task
    │                                 version with no upgrade), naming the thread, key and type
    ├── IntegrityError            a blob fails its signature check, or is unsigned while a key is set
    └── StoreError                the database failed; the driver's error is in __cause__
        └── SchemaVersionError        the database was written by a newer `durable`

`NonRetryableError` is not raised by `durable`: a task raises it (or a subclass) to
say that no retry policy should try it again. `InsecureJournalWarning` and `VolatileJournalWarning` are
warnings, not errors: a journal file that others can write to; a journal on a server that keeps nothing on disk.

Each message says what happened and what to do next. Errors with their own
``__init__`` define ``__reduce__`` so they survive pickling (they are journaled
and cross process boundaries).
"""

from __future__ import annotations

from typing import Any


class DurableError(Exception):
    """Base class of every error raised by `durable`."""


class ConfigurationError(DurableError, ValueError):
    """An option, URL or argument is invalid; nothing was run or written."""


class JournalNotFoundError(ConfigurationError):
    """A read-only command was pointed at a journal that does not exist; nothing was created."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"there is no durable journal at {where}: check the path (or the URL and its schema); "
            f"read-only commands never create one"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where,))


class InvalidNamespaceError(ConfigurationError):
    """A `Memory` namespace LangGraph refuses too (LangGraph's ``InvalidNamespaceError`` is a ``ValueError``,
    as this one is), or one reserved for durable's own rows; nothing was read or written."""


class InsecureJournalWarning(UserWarning):
    """A journal file that other users can write to (or that another user owns): they could change what runs."""


class VolatileJournalWarning(UserWarning):
    """A journal on a server that keeps nothing on disk (a Redis without an append-only file or snapshots): a restart
    of the server loses every thread."""


class UsageError(DurableError, TypeError):
    """An API was used the wrong way; the message says the right way."""


class ThreadNotFoundError(DurableError, LookupError):
    """The thread has no journal in this store."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(
            f"thread {thread_id!r} has no journal in this store: start it with an input "
            f"(not None), or check the thread id and the checkpointer (a SQLite journal's latest commits are in "
            f"its -wal file: if that was deleted, restore a backup with durable restore)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id,))


class UnfinishedRunError(DurableError):
    """New input was given while the thread's last run is unfinished."""

    def __init__(self, thread_id: str, run_id: int, status: str, entrypoint: str = "") -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.status = status
        self.entrypoint = entrypoint
        shell = _shell_word(thread_id)
        where = f"MODULE:{entrypoint or 'ENTRYPOINT'}"
        resume = (
            f"answer it with invoke(Command(resume=...), thread_id={thread_id!r}) (or durable resume {where} "
            f"{shell} --resume-json JSON)"
            if status == "interrupted"
            else f"resume it with invoke(None, thread_id={thread_id!r}) (or durable resume {where} {shell})"
        )
        super().__init__(
            f"thread {thread_id!r} has an unfinished run #{run_id} (status {status!r}) and the new input was not "
            f"recorded: {resume}; cancel it (durable cancel {shell}); start the thread over (durable delete {shell}, "
            f"which deletes its journal); or use another thread id. The commands take --url URL when the journal is "
            f"not $DURABLE_URL or ./durable.db"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.run_id, self.status, self.entrypoint))


def _shell_word(text: str) -> str:
    """``text`` as one word of a shell command (quoted only when it must be)."""
    import shlex

    return shlex.quote(text)


class ResumeError(DurableError):
    """A `Command` that does not fit the thread's pending interrupts; nothing was recorded."""


class AnswerRejectedError(ResumeError):
    """An answer that does not satisfy its interrupt's ``response_schema``; the question stays pending.

    ``errors`` lists each problem as ``{"interrupt": id, "path": "field.sub", "message": ...}`` (the shape
    the web console and its API show). Raised before anything is journaled when the schema is a JSON Schema
    (every ``response_schema`` is recorded as one); a check only the Python type can make (a Pydantic
    validator) runs when the run reaches the question again, which asks it anew.
    """

    def __init__(self, thread_id: str, errors: list[dict[str, str]]) -> None:
        self.thread_id = thread_id
        self.errors = errors
        shown = "; ".join(f"{e['interrupt']}: {e['path'] or '(answer)'}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(
            f"thread {thread_id!r}: the answer does not fit the question's response_schema: {shown}{more}; "
            f"nothing was recorded and the question is still pending: answer again with a value that fits"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.errors))


class ThreadExistsError(DurableError):
    """An import or a fork would create a thread that the store already has; nothing was written."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(
            f"thread {thread_id!r} already exists in this store: delete it first, or choose another thread id"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id,))


class EntrypointMismatchError(DurableError):
    """A thread belongs to the entrypoint that started it; another one was invoked on it. Nothing was recorded."""

    def __init__(self, thread_id: str, recorded: str, called: str) -> None:
        self.thread_id = thread_id
        self.recorded = recorded
        self.called = called
        super().__init__(
            f"thread {thread_id!r} belongs to entrypoint {recorded!r}, not {called!r}: invoke {recorded!r} on it "
            f"(if you renamed the entrypoint, give it @entrypoint(name={recorded!r})), or use another thread id. "
            f"Nothing was recorded"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.recorded, self.called))


class ThreadBusyError(DurableError):
    """Another executor is running this thread; nothing was run."""

    def __init__(self, thread_id: str, owner: str | None, expires_in: float | None) -> None:
        self.thread_id = thread_id
        self.owner = owner
        self.expires_in = expires_in
        when = "" if expires_in is None else f" (its lease expires in {max(expires_in, 0.0):.1f}s)"
        super().__init__(
            f"thread {thread_id!r} is being run by {owner}{when}; wait for that run to end, or "
            f"resume with invoke(None, ...) once the lease has expired if that process died"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.owner, self.expires_in))


class LeaseLostError(DurableError):
    """Another executor took over this thread; this run's writes were refused."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        super().__init__(
            f"lost the lease on thread {thread_id!r}: another executor took it over (this process "
            f"was probably paused past its lease); this run stopped and its late result was not recorded"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id,))


class DeadLetteredError(DurableError):
    """A worker set the run aside: its executors died while running it too many times.

    It is the failed run's recorded error (``get_state(...).error``); nothing
    in the journal was removed, and ``invoke(None, ...)`` resumes the run.
    """

    def __init__(self, thread_id: str, run_id: int, crashes: int) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.crashes = crashes
        super().__init__(
            f"run #{run_id} of thread {thread_id!r} was dead-lettered: {crashes} executors died while running it "
            f"(a crash, an OOM kill, a lease that lapsed). Look at its journal (get_state) for the step it dies "
            f"in, fix the cause, then resume it with invoke(None, thread_id={thread_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.run_id, self.crashes))


class RunCancelledError(DurableError):
    """The run was cancelled with `Entrypoint.cancel`: it stopped at a task boundary and is failed.

    The journal keeps what it recorded; ``invoke(None, thread_id=...)`` resumes it.
    """

    def __init__(self, thread_id: str, run_id: int) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        super().__init__(
            f"run #{run_id} of thread {thread_id!r} was cancelled; its journal is kept: resume it with "
            f"invoke(None, thread_id={thread_id!r}) or leave it"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.run_id))


class TaskTimeoutError(DurableError, TimeoutError):
    """A task ran past its ``timeout=``. A retry policy may try it again like any other error."""

    def __init__(self, task: str, key: str, timeout: float, abandoned: bool) -> None:
        self.task = task
        self.key = key
        self.timeout = timeout
        self.abandoned = abandoned
        what = (
            "its thread was abandoned and may still be running (Python cannot stop a thread)"
            if abandoned
            else "it was cancelled"
        )
        where = f" (key {key})" if key else " (called outside a run)"
        super().__init__(f"task {task!r}{where} did not finish within {timeout:g} s: {what}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task, self.key, self.timeout, self.abandoned))


class InterruptTimeoutError(DurableError, TimeoutError):
    """Nobody answered an ``interrupt(..., timeout=)`` in time and it gives no ``default=``.

    Raised where the ``interrupt(...)`` call is, once the deadline passed and the run was resumed (by a
    worker, or by ``invoke(None, ...)``): catch it there to take another path, or let it fail the run.
    The timeout is journaled, so every replay raises it at the same place.
    """

    def __init__(self, interrupt_id: str, deadline: float) -> None:
        self.interrupt_id = interrupt_id
        self.deadline = deadline
        import time

        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(deadline))
        super().__init__(
            f"interrupt {interrupt_id!r} was not answered by its deadline ({when}) and has no default=: "
            f"give interrupt(..., default=...) to carry on without an answer, or catch InterruptTimeoutError"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.interrupt_id, self.deadline))


class InvalidUpdateError(DurableError, ValueError):
    """A graph node returned an update the state cannot take: not a mapping of state keys, two values for a
    key without a reducer in one superstep, or a `Command` sent to a graph that has no parent.

    Raised in the node's task, it is journaled as that node's error: fix the node (or give the key a
    reducer with ``Annotated[T, reducer]``) and resume the thread with ``None``.
    """


class GraphRecursionError(DurableError, RecursionError):
    """A graph ran ``recursion_limit`` supersteps without reaching its end.

    The run fails with it and stays resumable: nothing journaled is lost. Raise the limit for this
    invocation (``config={"recursion_limit": 100, ...}``) and resume with ``None``, or fix the loop's exit
    condition (a conditional edge that never routes to ``END``).
    """

    def __init__(self, limit: int, thread_id: str = "") -> None:
        self.limit = limit
        self.thread_id = thread_id
        where = f" on thread {thread_id!r}" if thread_id else ""
        super().__init__(
            f"recursion limit of {limit} supersteps reached without hitting a stop condition{where}: raise it "
            f"with config={{'recursion_limit': N, ...}} and resume with None, or check that a conditional edge "
            f"routes to END"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit, self.thread_id))


class NonRetryableError(Exception):
    """Raise it (or subclass it) in a task to fail at once, whatever its retry policy says.

    ``raise NonRetryableError("card declined") from exc`` keeps the cause.
    """


class NonDeterminismError(DurableError):
    """On replay, a call does not match what the journal recorded under its key."""

    def __init__(self, key: str, recorded: str, actual: str, detail: str = "") -> None:
        self.key = key
        self.recorded = recorded
        self.actual = actual
        self.detail = detail
        super().__init__(
            detail
            or f"journal key {key!r} recorded task {recorded!r} but the replay called {actual!r}: "
            f"the entrypoint's code or inputs changed since the run started. Keep calls in the "
            f"same order (wrap non-deterministic code in a @task), or start a new thread"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.recorded, self.actual, self.detail))


class ArgumentsChangedError(NonDeterminismError):
    """On replay, a task is called with arguments that differ from the recorded ones."""

    def __init__(self, key: str, recorded: str, actual: str, detail: str = "") -> None:
        super().__init__(
            key,
            recorded,
            actual,
            detail
            or f"journal key {key!r} (task {recorded!r}) is replayed with different arguments "
            f"than were recorded; pass on_changed_args='rerun' to run it again with the new "
            f"arguments, 'warn' to replay the old result, or start a new thread",
        )


class SerializationError(DurableError, TypeError):
    """A value could not be serialized for the journal, or a stored one could not be read."""

    def __init__(self, what: str, type_name: str, reason: str, reading: bool = False) -> None:
        self.what = what
        self.type_name = type_name
        self.reason = reason
        self.reading = reading
        super().__init__(
            f"cannot read {what}: {reason}. The journal entry is kept as it is: fix the cause (a module or class "
            f"that moved, another serializer) and resume again"
            if reading
            else f"cannot serialize {what} of type {type_name}: {reason}. Return plain data (or an "
            f"object cloudpickle can handle) from tasks; nothing was recorded for it"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.type_name, self.reason, self.reading))


class IncompatibleJournalError(SerializationError):
    """The run was journaled in a format this process cannot safely read (another Python, another serializer)."""

    def __init__(self, thread_id: str, written: str, here: str, advice: str) -> None:
        self.thread_id = thread_id
        self.written = written
        self.here = here
        self.advice = advice
        DurableError.__init__(
            self, f"thread {thread_id!r} was journaled with {written!r} but this process has {here!r}: {advice}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.written, self.here, self.advice))


class RecordedValueError(SerializationError):
    """A value the journal recorded cannot be read as the code now needs it: its class moved or changed (a field
    it declares now is missing), or it was recorded by a version of its task that nothing upgrades.

    Raised on replay (the resume stops there, nothing is run or changed) and reported by ``durable verify``
    before a deploy. ``thread_id``, ``key``, ``task`` and ``type_name`` say which value; ``reason`` why.
    """

    def __init__(self, thread_id: str, key: str, task: str, type_name: str, reason: str, advice: str = "") -> None:
        self.thread_id = thread_id
        self.key = key
        self.task = task
        self.what = f"the recorded result of task {task!r} (key {key}) in thread {thread_id!r}"
        self.type_name = type_name
        self.reason = reason
        self.advice = advice
        self.reading = True
        DurableError.__init__(
            self,
            f"thread {thread_id!r}, key {key} (task {task!r}): the recorded {type_name} cannot be read by this code: "
            f"{reason}; "
            + (advice or "keep the module and class it names importable, or give the task a version and an upgrade")
            + ". Nothing was run; the journal keeps the value as recorded",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.key, self.task, self.type_name, self.reason, self.advice))


class IntegrityError(DurableError):
    """A journal blob failed verification; it was not deserialized."""


class StoreError(DurableError):
    """The storage backend failed; the driver's exception is kept as ``__cause__``."""


class SchemaVersionError(StoreError):
    """The database schema is newer than this version of `durable` understands."""
