"""Child processes for the worker acceptance tests (Postgres and Redis): started with their output in files, so a
test can poll what they print while they run, and signalled as an operator or a crash would.

Imported by the test modules of this folder (pytest puts it on ``sys.path``); it never imports `durable`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0  # generous bound for any wait on a loaded machine
DONE = re.compile(r"done \((\d+) completed, (\d+) interrupted, (\d+) failed, (\d+) dead-lettered\)")


def child_env(**extra: str) -> dict[str, str]:
    """`durable` importable from this checkout; no inherited DURABLE_* or PGFLOWS_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURABLE_", "PGFLOWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_until(cond: Callable[[], bool], what: str | Callable[[], str], timeout: float = TIMEOUT) -> None:
    """Poll ``cond`` until it holds; fail saying ``what`` (or what it returns then) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what if isinstance(what, str) else what()}")
        time.sleep(0.02)


class Proc:
    """A started child, its stdout and stderr going to files (so a test can poll them while it runs)."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.name, self.popen, self.pid, self.out, self.err = name, popen, popen.pid, out, err

    def stdout(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text() if self.err.exists() else ""

    def describe(self) -> str:
        return (
            f"{self.name} pid={self.pid} rc={self.popen.poll()}\n--- stdout ---\n{self.stdout()[-3000:]}\n"
            f"--- stderr ---\n{self.stderr()[-6000:]}"
        )

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit in {timeout}s\n{self.describe()}") from None

    def terminate(self, timeout: float = TIMEOUT) -> None:
        """SIGTERM; the worker must stop gracefully (exit 0)."""
        self.signal(signal.SIGTERM)
        assert self.wait(timeout) == 0, self.describe()

    def done(self) -> tuple[int, int, int, int]:
        """The (completed, interrupted, failed, dead-lettered) counts the worker printed as it stopped."""
        m = DONE.search(self.stdout())
        assert m is not None, self.describe()
        return int(m[1]), int(m[2]), int(m[3]), int(m[4])


def start(name: str, argv: list[str], cwd: Path, env: dict[str, str], logs: Path) -> Proc:
    """Start ``argv`` in ``cwd``; its output goes to ``<logs>/<name>.out`` and ``.err``."""
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=fo, stderr=fe)
    return Proc(name, popen, out, err)


def alive(procs: list[Proc], what: str) -> bool:
    """True, or fail if one of ``procs`` exited before ``what`` (for use in a `wait_until` condition)."""
    for proc in procs:
        assert proc.popen.poll() is None, f"{proc.name} exited before {what}\n{proc.describe()}"
    return True
