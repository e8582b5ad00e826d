"""The three durability modes across real processes: what a SIGKILL, a failure or a normal return leaves behind.

* ``"sync"``: a task's result is committed before its future resolves, so nothing finished is lost.
* ``"async"``: results are written in the background, in batches; a crash loses at most the results still in
  flight, and what was written is a correct, uncorrupted, prefix-consistent part of the run.
* ``"exit"``: nothing is written while the run goes on; everything is written when it returns or fails.

Every run happens in a `_worker.py` subprocess (see conftest.py); what survived is read back with ``get_state()``
by a fresh process, and the count file (one fsynced line per task-body execution) says what really ran. After
every kill the SQLite file must pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

KILLED = -signal.SIGKILL
EXIT_STEP_FAILED = 5  # _worker.py: the run failed with the StepFailed it was asked to raise
DURABILITIES = ["sync", "async", "exit"]

Worker = Any  # the `worker` fixture from conftest.py
Reference = Callable[[str, int], dict[str, Any]]  # the `reference_result` fixture
Entries = dict[int, dict[str, Any]]


def check_db(db: Path) -> None:
    """The journal file is an uncorrupted SQLite database, still in WAL mode."""
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"


def split_entries(state: dict[str, Any], reference: dict[str, Any]) -> tuple[Entries, Entries]:
    """The ``(ok, error)`` journal entries of a ``get_state()`` by task index; each ok value must be the reference's.

    A task may have a failed attempt and a later successful one (a failed run resumed); never two of either.
    """
    entries = state["entries"]
    assert len({(e["key"], e["attempt"]) for e in entries}) == len(entries), f"duplicate journal entries: {entries}"
    ok: Entries = {}
    failed: Entries = {}
    for e in entries:
        assert "step" in e["task"], f"entry not recorded under the task's name: {e}"
        if e["status"] == "error":
            match = re.search(r"task (\d+) failed", e["error"] or "")
            assert match and "StepFailed" in e["error"], f"unexpected error entry {e}"
            i = int(match.group(1))
            assert i not in failed, f"task {i} failed twice: {entries}"
            failed[i] = e
        else:
            assert e["status"] == "ok" and e["error"] is None, f"unexpected journal entry {e}"
            result = e["result"]
            assert isinstance(result, dict) and set(result) == {"i", "v", "pid"}, f"bad recorded value {e}"
            i = result["i"]
            assert 0 <= i < len(reference["values"]), e
            assert result["v"] == reference["values"][i], f"recorded value differs from an uninterrupted run's: {e}"
            assert i not in ok, f"task {i} recorded twice: {entries}"
            ok[i] = e
    for i, e in ok.items():
        if i in failed:
            assert failed[i]["key"] == e["key"] and failed[i]["attempt"] < e["attempt"], (failed[i], e)
    return ok, failed


def first_run_lines(worker: Worker, pid1: int) -> Counter[int]:
    """How often each task body ran so far; all in the first process, none twice."""
    lines = worker.lines()
    assert {pid for pid, _ in lines} <= {pid1}, lines
    ran = Counter(i for _, i in lines)
    assert all(c == 1 for c in ran.values()), lines
    return ran


def crashed_state(worker: Worker, thread: str, reference: dict[str, Any]) -> Entries:
    """After a kill: the db is intact, the run shows "running", and its recorded (ok) entries by task index."""
    check_db(worker.db)
    state = worker.state(thread)
    assert state["status"] == "running", state
    assert state["output"] is None and state["error"] is None, state
    ok, failed = split_entries(state, reference)
    assert not failed, state
    return ok


def assert_prefix(ok: Entries, upto: int) -> None:
    """A sequential run's recorded tasks are 0..j-1 for some j <= upto: no gap, nothing recorded out of order."""
    assert set(ok) == set(range(len(ok))), f"recorded tasks are not a prefix of the run: {sorted(ok)}"
    assert len(ok) <= upto, sorted(ok)


