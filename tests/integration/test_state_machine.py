"""A Hypothesis state machine driving one SQLite journal through starts, failures, crashes, pauses and resumes.

The workflow, for input ``[tag, n, ask]``: ``work(tag, i)`` for ``i in range(n)`` one after the other (keys
``"0"`` .. ``"n-1"``), then, if ``ask``, ``interrupt({"tag": tag})`` (key and id ``str(n)``), then
``finish(tag, answer)``. Each task body counts its executions per ``(tag, i)`` and returns the count, so a
replayed value says which execution recorded it. A body can be told to fail transiently (`Transient`: its
error is journaled), to crash (`SimulatedCrash`, a BaseException escaping the run without being journaled),
or to hold on an event, so a second executor can try the thread meanwhile (`ThreadBusyError` expected) or
take its lease over with ``store.claim(..., steal_from=owner)`` (the first executor then records nothing).

A model predicts every invocation's outcome and every body's execution count. After each step, for each
thread: ``get_state`` agrees with the model (status, run id, output, pending interrupt); every execution of a
body is accounted for by one journal row or by a known lost execution (so a committed task never ran
again, and a recorded value is the one its execution returned); the final result is the model's.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from durable import (
    Command,
    Interrupted,
    LeaseLostError,
    ResumeError,
    SQLiteStore,
    ThreadBusyError,
    ThreadNotFoundError,
    UnfinishedRunError,
    entrypoint,
    interrupt,
    task,
)

THREADS = ("a", "b")
WAIT = 10.0
Key = tuple[str, Any]  # (run tag, work index or "finish")


class Transient(Exception):
    """A transient failure: journaled as the task's error; the task runs again on resume."""


class SimulatedCrash(BaseException):
    """A crash escaping the run: not an Exception, so never journaled as the task's outcome."""


class Control:
    """What the task bodies consult and count, shared with the machine."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count: Counter[Key] = Counter()
        self.fail: set[Key] = set()
        self.crash: set[Key] = set()
        self.hold: dict[Key, tuple[threading.Event, threading.Event]] = {}

    def enter(self, key: Key) -> int:
        """Count an execution; hold, fail or crash if told to; return this execution's number."""
        with self.lock:
            self.count[key] += 1
            number = self.count[key]
            held = self.hold.pop(key, None)
        if held is not None:
            held[0].set()
            assert held[1].wait(WAIT), "the machine never released a held task"
        with self.lock:
            if key in self.fail:
                self.fail.discard(key)
                raise Transient(repr(key))
            if key in self.crash:
                self.crash.discard(key)
                raise SimulatedCrash(repr(key))
        return number


def build(store: SQLiteStore, ctl: Control) -> Any:
    @task(name="work")
    def work(tag: str, i: int) -> dict[str, int]:
        return {"i": i, "exec": ctl.enter((tag, i))}

    @task(name="finish")
    def finish(tag: str, answer: Any) -> dict[str, Any]:
        return {"answer": answer, "exec": ctl.enter((tag, "finish"))}

    @entrypoint(checkpointer=store, name="flow")
    def flow(inp: list[Any]) -> dict[str, Any]:
        tag, n, ask = inp
        values = [work(tag, i).result() for i in range(n)]
        answer = interrupt({"tag": tag}) if ask else None
        return {"values": values, "finish": finish(tag, answer).result()}

    return flow


@dataclass
class RunModel:
    """What the model expects of one run."""

    tag: str
    n: int
    ask: bool
    run_id: int
    statuses: frozenset[str] = frozenset({"running"})  # what get_state may say now (see `JournalMachine.lost`)
    answered: bool = False
    answer: Any = None
    committed: dict[Key, int] = field(default_factory=dict)  # key -> the execution whose value was recorded
    errors: Counter[Key] = field(default_factory=Counter)  # key -> journaled errors

    @property
    def keys(self) -> list[Key]:
        return [(self.tag, i) for i in range(self.n)] + [(self.tag, "finish")]

    def next_key(self) -> Key | None:
        """The first task the next invocation executes (``None``: it pauses before any)."""
        for key in self.keys:
            if key not in self.committed:
                return None if key[1] == "finish" and self.ask and not self.answered else key
        return None

    def result(self) -> dict[str, Any]:
        values = [{"i": i, "exec": self.committed[(self.tag, i)]} for i in range(self.n)]
        return {"values": values, "finish": {"answer": self.answer, "exec": self.committed[(self.tag, "finish")]}}


