"""Pausing for a person across real processes: one process pauses, others answer, resume and read the state.

Every run happens in a `_hitl_worker.py` subprocess on one SQLite file in ``tmp_path``; this pytest process
never imports `durable`. The worker's entrypoint, for input 2: ``prepare(0)``, ``prepare(1)`` (keys "0", "1"),
then ``review(0)``, ``review(1)`` in parallel (keys "2", "3"), each calling ``draft(i)`` ("2.0", "3.0") and then
``interrupt(...)`` (ids "2.1", "3.1"), then ``publish`` ("4"). Each task body appends ``"<pid> <task> <i>"``
to a count file, so the tests see which bodies ran, how often, and in which process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("_hitl_worker.py")
TIMEOUT = 60.0
EXIT_DURABLE_ERROR = 4
IDS = ["2.1", "3.1"]


class Hitl:
    """Runs `_hitl_worker.py` processes on one SQLite file and one count file."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "journal.db"
        self.count_file = tmp_path / "count.txt"

    def run(self, *args: str) -> tuple[int, dict[str, Any] | None, str]:
        """Run a worker to its end: (return code, its JSON output, a description for failures)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, str(WORKER), "--db", str(self.db), "--count", str(self.count_file), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.tmp_path, timeout=TIMEOUT)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        out = json.loads(lines[-1]) if lines else None
        about = f"{' '.join(args)}: rc={proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        return proc.returncode, out, about

    def ok(self, *args: str) -> dict[str, Any]:
        """Run a worker that must succeed; its JSON output (with "pid" and "result" or "state")."""
        rc, out, about = self.run(*args)
        assert rc == 0 and out is not None and "error" not in out, about
        return out

    def invoke(self, thread: str, *args: str) -> tuple[int, dict[str, Any]]:
        """Invoke in a new process: (its pid, what invoke returned, as JSON)."""
        out = self.ok("--thread", thread, *args)
        return out["pid"], out["result"]

    def resume(self, thread: str, answer: Any) -> tuple[int, dict[str, Any]]:
        return self.invoke(thread, "--resume", json.dumps(answer))

    def state(self, thread: str) -> dict[str, Any]:
        state: dict[str, Any] = self.ok("--thread", thread, "--state")["state"]
        return state

    def lines(self) -> list[tuple[int, str, int]]:
        """Every ``(pid, task, index)`` a task body wrote, in file order."""
        if not self.count_file.exists():
            return []
        out = []
        for line in self.count_file.read_text().splitlines():
            pid, name, i = line.split()
            out.append((int(pid), name, int(i)))
        return out

    def counts(self) -> Counter[tuple[str, int]]:
        return Counter((name, i) for _, name, i in self.lines())

    def ran_in(self, pid: int) -> Counter[tuple[str, int]]:
        return Counter((name, i) for p, name, i in self.lines() if p == pid)


@pytest.fixture
def hitl(tmp_path: Path) -> Hitl:
    return Hitl(tmp_path)


def paused_on(ids: list[str]) -> dict[str, Any]:
    """What the worker prints for an `Interrupted` on those ids of the 2-review run (apart from the drafts)."""
    return {"interrupted": True, "thread_id": "job", "ids": ids}


def check_paused(result: dict[str, Any], ids: list[str], drafted_by: int) -> None:
    assert {k: result[k] for k in ("interrupted", "thread_id", "ids")} == paused_on(ids), result
    reviews = {"2.1": 0, "3.1": 1}
    assert result["values"] == [{"review": reviews[i], "draft": f"draft {reviews[i]} by {drafted_by}"} for i in ids], (
        result
    )


def test_a_pause_outlives_its_process_and_another_process_answers_it(hitl: Hitl) -> None:
    """Process A pauses and exits; B answers with Command and finishes; C reads the state; nothing done re-ran."""
    pid_a, paused = hitl.invoke("job", "--n", "2")
    check_paused(paused, IDS, drafted_by=pid_a)
    assert hitl.counts() == Counter({("prepare", 0): 1, ("prepare", 1): 1, ("review", 0): 1, ("review", 1): 1,
                                     ("draft", 0): 1, ("draft", 1): 1})  # fmt: skip

    state = hitl.state("job")
    assert state["status"] == "interrupted"
    assert state["interrupts"] == [[i, v] for i, v in zip(IDS, paused["values"], strict=True)]
    assert state["entries"] == [["0", "prepare", "ok", 1], ["1", "prepare", "ok", 1],
                                ["2.0", "draft", "ok", 1], ["3.0", "draft", "ok", 1]]  # fmt: skip

    pid_b, done = hitl.resume("job", {"3.1": "no", "2.1": "ok"})
    assert pid_b != pid_a
    assert done == {
        "interrupted": False,
        "value": {"verdicts": ["ok", "no"], "drafts": [f"draft 0 by {pid_a}", f"draft 1 by {pid_a}"]},
    }
    # Only the paused reviews ran again (from their start); their drafts and the prepares replayed.
    assert hitl.ran_in(pid_b) == Counter({("review", 0): 1, ("review", 1): 1, ("publish", 0): 1})
    assert hitl.ran_in(pid_a) + hitl.ran_in(pid_b) == hitl.counts()

    state = hitl.state("job")
    assert (state["status"], state["interrupts"], state["output"]) == ("completed", [], done["value"])
    assert state["answers"] == [["2.1", "ok"], ["3.1", "no"]]
    assert state["entries"] == [
        ["0", "prepare", "ok", 1],
        ["1", "prepare", "ok", 1],
        ["2", "review", "ok", 1],
        ["2.0", "draft", "ok", 1],
        ["2.1", "interrupt", "answer", 1],
        ["3", "review", "ok", 1],
        ["3.0", "draft", "ok", 1],
        ["3.1", "interrupt", "answer", 1],
        ["4", "publish", "ok", 1],
    ]


def test_answers_arrive_one_at_a_time_from_different_processes(hitl: Hitl) -> None:
    """Each process answers one pending id; None and bad inputs from other processes change nothing."""
    pid_a, paused = hitl.invoke("job", "--n", "2")
    check_paused(paused, IDS, drafted_by=pid_a)
    ran = hitl.lines()

    # Another process asking again gets the same pause, and runs nothing.
    _, again = hitl.invoke("job", "--none")
    assert again == paused
    # New input, or an answer for several without ids, is refused; nothing is recorded.
    for args, error in [(["--n", "3"], "UnfinishedRunError"), (["--resume", '"ok"'], "ResumeError")]:
        rc, out, about = hitl.run("--thread", "job", *args)
        assert rc == EXIT_DURABLE_ERROR and out is not None and out["error"] == error, about
    assert hitl.lines() == ran
    assert hitl.state("job")["interrupts"] == [[i, v] for i, v in zip(IDS, paused["values"], strict=True)]

    pid_b, still = hitl.resume("job", {"3.1": "late"})
    check_paused(still, ["2.1"], drafted_by=pid_a)
    pid_c, done = hitl.resume("job", "ok")  # one pending: a plain value answers it
    assert done["value"]["verdicts"] == ["ok", "late"]
    assert hitl.ran_in(pid_b) == Counter({("review", 0): 1, ("review", 1): 1})
    assert hitl.ran_in(pid_c) == Counter({("review", 0): 1, ("publish", 0): 1})
    assert hitl.counts() == Counter({("prepare", 0): 1, ("prepare", 1): 1, ("draft", 0): 1, ("draft", 1): 1,
                                     ("review", 0): 3, ("review", 1): 2, ("publish", 0): 1})  # fmt: skip

    # Nothing is pending any more.
    rc, out, about = hitl.run("--thread", "job", "--resume", '"again"')
    assert rc == EXIT_DURABLE_ERROR and out is not None and out["error"] == "ResumeError", about
    assert hitl.state("job")["answers"] == [["2.1", "ok"], ["3.1", "late"]]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_a_process_killed_after_pausing_is_resumed_by_another(hitl: Hitl, durability: str) -> None:
    """A process SIGKILLed once invoke returned Interrupted leaves a resumable pause: another process finishes it."""
    rc, out, about = hitl.run("--thread", "job", "--n", "2", "--durability", durability, "--kill-after")
    assert rc == -signal.SIGKILL and out is not None, about
    pid_a = out["pid"]
    check_paused(out["result"], IDS, drafted_by=pid_a)

    state = hitl.state("job")
    assert state["status"] == "interrupted"
    assert [i for i, _ in state["interrupts"]] == IDS

    pid_b, done = hitl.invoke("job", "--resume", json.dumps({"2.1": "yes", "3.1": "yes"}), "--durability", durability)
    assert done["value"] == {"verdicts": ["yes", "yes"], "drafts": [f"draft 0 by {pid_a}", f"draft 1 by {pid_a}"]}
    assert hitl.ran_in(pid_b) == Counter({("review", 0): 1, ("review", 1): 1, ("publish", 0): 1})
    assert hitl.ran_in(pid_a) == Counter({("prepare", 0): 1, ("prepare", 1): 1, ("review", 0): 1, ("review", 1): 1,
                                          ("draft", 0): 1, ("draft", 1): 1})  # fmt: skip
    assert hitl.state("job")["status"] == "completed"
