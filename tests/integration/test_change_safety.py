"""Deploying new code under running workflows: `Entrypoint.plan`, `durable.verify`, task versions and patches.

A code change is made in-process: the "v1" entrypoint and tasks and the "v2" ones share their explicit names
(``name="flow"``) and a store, so v2 reads what v1 journaled. What holds throughout: a plan or a verify runs no
task body and writes nothing (the ``ran`` list and the store's rows stay as they were), and a plan says what the
real resume then does (the first task body the resume runs is the plan's ``next``).

Every test runs on every store (``store``) and, where the body matters, on sync and async entrypoints (``flavor``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import operator
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypedDict

import pytest
from pydantic import BaseModel, field_validator

import durable
from durable import (
    AnswerRejectedError,
    ArgumentsChangedError,
    Command,
    ConfigurationError,
    IntegrityError,
    Interrupted,
    InterruptTimeoutError,
    Memory,
    MemoryStore,
    NonDeterminismError,
    RecordedValueError,
    RetryPolicy,
    Store,
    ThreadNotFoundError,
    Threads,
    UnfinishedRunError,
    UsageError,
    interrupt,
    verify,
)
from durable._digest import digest_call
from durable.stores._base import OK, JournalRow, kv_namespace
from durable.testing import FakeClock

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


class Crash(BaseException):
    """The process dying: raised in a task, it journals nothing, as a kill would."""


@dataclasses.dataclass
class Order:  # recorded by v1; tests swap in a class of the same name that gained a field
    id: int


class Invoice(BaseModel):
    id: int


def recording(f: Flavor, ran: list[str], name: str, body: Any = None, **options: Any) -> Any:
    """A task named ``name`` that appends its name to ``ran`` each time its body runs, then returns ``body(*args)``
    (default: its first argument)."""

    def run(*args: Any) -> Any:
        ran.append(name)
        return body(*args) if body is not None else (args[0] if args else None)

    return f.task(name=name, **options)(run)


def fail(exc: BaseException) -> Any:
    raise exc


def next_of(plan: Any) -> tuple[str, str, str] | None:
    """The call a plan says runs first, as (key, task, why)."""
    return None if plan.next is None else (plan.next.key, plan.next.task, plan.next.why)


def rows(store: Store, thread_id: str) -> tuple[Any, ...]:
    """The thread as its store holds it: lease, latest run and every journal row, bytes as stored."""
    thread = store.get_thread(thread_id)
    assert thread is not None and thread.run is not None
    run = thread.run
    journal = tuple(
        (r.key, r.attempt, r.name, r.status, bytes(r.payload or b""), r.started_at, r.finished_at)
        for r in store.load_journal(thread.tid, run.run_id)
    )
    return (thread.owner, thread.fence, run.run_id, run.status, run.output, run.error_text, journal)


# -- the workflow under change -------------------------------------------------------------------------
#
# v1: fetch(x) at key 0, log("fetched") at key 1, charge(a) at key 2 (raising Boom, or Crash, while ``down[0]``).
# The changes: a task appended after charge, fetch versioned with an upgrade, fetch renamed, fetch called with
# other arguments, audit inserted before log or just before charge, the calls after fetch removed.

CHANGES = ["unchanged", "appended", "upgraded", "renamed", "arguments", "inserted", "audited", "removed"]


def shop(f: Flavor, store: Store, ran: list[str], down: list[bool], change: str = "unchanged", exc: Any = Boom) -> Any:
    """The "flow" entrypoint as v1 wrote it, or with one ``change`` (see `CHANGES`)."""

    def charge_body(a: int) -> str:
        if down[0]:
            raise exc("card declined")
        return f"charged {a}"

    if change == "upgraded":  # fetch returns a dict now; values recorded by v1 (ints) are upgraded
        fetch = recording(f, ran, "fetch", lambda x: {"n": x + 1}, version=2, upgrade={1: lambda v: {"n": v}})
    else:
        fetch = recording(f, ran, "lookup" if change == "renamed" else "fetch", lambda x: x + 1)
    log = recording(f, ran, "log")
    charge = recording(f, ran, "charge", charge_body)
    audit = recording(f, ran, "audit")
    notify = recording(f, ran, "notify")

    @f.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        got = yield fetch(x + 1 if change == "arguments" else x)
        a = got["n"] if change == "upgraded" else got
        if change == "inserted":
            yield audit(a)
        if change == "removed":
            return a
        yield log("fetched")
        if change == "audited":
            yield audit(a)
        out = yield charge(a)
        if change == "appended":
            yield notify(out)
        return out

    return flow


def failed_shop(f: Flavor, store: Store, ran: list[str], thread_id: str = "t", exc: Any = Boom) -> list[bool]:
    """Run v1 on ``thread_id`` until charge raises ``exc``; returns ``down`` (``down[0] = False`` fixes charge)."""
    down = [True]
    with pytest.raises(exc):
        f.invoke(shop(f, store, ran, down, exc=exc), 1, thread_id=thread_id)
    assert ran == ["fetch", "log", "charge"]
    return down


# -- verify: what a deploy would break -------------------------------------------------------------------


@pytest.mark.parametrize("change", CHANGES)
def test_verify_tells_compatible_changes_from_diverging_ones(store: Store, flavor: Flavor, change: str) -> None:
    """A thread failed under v1; each change is verified, then resumed: verify is ok exactly when the resume
    carries on, and names the key where it would not. No task body runs and no row changes meanwhile."""
    ran: list[str] = []
    down = failed_shop(flavor, store, ran)
    before = rows(store, "t")
    v2 = shop(flavor, store, ran, down, change)

    (check,) = verify([v2])
    plan = v2.plan(None, thread_id="t")
    assert ran == ["fetch", "log", "charge"] and rows(store, "t") == before
    assert (check.thread_id, check.entrypoint, check.status) == ("t", "flow", "failed")
    assert check.plan is not None and check.plan.outcome == plan.outcome

    if change in ("unchanged", "appended", "upgraded"):
        assert (check.ok, check.problem) == (True, None)
        assert plan.outcome == "runs" and plan.replayed == ("0", "1")
        assert next_of(plan) == ("2", "charge", "failed")
        assert check.detail == str(plan) and "'charge' at key 2" in check.detail
        down[0] = False
        assert flavor.invoke(v2, None, thread_id="t") == "charged 2"
        assert ran[3:] == (["charge", "notify"] if change == "appended" else ["charge"])
        return

    assert (check.ok, check.problem) == (False, "diverges")
    assert plan.outcome == "diverges" and isinstance(plan.error, NonDeterminismError)
    key = {"renamed": "0", "arguments": "0", "inserted": "1", "audited": "2", "removed": "1"}[change]
    assert plan.error.key == key and check.detail == str(plan.error)
    assert isinstance(plan.error, ArgumentsChangedError) == (change == "arguments")
    if change == "removed":  # the resume would finish without reaching log and charge
        assert "without reaching 2 recorded call(s)" in check.detail
        return
    down[0] = False
    with pytest.raises(NonDeterminismError) as raised:
        flavor.invoke(v2, None, thread_id="t")
    assert raised.value.key == key and ran == ["fetch", "log", "charge"]


def test_code_added_at_the_frontier_of_a_crashed_run_is_compatible(store: Store, flavor: Flavor) -> None:
    """The process died inside charge (nothing recorded at key 2): v2 calls audit there first. That is new
    ground (where a failed charge's recorded error diverges), so verify is ok, and plan and resume agree."""
    ran: list[str] = []
    down = failed_shop(flavor, store, ran, exc=Crash)
    before = rows(store, "t")
    v2 = shop(flavor, store, ran, down, "audited", exc=Crash)
    (check,) = verify([v2])
    plan = v2.plan(None, thread_id="t")
    assert check.ok and (plan.outcome, plan.replayed) == ("runs", ("0", "1"))
    assert next_of(plan) == ("2", "audit", "unrecorded")
    assert ran == ["fetch", "log", "charge"] and rows(store, "t") == before
    down[0] = False
    assert flavor.invoke(v2, None, thread_id="t") == "charged 2"
    assert ran[3:] == ["audit", "charge"]


@pytest.mark.parametrize("change", ["unchanged", "renamed-id", "removed"])
def test_a_paused_thread_must_still_be_asked_the_same_question(store: Store, flavor: Flavor, change: str) -> None:
    """A thread paused on interrupt "approve" at key 1: the code must ask it there, under that id, or an answer
    given by that id would reach nothing."""
    ran: list[str] = []

    def build(change: str) -> Any:
        fetch = recording(flavor, ran, "fetch", lambda x: x + 1)
        charge = recording(flavor, ran, "charge")

        @flavor.entrypoint(checkpointer=store, name="flow")
        def flow(x: int) -> Any:
            a = yield fetch(x)
            if change == "removed":
                ok = True
            else:
                ok = interrupt("approve?", id="approval" if change == "renamed-id" else "approve")
            return (yield charge((a, ok)))

        return flow

    assert isinstance(flavor.invoke(build("unchanged"), 1, thread_id="t"), Interrupted)
    before = rows(store, "t")
    v2 = build(change)
    (check,) = verify([v2])
    assert ran == ["fetch"] and rows(store, "t") == before
    assert check.status == "interrupted" and check.plan is not None
    if change == "unchanged":
        assert check.ok and check.plan.outcome == "waits"
        assert [i.id for i in check.plan.interrupts] == ["approve"]
        assert flavor.invoke(v2, Command(resume={"approve": "yes"}), thread_id="t") == (2, "yes")
        return
    assert (check.ok, check.problem, check.plan.outcome) == (False, "diverges", "diverges")
    assert isinstance(check.plan.error, NonDeterminismError) and check.plan.error.key == "1"
    assert "'approve'" in check.detail
    if change == "renamed-id":
        assert "'approval'" in check.detail
    else:
        assert "no longer asks it" in check.detail
    assert v2.plan(None, thread_id="t").outcome == "waits"  # plan alone returns the recorded question again


def swap_class(monkeypatch: pytest.MonkeyPatch, kind: str) -> str:
    """Change the class the journal pickled by reference: it gains a required field, or is gone. Returns the
    type name the error should give."""
    module = sys.modules[__name__]
    name = "Order" if kind in ("dataclass", "gone") else "Invoice"
    if kind == "gone":
        monkeypatch.delattr(module, name)
        return name
    if kind == "dataclass":

        @dataclasses.dataclass
        class New:
            id: int
            currency: str

    else:

        class New(BaseModel):  # type: ignore[no-redef]
            id: int
            currency: str

    New.__name__ = New.__qualname__ = name
    monkeypatch.setattr(module, name, New)
    return f"{__name__}.{name}"


@pytest.mark.parametrize("kind", ["dataclass", "pydantic", "gone"])
def test_a_value_whose_class_changed_is_undecodable(
    store: Store, flavor: Flavor, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make returned an Order (or Invoice) before ship failed; then the class gained a required field, or was
    moved away. verify reports "undecodable", plan "diverges", and the resume raises RecordedValueError
    naming the thread, key and type, running nothing (not a stale object failing later)."""
    ran: list[str] = []
    cls = Order if kind != "pydantic" else Invoice
    make = recording(flavor, ran, "make", lambda x: cls(id=x))
    ship = recording(flavor, ran, "ship", lambda o: o.currency)

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        order = yield make(x)
        return (yield ship(order))

    with pytest.raises(AttributeError):
        flavor.invoke(flow, 7, thread_id="t")
    before = rows(store, "t")
    type_name = swap_class(monkeypatch, kind)

    (check,) = verify([flow])
    assert (check.ok, check.problem) == (False, "undecodable")
    assert "thread 't', key 0 (task 'make')" in check.detail and type_name in check.detail
    plan = flow.plan(None, thread_id="t")
    assert plan.outcome == "diverges" and isinstance(plan.error, RecordedValueError)
    assert (plan.error.thread_id, plan.error.key, plan.error.task) == ("t", "0", "make")
    assert ran == ["make", "ship"] and rows(store, "t") == before
    with pytest.raises(RecordedValueError, match="key 0"):
        flavor.invoke(flow, None, thread_id="t")
    assert ran == ["make", "ship"] and rows(store, "t")[-1] == before[-1]  # the resume ran and recorded nothing


def test_verify_reports_threads_no_entrypoint_owns_and_sorts_problems_first(store: Store, flavor: Flavor) -> None:
    """verify([other]) on a store holding an unfinished "flow" thread: it is "missing-entrypoint" (a deploy
    without flow strands it), listed before other's own threads; finished threads are not checked."""
    ran: list[str] = []
    failed_shop(flavor, store, ran, "z-flow")
    down = [True]
    other_charge = recording(flavor, ran, "other", lambda x: fail(Boom()) if down[0] else x)

    @flavor.entrypoint(checkpointer=store, name="other")
    def other(x: int) -> Any:
        return (yield other_charge(x))

    with pytest.raises(Boom):
        flavor.invoke(other, 1, thread_id="a-failed")
    down[0] = False
    assert flavor.invoke(other, 2, thread_id="b-done") == 2
    ran.clear()

    checks = verify([other], checkpointer=store)
    assert [(c.thread_id, c.entrypoint, c.ok, c.problem) for c in checks] == [
        ("z-flow", "flow", False, "missing-entrypoint"),
        ("a-failed", "other", True, None),
    ]
    assert checks[0].plan is None and "'flow'" in checks[0].detail
    assert ran == []


# -- plan says what the resume then does -----------------------------------------------------------------


def test_plan_of_a_failed_run_names_the_task_its_resume_runs_first(store: Store, flavor: Flavor) -> None:
    ran: list[str] = []
    down = failed_shop(flavor, store, ran)
    v1 = shop(flavor, store, ran, down)
    before = rows(store, "t")
    plan = v1.plan(None, thread_id="t")
    assert (plan.thread_id, plan.entrypoint, plan.status, plan.outcome) == ("t", "flow", "failed", "runs")
    assert plan.replayed == ("0", "1") and next_of(plan) == ("2", "charge", "failed")
    assert str(plan).startswith("replays 2 recorded calls, then runs 'charge' at key 2")
    assert ran == ["fetch", "log", "charge"] and rows(store, "t") == before

    down[0] = False
    assert flavor.invoke(v1, None, thread_id="t") == "charged 2"
    assert ran[3:] == ["charge"]


def test_plan_of_a_run_that_died_in_a_retry_backoff_retries_it(
    store: Store, flavor: Flavor, crashing_clock: Any
) -> None:
    """Attempt 1 failed and was journaled, the process died in the backoff: the plan's next call is that task,
    "retrying"; the resume waits out the backoff and runs attempt 2."""
    ran: list[str] = []
    flaky = recording(
        flavor, ran, "flaky", lambda: "ok" if len(ran) > 1 else fail(Boom("flaky")),
        retry_policy=RetryPolicy(initial_interval=10, jitter=False, retry_on=Boom),
    )  # fmt: skip

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(_: Any) -> Any:
        return (yield flaky())

    with crashing_clock(at=10) as clock:
        with pytest.raises(crashing_clock.Crash):
            flavor.invoke(flow, 1, thread_id="t")
        assert clock.asked == [10]
    before = rows(store, "t")
    plan = flow.plan(None, thread_id="t")
    assert plan.outcome == "runs" and plan.replayed == ()
    assert next_of(plan) == ("0", "flaky", "retrying")
    assert ran == ["flaky"] and rows(store, "t") == before
    with FakeClock():
        assert flavor.invoke(flow, None, thread_id="t") == "ok"
    assert ran == ["flaky", "flaky"]


def test_plan_reruns_a_call_whose_arguments_changed_under_rerun(store: Store, flavor: Flavor) -> None:
    ran: list[str] = []
    offset = [0]
    down = [True]
    fetch = recording(flavor, ran, "fetch", lambda x: x * 100)
    finish = recording(flavor, ran, "finish", lambda a: fail(Boom()) if down[0] else a)

    @flavor.entrypoint(checkpointer=store, name="flow", on_changed_args="rerun")
    def flow(x: int) -> Any:
        a = yield fetch(x + offset[0])
        return (yield finish(a))

    with pytest.raises(Boom):
        flavor.invoke(flow, 1, thread_id="t")
    before = rows(store, "t")
    offset[0], down[0] = 1, False
    plan = flow.plan(None, thread_id="t")
    assert plan.outcome == "runs" and plan.replayed == ()
    assert next_of(plan) == ("0", "fetch", "arguments-changed")
    assert ran == ["fetch", "finish"] and rows(store, "t") == before
    assert flavor.invoke(flow, None, thread_id="t") == 200
    assert ran[2:] == ["fetch", "finish"]


def test_plan_of_an_answer_checks_it_and_plans_the_resume_with_it(store: Store, flavor: Flavor) -> None:
    """plan(Command) refuses a bad answer as invoke does (nothing journaled), and with a good one says which
    task runs first, as the resume with that answer then does."""
    ran: list[str] = []
    step = recording(flavor, ran, "step", lambda: "stepped")
    use = recording(flavor, ran, "use", lambda n: n * 2)

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(_: Any) -> Any:
        yield step()
        n = interrupt("how many?", response_schema={"type": "integer"})
        return (yield use(n))

    flavor.invoke(flow, 1, thread_id="t")
    before = rows(store, "t")
    waits = flow.plan(None, thread_id="t")
    assert (waits.status, waits.outcome, [i.id for i in waits.interrupts]) == ("interrupted", "waits", ["1"])
    with pytest.raises(AnswerRejectedError):
        flow.plan(Command(resume="three"), thread_id="t")
    plan = flow.plan(Command(resume=3), thread_id="t")
    assert plan.outcome == "runs" and plan.replayed == ("0", "1")
    assert next_of(plan) == ("2", "use", "unrecorded")
    assert ran == ["step"] and rows(store, "t") == before
    assert flavor.invoke(flow, Command(resume=3), thread_id="t") == 6
    assert ran == ["step", "use"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_plan_of_a_run_that_died_mid_sleep_says_when_it_wakes(
    store: Store, is_async: bool, crashing_clock: Any
) -> None:
    ran: list[str] = []

    @durable.task(name="after")
    def after() -> str:
        ran.append("after")
        return "woke"

    if is_async:

        @durable.entrypoint(checkpointer=store, name="flow")
        async def flow(_: Any) -> Any:
            await durable.asleep(100)
            return await after()

    else:

        @durable.entrypoint(checkpointer=store, name="flow")
        def flow(_: Any) -> Any:
            durable.sleep(100)
            return after().result()

    def invoke(input: Any) -> Any:
        return asyncio.run(flow.ainvoke(input, thread_id="t")) if is_async else flow.invoke(input, thread_id="t")

    with crashing_clock(at=100) as clock:
        start = clock.now
        with pytest.raises(crashing_clock.Crash):
            invoke(1)
        before = rows(store, "t")
        plan = flow.plan(None, thread_id="t")
        assert plan.outcome == "sleeps" and plan.wake_at == pytest.approx(start + 100)
        assert plan.next is None and rows(store, "t") == before and ran == []
        clock.advance(30)
        assert invoke(None) == "woke"
    assert clock.slept == [pytest.approx(70)] and ran == ["after"]


def test_plan_of_a_run_with_everything_recorded_finishes_with_the_resumes_output(store: Store, flavor: Flavor) -> None:
    """The process died after the last task: the resume runs nothing and returns; the plan says "finishes"
    with that output."""
    ran: list[str] = []
    dying = [True]
    fetch = recording(flavor, ran, "fetch", lambda x: x + 1)

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        a = yield fetch(x)
        if dying[0]:
            raise Crash
        return {"total": a * 10}

    with pytest.raises(Crash):
        flavor.invoke(flow, 1, thread_id="t")
    before = rows(store, "t")
    dying[0] = False
    plan = flow.plan(None, thread_id="t")
    assert (plan.outcome, plan.replayed, plan.next, plan.output) == ("finishes", ("0",), None, {"total": 20})
    assert rows(store, "t") == before
    assert flavor.invoke(flow, None, thread_id="t") == plan.output
    assert ran == ["fetch"]


def test_plan_takes_the_inputs_invoke_takes(store: Store, flavor: Flavor) -> None:
    """Finished: "returns" its output; paused: "waits"; new input on a finished thread or a new one plans a new
    run; new input on an unfinished run and None on an unknown thread raise what invoke raises."""
    ran: list[str] = []
    fetch = recording(flavor, ran, "fetch", lambda x: x + 1)

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        a = yield fetch(x)
        return a if x > 0 else interrupt("go on?")

    assert flavor.invoke(flow, 1, thread_id="done") == 2
    flavor.invoke(flow, 0, thread_id="paused")
    ran.clear()

    returns = flow.plan(None, thread_id="done")
    assert (returns.status, returns.outcome, returns.output) == ("completed", "returns", 2)
    again = flow.plan(5, thread_id="done")
    assert (again.status, again.outcome, next_of(again)) == ("new", "runs", ("0", "fetch", "new-run"))
    fresh = flow.plan(5, thread_id="nobody")
    assert (fresh.status, fresh.outcome, next_of(fresh)) == ("new", "runs", ("0", "fetch", "new-run"))
    waits = flow.plan(None, thread_id="paused")
    assert (waits.outcome, [i.value for i in waits.interrupts]) == ("waits", ["go on?"])
    with pytest.raises(UnfinishedRunError):
        flow.plan(5, thread_id="paused")
    with pytest.raises(ThreadNotFoundError):
        flow.plan(None, thread_id="nobody")
    assert ran == [] and store.get_thread("nobody") is None


# -- task versions -----------------------------------------------------------------------------------------


def pricing(f: Flavor, store: Store, ran: list[str], down: list[bool], value: Any, **options: Any) -> Any:
    """The "flow" entrypoint: price() (returning ``value``, with the task ``options``) at key 0, then settle() at
    key 1, which raises Boom while ``down[0]``; the run returns the price. Returns (flow, price)."""
    price = recording(f, ran, "price", lambda: value, **options)
    settle = recording(f, ran, "settle", lambda: fail(Boom()) if down[0] else "settled")

    @f.entrypoint(checkpointer=store, name="flow")
    def flow(_: Any) -> Any:
        p = yield price()
        yield settle()
        return p

    return flow, price


def priced_by(f: Flavor, store: Store, thread_id: str, value: Any, **options: Any) -> list[bool]:
    """Record ``value`` at key 0 of ``thread_id`` with the task ``options``; the run fails in settle."""
    down = [True]
    with pytest.raises(Boom):
        f.invoke(pricing(f, store, [], down, value, **options)[0], 1, thread_id=thread_id)
    return down


def to_cents(old: int) -> dict[str, int]:
    return {"cents": old * 100}


def to_money(old: dict[str, int]) -> dict[str, Any]:
    return {"amount": old["cents"], "currency": "EUR"}


def test_a_value_of_an_older_version_is_replayed_upgraded(store: Store, flavor: Flavor, journal: Any) -> None:
    """Unversioned price recorded 5; v2 returns {"cents": ...} with upgrade={1: to_cents}: the resume reads the
    recorded 5 as {"cents": 500}, running price no more. Journal entries show the version that recorded each."""
    down = priced_by(flavor, store, "old", 5)
    before = rows(store, "old")
    ran: list[str] = []
    v2, price = pricing(flavor, store, ran, down, {"cents": 700}, version=2, upgrade={1: to_cents})
    assert price.version == 2 and pricing(flavor, store, [], down, 1)[1].version is None
    (check,) = verify([v2])
    assert check.ok and check.plan is not None and rows(store, "old") == before
    assert (check.plan.replayed, next_of(check.plan)) == (("0",), ("1", "settle", "failed"))
    assert [e.version for e in v2.get_state(thread_id="old").entries] == [None, None]

    down[0] = False
    assert flavor.invoke(v2, None, thread_id="old") == {"cents": 500}
    assert flavor.invoke(v2, 1, thread_id="new") == {"cents": 700}
    assert ran == ["settle", "price", "settle"]
    assert [(e.key, e.version) for e in v2.get_state(thread_id="new").entries] == [("0", 2), ("1", None)]
    assert journal.by_key(v2, "new")["0"][0].result == {"cents": 700}


def test_a_forks_override_of_a_versioned_value_keeps_its_version(store: Store, flavor: Flavor) -> None:
    """A fork's override stands in for the value the recorded version returned: it is journaled as that version,
    so the resume upgrades it as it would the original (not read as a version-1 value)."""
    down = priced_by(flavor, store, "v2", {"cents": 900}, version=2, upgrade={1: to_cents})
    fork = Threads(store).fork("v2", at=1, overrides={"0": {"cents": 100}})
    v3, _ = pricing(flavor, store, [], down, None, version=3, upgrade={1: to_cents, 2: to_money})
    assert [e.version for e in v3.get_state(thread_id=fork).entries] == [2]
    down[0] = False
    assert flavor.invoke(v3, None, thread_id=fork) == {"amount": 100, "currency": "EUR"}


def test_the_tools_show_the_version_that_recorded_a_value(store: Store, flavor: Flavor) -> None:
    """`durable show` names a versioned value's version beside its task, and its JSON carries it; the operator's
    reader (no code) reads the value behind the version header, as it would any: an unsigned pickle only when told
    to (else it describes it, by the type its opcodes name)."""
    from durable._cli_format import entry_row, state_json

    priced_by(flavor, store, "v2", {"cents": 900}, version=2, upgrade={1: to_cents})
    sealed = next(e for e in Threads(store).state("v2").entries if e.key == "0")
    assert (sealed.version, sealed.result.type_name) == (2, "dict")
    state = Threads(store, unsafe_unpickle=True).state("v2")
    price = next(e for e in state.entries if e.key == "0")
    assert (price.version, price.result) == (2, {"cents": 900})
    assert entry_row(price)[1] == "price (v2)"
    assert state_json(state)["entries"][0]["version"] == 2


def test_values_are_upgraded_through_every_version_since(store: Store, flavor: Flavor) -> None:
    """v3 with upgrade={1: to_cents, 2: to_money}: a version-1 value goes through both, a version-2 one
    through the second."""
    down = priced_by(flavor, store, "v1", 5)
    priced_by(flavor, store, "v2", {"cents": 900}, version=2, upgrade={1: to_cents})
    ran: list[str] = []
    v3, _ = pricing(flavor, store, ran, down, None, version=3, upgrade={1: to_cents, 2: to_money})
    assert [c.ok for c in verify([v3])] == [True, True]
    down[0] = False
    assert flavor.invoke(v3, None, thread_id="v1") == {"amount": 500, "currency": "EUR"}
    assert flavor.invoke(v3, None, thread_id="v2") == {"amount": 900, "currency": "EUR"}
    assert ran == ["settle", "settle"]


def test_a_version_nothing_upgrades_is_undecodable(store: Store, flavor: Flavor) -> None:
    """v3 upgrades only version 2: the thread holding a version-1 value is "undecodable" and its resume raises
    RecordedValueError naming the thread, the key and the missing converter; the version-2 thread is fine."""
    down = priced_by(flavor, store, "v1", 5)
    priced_by(flavor, store, "v2", {"cents": 900}, version=2, upgrade={1: to_cents})
    before = rows(store, "v1")
    ran: list[str] = []
    v3, _ = pricing(flavor, store, ran, down, None, version=3, upgrade={2: to_money})
    checks = verify([v3])
    assert [(c.thread_id, c.problem) for c in checks] == [("v1", "undecodable"), ("v2", None)]
    assert "thread 'v1', key 0 (task 'price')" in checks[0].detail and "upgrade={1: convert}" in checks[0].detail
    down[0] = False
    with pytest.raises(RecordedValueError, match="nothing upgrades a version-1 value") as raised:
        flavor.invoke(v3, None, thread_id="v1")
    assert (raised.value.thread_id, raised.value.key, raised.value.task) == ("v1", "0", "price")
    assert ran == [] and rows(store, "v1")[-1] == before[-1]


@pytest.mark.parametrize("options", [{"version": 1}, {}], ids=["version-1", "unversioned"])
def test_a_value_of_a_newer_version_is_refused_after_a_rollback(
    store: Store, flavor: Flavor, options: dict[str, Any]
) -> None:
    down = priced_by(flavor, store, "t", {"cents": 900}, version=2, upgrade={1: to_cents})
    ran: list[str] = []
    v1, _ = pricing(flavor, store, ran, down, 5, **options)
    (check,) = verify([v1])
    assert check.problem == "undecodable" and "recorded by version 2" in check.detail
    plan = v1.plan(None, thread_id="t")
    assert plan.outcome == "diverges" and isinstance(plan.error, RecordedValueError) and plan.error.key == "0"
    down[0] = False
    with pytest.raises(RecordedValueError, match="thread 't', key 0"):
        flavor.invoke(v1, None, thread_id="t")
    assert ran == []


def test_a_converter_that_raises_is_a_recorded_value_error(store: Store, flavor: Flavor) -> None:
    down = priced_by(flavor, store, "t", 5)
    ran: list[str] = []
    v2, _ = pricing(flavor, store, ran, down, None, version=2, upgrade={1: lambda old: old["cents"]})
    (check,) = verify([v2])
    assert check.problem == "undecodable" and "upgrade[1] raised TypeError" in check.detail
    down[0] = False
    with pytest.raises(RecordedValueError, match=r"upgrade\[1\] raised TypeError") as raised:
        flavor.invoke(v2, None, thread_id="t")
    assert isinstance(raised.value.__cause__, TypeError) and ran == []


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"version": 0}, "whole number from 1 to 65535"),
        ({"version": 65536}, "whole number from 1 to 65535"),
        ({"version": "2"}, "whole number"),
        ({"version": True}, "whole number"),
        ({"upgrade": {1: to_cents}}, "give version= too"),
        ({"version": 2, "upgrade": {2: to_cents}}, "from 1 to 1"),
        ({"version": 3, "upgrade": {0: to_cents}}, "from 1 to 2"),
        ({"version": 2, "upgrade": {1: "to_cents"}}, "pass a function"),
    ],
)
def test_bad_version_options_are_a_configuration_error(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        durable.task(name="price", **options)


# -- patching ------------------------------------------------------------------------------------------------


def patch_flow(
    f: Flavor, store: Store, ran: list[str], down: list[bool], mode: str | None, stop: str = "failed"
) -> Any:
    """The "flow" entrypoint: fetch at key 0; then old_step (``mode`` None: code from before the patch), new_step
    or old_step by ``durable.patched("p")`` (``"patched"``), or ``deprecate_patch("p")`` then new_step
    (``"deprecated"``); then, if ``stop == "paused"``, the question "ship"; then finish (Boom while ``down[0]``)."""
    fetch = recording(f, ran, "fetch", lambda x: x + 1)
    old_step = recording(f, ran, "old_step", lambda a: f"old {a}")
    new_step = recording(f, ran, "new_step", lambda a: f"new {a}")
    finish = recording(f, ran, "finish", lambda b: fail(Boom()) if down[0] else b)

    @f.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        a = yield fetch(x)
        if mode == "patched":
            step = new_step if durable.patched("p") else old_step
        elif mode == "deprecated":
            durable.deprecate_patch("p")
            step = new_step
        else:
            step = old_step
        b = yield step(a)
        if stop == "paused":
            b = (b, interrupt("ship?", id="ship"))
        return (yield finish(b))

    return flow


def tasks_of(store: Store, thread_id: str) -> list[tuple[str, str]]:
    """(key, task) of the thread's journal, by key, as the operator's tools read it."""
    return sorted({(e.key, e.task) for e in Threads(store).state(thread_id).entries})


@pytest.mark.parametrize("mode", ["patched", "deprecated"])
def test_a_new_run_takes_the_new_branch(store: Store, flavor: Flavor, mode: str) -> None:
    """patched("p") is True in a new run and journals its marker at its key; deprecate_patch journals nothing."""
    ran: list[str] = []
    flow = patch_flow(flavor, store, ran, [False], mode)
    assert flavor.invoke(flow, 1, thread_id="t") == "new 2"
    assert ran == ["fetch", "new_step", "finish"]
    if mode == "patched":
        assert tasks_of(store, "t") == [("0", "fetch"), ("1", "durable.patched"), ("2", "new_step"), ("3", "finish")]
        assert Threads(store).state("t").entries[1].result == "p"
        assert [e.result for e in flow.get_state(thread_id="t").entries if e.task == "durable.patched"] == ["p"]
    else:
        assert tasks_of(store, "t") == [("0", "fetch"), ("1", "new_step"), ("2", "finish")]


@pytest.mark.parametrize("stop", ["failed", "paused"])
def test_a_run_from_before_the_patch_keeps_the_old_branch(store: Store, flavor: Flavor, stop: str) -> None:
    """Recorded by code without the patch, past the patch point: with the patch deployed, patched() is False on
    replay, takes no key, and the run finishes on the old branch; verify and plan agree."""
    ran: list[str] = []
    down = [True]
    v1 = patch_flow(flavor, store, ran, down, None, stop)
    if stop == "failed":
        with pytest.raises(Boom):
            flavor.invoke(v1, 1, thread_id="t")
    else:
        assert isinstance(flavor.invoke(v1, 1, thread_id="t"), Interrupted)
        down[0] = False
    before = rows(store, "t")
    v2 = patch_flow(flavor, store, ran, down, "patched", stop)
    (check,) = verify([v2])
    plan = v2.plan(None, thread_id="t")
    assert check.ok and rows(store, "t") == before
    if stop == "failed":
        assert plan.outcome == "runs" and plan.replayed == ("0", "1")
        assert next_of(plan) == ("2", "finish", "failed")
        down[0] = False
        assert flavor.invoke(v2, None, thread_id="t") == "old 2"
    else:
        assert plan.outcome == "waits" and check.plan is not None and check.plan.outcome == "waits"
        assert flavor.invoke(v2, Command(resume={"ship": True}), thread_id="t") == ("old 2", True)
    assert "new_step" not in ran and ran[-1] == "finish"
    tasks = ["fetch", "old_step", *(["interrupt"] if stop == "paused" else []), "finish"]
    assert tasks_of(store, "t") == [(str(key), task) for key, task in enumerate(tasks)]  # no key for patched()


@pytest.mark.parametrize("resumed_by", ["patched", "deprecated"])
def test_a_run_with_the_marker_replays_the_new_branch(store: Store, flavor: Flavor, resumed_by: str) -> None:
    """A run that took the new branch and then failed resumes on the new branch, with patched() still in the
    code or replaced by deprecate_patch(), which takes the marker's key: new_step replays, finish reruns."""
    ran: list[str] = []
    down = [True]
    with pytest.raises(Boom):
        flavor.invoke(patch_flow(flavor, store, ran, down, "patched"), 1, thread_id="t")
    before = rows(store, "t")
    v3 = patch_flow(flavor, store, ran, down, resumed_by)
    plan = v3.plan(None, thread_id="t")
    assert plan.outcome == "runs" and plan.replayed == ("0", "1", "2") and rows(store, "t") == before
    assert next_of(plan) == ("3", "finish", "failed")
    down[0] = False
    assert flavor.invoke(v3, None, thread_id="t") == "new 2"
    assert ran == ["fetch", "new_step", "finish", "finish"]


def test_a_run_that_died_before_the_patch_point_takes_the_new_branch(store: Store, flavor: Flavor) -> None:
    """The old code's process died inside old_step (nothing recorded there nor after): the patched code reaches
    patched() fresh, so the run takes the new branch. The plan says so and writes no marker; the resume does."""
    ran: list[str] = []
    fetch = recording(flavor, ran, "fetch", lambda x: x + 1)
    dying = recording(flavor, ran, "old_step", lambda a: fail(Crash()))

    @flavor.entrypoint(checkpointer=store, name="flow")
    def v1(x: int) -> Any:
        return (yield dying((yield fetch(x))))

    with pytest.raises(Crash):
        flavor.invoke(v1, 1, thread_id="t")
    before = rows(store, "t")
    v2 = patch_flow(flavor, store, ran, [False], "patched")
    plan = v2.plan(None, thread_id="t")
    assert plan.outcome == "runs" and next_of(plan) == ("2", "new_step", "unrecorded")
    assert rows(store, "t") == before and ran == ["fetch", "old_step"]
    assert flavor.invoke(v2, None, thread_id="t") == "new 2"
    assert tasks_of(store, "t") == [("0", "fetch"), ("1", "durable.patched"), ("2", "new_step"), ("3", "finish")]


@pytest.mark.parametrize("bad", ["", 3, None])
def test_patch_ids_must_be_non_empty_strings(store: Store, bad: Any) -> None:
    """Outside a run patched() is True and deprecate_patch() does nothing; a bad id is a UsageError anywhere."""
    assert durable.patched("p") is True and durable.deprecate_patch("p") is None
    with pytest.raises(UsageError, match="non-empty string"):
        durable.patched(bad)
    with pytest.raises(UsageError, match="non-empty string"):
        durable.deprecate_patch(bad)

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(_: Any) -> Any:
        return durable.patched(bad)

    with pytest.raises(UsageError, match="non-empty string"):
        flow.invoke(1, thread_id="t")


# -- graphs, and bundles instead of a store -----------------------------------------------------------------


class GraphState(TypedDict):
    log: Annotated[list[str], operator.add]


def test_a_graph_thread_that_failed_in_a_node_plans_that_node(store: Store, calls: Any) -> None:
    from durable.graph import END, START, StateGraph

    down = [True]

    def node(name: str) -> Any:
        def run(state: Any) -> Any:
            calls.hit(name)
            if name == "b" and down[0]:
                raise Boom("b is down")
            return {"log": [name]}

        return run

    builder = StateGraph(GraphState)
    for name in "ab":
        builder.add_node(name, node(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    graph = builder.compile(checkpointer=store)
    cfg = {"configurable": {"thread_id": "t"}}

    with pytest.raises(Boom):
        graph.invoke({"log": []}, cfg)
    before = rows(store, "t")
    plan = graph.plan(None, cfg)
    assert (plan.outcome, plan.replayed, next_of(plan)) == ("runs", ("0", "1"), ("2", "b", "failed"))
    (check,) = verify([graph])
    assert check.ok and check.plan is not None and check.plan.next == plan.next
    assert calls.as_dict() == {"a": 1, "b": 1} and rows(store, "t") == before
    down[0] = False
    assert graph.invoke(None, cfg) == {"log": ["a", "b"]}
    assert calls.as_dict() == {"a": 1, "b": 2}


def test_verify_reads_exported_bundles_instead_of_a_store(store: Store, flavor: Flavor, tmp_path: Path) -> None:
    """Threads exported as JSON files are verified against the code about to ship, with no store: the failed
    thread diverges under a rename, the finished one is not checked, and nothing is written anywhere."""
    ran: list[str] = []
    down = failed_shop(flavor, store, ran, "t")
    down[0] = False
    assert flavor.invoke(shop(flavor, store, ran, down), 1, thread_id="done") == "charged 2"
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for thread_id in ("t", "done"):
        (bundles / f"{thread_id}.json").write_text(json.dumps(Threads(store).export(thread_id)))
    before = rows(store, "t")
    ran.clear()

    elsewhere = MemoryStore()
    renamed = shop(flavor, elsewhere, ran, down, "renamed")
    (check,) = verify([renamed], bundles=bundles)
    assert (check.thread_id, check.status, check.problem) == ("t", "failed", "diverges")
    assert check.plan is not None and isinstance(check.plan.error, NonDeterminismError) and check.plan.error.key == "0"
    (one,) = verify([shop(flavor, elsewhere, ran, down)], bundles=bundles / "t.json")
    assert one.ok and one.plan is not None and next_of(one.plan) == ("2", "charge", "failed")
    assert ran == [] and rows(store, "t") == before
    assert elsewhere.get_thread("t") is None and elsewhere.get_thread("done") is None


# -- review regressions --------------------------------------------------------------------------------------
#
# Each pins a behaviour a review found broken in plan, verify or patched() (now fixed). ``recording(durable,
# ...)`` makes a plain sync task where the body's flavor adds nothing.


@dataclasses.dataclass
class Report:  # ``rendered`` is set when the report is first rendered, not by __init__
    id: int
    rendered: str = dataclasses.field(init=False, repr=False, compare=False)


class User(BaseModel):
    id: int
    name: str


class LaxUser(BaseModel):
    __durable_check_fields__: ClassVar[bool] = False  # instances built without some fields on purpose
    id: int
    name: str


class Approval(BaseModel):
    amount: int

    @field_validator("amount")
    @classmethod
    def positive(cls, amount: int) -> int:
        if amount <= 0:
            raise ValueError("must be positive")
        return amount


@dataclasses.dataclass
class Ctx:
    model: str


@pytest.mark.parametrize("via", ["get_store", "param", "runtime"])
@pytest.mark.slow
def test_plan_and_verify_read_the_memory_and_stop_where_the_body_writes_it(store: Store, via: str) -> None:
    """The body reads the long-term memory, then writes it before its first task: plan and verify read it
    (refreshing no ttl) and stop at the write (key 0, "outside"), leaving the memory as it was; the resume
    then writes it."""
    ran: list[str] = []
    seen: list[Any] = []
    down = [True]
    memory = Memory(store, ttl={"default_ttl": 1.0})  # a minute; reads refresh it by default
    step = recording(durable, ran, "step", lambda x: fail(Crash()) if down[0] else x)

    def use(mem: Any, x: int) -> Any:
        item = mem.get(("prefs",), "u")
        found = mem.search(("prefs",))
        seen.append((item.value, len(found)))
        mem.put(("prefs",), "u", {"n": item.value["n"] + len(found)})
        return step(x).result()

    if via == "param":

        def body(x: int, *, store: Any) -> Any:
            return use(store, x)
    elif via == "runtime":

        def body(x: int, *, runtime: Any) -> Any:
            return use(runtime.store, x)
    else:

        def body(x: int) -> Any:
            return use(durable.get_store(), x)

    @durable.entrypoint(checkpointer=store, store=memory, name="flow")
    def v1(x: int) -> Any:
        return step(x).result()

    flow = durable.entrypoint(checkpointer=store, store=memory, name="flow")(body)
    with pytest.raises(Crash):
        v1.invoke(7, thread_id="t")
    memory.put(("prefs",), "u", {"n": 1})
    before = rows(store, "t")

    def kv() -> Any:
        return store.kv_get(kv_namespace(("prefs",)), "u", False)

    time.sleep(0.25)  # a read refreshing the ttl now would move its expiry 0.25 s on
    held = kv()
    plan = flow.plan(None, thread_id="t")
    (check,) = verify([flow])
    assert plan.outcome == "runs" and plan.replayed == ()
    assert next_of(plan) == ("0", "store.put", "outside") and plan.runs == (plan.next,)
    assert check.ok and check.plan is not None and check.plan.next == plan.next
    assert seen == [({"n": 1}, 1), ({"n": 1}, 1)]  # the reads worked, in the plan and in verify
    after = kv()
    assert after is not None and after._replace(expires_at=0) == held._replace(expires_at=0)
    assert after.expires_at == pytest.approx(held.expires_at, abs=0.1)  # no ttl refreshed
    assert ran == ["step"] and rows(store, "t") == before
    memory.get(("prefs",), "u")  # a real read does refresh it (the check above could see one)
    assert kv().expires_at > held.expires_at + 0.15

    down[0] = False
    assert flow.invoke(None, thread_id="t") == 7
    assert ran == ["step", "step"] and memory.get(("prefs",), "u").value == {"n": 2}


def test_a_fan_out_is_checked_past_its_first_unrecorded_call(store: Store, flavor: Flavor) -> None:
    """v1 starts page(0..3) without waiting, and the process dies in pages 0 and 1, pages 2 and 3 recorded. The
    same code plans to run both unrecorded pages (``runs``, ``next`` the first), as its resume does; code that
    now calls thumb at key 2 diverges there, the unrecorded calls before it notwithstanding, as its resume does."""
    ran: list[str] = []
    down = [True]
    page = recording(flavor, ran, "page", lambda i: fail(Crash()) if down[0] and i < 2 else i)
    thumb = recording(flavor, ran, "thumb")

    def build(tasks: list[Any]) -> Any:
        @flavor.entrypoint(checkpointer=store, name="flow")
        def flow(n: int) -> Any:
            calls = [t(i) for i, t in enumerate(tasks)]  # all started before any is waited for
            got = []
            for call in reversed(calls):  # 3 and 2 (recorded) first, then 1: the crash
                got.append((yield call))
            return got[::-1]

        return flow

    v1, v2 = build([page] * 4), build([page, page, thumb, page])
    for thread_id in ("t", "u"):
        with pytest.raises(Crash):
            flavor.invoke(v1, 4, thread_id=thread_id)
        assert tasks_of(store, thread_id) == [("2", "page"), ("3", "page")]
    before = rows(store, "t"), rows(store, "u")
    ran.clear()

    checks = verify([v2])
    assert [(c.thread_id, c.ok, c.problem) for c in checks] == [("t", False, "diverges"), ("u", False, "diverges")]
    for check in checks:
        assert check.plan is not None and isinstance(check.plan.error, NonDeterminismError)
        assert check.plan.error.key == "2" and "'thumb'" in check.detail
    plan = v1.plan(None, thread_id="t")
    assert plan.outcome == "runs" and plan.replayed == ("2", "3")
    assert [(c.key, c.task, c.why) for c in plan.runs] == [("0", "page", "unrecorded"), ("1", "page", "unrecorded")]
    assert plan.next == plan.runs[0] and "(and 1 more alongside)" in str(plan)
    assert (verify([v1])[0].ok, verify([v1])[1].ok) == (True, True)
    assert ran == [] and (rows(store, "t"), rows(store, "u")) == before

    down[0] = False
    assert flavor.invoke(v1, None, thread_id="t") == [0, 1, 2, 3]
    assert ran == ["page", "page"]
    with pytest.raises(NonDeterminismError) as raised:
        flavor.invoke(v2, None, thread_id="u")
    assert raised.value.key == "2"


def test_patched_keeps_the_old_branch_over_a_task_that_died_with_calls_recorded(store: Store, flavor: Flavor) -> None:
    """checkout died after its own charge (key 0.0) was recorded and before it returned (nothing at key 0): the
    run is an old one mid-way, so patched() at key 0 keeps the old branch and the resume replays that charge
    instead of charging again. Plan and verify say so, writing nothing."""
    charges: list[int] = []
    down = [True]

    @flavor.task(name="charge")
    def charge(x: int) -> str:
        charges.append(x)
        return f"charged {x}"

    @flavor.task(name="checkout")
    def checkout(x: int) -> Any:
        done = yield charge(x)
        if down[0]:
            raise Crash
        return done

    @flavor.task(name="checkout_cents")
    def checkout_cents(x: int) -> Any:
        return (yield charge(x * 100))

    @flavor.entrypoint(checkpointer=store, name="flow")
    def v1(x: int) -> Any:
        return (yield checkout(x))

    @flavor.entrypoint(checkpointer=store, name="flow")
    def v2(x: int) -> Any:
        return (yield (checkout_cents if durable.patched("cents") else checkout)(x))

    with pytest.raises(Crash):
        flavor.invoke(v1, 5, thread_id="t")
    assert tasks_of(store, "t") == [("0.0", "charge")] and charges == [5]
    before = rows(store, "t")
    plan = v2.plan(None, thread_id="t")
    (check,) = verify([v2])
    assert plan.outcome == "runs" and next_of(plan) == ("0", "checkout", "unrecorded")
    assert plan.next is not None and "its 1 recorded call(s) replay inside it" in plan.next.detail
    assert check.ok and check.plan is not None and check.plan.next == plan.next
    assert charges == [5] and rows(store, "t") == before
    down[0] = False
    assert flavor.invoke(v2, None, thread_id="t") == "charged 5"
    assert charges == [5] and tasks_of(store, "t") == [("0", "checkout"), ("0.0", "charge")]


def test_a_patch_asked_twice_in_a_run_answers_the_same_both_times(store: Store, flavor: Flavor) -> None:
    """patched("cents") decides prices and then charges. An old run that died between the two gets False at both
    (price replayed in dollars, charged in dollars), not False then True; a new run gets True at both, with one
    marker journaled."""
    ran: list[str] = []
    price = recording(flavor, ran, "price", lambda x: 12.5)
    price_cents = recording(flavor, ran, "price_cents", lambda x: 1250)
    dying = recording(flavor, ran, "charge_dollars", lambda p: fail(Crash()))
    charge_dollars = recording(flavor, ran, "charge_dollars", lambda p: f"charged ${p}")
    charge_cents = recording(flavor, ran, "charge_cents", lambda p: f"charged {p} cents")

    @flavor.entrypoint(checkpointer=store, name="flow")
    def v1(x: int) -> Any:
        return (yield dying((yield price(x))))

    @flavor.entrypoint(checkpointer=store, name="flow")
    def v2(x: int) -> Any:
        p = yield (price_cents if durable.patched("cents") else price)(x)
        return (yield (charge_cents if durable.patched("cents") else charge_dollars)(p))

    with pytest.raises(Crash):
        flavor.invoke(v1, 1, thread_id="old")
    before = rows(store, "old")
    plan = v2.plan(None, thread_id="old")
    (check,) = verify([v2])
    assert plan.outcome == "runs" and plan.replayed == ("0",)
    assert next_of(plan) == ("1", "charge_dollars", "unrecorded") and check.ok
    fresh = v2.plan(1, thread_id="new")
    assert next_of(fresh) == ("1", "price_cents", "new-run")  # the marker takes key 0
    assert ran == ["price", "charge_dollars"] and rows(store, "old") == before
    assert store.get_thread("new") is None

    assert flavor.invoke(v2, None, thread_id="old") == "charged $12.5"
    assert flavor.invoke(v2, 1, thread_id="new") == "charged 1250 cents"
    assert ran[2:] == ["charge_dollars", "price_cents", "charge_cents"]
    assert tasks_of(store, "old") == [("0", "price"), ("1", "charge_dollars")]
    assert tasks_of(store, "new") == [("0", "durable.patched"), ("1", "price_cents"), ("2", "charge_cents")]


def test_patched_at_the_key_of_a_pending_question_keeps_the_old_branch(store: Store, flavor: Flavor) -> None:
    """An old run is paused on its question at key 1, where the new code calls patched() (then asks the same
    question on either branch): the run is an old one, so verify is ok (it still waits there), and the answer
    resumes it on the old branch, as the plan of that answer says."""
    ran: list[str] = []
    prep = recording(flavor, ran, "prep")
    old_charge = recording(flavor, ran, "old_charge", lambda ok: f"old {ok}")
    new_charge = recording(flavor, ran, "new_charge", lambda ok: f"new {ok}")

    @flavor.entrypoint(checkpointer=store, name="flow")
    def v1(x: int) -> Any:
        yield prep(x)
        return (yield old_charge(interrupt("approve?")))  # its id is its key, "1"

    @flavor.entrypoint(checkpointer=store, name="flow")
    def v2(x: int) -> Any:
        yield prep(x)
        charge = new_charge if durable.patched("new-charge") else old_charge
        return (yield charge(interrupt("approve?")))

    assert isinstance(flavor.invoke(v1, 1, thread_id="t"), Interrupted)
    before = rows(store, "t")
    (check,) = verify([v2])
    assert (check.ok, check.problem) == (True, None)
    assert check.plan is not None and check.plan.outcome == "waits"
    assert [i.id for i in check.plan.interrupts] == ["1"]
    plan = v2.plan(Command(resume="yes"), thread_id="t")
    assert plan.outcome == "runs" and plan.replayed == ("0", "1")
    assert next_of(plan) == ("2", "old_charge", "unrecorded")
    assert ran == ["prep"] and rows(store, "t") == before
    assert flavor.invoke(v2, Command(resume="yes"), thread_id="t") == "old yes"
    assert ran == ["prep", "old_charge"]
    assert "durable.patched" not in {task for _, task in tasks_of(store, "t")}


@pytest.mark.parametrize(
    ("kind", "readable"),
    [("dataclass-init-false", True), ("pydantic-constructed", False), ("pydantic-opted-out", True)],
)
def test_the_missing_field_check_spares_fields_missing_on_purpose(store: Store, kind: str, readable: bool) -> None:
    """A replayed dataclass lacking an init=False field (set later by its code) reads back; so does a model whose
    class sets ``__durable_check_fields__ = False``. A model built with model_construct() without a field is
    refused (the check cannot tell it from a value recorded before the field existed): RecordedValueError."""
    ran: list[str] = []
    down = [True]
    build = {
        "dataclass-init-false": lambda x: Report(x),
        "pydantic-constructed": lambda x: User.model_construct(id=x),
        "pydantic-opted-out": lambda x: LaxUser.model_construct(id=x),
    }[kind]
    make = recording(durable, ran, "make", build)
    after = recording(durable, ran, "after", lambda v: fail(Boom()) if down[0] else v.id)

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        return after(make(x).result()).result()

    with pytest.raises(Boom):
        flow.invoke(3, thread_id="t")
    before = rows(store, "t")
    (check,) = verify([flow])
    assert ran == ["make", "after"] and rows(store, "t") == before
    down[0] = False
    if readable:
        assert (check.ok, check.problem) == (True, None)
        assert check.plan is not None and next_of(check.plan) == ("1", "after", "failed")
        assert flow.invoke(None, thread_id="t") == 3
        assert ran == ["make", "after", "after"]
        return
    assert check.problem == "undecodable" and "User" in check.detail and "name" in check.detail
    with pytest.raises(RecordedValueError, match="key 0") as raised:
        flow.invoke(None, thread_id="t")
    assert (raised.value.key, raised.value.task) == ("0", "make") and ran == ["make", "after"]


def test_questions_asked_in_parallel_tasks_are_still_asked(store: Store) -> None:
    """Two tasks started together each ask a question; the run pauses on both. With the code unchanged verify is
    ok and plan(None) "waits"; the plan of the answers to both runs both tasks again (each replays its answer)."""
    ran: list[str] = []

    @durable.task(name="review")
    def review(part: str) -> Any:
        ran.append(part)
        return interrupt({"review": part}, id=f"review-{part}")

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(parts: list[str]) -> Any:
        calls = [review(p) for p in parts]
        return [c.result() for c in calls]

    paused = flow.invoke(["a", "b"], thread_id="t")
    assert isinstance(paused, Interrupted) and sorted(i.id for i in paused.interrupts) == ["review-a", "review-b"]
    before, done = rows(store, "t"), sorted(ran)
    (check,) = verify([flow])
    assert (check.ok, check.problem) == (True, None)
    assert check.plan is not None and check.plan.outcome == "waits" and "waits for an answer" in check.detail
    waits = flow.plan(None, thread_id="t")
    assert waits.outcome == "waits" and sorted(i.id for i in waits.interrupts) == ["review-a", "review-b"]
    answers = Command(resume={"review-a": 1, "review-b": 2})
    plan = flow.plan(answers, thread_id="t")
    assert plan.outcome == "runs" and [(c.key, c.task) for c in plan.runs] == [("0", "review"), ("1", "review")]
    assert sorted(ran) == done == ["a", "b"] and rows(store, "t") == before
    assert flow.invoke(answers, thread_id="t") == [1, 2]
    assert sorted(ran) == ["a", "a", "b", "b"]


def test_plan_stops_where_the_body_cancels_another_thread(store: Store) -> None:
    """A body that cancels (or updates) another thread would change it for real: the dry run stops there, and the
    other thread is left as it was."""
    ran: list[str] = []
    down = [True]
    step = recording(durable, ran, "step", lambda x: fail(Crash()) if down[0] else x)

    @durable.entrypoint(checkpointer=store, name="child")
    def child(x: int) -> Any:
        return interrupt("go?", id="go")

    @durable.entrypoint(checkpointer=store, name="parent")
    def v1(x: int) -> Any:
        return step(x).result()

    @durable.entrypoint(checkpointer=store, name="parent")
    def v2(x: int) -> Any:
        child.cancel(thread_id="c")
        return step(x).result()

    assert isinstance(child.invoke(1, thread_id="c"), Interrupted)
    with pytest.raises(Crash):
        v1.invoke(1, thread_id="p")
    before_p, before_c = rows(store, "p"), rows(store, "c")
    plan = v2.plan(None, thread_id="p")
    assert plan.outcome == "runs" and next_of(plan) == ("0", "child.cancel on thread 'c'", "outside")
    assert rows(store, "p") == before_p and rows(store, "c") == before_c and ran == ["step"]
    assert child.get_state(thread_id="c").status == "interrupted"


def test_a_run_failed_by_its_own_body_verifies_until_the_error_changes(store: Store) -> None:
    """The body raised ValueError itself (not in a task): with the code unchanged the resume fails the same way,
    which verify takes as the workflow's own doing (ok; the plan "fails", ``repeats``). Code that now fails
    with another message is a problem ("fails")."""
    ran: list[str] = []
    message = ["order not ok"]
    load = recording(durable, ran, "load", lambda x: {"ok": False})

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        order = load(x).result()
        if not order["ok"]:
            raise ValueError(message[0])
        return order

    with pytest.raises(ValueError, match="order not ok"):
        flow.invoke(1, thread_id="t")
    before = rows(store, "t")
    (check,) = verify([flow])
    plan = flow.plan(None, thread_id="t")
    assert (check.ok, check.problem) == (True, None)
    assert (plan.outcome, plan.repeats, plan.replayed) == ("fails", True, ("0",))
    assert isinstance(plan.error, ValueError) and "fails again: ValueError: order not ok" in check.detail
    message[0] = "order refused"
    (changed,) = verify([flow])
    assert (changed.ok, changed.problem) == (False, "fails") and "order refused" in changed.detail
    assert changed.plan is not None and changed.plan.repeats is False
    assert ran == ["load"] and rows(store, "t") == before


def test_plan_of_a_new_run_gives_the_body_the_last_runs_saved_value(store: Store) -> None:
    """A new run on a thread whose last run completed gets that run's saved value as ``previous``, in the plan
    as in the invoke: the branch taken on it (the task run first) is the same."""
    ran: list[str] = []
    first = recording(durable, ran, "first")
    again = recording(durable, ran, "again")

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(x: int, *, previous: Any = None) -> Any:
        if previous is None:
            return durable.entrypoint.final(value=first(x).result(), save=10)
        return again(x + previous).result()

    assert flow.invoke(1, thread_id="t") == 1
    before = rows(store, "t")
    plan = flow.plan(2, thread_id="t")
    assert (plan.status, plan.outcome, next_of(plan)) == ("new", "runs", ("0", "again", "new-run"))
    assert ran == ["first"] and rows(store, "t") == before
    assert flow.invoke(2, thread_id="t") == 12
    assert ran == ["first", "again"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in Python 3.11")
def test_plan_of_an_async_body_starting_tasks_in_a_task_group(store: Store) -> None:
    """An async body starts its calls in an asyncio.TaskGroup: the dry run's stop comes out of the group in an
    exception group, and is still read as the resume running those calls (both); verify is ok."""
    ran: list[int] = []

    @durable.task(name="fetch")
    async def fetch(x: int) -> int:
        ran.append(x)
        return x

    async def one(x: int) -> int:
        return await fetch(x)

    @durable.entrypoint(checkpointer=store, name="flow")
    async def flow(xs: list[int]) -> Any:
        async with asyncio.TaskGroup() as group:
            calls = [group.create_task(one(x)) for x in xs]
        return [c.result() for c in calls]

    flow.submit([1, 2], thread_id="t")
    before = rows(store, "t")
    plan = flow.plan(None, thread_id="t")
    (check,) = verify([flow])
    assert plan.outcome == "runs" and plan.next == plan.runs[0]
    assert [(c.key, c.task, c.why) for c in plan.runs] == [("0", "fetch", "unrecorded"), ("1", "fetch", "unrecorded")]
    assert (check.ok, check.problem) == (True, None) and check.plan is not None and check.plan.runs == plan.runs
    assert ran == [] and rows(store, "t") == before
    assert asyncio.run(flow.ainvoke(None, thread_id="t")) == [1, 2]
    assert sorted(ran) == [1, 2]


def test_plan_refuses_an_answer_the_questions_type_refuses(store: Store) -> None:
    """The question's response_schema is a model whose validator refuses amounts <= 0: plan raises
    AnswerRejectedError for {"amount": -5}, as invoke does, journaling nothing; a good answer plans the resume,
    before and after invoke refused the bad one."""
    ran: list[str] = []
    use = recording(durable, ran, "use", lambda a: a.amount * 2)

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(_: Any) -> Any:
        return use(interrupt("how much?", id="amount", response_schema=Approval)).result()

    assert isinstance(flow.invoke(1, thread_id="t"), Interrupted)
    before = rows(store, "t")
    bad = Command(resume={"amount": {"amount": -5}})
    with pytest.raises(AnswerRejectedError, match="must be positive"):
        flow.plan(bad, thread_id="t")
    assert rows(store, "t") == before
    good = Command(resume={"amount": {"amount": 3}})
    assert next_of(flow.plan(good, thread_id="t")) == ("1", "use", "unrecorded")
    assert ran == [] and rows(store, "t") == before
    with pytest.raises(AnswerRejectedError, match="must be positive"):
        flow.invoke(bad, thread_id="t")
    with pytest.raises(AnswerRejectedError, match="must be positive"):  # asked anew: refused again, as invoke
        flow.plan(bad, thread_id="t")
    assert next_of(flow.plan(good, thread_id="t")) == ("1", "use", "unrecorded")
    assert flow.invoke(good, thread_id="t") == 6 and ran == ["use"]


@pytest.mark.parametrize("how", ["invoke", "submit"])
def test_plan_stops_where_the_body_starts_a_run_on_another_thread(store: Store, how: str) -> None:
    """The body invokes (or submits) a child entrypoint on a thread of its own: that would run, or record, for
    real, so plan and verify stop there ("outside"): no child task runs and no child thread is made."""
    ran: list[str] = []
    down = [True]
    child_step = recording(durable, ran, "child_step")
    step = recording(durable, ran, "step", lambda x: fail(Crash()) if down[0] else x)

    @durable.entrypoint(checkpointer=store, name="child")
    def child(x: int) -> Any:
        return child_step(x).result()

    @durable.entrypoint(checkpointer=store, name="parent")
    def v1(x: int) -> Any:
        return step(x).result()

    @durable.entrypoint(checkpointer=store, name="parent")
    def v2(x: int) -> Any:
        got = getattr(child, how)(x, thread_id="child-of-p")
        return step(got if how == "invoke" else x).result()

    with pytest.raises(Crash):
        v1.invoke(1, thread_id="p")
    before = rows(store, "p")
    plan = v2.plan(None, thread_id="p")
    (check,) = verify([v2, child])
    assert plan.outcome == "runs" and next_of(plan) == ("0", f"child.{how} on thread 'child-of-p'", "outside")
    assert check.thread_id == "p" and check.ok and check.plan is not None and check.plan.next == plan.next
    assert ran == ["step"] and rows(store, "p") == before and store.get_thread("child-of-p") is None
    down[0] = False
    assert v2.invoke(None, thread_id="p") == 1
    assert ran == (["step", "child_step", "step"] if how == "invoke" else ["step", "step"])
    assert store.get_thread("child-of-p") is not None


def test_a_changed_argument_under_warn_is_a_note_of_the_plan_not_a_warning(store: Store) -> None:
    """Under on_changed_args="warn", fetch is now called with other arguments: the plan (and verify's) notes
    say so with the text the resume then warns with. They emit nothing through `warnings`, and take nothing from
    it: a warning another thread gives meanwhile reaches the application, not the plan's notes."""
    ran: list[str] = []
    offset = [0]
    down = [True]
    fetch = recording(durable, ran, "fetch", lambda x: x * 100)
    finish = recording(durable, ran, "finish", lambda a: fail(Boom()) if down[0] else a)

    elsewhere: list[Any] = []  # what else the process does meanwhile: another thread warns

    @durable.entrypoint(checkpointer=store, name="flow", on_changed_args="warn")
    def flow(x: int) -> Any:
        for other in elsewhere:
            other.start()
            other.join()
        return finish(fetch(x + offset[0]).result()).result()

    with pytest.raises(Boom):
        flow.invoke(1, thread_id="t")
    before = rows(store, "t")
    offset[0] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        elsewhere.append(threading.Thread(target=warnings.warn, args=("from another thread",)))
        plan = flow.plan(None, thread_id="t")
        elsewhere[:] = []
        (check,) = verify([flow])
    assert [str(w.message) for w in caught] == ["from another thread"]  # shown, not taken for the plan's
    assert plan.outcome == "runs" and next_of(plan) == ("1", "finish", "failed")
    (note,) = plan.notes
    assert "'fetch'" in note and "'0'" in note and note.endswith("(replaying the recorded result)")
    assert check.ok and check.plan is not None and check.plan.notes == plan.notes
    assert ran == ["fetch", "finish"] and rows(store, "t") == before
    down[0] = False
    with pytest.warns(RuntimeWarning) as warned:
        assert flow.invoke(None, thread_id="t") == 100
    assert [str(w.message) for w in warned] == [note]


def test_an_unsigned_marker_in_a_signed_journal_is_refused(store: Store, flavor: Flavor) -> None:
    """A patch marker planted without a signature where the old run has nothing recorded would take it onto the
    new branch: the resume refuses it (IntegrityError), as any unsigned row, running neither branch; the plan
    fails with that error and verify flags the thread."""
    ran: list[str] = []
    down = [True]
    secret = "k" * 32
    a = recording(flavor, ran, "a")
    old = recording(flavor, ran, "old", lambda x: fail(Crash()) if down[0] else "old")
    new = recording(flavor, ran, "new", lambda x: "new")

    @flavor.entrypoint(checkpointer=store, name="flow", secret=secret)
    def v1(x: int) -> Any:
        yield a(x)
        return (yield old(x))

    @flavor.entrypoint(checkpointer=store, name="flow", secret=secret)
    def v2(x: int) -> Any:
        yield a(x)
        return (yield (new if durable.patched("p") else old)(x))

    with pytest.raises(Crash):
        flavor.invoke(v1, 1, thread_id="t")
    down[0] = False
    thread = store.get_thread("t")
    assert thread is not None and thread.run is not None
    forged = JournalRow("1", 1, "durable.patched", OK, digest_call(("p",), {}), b"Jforged, unsigned", 0.0, 0.0)
    lease = store.claim("t", "intruder")
    store.append(lease, thread.run.run_id, [forged])
    store.release(lease)
    plan = v2.plan(None, thread_id="t")
    assert plan.outcome == "fails" and isinstance(plan.error, IntegrityError)
    (check,) = verify([v2])
    assert (check.ok, check.problem) == (False, "unreadable") and "'1' (durable.patched)" in check.detail
    with pytest.raises(IntegrityError, match="not signed"):
        flavor.invoke(v2, None, thread_id="t")
    assert ran == ["a", "old"]


def test_a_question_past_its_deadline_without_default_is_the_workflows_own_failure(store: Store) -> None:
    """The run is paused on a question whose deadline passed and that has no default: the resume fails with
    InterruptTimeoutError whatever code is deployed, so verify is ok, and the plan "fails" with it."""
    ran: list[str] = []
    prep = recording(durable, ran, "prep")

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        prep(x).result()
        return interrupt("approve?", id="approve", timeout=60)

    with FakeClock() as clock:
        assert isinstance(flow.invoke(1, thread_id="t"), Interrupted)
        clock.advance(120)
        before = rows(store, "t")
        (check,) = verify([flow])
        plan = flow.plan(None, thread_id="t")
        assert (check.ok, check.problem) == (True, None) and "InterruptTimeoutError" in check.detail
        assert plan.outcome == "fails" and isinstance(plan.error, InterruptTimeoutError)
        assert ran == ["prep"] and rows(store, "t") == before
        with pytest.raises(InterruptTimeoutError):
            flow.invoke(None, thread_id="t")


def test_verify_can_skip_other_applications_threads(store: Store) -> None:
    """With ignore_missing, a thread of an entrypoint not given is listed as skipped (ok), not as a problem."""
    ran: list[str] = []
    mine = recording(durable, ran, "mine", lambda x: fail(Boom()))
    theirs = recording(durable, ran, "theirs", lambda x: fail(Boom()))

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        return mine(x).result()

    @durable.entrypoint(checkpointer=store, name="other")
    def other(x: int) -> Any:
        return theirs(x).result()

    for ep, thread_id in ((flow, "a-mine"), (other, "b-theirs")):
        with pytest.raises(Boom):
            ep.invoke(1, thread_id=thread_id)
    before = rows(store, "b-theirs")
    strict = verify([flow], checkpointer=store)
    assert [(c.thread_id, c.problem, c.skipped) for c in strict] == [
        ("b-theirs", "missing-entrypoint", False),
        ("a-mine", None, False),
    ]
    lenient = verify([flow], checkpointer=store, ignore_missing=True)
    assert [(c.thread_id, c.entrypoint, c.ok, c.problem, c.skipped) for c in lenient] == [
        ("a-mine", "flow", True, None, False),
        ("b-theirs", "other", True, None, True),
    ]
    assert lenient[1].plan is None and str(lenient[1]).startswith("skipped")
    assert ran == ["mine", "theirs"] and rows(store, "b-theirs") == before


def test_verify_gives_the_bodies_the_context_an_invoke_would(store: Store) -> None:
    """The body reads ``runtime.context.model``: without context= verify reports that the body now fails; with
    the context invokes pass, the thread is ok and its plan names the failed task."""
    ran: list[str] = []
    down = [True]
    step = recording(durable, ran, "step", lambda m: fail(Boom()) if down[0] else m)

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(_: Any) -> Any:
        return step(durable.get_runtime().context.model).result()

    with pytest.raises(Boom):
        flow.invoke(1, thread_id="t", context=Ctx("gpt"))
    before = rows(store, "t")
    (bare,) = verify([flow])
    assert (bare.ok, bare.problem) == (False, "fails") and "AttributeError" in bare.detail
    (given,) = verify([flow], context=Ctx("gpt"))
    assert (given.ok, given.problem) == (True, None)
    assert given.plan is not None and next_of(given.plan) == ("0", "step", "failed")
    assert next_of(flow.plan(None, thread_id="t", context=Ctx("gpt"))) == ("0", "step", "failed")
    assert ran == ["step"] and rows(store, "t") == before
    down[0] = False
    assert flow.invoke(None, thread_id="t", context=Ctx("gpt")) == "gpt"
