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
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from pydantic import BaseModel

import durable
from durable import (
    AnswerRejectedError,
    ArgumentsChangedError,
    Command,
    ConfigurationError,
    Interrupted,
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