class JournalMachine(RuleBasedStateMachine):
    """Two threads of one SQLite journal, driven by starts, resumes, answers, failures, crashes and takeovers."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="durable-machine-")
        self.store = SQLiteStore(Path(self.dir) / "journal.db")
        self.ctl = Control()
        self.flow = build(self.store, self.ctl)
        self.runs: dict[str, list[RunModel]] = {}
        self.expected: Counter[Key] = Counter()  # predicted executions per key
        self.lost: Counter[Key] = Counter()  # executions whose outcome was never journaled
        self.fail: set[Key] = set()
        self.crash: set[Key] = set()

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the model --------------------------------------------------------------------------------

    def current(self, thread: str) -> RunModel | None:
        runs = self.runs.get(thread)
        return runs[-1] if runs else None

    def predict(self, r: RunModel, takeover: str | None) -> str:
        """Apply one invocation to the model; its outcome: completed, interrupted, failed, crashed or lost.

        ``takeover``: the lease is stolen while the first task executes. In "sync" mode that task's commit is
        refused; in "exit" mode the run goes on and its buffered rows are refused at the end.
        """
        new: dict[Key, int] = {}
        errors: list[Key] = []
        outcome = "completed"
        for key in r.keys:
            if key in r.committed:
                continue
            if key[1] == "finish" and r.ask and not r.answered:
                outcome = "interrupted"
                break
            self.expected[key] += 1
            failed, crashed = key in self.fail, key in self.crash and key not in self.fail
            self.fail.discard(key)
            if crashed:
                self.crash.discard(key)
            if takeover == "sync":
                self.lost[key] += 1
                return "lost"
            if failed:
                errors.append(key)
                outcome = "failed"
                break
            if crashed:
                self.lost[key] += 1
                outcome = "crashed"
                break
            new[key] = self.expected[key]
        if takeover == "exit":
            self.lost.update([*new, *errors])
            return "lost"
        r.committed.update(new)
        r.errors.update(errors)
        r.statuses = frozenset({"failed" if outcome == "crashed" else outcome})
        return outcome

    # -- driving the library ----------------------------------------------------------------------

    def invoke(self, thread: str, inp: Any, durability: str) -> Any:
        return self.flow.invoke(inp, thread_id=thread, durability=durability)

    def check_outcome(self, r: RunModel, outcome: str, value: Any, error: BaseException | None) -> None:
        """The invocation did what the model predicted."""
        expected_error = {"failed": Transient, "crashed": SimulatedCrash, "lost": LeaseLostError}.get(outcome)
        if expected_error is not None:
            assert isinstance(error, expected_error), (outcome, value, error)
        else:
            assert error is None, (outcome, error)
        if outcome == "completed":
            assert value == r.result(), (value, r.result())
        elif outcome == "interrupted":
            assert isinstance(value, Interrupted), value
            assert [(i.id, i.value) for i in value.interrupts] == [(str(r.n), {"tag": r.tag})], value

    def arm(self, r: RunModel, trouble: tuple[str, int] | None) -> None:
        if trouble is None or trouble[1] >= r.n or (r.tag, trouble[1]) in r.committed:
            return
        key = (r.tag, trouble[1])
        with self.ctl.lock:
            (self.ctl.fail if trouble[0] == "fail" else self.ctl.crash).add(key)
        (self.fail if trouble[0] == "fail" else self.crash).add(key)

    @rule(
        thread=st.sampled_from(THREADS),
        n=st.integers(1, 3),
        ask=st.booleans(),
        answer=st.sampled_from(["yes", "no", 7]),
        trouble=st.none() | st.tuples(st.sampled_from(["fail", "crash"]), st.integers(0, 2)),
        how=st.sampled_from(["plain", "busy", "takeover"]),
        durability=st.sampled_from(["sync", "async", "exit"]),
    )
    def advance(self, thread: str, n: int, ask: bool, answer: Any, trouble: Any, how: str, durability: str) -> None:
        """Take the thread's next step: start a run, resume it with None, or answer its interrupt."""
        r = self.current(thread)
        if r is None or r.statuses == {"completed"}:
            runs = self.runs.setdefault(thread, [])
            r = RunModel(f"{thread}{len(runs) + 1}", n, ask, run_id=len(runs) + 1)
            runs.append(r)
            inp: Any = [r.tag, n, ask]
            prior = frozenset({"running"})
        elif r.statuses == {"interrupted"}:
            inp, r.answered, r.answer = Command(resume=answer), True, answer
            prior = frozenset({"running"})  # answered: it must not look paused any more
        else:
            inp, prior = None, r.statuses | {"running"}
        self.arm(r, trouble)
        if how == "takeover" and durability == "async":
            durability = "sync"  # a stolen lease fails async writes at a racy point: keep the model exact
        if how == "plain":
            value, error = self.call(lambda: self.invoke(thread, inp, durability))
            self.check_outcome(r, self.predict(r, None), value, error)
            return

        key = r.next_key()
        assert key is not None, "every unfinished run has a task to execute next"
        entered, release = threading.Event(), threading.Event()
        with self.ctl.lock:
            self.ctl.hold[key] = (entered, release)
        box: dict[str, tuple[Any, BaseException | None]] = {}

        def run_held() -> None:
            box["out"] = self.call(lambda: self.invoke(thread, inp, durability))

        worker = threading.Thread(target=run_held, daemon=True)
        worker.start()
        try:
            while not entered.wait(0.01):
                assert worker.is_alive(), f"{key} was not executed: the invocation ended with {box['out']}"
            state = self.flow.get_state(thread_id=thread)
            if how == "busy":
                counts = dict(self.ctl.count)
                for other in (None, [f"{r.tag}-other", 1, False]):
                    got, busy = self.call(lambda other=other: self.invoke(thread, other, "sync"))
                    assert isinstance(busy, ThreadBusyError), f"a concurrent invoke({other!r}) got {busy or got!r}"
                assert dict(self.ctl.count) == counts, "a refused invoke ran task bodies"
                assert state.status in prior, f"a run being executed shows {state.status!r}, not one of {set(prior)}"
            else:
                assert state.owner is not None, state
                stolen = self.store.claim(thread, "another-executor", steal_from=state.owner)
                self.store.release(stolen)
        finally:
            release.set()
            worker.join(WAIT)
        assert not worker.is_alive(), "the held run never ended"
        outcome = self.predict(r, durability if how == "takeover" else None)
        if outcome == "lost":
            r.statuses = prior
        self.check_outcome(r, outcome, *box["out"])

    @staticmethod
    def call(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
        try:
            return fn(), None
        except BaseException as exc:  # SimulatedCrash is a BaseException
            return None, exc

    @rule(thread=st.sampled_from(THREADS))
    def invoke_none_where_nothing_runs(self, thread: str) -> None:
        """None on an unknown thread raises; on a finished one returns its value; on a paused one its question."""
        r = self.current(thread)
        if r is not None and not r.statuses & {"completed", "interrupted"}:
            return  # None would resume it: that is `advance`
        counts = dict(self.ctl.count)
        value, error = self.call(lambda: self.invoke(thread, None, "sync"))
        if r is None:
            assert isinstance(error, ThreadNotFoundError), error
        else:
            self.check_outcome(r, "completed" if r.statuses == {"completed"} else "interrupted", value, error)
        assert dict(self.ctl.count) == counts, "invoke(None) ran task bodies"

    @rule(thread=st.sampled_from(THREADS))
    def misuse_is_refused(self, thread: str) -> None:
        """New input on an unfinished run, or a Command on a run with nothing pending, is refused; nothing changes."""
        r = self.current(thread)
        if r is None:
            return
        if r.statuses == {"completed"}:
            inp: Any = Command(resume="late")
            refused: type[Exception] = ResumeError
        elif r.statuses == {"interrupted"}:
            inp, refused = [f"{r.tag}-again", 1, False], UnfinishedRunError
        else:
            inp, refused = Command(resume="early"), ResumeError
        before = self.snapshot(thread)
        _, error = self.call(lambda: self.invoke(thread, inp, "sync"))
        assert isinstance(error, refused), error
        assert self.snapshot(thread) == before, "a refused invoke changed the thread"

    def snapshot(self, thread: str) -> tuple[Any, ...]:
        state = self.flow.get_state(thread_id=thread)
        entries = [(e.key, e.task, e.status, e.result, repr(e.error), e.attempt, e.finished_at) for e in state.entries]
        return state.status, state.run_id, entries

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def every_execution_is_accounted_for(self) -> None:
        """Bodies ran exactly as predicted; each run is one journal row or a known lost execution."""
        with self.ctl.lock:
            assert self.ctl.count == self.expected, (self.ctl.count, self.expected)
            assert (self.ctl.fail, self.ctl.crash) == (self.fail, self.crash)
        for thread, runs in self.runs.items():
            r = runs[-1]
            rows: Counter[Key] = Counter()
            for e in self.flow.get_state(thread_id=thread).entries:
                if e.task == "interrupt":
                    continue
                key = (r.tag, int(e.key) if e.task == "work" else "finish")
                assert e.task in ("work", "finish") and (e.task == "finish") == (int(e.key) >= r.n), e
                rows[key] += 1
                if e.status == "ok":
                    assert r.committed.get(key) == e.result["exec"], f"{key} recorded {e.result}, not {r.committed}"
                else:
                    assert e.status == "error" and isinstance(e.error, Transient), e
            for key in r.keys:
                oks = int(key in r.committed)
                assert rows[key] == oks + r.errors[key], (key, rows[key], r.committed, r.errors)
                assert self.ctl.count[key] == rows[key] + self.lost[key], (key, self.ctl.count[key], rows[key])

    @invariant()
    def state_agrees_with_the_model(self) -> None:
        """get_state's status, run id, output and pending interrupt are the model's."""
        for thread in THREADS:
            r = self.current(thread)
            if r is None:
                continue
            state = self.flow.get_state(thread_id=thread)
            assert state.status in r.statuses, f"{thread}: status {state.status!r}, expected one of {set(r.statuses)}"
            assert state.run_id == r.run_id, (state.run_id, r.run_id)
            if state.status == "completed":
                assert state.output == r.result(), (state.output, r.result())
            pending = [(i.id, i.value) for i in state.interrupts]
            assert pending == ([(str(r.n), {"tag": r.tag})] if state.status == "interrupted" else []), pending


JournalMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=15,
    derandomize=True,
    report_multiple_bugs=False,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestJournalMachine = pytest.mark.slow(JournalMachine.TestCase)
TestJournalMachine.__doc__ = "Random sequences of starts, failures, crashes, takeovers, pauses and resumes."


# -- what the machine found, each reduced to its smallest case ------------------------------------


def test_a_resume_after_a_crash_in_a_retried_task_runs_that_task_again(tmp_path: Path) -> None:
    """A task that failed, then crashed (a BaseException) when retried, runs again on the next resume."""
    plan = ["fail", "crash", "ok"]  # what each execution of the task does

    @task(name="fetch")
    def fetch() -> str:
        what = plan.pop(0)
        if what == "fail":
            raise Transient("outage")
        if what == "crash":
            raise SimulatedCrash("interrupted while retrying")
        return "page"

    @entrypoint(checkpointer=SQLiteStore(tmp_path / "journal.db"))
    def flow(x: int) -> str:
        return fetch().result()

    value, error = JournalMachine.call(lambda: flow.invoke(1, thread_id="t"))
    assert isinstance(error, Transient)
    value, error = JournalMachine.call(lambda: flow.invoke(None, thread_id="t"))
    assert isinstance(error, SimulatedCrash)
    value, error = JournalMachine.call(lambda: flow.invoke(None, thread_id="t"))
    assert (value, error, plan) == ("page", None, []), "the resume replayed the old error instead of retrying"


def answered_run_held_in_finish(tmp_path: Path) -> tuple[Any, SQLiteStore, threading.Event, threading.Event]:
    """A paused run whose answer is being processed in a background thread, held inside its last task."""
    store = SQLiteStore(tmp_path / "journal.db")
    entered, release = threading.Event(), threading.Event()

    @task(name="finish")
    def finish(answer: str) -> str:
        entered.set()
        assert release.wait(WAIT)
        return f"done: {answer}"

    @entrypoint(checkpointer=store)
    def flow(x: int) -> str:
        return finish(interrupt({"q": x})).result()

    assert isinstance(flow.invoke(1, thread_id="t"), Interrupted)
    return flow, store, entered, release


def test_invoke_none_while_an_answered_run_executes_raises_thread_busy(tmp_path: Path) -> None:
    """While a Command's answer is being processed, the thread is held: invoke(None) raises ThreadBusyError."""
    flow, _, entered, release = answered_run_held_in_finish(tmp_path)
    out: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: out.update(value=flow.invoke(Command(resume="yes"), thread_id="t")))
    worker.start()
    try:
        assert entered.wait(WAIT)
        value, error = JournalMachine.call(lambda: flow.invoke(None, thread_id="t"))
        state = flow.get_state(thread_id="t")
    finally:
        release.set()
        worker.join(WAIT)
    assert out == {"value": "done: yes"}
    assert isinstance(error, ThreadBusyError), f"got {value!r}: the question again, while it is being answered"
    assert state.owner is not None


