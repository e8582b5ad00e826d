"""Checked by mypy (tests/test_quality.py), never run: the public API keeps the types users write."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from typing_extensions import assert_type

import durable
from durable import (
    Command,
    Entrypoint,
    Finding,
    Interrupted,
    JournalDiff,
    MemoryStore,
    NonRetryableError,
    PostgresStore,
    RetryPolicy,
    TaskContext,
    TaskFuture,
    ThreadPage,
    Threads,
    Worker,
    WorkerStats,
    entrypoint,
    task,
    task_context,
)


@task
def double(x: int) -> int:
    return 2 * x


@task(name="fetch", retry=RetryPolicy(max_attempts=2))
async def fetch(url: str, *, timeout: float = 1.0) -> bytes:
    return url.encode()


@entrypoint(checkpointer=MemoryStore())
def pipeline(n: int) -> list[int]:
    return [double(i).result() for i in range(n)]


@entrypoint
async def apipeline(url: str) -> bytes:
    return await fetch(url, timeout=2.0)


assert_type(double(1), TaskFuture[int])
assert_type(double(1).result(), int)
assert_type(fetch("u"), TaskFuture[bytes])
assert_type(pipeline, Entrypoint[int, list[int]])
assert_type(apipeline, Entrypoint[str, bytes])
assert_type(pipeline.invoke(3, thread_id="t"), list[int] | Interrupted)
assert_type(pipeline.invoke(Command(resume=True), thread_id="t"), list[int] | Interrupted)
out = pipeline.invoke(None, thread_id="t")
if not isinstance(out, Interrupted):
    assert_type(out, list[int])
double("not an int")  # type: ignore[arg-type]
fetch("u", timeout="slow")  # type: ignore[arg-type]


class Greeter:
    @task
    def greet(self, name: str) -> str:
        return f"hello {name}"


assert_type(Greeter().greet("ann"), TaskFuture[str])
assert_type(Greeter.greet(Greeter(), "ann"), TaskFuture[str])
Greeter().greet(3)  # type: ignore[arg-type]


# Scaling out: submit returns the thread id; a worker's run returns its stats.
async def _submit() -> None:
    assert_type(await apipeline.asubmit("u"), str)


assert_type(pipeline.submit(3), str)
pipeline.submit("three", thread_id="t")  # type: ignore[arg-type]
worker = Worker([pipeline, apipeline], checkpointer=PostgresStore("postgresql://db/app"), concurrency=2)
assert_type(worker.run_once(), WorkerStats)
assert_type(worker.run_once().completed, int)


# Failure handling and time.
@task(timeout=2.5, retry=RetryPolicy(max_attempts=2, retry_on=lambda exc: not isinstance(exc, NonRetryableError)))
def charge(amount: int) -> str:
    ctx = task_context()
    assert_type(ctx, TaskContext)
    assert_type(ctx.idempotency_key, str)
    assert_type(ctx.attempt, int)
    return ctx.idempotency_key


@entrypoint(checkpointer=MemoryStore(), retry=RetryPolicy())
def timed(n: int) -> float:
    durable.sleep(1.5)
    assert_type(durable.uuid4(), uuid.UUID)
    assert_type(durable.random(), float)
    return durable.now()


async def _asleep() -> None:
    await durable.asleep(2)


assert_type(timed.cancel(thread_id="t"), bool)
assert_type(durable.check("myapp.flows:pipeline"), list[Finding])
task(timeout="soon")  # type: ignore[call-overload]


# Operating threads.
threads = Threads("sqlite:///ops.db")
page = threads.list(status="failed", limit=10)
assert_type(page, ThreadPage)
assert_type(page.next_cursor, str | None)
assert_type(threads.fork("t", at=3, overrides={"2": 5}), str)
assert_type(threads.export("t"), dict[str, Any])
assert_type(threads.diff("a", "b"), list[JournalDiff])
assert_type(pipeline.threads, Threads)
threads.list(status="done")  # type: ignore[arg-type]

# Trust: keys for the tools, sealed values, re-signing, read-only stores.
trusted = Threads("sqlite:///ops.db", secret=b"k" * 32, unsafe_unpickle=False)
report = trusted.resign(["t"], sign_unsigned=True)
assert_type(report, durable.ResignReport)
assert_type(report.failed, Mapping[str, str])
assert_type(trusted.import_bundle({}, runnable=True), str)
shown = trusted.state("t").output
if isinstance(shown, durable.SealedValue):
    assert_type(shown.sha256, str)
    assert_type(shown.type_name, str | None)
assert_type(durable.SQLiteStore("x.db", read_only=True).read_only, bool)
mismatch = durable.EntrypointMismatchError("t", "a", "b")
assert_type(mismatch.recorded, str)
trusted.import_bundle({}, runnable="yes")  # type: ignore[arg-type]

# Long-term memory: LangGraph's BaseStore signatures and results; the task cache's bytes.
memory = durable.Memory("sqlite:///app.db", ttl={"default_ttl": 60, "refresh_on_read": True})
assert_type(memory.get(("users", "1"), "prefs"), durable.Item | None)
assert_type(memory.search(("users",), filter={"size": {"$gt": 3}}, limit=5), list[durable.SearchItem])
assert_type(memory.put(("users", "1"), "prefs", {"theme": "dark"}, ttl=None), None)
assert_type(memory.list_namespaces(prefix=("users", "*"), max_depth=2), list[tuple[str, ...]])
assert_type(memory.bind(MemoryStore()), durable.Memory)
assert_type(durable.Cache(MemoryStore()).get("mod.task", "key"), bytes | None)
assert_type(durable.Cache().clear(), int)

# The Graph API: the builder's chained methods, the compiled graph and its snapshots keep their types.
from typing import TypedDict  # noqa: E402

from durable.graph import END, START, CompiledStateGraph, StateGraph  # noqa: E402


class GraphState(TypedDict):
    n: int


def bump(state: GraphState) -> dict[str, int]:
    return {"n": state["n"] + 1}


graph_builder = StateGraph(GraphState).add_node("bump", bump).add_edge(START, "bump").add_edge("bump", END)
assert_type(graph_builder, StateGraph[GraphState, None, GraphState, GraphState])
compiled = graph_builder.compile(checkpointer=MemoryStore(), interrupt_before=["bump"])
assert_type(compiled, CompiledStateGraph[GraphState, None, GraphState, GraphState])
assert_type(compiled.get_state({"configurable": {"thread_id": "g"}}), durable.ThreadState)
assert_type(compiled.update_state({"configurable": {"thread_id": "g"}}, {"n": 1}, as_node="bump"), dict[str, Any])
assert_type(compiled.entrypoint, Entrypoint[Any, Any])
assert_type(durable.Send("bump", {"n": 1}).node, str)
StateGraph(GraphState).add_edge(START, 3)  # type: ignore[arg-type]
