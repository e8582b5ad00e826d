"""A stream its consumer abandons: the run still finishes, even when the program ends right after.

Run in a child process, so that the program's end is a real interpreter exit; the journal is read afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys, time
from durable import entrypoint, task

@task
def step(i):
    time.sleep(0.05)
    return i

@entrypoint(checkpointer="sqlite:///journal.db")
def flow(n):
    return [step(i).result() for i in range(n)]

if sys.argv[1] == "abandon":
    for chunk in flow.stream(8, thread_id="t"):
        break  # the consumer has what it wanted; the program ends here
else:
    state = flow.get_state(thread_id="t")
    print(state.status, len(state.entries), state.output)
"""


@pytest.mark.subprocess
def test_an_abandoned_stream_finishes_its_run_before_the_program_exits(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = str(ROOT)

    def run(what: str) -> str:
        done = subprocess.run(
            [sys.executable, "prog.py", what], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    run("abandon")
    assert run("look") == "completed 8 [0, 1, 2, 3, 4, 5, 6, 7]"