def test_get_state_of_an_answered_run_being_executed_says_running(tmp_path: Path) -> None:
    """While a Command's answer is being processed, get_state says "running" with nothing pending."""
    flow, _, entered, release = answered_run_held_in_finish(tmp_path)
    worker = threading.Thread(target=lambda: flow.invoke(Command(resume="yes"), thread_id="t"))
    worker.start()
    try:
        assert entered.wait(WAIT)
        state = flow.get_state(thread_id="t")
    finally:
        release.set()
        worker.join(WAIT)
    assert (state.status, state.interrupts) == ("running", ()), (state.status, state.interrupts)


def kill_answering_executor(tmp_path: Path) -> Any:
    """A paused run, answered by an executor that dies (its lease is taken over) before the run ends."""
    flow, store, entered, release = answered_run_held_in_finish(tmp_path)
    out: dict[str, Any] = {}

    def answer() -> None:
        out["value"], out["error"] = JournalMachine.call(lambda: flow.invoke(Command(resume="yes"), thread_id="t"))

    worker = threading.Thread(target=answer)
    worker.start()
    try:
        assert entered.wait(WAIT)
        owner = flow.get_state(thread_id="t").owner
        store.release(store.claim("t", "another-executor", steal_from=owner))  # the first executor is now dead
    finally:
        release.set()
        worker.join(WAIT)
    assert isinstance(out["error"], LeaseLostError), out  # it could record nothing more
    return flow


def test_an_answer_journaled_before_the_executor_died_is_used_by_the_resume(tmp_path: Path) -> None:
    """An executor dies after journaling a Command's answer: invoke(None) resumes with it, not asking again."""
    flow = kill_answering_executor(tmp_path)
    assert [e.result for e in flow.get_state(thread_id="t").entries if e.status == "answer"] == ["yes"]
    value = flow.invoke(None, thread_id="t")
    assert value == "done: yes", f"got {value!r}: the journaled answer was ignored and the question asked again"


def test_get_state_after_an_answering_executor_died_says_running(tmp_path: Path) -> None:
    """An executor dies after journaling a Command's answer: get_state says "running", no question pending."""
    state = kill_answering_executor(tmp_path).get_state(thread_id="t")
    assert (state.status, state.interrupts) == ("running", ()), (state.status, state.interrupts)
