"""Where durable deliberately differs from LangGraph, it behaves as the porting guide says.

Each test runs one program on durable and, when it is installed, on LangGraph, and asserts what each does:
durable's documented behaviour (exact values, checked without LangGraph too), and LangGraph's, so the guide's
description of the difference stays true for the LangGraph release installed.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from durable import (
    Cache,
    CachePolicy,
    Command,
    ConfigurationError,
    Interrupted,
    ThreadNotFoundError,
    UnfinishedRunError,
    entrypoint,
    get_config,
    interrupt,
    task,
)

Lib = Any  # the `Lib` of tests/compat/conftest.py
Calls = Any  # the `calls` counter of tests/conftest.py


def cfg(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def values(out: Any) -> list[Any]:
    """The values of a paused result's interrupts (LangGraph's dict or durable's `Interrupted`)."""
    return [i.value for i in out["__interrupt__"]]


def langgraph_error(name: str) -> type[Exception]:
    """An exception class of ``langgraph.errors``."""
    errors = pytest.importorskip("langgraph.errors")
    return getattr(errors, name)


def test_paused_or_failed_thread_refuses_new_input(lib: Lib, calls: Calls) -> None:
    """New input on a thread whose run is paused or failed raises `UnfinishedRunError` and records nothing;
    LangGraph drops the unfinished run and starts over."""
    failures = [ConnectionError("down")]

    @lib.task
    def step(x: str) -> str:
        calls.hit(x)
        if x == "flaky" and failures:
            raise failures.pop()
        return x

    @lib.entrypoint(checkpointer=lib.checkpointer())
    def flow(x: str) -> str:
        done = step(x).result()
        return f"{done}: {lib.interrupt(done)}" if x.startswith("ask") else done

    assert values(flow.invoke("ask 1", cfg("paused"))) == ["ask 1"]
    with pytest.raises(ConnectionError):
        flow.invoke("flaky", cfg("failed"))
    if lib.is_durable:
        with pytest.raises(UnfinishedRunError, match="unfinished run"):
            flow.invoke("ask 2", cfg("paused"))
        with pytest.raises(UnfinishedRunError, match="unfinished run"):
            flow.invoke("other", cfg("failed"))
        assert flow.invoke(lib.Command(resume="ok"), cfg("paused")) == "ask 1: ok"
        assert flow.invoke(None, cfg("failed")) == "flaky"
        assert calls.as_dict() == {"ask 1": 1, "flaky": 2}
    else:
        assert values(flow.invoke("ask 2", cfg("paused"))) == ["ask 2"]  # "ask 1" is dropped
        assert flow.invoke("other", cfg("failed")) == "other"
        assert calls.as_dict() == {"ask 1": 1, "ask 2": 1, "flaky": 1, "other": 1}


def test_none_on_an_unknown_thread(lib: Lib) -> None:
    """``invoke(None)`` on a thread nothing ran on raises `ThreadNotFoundError` naming it (LangGraph:
    ``EmptyInputError``)."""

    @lib.entrypoint(checkpointer=lib.checkpointer())
    def flow(x: int) -> int:
        return x

    expected = ThreadNotFoundError if lib.is_durable else langgraph_error("EmptyInputError")
    with pytest.raises(expected, match="nowhere" if lib.is_durable else "no input"):
        flow.invoke(None, cfg("nowhere"))


def test_parallel_interrupts_surface_at_once(lib: Lib, calls: Calls) -> None:
    """Interrupts raised by tasks running in parallel are all returned together, and one ``Command`` answers
    them; LangGraph returns one at a time, and re-runs the paused tasks on every resume."""

    @lib.task
    def review(reviewer: str) -> str:
        calls.hit(reviewer)
        return lib.interrupt(f"{reviewer}, approve?")

    @lib.entrypoint(checkpointer=lib.checkpointer())
    def publish(draft: str) -> list[str]:
        futures = [review(r) for r in ("ann", "bob")]
        return [f.result() for f in futures]

    config, pauses = cfg("t1"), []
    out = publish.invoke("v1", config)
    while "__interrupt__" in out:  # LangGraph's documented loop: answer everything pending, by id
        pauses.append(values(out))
        out = publish.invoke(lib.Command(resume={i.id: i.value.split(",")[0] for i in out["__interrupt__"]}), config)
    assert out == ["ann", "bob"]
    if lib.is_durable:
        assert pauses == [["ann, approve?", "bob, approve?"]]
        assert calls.as_dict() == {"ann": 2, "bob": 2}
    else:
        assert pauses == [["ann, approve?"], ["bob, approve?"]]
        assert calls.as_dict() == {"ann": 2, "bob": 3}


