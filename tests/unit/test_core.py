"""The I/O-free replay core: `plan`, `Replay.lookup`, `Replay.retry_keys_after` and `unwrap_final`."""

from __future__ import annotations

import builtins
import sys

import pytest

from durable import ArgumentsChangedError, NonDeterminismError, ResumeError, ThreadNotFoundError, UnfinishedRunError
from durable._core import Final, Replay, plan, unwrap_final
from durable.stores._base import ERROR, OK, JournalRow, RunRow, ThreadRow


def row(
    key: str, name: str = "fetch", *, attempt: int = 1, status: int = OK, digest: bytes | None = b"d"
) -> JournalRow:
    return JournalRow(key, attempt, name, status, digest, b"payload", 1.0, 2.0)


def thread(status: str | None) -> ThreadRow:
    run = None if status is None else RunRow(7, "flow", status, b"", None, 0.0)  # type: ignore[arg-type]
    return ThreadRow("t", 1, None, None, 3, run)


# -- plan -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("known", [None, thread(None)], ids=["no-thread", "no-run"])
def test_plan_none_on_an_unknown_thread_raises_thread_not_found(known: ThreadRow | None) -> None:
    """``None`` for a thread with no run is ThreadNotFoundError naming the thread."""
    with pytest.raises(ThreadNotFoundError, match="'t'") as info:
        plan("t", known, "none")
    assert info.value.thread_id == "t"


def test_plan_none_on_a_completed_run_is_finished() -> None:
    """``None`` on a completed run means: return its value."""
    assert plan("t", thread("completed"), "none") == "finished"


@pytest.mark.parametrize("status", ["running", "failed"])
def test_plan_none_on_an_unfinished_run_resumes_it(status: str) -> None:
    """``None`` on a running (crashed) or failed run means: resume it."""
    assert plan("t", thread(status), "none") == "resume"


def test_plan_none_on_a_paused_run_returns_its_interrupts() -> None:
    """``None`` on a paused run means: return the same interrupts, run nothing."""
    assert plan("t", thread("interrupted"), "none") == "paused"


def test_plan_command_on_a_paused_run_answers_it() -> None:
    """A Command on a paused run means: record the answers and resume."""
    assert plan("t", thread("interrupted"), "command") == "answer"


@pytest.mark.parametrize("status", ["running", "failed", "completed"])
def test_plan_command_without_a_pause_raises_resume_error(status: str) -> None:
    """A Command on a run that is not paused is a ResumeError saying what to do instead."""
    with pytest.raises(ResumeError, match="no pending interrupt"):
        plan("t", thread(status), "command")


def test_plan_command_on_an_unknown_thread_raises_thread_not_found() -> None:
    """A Command for a thread with no run is ThreadNotFoundError."""
    with pytest.raises(ThreadNotFoundError):
        plan("t", None, "command")


@pytest.mark.parametrize("known", [None, thread(None), thread("completed")], ids=["no-thread", "no-run", "completed"])
def test_plan_new_input_on_an_unknown_or_finished_thread_starts_a_run(known: ThreadRow | None) -> None:
    """New input starts a new run when the thread is unknown or its last run completed."""
    assert plan("t", known, "new") == "new"


@pytest.mark.parametrize("status", ["running", "failed", "interrupted"])
def test_plan_new_input_on_an_unfinished_run_raises(status: str) -> None:
    """New input while the last run is unfinished is UnfinishedRunError naming the run and how to resume it."""
    how = r"invoke\(Command\(resume=" if status == "interrupted" else r"invoke\(None"
    with pytest.raises(UnfinishedRunError, match=how) as info:
        plan("t", thread(status), "new")
    assert (info.value.thread_id, info.value.run_id, info.value.status) == ("t", 7, status)


# -- Replay.lookup --------------------------------------------------------------------------------


def test_lookup_of_an_unrecorded_key_runs_it_as_attempt_one() -> None:
    """A key the journal does not hold is run, as its first attempt."""
    replay = Replay([row("0")])
    assert replay.lookup("1", "fetch", b"d") == (None, 1)
    assert len(replay) == 1


def test_lookup_of_a_recorded_key_replays_it() -> None:
    """A recorded ok outcome is returned for replay, with its attempt number."""
    recorded = row("0", attempt=2)
    assert Replay([recorded]).lookup("0", "fetch", b"d") == (recorded, 2)


def test_lookup_replays_the_latest_attempt_of_a_key() -> None:
    """When a key was recorded several times, the highest attempt is the one replayed."""
    first, second = row("0", attempt=1, status=ERROR), row("0", attempt=2)
    for rows in ([first, second], [second, first]):
        replay = Replay(rows)
        assert replay.lookup("0", "fetch", b"d") == (second, 2)
        assert len(replay) == 1


def test_lookup_with_another_task_name_raises_non_determinism() -> None:
    """A call whose task differs from the recorded one raises NonDeterminismError naming key and both tasks."""
    with pytest.raises(NonDeterminismError, match=r"'0'.*'fetch'.*'store'") as info:
        Replay([row("0", "fetch")]).lookup("0", "store", b"d")
    assert (info.value.key, info.value.recorded, info.value.actual) == ("0", "fetch", "store")
    assert not isinstance(info.value, ArgumentsChangedError)