def resume_and_check(
    worker: Worker,
    *,
    thread: str,
    mode: str,
    n: int,
    durability: str,
    pid1: int,
    ok: Entries,
    reference: dict[str, Any],
    failed: Entries | None = None,
) -> None:
    """Resume in a new process: exactly the tasks without a recorded result run (once), the result is the reference.

    ``failed``: the tasks whose failure the first run recorded; their failed attempt stays in the journal.
    """
    failed = failed or {}
    ran_first = first_run_lines(worker, pid1)
    for i, e in ok.items():
        assert e["result"]["pid"] == pid1, f"task {i} recorded by another process: {e}"
        assert ran_first[i] == 1, f"task {i} is recorded but its body never ran"

    resumed = worker.ok(thread=thread, mode=mode, resume=True, durability=durability)
    pid2 = resumed["pid"]
    assert pid2 != pid1
    result = resumed["result"]
    assert result["indices"] == reference["indices"]
    assert result["values"] == reference["values"]
    # Recorded tasks replayed the first process's value; only the others ran, in the second process.
    assert result["pids"] == [pid1 if i in ok else pid2 for i in range(n)], (sorted(ok), result)

    lines = worker.lines()
    assert {pid for pid, _ in lines} <= {pid1, pid2}, lines
    ran_second = Counter(i for pid, i in lines if pid == pid2)
    assert set(ran_second) == set(range(n)) - set(ok), f"recorded {sorted(ok)}, resume ran {sorted(ran_second)}"
    assert all(c == 1 for c in ran_second.values()), lines

    final = resumed["state"]
    assert final["status"] == "completed", final
    assert final["output"] == result and final["error"] is None, final
    done, failed_after = split_entries(final, reference)
    assert set(done) == set(range(n)), final["entries"]
    assert failed_after == failed, final["entries"]

    again = worker.state(thread)
    assert again["status"] == "completed" and again["output"] == result, again
    assert again["entries"] == final["entries"]


@pytest.mark.parametrize("durability", DURABILITIES)
def test_run_held_at_task_k_shows_what_its_mode_has_written_and_a_sigkill_keeps_it(
    worker: Worker, reference_result: Reference, durability: str
) -> None:
    """Held at task k, the run shows tasks < k recorded (sync: at once, async: soon, exit: never); SIGKILL keeps it."""
    n, k, thread = 10, 6, f"held-{durability}"
    reference = reference_result("seq", n)
    hold = worker.tmp_path / "hold"  # never created: task k waits until it is killed
    proc, argv = worker.start(thread=thread, mode="seq", n=n, durability=durability, barrier=hold, barrier_from=k)
    worker.wait_for_lines(proc, k + 1)  # task k has started, so tasks 0..k-1 have returned

    expected = set() if durability == "exit" else set(range(k))

    def seen() -> set[int]:
        state = worker.state(thread)
        assert state["status"] == "running", state
        ok, failed = split_entries(state, reference)
        assert not failed, state
        assert_prefix(ok, k)
        return set(ok)

    if durability == "sync":
        assert seen() == expected  # committed before each future resolved
    elif durability == "async":
        deadline = time.monotonic() + 20
        while (now := seen()) != expected:  # written in the background while the run goes on
            assert time.monotonic() < deadline, f"async results of finished tasks never written: {sorted(now)}"
            time.sleep(0.05)
    else:
        assert seen() == expected
        time.sleep(0.5)
        assert seen() == expected  # still nothing written while the run goes on
    assert proc.poll() is None, "the held worker exited"

    os.kill(proc.pid, signal.SIGKILL)
    first = worker.finish(proc, argv)
    assert first.returncode == KILLED, first.describe()
    assert Counter(i for _, i in worker.lines()) == Counter(range(k + 1)), worker.lines()
    ok = crashed_state(worker, thread, reference)
    assert set(ok) == expected, sorted(ok)
    resume_and_check(
        worker, thread=thread, mode="seq", n=n, durability=durability, pid1=first.pid, ok=ok, reference=reference
    )


