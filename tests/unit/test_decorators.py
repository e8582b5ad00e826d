"""`@task` and `@entrypoint`: bare and with options, on sync and async functions, and outside any run."""

from __future__ import annotations

import asyncio
import inspect
import typing

import pytest

from durable import (
    ConfigurationError,
    Entrypoint,
    MemoryStore,
    RetryPolicy,
    TaskFuture,
    entrypoint,
    task,
)


class Boom(Exception):
    pass


def fetch(url: str, *, retries: int = 2) -> str:
    """Fetch a page."""
    return f"page:{url}:{retries}"


async def ask(prompt: str, temperature: float = 0.0) -> list[str]:
    """Ask a model."""
    return [prompt, str(temperature)]


def pipeline(urls: list[str], *, previous: list[str] | None = None) -> list[str]:
    """Fetch every page."""
    return urls


DECORATORS = {
    "task": task,
    "task()": task(),
    "task(name, retry)": task(name="custom", retry=RetryPolicy(max_attempts=2, initial_interval=0)),
}


@pytest.mark.parametrize("fn", [fetch, ask], ids=["sync", "async"])
@pytest.mark.parametrize("decorate", DECORATORS.values(), ids=DECORATORS.keys())
def test_task_keeps_name_doc_signature_and_hints(decorate: typing.Any, fn: typing.Any) -> None:
    """A task keeps the function's name, qualname, module, docstring, signature and type hints."""
    t = decorate(fn)
    assert t.__name__ == fn.__name__
    assert t.__qualname__ == fn.__qualname__
    assert t.__module__ == fn.__module__
    assert t.__doc__ == fn.__doc__
    assert inspect.signature(t) == inspect.signature(fn)
    assert typing.get_type_hints(t) == typing.get_type_hints(fn)


@pytest.mark.parametrize("fn", [fetch, ask], ids=["sync", "async"])
@pytest.mark.parametrize("decorate", DECORATORS.values(), ids=DECORATORS.keys())
def test_task_wrapped_is_the_plain_function_and_is_left_untouched(decorate: typing.Any, fn: typing.Any) -> None:
    """``__wrapped__`` is the user's own function, which decorating did not change."""
    before = (dict(vars(fn)), fn.__name__, fn.__qualname__, fn.__doc__, inspect.signature(fn))
    t = decorate(fn)
    assert t is not fn
    assert t.__wrapped__ is fn
    assert (dict(vars(fn)), fn.__name__, fn.__qualname__, fn.__doc__, inspect.signature(fn)) == before


def test_sync_task_outside_a_run_runs_now_and_returns_a_resolved_future() -> None:
    """Outside any run a sync task runs at once and returns an already-resolved TaskFuture."""
    ran: list[str] = []

    @task
    def record(x: str) -> str:
        ran.append(x)
        return x.upper()

    fut = record("a")
    assert ran == ["a"]
    assert isinstance(fut, TaskFuture)
    assert fut.done()
    assert fut.result() == "A"
    assert fut.exception() is None


def test_failing_task_outside_a_run_returns_a_failed_future() -> None:
    """Outside any run a task's exception is delivered by its future, as inside a run."""

    @task
    def explode() -> None:
        raise Boom("no")

    fut = explode()
    assert fut.done()
    assert isinstance(fut.exception(), Boom)
    with pytest.raises(Boom, match="no"):
        fut.result()


def test_async_task_outside_a_run_from_sync_code_is_resolved() -> None:
    """Outside any run and any event loop, an async task runs to completion at the call."""
    t = task(ask)
    fut = t("hi", 0.5)
    assert fut.done()
    assert fut.result() == ["hi", "0.5"]


async def test_async_task_outside_a_run_is_awaitable_on_a_running_loop() -> None:
    """Outside any run but on a running loop, an async task's future is awaited like a coroutine."""
    t = task(ask)
    assert await t("hi") == ["hi", "0.0"]
    assert await asyncio.gather(t("a"), t("b")) == [["a", "0.0"], ["b", "0.0"]]


def test_plain_function_stays_callable_through_wrapped() -> None:
    """``fn.__wrapped__`` calls the plain function: a value, not a future."""
    assert task(fetch).__wrapped__("u") == "page:u:2"
    assert asyncio.run(task(ask).__wrapped__("p")) == ["p", "0.0"]


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @task
    def greet(self, name: str) -> str:
        """Greet someone."""
        return f"{self.greeting}, {name}"

    @task(name="greeter.shout")
    async def shout(self, name: str) -> str:
        return f"{self.greeting.upper()}, {name.upper()}!"


def test_task_on_a_method_binds_self_outside_a_run() -> None:
    """A task decorating a method receives ``self``, called on an instance or through the class."""
    g = Greeter("hello")
    assert g.greet("ann").result() == "hello, ann"
    assert Greeter.greet(g, "bob").result() == "hello, bob"
    assert g.shout("cy").result() == "HELLO, CY!"
    assert Greeter.greet.__doc__ == "Greet someone."
    assert list(inspect.signature(Greeter.greet).parameters) == ["self", "name"]