def test_lookup_runs_again_an_error_that_failed_the_run() -> None:
    """A recorded error listed in retry_keys is run again, as the next attempt."""
    assert Replay([row("0", status=ERROR)], retry_keys=["0"]).lookup("0", "fetch", b"d") == (None, 2)


def test_lookup_replays_an_error_that_was_handled() -> None:
    """A recorded error not in retry_keys (the entrypoint caught it) is replayed."""
    recorded = row("0", status=ERROR)
    assert Replay([recorded], retry_keys=["1"]).lookup("0", "fetch", b"d") == (recorded, 1)


def test_lookup_with_changed_arguments_raises_by_default() -> None:
    """Other arguments than recorded raise ArgumentsChangedError, a NonDeterminismError naming the key."""
    with pytest.raises(ArgumentsChangedError, match="'0'") as info:
        Replay([row("0", digest=b"old")]).lookup("0", "fetch", b"new")
    assert isinstance(info.value, NonDeterminismError)
    assert (info.value.key, info.value.recorded) == ("0", "fetch")


def test_lookup_with_changed_arguments_warns_and_replays() -> None:
    """With on_changed_args="warn", changed arguments warn (RuntimeWarning) and replay the recorded result."""
    recorded = row("0", digest=b"old")
    replay = Replay([recorded], on_changed_args="warn")
    with pytest.warns(RuntimeWarning, match="different arguments"):
        assert replay.lookup("0", "fetch", b"new") == (recorded, 1)


def test_lookup_with_changed_arguments_reruns() -> None:
    """With on_changed_args="rerun", changed arguments run the task again as the next attempt."""
    assert Replay([row("0", digest=b"old")], on_changed_args="rerun").lookup("0", "fetch", b"new") == (None, 2)


@pytest.mark.parametrize(("recorded", "actual"), [(None, b"new"), (b"old", None)], ids=["recorded", "actual"])
def test_lookup_does_not_check_arguments_it_could_not_digest(recorded: bytes | None, actual: bytes | None) -> None:
    """A missing digest on either side means "not checked": the recorded result replays."""
    old = row("0", digest=recorded)
    assert Replay([old]).lookup("0", "fetch", actual) == (old, 1)


def test_lookup_checks_the_name_before_the_arguments() -> None:
    """Another task at a key is NonDeterminismError even when the arguments changed too."""
    with pytest.raises(NonDeterminismError) as info:
        Replay([row("0", "fetch", digest=b"old")], on_changed_args="rerun").lookup("0", "store", b"new")
    assert type(info.value) is NonDeterminismError


# -- which keys run again after a failure ---------------------------------------------------------


def failed(error: BaseException, origins: dict[str, BaseException], retry: tuple[str, ...] = ()) -> list[str]:
    replay = Replay([], retry)
    for key, exc in origins.items():
        replay.note_error(exc, key)
    return list(replay.retry_keys_after(error))


def test_retry_keys_find_the_task_error_itself() -> None:
    """The error a task raised, re-raised by the entrypoint, names that task's key."""
    err = ValueError("x")
    assert failed(err, {"3": err}) == ["3"]


def test_retry_keys_follow_causes_and_contexts() -> None:
    """Task errors behind the run's error as __cause__ or __context__ are found too."""
    caused, context, other = ValueError("cause"), KeyError("context"), OSError("unrelated")
    top = RuntimeError("top")
    top.__cause__ = caused
    caused.__context__ = context
    origins = {"1": caused, "2.0": context}
    assert failed(top, origins) == ["1", "2.0"]
    assert failed(other, origins) == []


def test_retry_keys_name_every_key_an_error_passed_through() -> None:
    """A child's error that also failed its parent task retries both keys."""
    err = ValueError("leaf down")
    assert failed(err, {"0.0": err, "0": err}) == ["0", "0.0"]


def test_retry_keys_keep_those_not_reached() -> None:
    """Keys to retry stay to retry until a re-run records an outcome (a KeyboardInterrupt records none)."""
    replay = Replay([row("1", "llm", status=ERROR), row("2", "llm", status=ERROR)], retry_keys=("1", "2"))
    assert replay.lookup("1", "llm", None) == (None, 2)
    assert replay.retry_keys_after(RuntimeError("key 1 re-ran but recorded nothing")) == ("1", "2")
    replay.note_recorded("1")
    assert replay.retry_keys_after(RuntimeError("body failed before key 2")) == ("2",)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in Python 3.11")
def test_retry_keys_look_inside_exception_groups() -> None:
    """The members of an ExceptionGroup (e.g. from a TaskGroup) are searched."""
    group_type = builtins.ExceptionGroup
    a, b = ValueError("a"), ValueError("b")
    group = group_type("many", [a, group_type("inner", [b])])
    assert failed(group, {"0": a, "4": b}) == ["0", "4"]


def test_retry_keys_survive_cycles() -> None:
    """An exception chain that loops back on itself ends."""
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert failed(a, {"1": b}) == ["1"]


# -- final ----------------------------------------------------------------------------------------


def test_unwrap_final() -> None:
    """A Final splits into (value, save); any other value is both."""
    assert unwrap_final(Final(value=1, save=[1])) == (1, [1])
    assert unwrap_final({"x": 1}) == ({"x": 1}, {"x": 1})