@pytest.mark.parametrize("mode", ["seq", "fan"])
@pytest.mark.parametrize("durability", DURABILITIES)
def test_sigkill_inside_task_k_loses_only_what_the_mode_allows(
    worker: Worker, reference_result: Reference, durability: str, mode: str
) -> None:
    """SIGKILL in task k keeps (seq) sync: all of 0..k-1, async: a prefix, exit: none; resume reruns only the rest."""
    n, k, thread = 30, 20, f"inside-{durability}-{mode}"
    reference = reference_result(mode, n)
    opts: dict[str, Any] = {"stagger": 0.005} if mode == "fan" else {}
    first = worker.run(thread=thread, mode=mode, n=n, durability=durability, kill_at=k, **opts)
    assert first.returncode == KILLED, first.describe()
    ran = first_run_lines(worker, first.pid)
    assert ran[k] == 1

    ok = crashed_state(worker, thread, reference)
    assert k not in ok, "task k died inside its body, yet a result was recorded for it"
    assert set(ok) <= set(ran)
    if mode == "seq":
        assert set(ran) == set(range(k + 1)), worker.lines()
    if durability == "sync" and mode == "seq":
        assert set(ok) == set(range(k)), sorted(ok)
    elif durability == "async" and mode == "seq":
        assert_prefix(ok, k)
    elif durability == "exit":
        assert ok == {}, sorted(ok)
    resume_and_check(
        worker, thread=thread, mode=mode, n=n, durability=durability, pid1=first.pid, ok=ok, reference=reference
    )


@pytest.mark.parametrize("mode", ["seq", "fan"])
@pytest.mark.parametrize("durability", DURABILITIES)
def test_sigkill_from_outside_at_an_arbitrary_instant_leaves_a_correct_journal(
    worker: Worker, reference_result: Reference, durability: str, mode: str
) -> None:
    """A SIGKILL at any instant leaves an intact journal of correct results; the resume reruns only unrecorded tasks."""
    thread = f"outside-{durability}-{mode}"
    if mode == "seq":
        n, m, opts = 200, 60, {"sleep": 0.003}
    else:
        n, m, opts = 40, 15, {"sleep": 0.05, "stagger": 0.01}
    reference = reference_result(mode, n)
    proc, argv = worker.start(thread=thread, mode=mode, n=n, durability=durability, **opts)
    worker.wait_for_lines(proc, m)
    os.kill(proc.pid, signal.SIGKILL)
    first = worker.finish(proc, argv)
    assert first.returncode == KILLED, first.describe()
    ran = first_run_lines(worker, first.pid)
    assert m <= sum(ran.values()) < n, worker.lines()

    ok = crashed_state(worker, thread, reference)
    assert set(ok) <= set(ran)
    if durability == "exit":
        assert ok == {}, sorted(ok)
    elif mode == "seq":
        count = len(worker.lines())
        assert set(range(count)) == set(ran)
        if durability == "sync":
            # Only the body that wrote the last line may have been killed before its result was committed.
            assert set(ok) in (set(range(count)), set(range(count - 1))), (sorted(ok), count)
        else:
            assert_prefix(ok, count)
    resume_and_check(
        worker, thread=thread, mode=mode, n=n, durability=durability, pid1=first.pid, ok=ok, reference=reference
    )


@pytest.mark.parametrize("durability", DURABILITIES)
def test_fan_out_of_50_tasks_finishing_together_then_sigkill_after_gathering(
    worker: Worker, reference_result: Reference, durability: str
) -> None:
    """50 results at once then SIGKILL after gathering: sync keeps all 50 (resume runs none), async some, exit none."""
    n, thread = 50, f"together-{durability}"
    reference = reference_result("fan", n)
    release = worker.tmp_path / "release"
    proc, argv = worker.start(
        thread=thread, mode="fan", n=n, durability=durability, barrier=release, kill_after_gather=True
    )
    worker.wait_for_lines(proc, n)  # every task is running, waiting for the release
    release.touch()
    first = worker.finish(proc, argv)
    assert first.returncode == KILLED, first.describe()
    assert first_run_lines(worker, first.pid) == Counter(range(n))

    ok = crashed_state(worker, thread, reference)
    if durability == "sync":
        assert set(ok) == set(range(n)), f"gathered results missing from the journal: {sorted(set(range(n)) - set(ok))}"
    elif durability == "exit":
        assert ok == {}, sorted(ok)
    resume_and_check(
        worker, thread=thread, mode="fan", n=n, durability=durability, pid1=first.pid, ok=ok, reference=reference
    )
    if durability == "sync":
        assert len(worker.lines()) == n, "the resume ran a task whose result had been committed"