def test_interrupt_ids_are_call_order_keys(lib: Lib) -> None:
    """An interrupt's id is its call-order key (``"1"`` in the entrypoint, ``"0.0"`` in its first task), stable
    across replays; LangGraph's is a hash of the task's path."""

    @lib.task
    def ask(q: str) -> str:
        return lib.interrupt(q)

    @lib.entrypoint(checkpointer=lib.checkpointer())
    def flow(_: Any) -> list[str]:
        first = ask("in a task").result()
        return [first, lib.interrupt("in the entrypoint")]

    first = flow.invoke(1, cfg("t1"))["__interrupt__"][0].id
    second = flow.invoke(lib.Command(resume="a"), cfg("t1"))["__interrupt__"][0].id
    if lib.is_durable:
        assert (first, second) == ("0.0", "1")
    else:
        assert re.fullmatch("[0-9a-f]{32}", first) and re.fullmatch("[0-9a-f]{32}", second)


def test_named_interrupt_id() -> None:
    """durable's ``interrupt(value, id=...)`` names an interrupt, to answer it by that name (LangGraph has no
    ``id=``)."""

    @entrypoint(checkpointer="memory://")
    def flow(_: Any) -> Any:
        return interrupt("approve?", id="approval")

    assert flow.invoke(1, cfg("t1")).ids == ("approval",)
    assert flow.invoke(Command(resume={"approval": True}), cfg("t1")) is True


def test_task_outside_a_run_just_runs(lib: Lib) -> None:
    """A task called outside any run runs plainly and returns a resolved future; LangGraph raises."""

    @lib.task
    def double(x: int) -> int:
        return x * 2

    if lib.is_durable:
        assert double(21).result() == 42
    else:
        with pytest.raises(RuntimeError, match="outside of a runnable context"):
            double(21)


