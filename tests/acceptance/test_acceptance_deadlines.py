"""Questions with deadlines across real processes: nobody answers, a process dies mid-resume, a worker carries on.

The workflow module is written to ``tmp_path`` and run by child processes (an application that starts and
answers runs, and ``durable worker``); this pytest process never imports `durable`. Task bodies append
``"<pid> <event>"`` lines (fsynced) to an events file, and the journal is read with ``sqlite3``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0
DEADLINE = 4.0  # seconds the second question waits for an answer

FLOWS = """
import json, os, signal, sys
from durable import Command, entrypoint, interrupt, task

def log(event):
    with open("events.txt", "a") as f:
        f.write(f"{os.getpid()} {event}\\n")
        f.flush()
        os.fsync(f.fileno())

@task
def ask(name, seconds):
    log(f"ask {name}")
    return interrupt({"question": name}, id=name, timeout=seconds, default=f"{name}: nobody answered")

@task
def act(answer):
    log(f"act {answer}")
    if os.environ.get("DIE_IN_ACT"):
        os.kill(os.getpid(), signal.SIGKILL)  # mid-resume: the answer is journaled, this task is not
    return answer.upper()

@entrypoint(checkpointer=os.environ["URL"])
def flow(_):
    first, second = ask("first", 3600), ask("second", DEADLINE)
    done = act(first.result()).result()
    return [done, second.result()]

if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    out = flow.invoke(given if sys.argv[2] == "new" else Command(resume=given, by="ann"), thread_id="t")
    print(json.dumps({"interrupts": [[i.id, i.deadline] for i in out.interrupts]} if hasattr(out, "interrupts")
                     else {"output": out}))
""".replace("DEADLINE", repr(DEADLINE))


class App:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        (tmp_path / "flows.py").write_text(FLOWS)
        self.db = tmp_path / "journal.db"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), str(tmp_path)) if p)
        self.env["URL"] = f"sqlite:///{self.db}?lease_seconds=1"
        self.procs: list[subprocess.Popen[str]] = []

    def run(self, given: Any, how: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "flows.py", json.dumps(given), how], cwd=self.dir, env={**self.env, **env},
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip

    def worker(self) -> subprocess.Popen[str]:
        with open(self.dir / "worker.log", "w") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "durable", "worker", "flows", "--poll-interval", "0.2"],
                cwd=self.dir, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def events(self) -> list[str]:
        path = self.dir / "events.txt"
        return [line.split(" ", 1)[1] for line in path.read_text().splitlines()] if path.exists() else []

    def run_row(self) -> tuple[str, bytes | None]:
        with sqlite3.connect(self.db) as conn:
            row = conn.execute("SELECT status, output FROM durable_runs ORDER BY run_id DESC LIMIT 1").fetchone()
        return row[0], row[1]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = App(tmp_path)
    yield made
    for proc in made.procs:
        proc.kill()
        proc.wait(timeout=10)


def wait_until(cond: Callable[[], Any], what: str) -> Any:
    end = time.monotonic() + TIMEOUT
    while not (value := cond()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {TIMEOUT}s waiting for {what}")
        time.sleep(0.05)
    return value


def test_a_deadline_outlives_a_killed_resume_and_a_worker_answers_it_with_the_default(app: App) -> None:
    """Two questions pause together; one is answered by a process that is SIGKILLed right after (its answer
    journaled); the other question keeps its first deadline, and a worker process, which nobody pokes, finishes
    the run once that deadline passes: the killed task runs again once, nothing else twice, the timeout is journaled."""
    started = app.run(1, "new")
    assert started.returncode == 0, started.stderr
    asked = dict(json.loads(started.stdout.splitlines()[-1])["interrupts"])
    assert set(asked) == {"first", "second"}
    deadline = asked["second"]
    assert deadline - time.time() <= DEADLINE

    killed = app.run({"first": "ship it"}, "command", DIE_IN_ACT="1")
    assert killed.returncode == -9, killed.stderr
    assert app.run_row()[0] == "running"  # crashed mid-resume: its lease lapses in a second

    worker = app.worker()
    wait_until(lambda: app.run_row()[0] == "completed", "the worker to finish the run")
    assert time.time() >= deadline
    worker.terminate()
    worker.wait(timeout=TIMEOUT)

    events = app.events()
    assert events.count("act ship it") == 2  # in the killed process, then in the worker: the task in flight
    # A paused task runs again on each resume until it returns: "first" in the start and the killed resume (then it
    # replays); "second" in those, in the worker's recovery, and once more when its deadline made the run due (unless
    # the recovery came after the deadline: then the timeout was journaled before it, and it ran 3 times).
    assert events.count("ask first") == 2 and events.count("ask second") in (3, 4)
    with sqlite3.connect(app.db) as conn:
        answers = conn.execute(
            "SELECT key, attempt, digest FROM durable_journal WHERE name = 'interrupt' ORDER BY key"
        ).fetchall()
    assert [(key, attempt, digest) for key, attempt, digest in answers] == [
        ("0.0", 1, b"answer/1"), ("1.0", 1, b"answer/1")
    ]  # fmt: skip
    shown = subprocess.run(
        [sys.executable, "-m", "durable", "show", "t", "--json", "--url", f"sqlite:///{app.db}"],
        cwd=app.dir, env=app.env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    state = json.loads(shown.stdout)
    got = {
        e["key"]: (e["answered_by"], e["timed_out"], e["result"]) for e in state["entries"] if e["status"] == "answer"
    }
    assert got == {"0.0": ("ann", False, "ship it"), "1.0": (None, True, "second: nobody answered")}
    assert state["status"] == "completed"
