"""A workflow that is killed partway, then resumed in a new process.

    python examples/crash_resume.py

The demo starts a worker process that runs a 10-step pipeline journaled in a
SQLite file. At step 6 the worker kills itself with SIGKILL, as a machine
restart or the OOM killer would: no cleanup, no exception handler, nothing.
A second worker process then invokes the same thread with ``None``: steps 0-5
come back from the journal without running, and only the tail runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from durable import SQLiteStore, entrypoint, task

STEPS = 10
CRASH_AT = 6


@task
def fetch_page(i: int) -> str:
    """A side effect we must not repeat (think: a paid LLM call)."""
    time.sleep(0.05)
    with open(os.environ["DEMO_LOG"], "a") as log:
        log.write(f"{os.getpid()} {i}\n")
    if i == CRASH_AT and os.environ.get("DEMO_CRASH") == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies here, mid-workflow
    return f"summary of page {i}"


def make_pipeline(db: str) -> object:
    @entrypoint(checkpointer=SQLiteStore(db))
    def pipeline(n: int) -> list[str]:
        return [fetch_page(i).result() for i in range(n)]

    return pipeline


def worker(db: str, resume: bool) -> None:
    pipeline = make_pipeline(db)
    out = pipeline.invoke(None if resume else STEPS, thread_id="demo-job")  # type: ignore[attr-defined]
    print(f"  worker {os.getpid()} finished: {len(out)} summaries, last = {out[-1]!r}")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="durable-demo-"))
    db, log = workdir / "journal.db", workdir / "executions.log"
    env = {**os.environ, "DEMO_LOG": str(log)}
    me = [sys.executable, os.path.abspath(__file__)]

    print(f"journal: {db}")
    print(f"1) a worker runs {STEPS} steps and is SIGKILLed inside step {CRASH_AT} ...")
    first = subprocess.run([*me, "--worker", str(db)], env={**env, "DEMO_CRASH": "1"})
    how = "killed by SIGKILL" if first.returncode == -signal.SIGKILL else f"exit code {first.returncode}"
    print(f"  worker exited: {how}")

    print("2) a new worker resumes the same thread with invoke(None, thread_id='demo-job') ...")
    second = subprocess.run([*me, "--worker", str(db), "--resume"], env=env)
    if second.returncode != 0:
        print("  the resume failed")
        return 1

    runs: dict[int, list[int]] = {}
    for line in log.read_text().splitlines():
        pid, step = map(int, line.split())
        runs.setdefault(step, []).append(pid)
    pids = sorted({p for ps in runs.values() for p in ps}, key=lambda p: min(s for s in runs if p in runs[s]))
    names = {pid: f"process {n + 1} (pid {pid})" for n, pid in enumerate(pids)}

    print("\nstep  ran in")
    for step in range(STEPS):
        print(f"{step:>4}  " + ", ".join(names[p] for p in runs.get(step, [])))
    once = all(len(runs.get(s, [])) == 1 for s in range(STEPS) if s != CRASH_AT)
    print(
        f"\nsteps 0-{CRASH_AT - 1} ran once and were not repeated: {once}; step {CRASH_AT} was "
        f"cut off by the kill and ran again; the rest ran once, in the second process."
    )
    return 0 if once and first.returncode == -signal.SIGKILL else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(sys.argv[2], resume="--resume" in sys.argv)
    else:
        sys.exit(main())
