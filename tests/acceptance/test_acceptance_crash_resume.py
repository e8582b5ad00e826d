"""Crash and resume across real processes: SIGKILL at chosen and at arbitrary instants, then resume.

The guarantee under test (durability "sync", the default): a task's result is committed before its
future resolves, so after a SIGKILL at any instant

* every task whose journal row was committed never runs again (its recorded value is replayed), and
* a task whose body ran but whose row was not committed (it was killed inside the body, or between the
  body returning and the commit) runs again on resume — at most once more.

Which rows were committed is read back with ``get_state()`` by a fresh process after the kill and before
the resume; the count file (one fsynced line per task-body execution) says what really ran.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

N = 10
KILLED = -signal.SIGKILL
EXIT_DURABLE_ERROR = 4  # _worker.py: a DurableError other than ThreadBusyError

Worker = Any  # the `worker` fixture from conftest.py


def expected_result(n: int) -> dict[str, list[int]]:
    """What `_worker.py`'s pipeline returns, apart from the (non-deterministic) ``pids``."""
    return {"indices": list(range(n)), "values": [i * i + 1 for i in range(n)]}


def committed_entries(state: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The journal entries of a ``get_state()``, by task index (read from the recorded value)."""
    entries = state["entries"]
    assert len({e["key"] for e in entries}) == len(entries), f"duplicate journal keys: {entries}"
    by_index: dict[int, dict[str, Any]] = {}
    for e in entries:
        assert e["status"] == "ok", f"unexpected journal entry {e}"
        assert "step" in e["task"], f"entry not recorded under the task's name: {e}"
        result = e["result"]
        assert isinstance(result, dict) and set(result) == {"i", "v", "pid"}, f"bad recorded value {e}"
        assert result["v"] == result["i"] ** 2 + 1, f"recorded value does not belong to its task: {e}"
        assert result["i"] not in by_index, f"task {result['i']} recorded twice: {entries}"
        by_index[result["i"]] = e
    return by_index


def check_resume(
    worker: Worker,
    *,
    mode: str,
    n: int,
    thread: str,
    pid1: int,
    committed: dict[int, dict[str, Any]],
    reference: dict[str, Any],
    **opts: Any,
) -> dict[str, Any]:
    """Resume ``thread`` in a new process and check that exactly the uncommitted tasks ran again."""
    ran_first = Counter(i for _, i in worker.lines())
    for i, e in committed.items():
        assert e["result"]["pid"] == pid1, f"task {i} recorded by another process: {e}"
        assert ran_first[i] == 1, f"task {i} is committed but its body never ran"

    resumed: dict[str, Any] = worker.ok(thread=thread, mode=mode, resume=True, **opts)
    pid2 = resumed["pid"]
    assert pid2 != pid1
    result = resumed["result"]

    # Same answer as an uninterrupted run (apart from which process produced each value).
    assert result["indices"] == reference["indices"]
    assert result["values"] == reference["values"]
    # Committed tasks were replayed from the journal (value recorded by the first process); only the
    # others ran, in the second process.
    assert result["pids"] == [pid1 if i in committed else pid2 for i in range(n)], (committed.keys(), result)

    lines = worker.lines()
    assert {pid for pid, _ in lines} <= {pid1, pid2}, lines
    ran_second = Counter(i for pid, i in lines if pid == pid2)
    assert set(ran_second) == set(range(n)) - set(committed), (sorted(committed), lines)
    assert all(c == 1 for c in ran_second.values()), lines
    counts = Counter(i for _, i in lines)
    for i in range(n):
        if i in committed:
            assert counts[i] == 1, f"committed task {i} ran {counts[i]} times: {lines}"
        else:
            assert 1 <= counts[i] <= 2, f"task {i} ran {counts[i]} times: {lines}"

    final = resumed["state"]
    assert final["status"] == "completed", final
    assert final["output"] == result
    assert final["error"] is None
    assert len(final["entries"]) == n, final["entries"]
    assert set(committed_entries(final)) == set(range(n))

    # A fresh process sees the same completed state.
    again = worker.state(thread, **opts)
    assert again["status"] == "completed"
    assert len(again["entries"]) == n
    return resumed


@pytest.mark.parametrize("when", ["after", "before"])
@pytest.mark.parametrize("k", [0, 1, 7, N - 1])
@pytest.mark.parametrize("mode", ["seq", "fan"])
def test_sigkill_inside_task_k_then_resume_in_new_process(
    worker: Worker,
    reference_result: Callable[[str, int], dict[str, Any]],
    mode: str,
    k: int,
    when: str,
) -> None:
    """A process SIGKILLed inside task k resumes elsewhere with no committed task rerun and an unchanged result."""
    thread = f"job-{mode}-{k}-{when}"
    reference = reference_result(mode, N)

    first = worker.run(thread=thread, mode=mode, n=N, kill_at=k, kill_when=when)
    assert first.returncode == KILLED, first.describe()
    pid1 = first.pid
    lines = worker.lines()
    assert {pid for pid, _ in lines} <= {pid1}
    ran_first = Counter(i for _, i in lines)
    assert all(c == 1 for c in ran_first.values()), lines
    assert ran_first[k] == (1 if when == "after" else 0), lines

    crashed = worker.state(thread)
    assert crashed["status"] == "running", crashed
    committed = committed_entries(crashed)
    assert k not in committed, "task k died inside its body, yet a result was recorded for it"
    assert set(committed) <= set(ran_first)
    if mode == "seq":
        # Sequential: tasks < k returned (so were committed) before task k started; none after k started.
        assert set(committed) == set(range(k)), sorted(committed)
        assert set(ran_first) == set(range(k + 1 if when == "after" else k)), lines

    check_resume(worker, mode=mode, n=N, thread=thread, pid1=pid1, committed=committed, reference=reference)

    counts = worker.counts()
    assert counts[k] == (2 if when == "after" else 1), worker.lines()
    if mode == "seq":
        # Tasks before k ran only in the first process, task k and the ones after it only in the second
        # (plus task k's own line in the first process when it died after writing it).
        pid2 = next(pid for pid, i in worker.lines() if i == k and pid != pid1)
        for i in range(N):
            pids = [pid for pid, j in worker.lines() if j == i]
            want = [pid1] if i < k else [pid2] if i > k else [pid1, pid2] if when == "after" else [pid2]
            assert pids == want, f"task {i} ran in {pids}, expected {want}: {worker.lines()}"


@pytest.mark.parametrize("mode", ["seq", "fan"])
def test_sigkill_from_outside_mid_run_never_reruns_committed_tasks(
    worker: Worker, reference_result: Callable[[str, int], dict[str, Any]], mode: str
) -> None:
    """A worker SIGKILLed from outside at an arbitrary instant resumes with every committed task run exactly once."""
    thread = f"outside-{mode}"
    m = 8
    if mode == "seq":
        n, opts = 40, {"sleep": 0.02}
    else:
        n, opts = 24, {"sleep": 0.05, "stagger": 0.01}
    reference = reference_result(mode, n)

    # This test passes the checkpointer as a URL, "sqlite:////<absolute path>", in every process.
    proc, argv = worker.start(thread=thread, mode=mode, n=n, url=True, **opts)
    worker.wait_for_lines(proc, m)
    os.kill(proc.pid, signal.SIGKILL)
    first = worker.finish(proc, argv)  # also reaps it, so its pid really no longer exists
    assert first.returncode == KILLED, first.describe()
    pid1 = first.pid

    lines = worker.lines()
    assert len(lines) >= m
    assert {pid for pid, _ in lines} == {pid1}
    ran_first = Counter(i for _, i in lines)
    assert all(c == 1 for c in ran_first.values()), lines

    crashed = worker.state(thread, url=True)
    assert crashed["status"] == "running", crashed
    committed = committed_entries(crashed)
    assert set(committed) <= set(ran_first)
    if mode == "seq":
        ran = len(lines)
        # When m lines were seen, task m-1 had started, so tasks 0..m-2 had returned: committed.
        assert set(range(m - 1)) <= set(committed), sorted(committed)
        # The last body that wrote its line may or may not have been committed; nothing else is missing.
        assert set(committed) in (set(range(ran)), set(range(ran - 1))), (sorted(committed), lines)

    check_resume(
        worker,
        mode=mode,
        n=n,
        thread=thread,
        pid1=pid1,
        committed=committed,
        reference=reference,
        url=True,
    )


def test_crashed_thread_refuses_new_input_and_finished_thread_replays_its_value(worker: Worker) -> None:
    """After a crash new input is refused without running a task; once resumed, None returns the stored value."""
    thread = "job-1"
    first = worker.run(thread=thread, n=5, kill_at=2)
    assert first.returncode == KILLED, first.describe()
    before = worker.lines()

    refused = worker.run(thread=thread, n=5)
    assert refused.returncode == EXIT_DURABLE_ERROR, refused.describe()
    assert refused.out is not None and refused.out["error"] == "UnfinishedRunError", refused.describe()
    assert "resume" in refused.out["message"].lower(), refused.out
    assert worker.lines() == before, "a refused invoke ran task bodies"

    resumed = worker.ok(thread=thread, resume=True)
    assert {k: resumed["result"][k] for k in ("indices", "values")} == expected_result(5)
    after_resume = worker.lines()
    assert worker.counts() == Counter({0: 1, 1: 1, 2: 2, 3: 1, 4: 1}), after_resume

    replay = worker.ok(thread=thread, resume=True)
    assert replay["result"] == resumed["result"]
    assert worker.lines() == after_resume, "None on a finished thread ran task bodies"


def test_resume_of_unknown_thread_raises(worker: Worker) -> None:
    """invoke(None) on a thread the journal has never seen raises ThreadNotFoundError instead of returning None."""
    done = worker.run(thread="never-started", resume=True)
    assert done.returncode == EXIT_DURABLE_ERROR, done.describe()
    assert done.out is not None and done.out["error"] == "ThreadNotFoundError", done.describe()
    assert worker.lines() == []