def test_task_on_a_method_is_journaled_inside_a_run() -> None:
    """Inside a run a method task is journaled under its name, as LangGraph names it (or its given name)."""

    @entrypoint(checkpointer=MemoryStore())
    def flow(name: str) -> list[str]:
        g = Greeter("hi")
        return [g.greet(name).result(), g.shout(name).result()]

    assert flow.invoke("ann", thread_id="t") == ["hi, ann", "HI, ANN!"]
    entries = flow.get_state(thread_id="t").entries
    assert [(e.key, e.task, e.result) for e in entries] == [
        ("0", "greet", "hi, ann"),
        ("1", "greeter.shout", "HI, ANN!"),
    ]


def test_task_name_defaults_to_the_function_name_and_can_be_given() -> None:
    """The journal records a task under its ``__name__`` (as LangGraph names it), or under ``name=``."""

    def plain() -> int:
        return 1

    named = task(name="my-task")(plain)
    bare = task(plain)

    @entrypoint(checkpointer=MemoryStore())
    def flow(_: int) -> int:
        return named().result() + bare().result()

    assert flow.invoke(0, thread_id="t") == 2
    assert [e.task for e in flow.get_state(thread_id="t").entries] == ["my-task", "plain"]


@pytest.mark.parametrize("bad", [{"retry": 3}, {"retry": {"max_attempts": 3}}])
def test_task_rejects_a_retry_that_is_not_a_policy(bad: dict[str, typing.Any]) -> None:
    """``@task(retry=...)`` takes a RetryPolicy and nothing else."""
    with pytest.raises(ConfigurationError, match="RetryPolicy"):
        task(**bad)


def test_task_rejects_a_non_callable() -> None:
    """Decorating something that is not a function is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        task(42)  # type: ignore[call-overload]


# -- entrypoint -----------------------------------------------------------------------------------


async def apipeline(urls: list[str]) -> list[str]:
    """Fetch every page, asynchronously."""
    return urls


EP_DECORATORS = {
    "entrypoint": entrypoint,
    "entrypoint()": entrypoint(),
    "entrypoint(options)": entrypoint(checkpointer=MemoryStore(), name="flow", on_changed_args="warn"),
}


@pytest.mark.parametrize("fn", [pipeline, apipeline], ids=["sync", "async"])
@pytest.mark.parametrize("decorate", EP_DECORATORS.values(), ids=EP_DECORATORS.keys())
def test_entrypoint_keeps_name_doc_and_hints(decorate: typing.Any, fn: typing.Any) -> None:
    """An entrypoint keeps the function's name, docstring and type hints, and wraps it untouched."""
    before = dict(vars(fn))
    ep = decorate(fn)
    assert isinstance(ep, Entrypoint)
    assert ep.__wrapped__ is fn
    assert ep.__name__ == fn.__name__
    assert ep.__qualname__ == fn.__qualname__
    assert ep.__module__ == fn.__module__
    assert ep.__doc__ == fn.__doc__
    assert typing.get_type_hints(ep) == typing.get_type_hints(fn)
    assert dict(vars(fn)) == before


@pytest.mark.parametrize("fn", [pipeline, apipeline], ids=["sync", "async"])
def test_entrypoint_keeps_signature(fn: typing.Any) -> None:
    """``inspect.signature`` of an entrypoint is its function's signature."""
    assert inspect.signature(entrypoint(fn)) == inspect.signature(fn)


def test_entrypoint_name_defaults_to_the_qualified_name_and_is_recorded() -> None:
    """An entrypoint's runs are recorded under its qualified name, or under ``name=``."""
    store = MemoryStore()
    default = entrypoint(checkpointer=store)(pipeline)
    named = entrypoint(checkpointer=store, name="flow")(pipeline)
    assert default.name == "pipeline"
    assert named.name == "flow"
    default.invoke(["a"], thread_id="t1")
    named.invoke(["a"], thread_id="t2")
    assert default.get_state(thread_id="t1").entrypoint == "pipeline"
    assert named.get_state(thread_id="t2").entrypoint == "flow"


@pytest.mark.parametrize(
    "options",
    [{"on_changed_args": "ignore"}, {"checkpointer": 42}],
    ids=["on_changed_args", "checkpointer"],
)
def test_entrypoint_rejects_bad_options(options: dict[str, typing.Any]) -> None:
    """Bad ``@entrypoint`` options are a ConfigurationError at decoration time."""
    with pytest.raises(ConfigurationError):
        entrypoint(**options)(pipeline)


def test_entrypoint_rejects_a_non_callable() -> None:
    """Decorating something that is not a function is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        entrypoint("not a function")  # type: ignore[call-overload]


def test_async_entrypoint_can_be_invoked_from_sync_code_and_a_sync_one_awaited() -> None:
    """``invoke`` runs an async entrypoint, and ``ainvoke`` a sync one, with the same journal."""
    store = MemoryStore()
    double = task(lambda x: 2 * x)

    @entrypoint(checkpointer=store)
    async def aflow(x: int) -> int:
        return await double(x)

    @entrypoint(checkpointer=store)
    def sflow(x: int) -> int:
        return double(x).result()

    assert aflow.invoke(3, thread_id="a") == 6
    assert asyncio.run(sflow.ainvoke(4, thread_id="s")) == 8
    assert [e.result for e in aflow.get_state(thread_id="a").entries] == [6]
    assert [e.result for e in sflow.get_state(thread_id="s").entries] == [8]