@pytest.mark.parametrize("mode", ["seq", "fan"])
@pytest.mark.parametrize("durability", DURABILITIES)
def test_run_that_returns_has_every_result_written(
    worker: Worker, reference_result: Reference, durability: str, mode: str
) -> None:
    """Right after a run returns, a new process sees all N results recorded and a resume runs nothing."""
    thread = f"returns-{durability}-{mode}"
    if mode == "seq":
        n = 200
        out = worker.ok(thread=thread, mode=mode, n=n, durability=durability)
    else:
        n = 50  # all released at once: one burst of results at the end
        release = worker.tmp_path / "release"
        proc, argv = worker.start(thread=thread, mode=mode, n=n, durability=durability, barrier=release)
        worker.wait_for_lines(proc, n)
        release.touch()
        done = worker.finish(proc, argv)
        assert done.returncode == 0 and done.out is not None and "error" not in done.out, done.describe()
        out = done.out
    reference = reference_result(mode, n)
    pid1 = out["pid"]
    assert out["result"] == {**reference, "pids": [pid1] * n}
    assert first_run_lines(worker, pid1) == Counter(range(n))

    check_db(worker.db)
    state = worker.state(thread)
    assert state["status"] == "completed" and state["output"] == out["result"], state
    ok, failed = split_entries(state, reference)
    assert set(ok) == set(range(n)) and not failed, f"{n - len(ok)} results not written"
    assert all(e["result"]["pid"] == pid1 for e in ok.values())

    again = worker.ok(thread=thread, mode=mode, resume=True, durability=durability)
    assert again["result"] == out["result"]
    assert len(worker.lines()) == n, "invoke(None) on a finished run ran task bodies"


FAILURES: dict[str, tuple[str, dict[str, Any], set[int], set[int]]] = {
    # case: (mode, worker options, recorded ok tasks, recorded failed tasks) for n = 12
    "seq-task-fails": ("seq", {"fail_at": 5}, set(range(5)), {5}),
    "fan-task-fails": ("fan", {"fail_at": 5, "stagger": 0.002}, set(range(12)) - {5}, {5}),
    "entrypoint-raises": ("fan", {"raise_at_end": True}, set(range(12)), set()),
}


@pytest.mark.parametrize("case", list(FAILURES))
@pytest.mark.parametrize("durability", DURABILITIES)
def test_failed_run_writes_every_result_finished_before_the_failure(
    worker: Worker, reference_result: Reference, durability: str, case: str
) -> None:
    """A failed run has every result finished before the failure written; the resume reruns only the failed task."""
    n, thread = 12, f"fails-{durability}-{case}"
    mode, opts, want_ok, want_failed = FAILURES[case]
    reference = reference_result(mode, n)
    first = worker.run(thread=thread, mode=mode, n=n, durability=durability, **opts)
    assert first.returncode == EXIT_STEP_FAILED, first.describe()
    assert first.out is not None and first.out["error"] == "StepFailed", first.describe()
    ran = first_run_lines(worker, first.pid)
    assert set(ran) == (set(range(opts["fail_at"] + 1)) if mode == "seq" else set(range(n))), worker.lines()

    check_db(worker.db)
    state = worker.state(thread)
    assert state["status"] == "failed", state
    assert "StepFailed" in (state["error"] or ""), state
    ok, failed = split_entries(state, reference)
    assert set(ok) == want_ok, f"recorded ok {sorted(ok)}, expected {sorted(want_ok)}"
    assert set(failed) == want_failed, f"recorded failures {sorted(failed)}, expected {sorted(want_failed)}"
    resume_and_check(
        worker,
        thread=thread,
        mode=mode,
        n=n,
        durability=durability,
        pid1=first.pid,
        ok=ok,
        reference=reference,
        failed=failed,
    )