def test_sqlite_is_the_default_journal(lib: Lib, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a checkpointer durable journals to ``./durable.db`` (or ``$DURABLE_URL``), so ``previous``,
    resumes and ``get_state`` work; LangGraph without one keeps nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DURABLE_URL", raising=False)

    def define() -> Any:  # as a new process would, with no store of its own
        @lib.entrypoint()
        def counter(n: int, *, previous: int | None = None) -> int:
            return (previous or 0) + n

        return counter

    counter = define()
    assert [counter.invoke(1, cfg("t1")), counter.invoke(2, cfg("t1"))] == ([1, 3] if lib.is_durable else [1, 2])
    if lib.is_durable:
        try:
            assert (tmp_path / "durable.db").is_file()
            again = define()
            assert again.get_state(cfg("t1")).values == 3 and again.invoke(4, cfg("t1")) == 7
            again.checkpointer.close()
        finally:
            counter.checkpointer.close()
    else:
        with pytest.raises(ValueError, match="No checkpointer set"):
            counter.get_state(cfg("t1"))


def test_update_state_refuses_an_unfinished_run(lib: Lib) -> None:
    """``update_state`` on a thread whose last run is paused raises `UnfinishedRunError`; LangGraph applies it and
    the pending interrupt is gone."""

    @lib.entrypoint(checkpointer=lib.checkpointer())
    def flow(x: int) -> Any:
        return lib.interrupt(x)

    flow.invoke(1, cfg("t1"))
    if lib.is_durable:
        with pytest.raises(UnfinishedRunError):
            flow.update_state(cfg("t1"), 5)
        assert flow.invoke(lib.Command(resume="answer"), cfg("t1")) == "answer"
    else:
        flow.update_state(cfg("t1"), 5)
        assert flow.get_state(cfg("t1")).interrupts == ()
        assert flow.invoke(lib.Command(resume="answer"), cfg("t1")) == 5


def test_an_earlier_checkpoint_is_refused_not_ignored(lib: Lib) -> None:
    """A config naming an earlier snapshot's checkpoint_id (LangGraph's time travel) is a ConfigurationError that
    points to a fork, and nothing runs; the latest snapshot's config (as update_state returns it) runs as usual."""
    ran: list[int] = []

    @lib.entrypoint(checkpointer=lib.checkpointer())
    def counter(x: int, *, previous: Any = None) -> int:
        ran.append(x)
        return x + (previous or 0)

    counter.invoke(1, cfg("t1"))
    counter.invoke(10, cfg("t1"))
    first_end = list(counter.get_state_history(cfg("t1")))[2].config
    latest = counter.get_state(cfg("t1")).config
    if lib.is_durable:
        with pytest.raises(ConfigurationError, match="fork"):
            counter.invoke(100, first_end)
        assert ran == [1, 10]
    assert counter.invoke(5, latest) == 16
    assert counter.invoke(5, counter.update_state(cfg("t1"), 0)) == 5


@pytest.mark.parametrize("option", ["cache_policy", "timeout"])
def test_entrypoint_cache_policy_and_timeout_are_refused(lib: Lib, option: str) -> None:
    """``@entrypoint(cache_policy=...)`` and ``@entrypoint(timeout=...)`` raise TypeError when decorating (durable
    caches and bounds tasks, not whole runs); LangGraph accepts them."""
    given = {"cache_policy": lib.CachePolicy(), "timeout": 5}[option]

    async def flow(x: int) -> int:
        return x

    if lib.is_durable:
        with pytest.raises(TypeError, match=option):
            lib.entrypoint(checkpointer=lib.checkpointer(), **{option: given})
    else:
        ep = lib.entrypoint(checkpointer=lib.checkpointer(), **{option: given})(flow)
        assert asyncio.run(ep.ainvoke(1, cfg("t1"))) == 1


def test_new_input_without_a_thread_runs_on_its_own_thread(lib: Lib) -> None:
    """New input naming no thread runs on a new thread whose id is in ``Interrupted.thread_id`` and
    ``get_config()``, so its pause can be answered; LangGraph with a checkpointer requires a thread id."""

    @lib.entrypoint(checkpointer=lib.checkpointer())
    def flow(x: int) -> Any:
        thread = lib.get_config()["configurable"]["thread_id"]
        return [thread, lib.interrupt(x)]

    if not lib.is_durable:
        with pytest.raises(ValueError, match="thread_id"):
            flow.invoke(1)
        return
    out = flow.invoke(1)
    assert isinstance(out, Interrupted) and re.fullmatch("[0-9a-f]{32}", out.thread_id)
    assert flow.invoke(lib.Command(resume="ok"), cfg(out.thread_id)) == [out.thread_id, "ok"]
    assert flow.invoke(2).thread_id != out.thread_id


def test_parameters_are_injected_by_name(lib: Lib) -> None:
    """durable injects ``writer``, ``store`` and ``config`` by name, whatever their annotation; LangGraph only
    when they are unannotated or annotated ``StreamWriter``, ``BaseStore``, ``RunnableConfig``."""

    def body(x: int, config: dict) -> str:
        return str(config["configurable"]["thread_id"])

    if lib.is_durable:
        assert lib.entrypoint(checkpointer=lib.checkpointer())(body).invoke(1, cfg("t1")) == "t1"
        return
    with pytest.warns(UserWarning, match="should be typed as 'RunnableConfig'"):
        flow = lib.entrypoint(checkpointer=lib.checkpointer())(body)
    with pytest.raises(TypeError, match="config"):
        flow.invoke(1, cfg("t1"))


def test_task_timeout(lib: Lib) -> None:
    """An async task's ``timeout`` raises `TaskTimeoutError` (a ``TimeoutError``; LangGraph: ``NodeTimeoutError``),
    and durable also bounds sync tasks (LangGraph refuses a sync task's timeout)."""

    @lib.task(timeout=0.05)
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    @lib.entrypoint(checkpointer=lib.checkpointer())
    async def flow(_: Any) -> str:
        try:
            return await slow()
        except Exception as exc:
            return f"{type(exc).__name__} {isinstance(exc, TimeoutError)}"

    def sync_body() -> str:
        return "ok"

    if lib.is_durable:
        assert asyncio.run(flow.ainvoke(1, cfg("t1"))) == "TaskTimeoutError True"
        assert lib.task(timeout=1)(sync_body)().result() == "ok"
    else:
        assert asyncio.run(flow.ainvoke(1, cfg("t1"))) == "NodeTimeoutError False"
        with pytest.raises(ValueError, match="only supported for async"):
            lib.task(timeout=1)(sync_body)


def test_entrypoint_clear_cache_forgets_task_results(lib: Lib, calls: Calls) -> None:
    """durable's ``clear_cache()`` forgets every cached task result of the entrypoint; LangGraph's clears the
    caches of graph nodes only, so a Functional-API task stays cached."""

    @lib.task(cache_policy=lib.CachePolicy())
    def slow(x: int) -> int:
        calls.hit("slow")
        return x

    @lib.entrypoint(checkpointer=lib.checkpointer(), cache=lib.cache())
    def flow(x: int) -> int:
        return slow(x).result()

    flow.invoke(1, cfg("t1"))
    flow.clear_cache()
    flow.invoke(1, cfg("t2"))
    assert calls.as_dict() == {"slow": 2 if lib.is_durable else 1}


def test_cache_lives_in_the_journal(tmp_path: Path, calls: Calls) -> None:
    """A ``Cache()`` given to an entrypoint keeps its entries in the journal's database, so another process on the
    same SQLite file is served from it."""

    def define() -> Any:  # as each process would
        @task(cache_policy=CachePolicy())
        def slow(x: int) -> int:
            calls.hit("slow")
            return x + 1

        @entrypoint(checkpointer=f"sqlite:///{tmp_path / 'app.db'}", cache=Cache())
        def flow(x: int) -> int:
            return slow(x).result()

        return flow

    first, second = define(), define()
    try:
        assert [first.invoke(1, cfg("t1")), second.invoke(1, cfg("t2"))] == [2, 2]
        assert calls.as_dict() == {"slow": 1}
    finally:
        first.checkpointer.close()
        second.checkpointer.close()


def test_durable_accepts_thread_id_keyword() -> None:
    """Besides LangGraph's config, every method takes ``thread_id=`` (the two must agree when both are given)."""

    @entrypoint(checkpointer="memory://")
    def flow(x: int) -> str:
        return f"{x} on {get_config()['configurable']['thread_id']}"

    assert flow.invoke(1, thread_id="t1") == "1 on t1"
    assert flow.get_state(cfg("t1")).values == flow.get_state(thread_id="t1").values == "1 on t1"
