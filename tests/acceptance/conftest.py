"""Helpers for the acceptance tests: run `_worker.py` in real subprocesses against real SQLite files.

Nothing here imports `durable` into the pytest process; every run happens in a child process, so a
SIGKILL is a real process death and every resume really starts from what reached the SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("_worker.py")
TIMEOUT = 60.0

Arg = str | int | float | bool | Path | None


def worker_env() -> dict[str, str]:
    """The environment for a worker: `durable` importable from this checkout, no inherited DURABLE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Done:
    """A finished worker process."""

    args: list[str]
    pid: int
    returncode: int
    stdout: str
    stderr: str
    out: dict[str, Any] | None = field(default=None)

    def describe(self) -> str:
        return (
            f"worker {' '.join(self.args)}\n pid={self.pid} returncode={self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )


def _parse(stdout: str) -> dict[str, Any] | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def finish(proc: subprocess.Popen[str], args: list[str], timeout: float = TIMEOUT) -> Done:
    """Wait for a worker (killing it on timeout) and collect its output."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"worker timed out after {timeout}s: {' '.join(args)}\n{stdout[-3000:]}\n{stderr[-6000:]}"
        ) from None
    return Done(args, proc.pid, proc.returncode, stdout, stderr, _parse(stdout))


class Worker:
    """Starts `_worker.py` processes on one SQLite file and one count file in ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "journal.db"
        self.count_file = tmp_path / "count.txt"
        self._procs: list[subprocess.Popen[str]] = []

    def argv(self, *args: Arg, **opts: Arg) -> list[str]:
        argv = [str(WORKER), "--db", str(self.db), "--count", str(self.count_file)]
        argv += [str(a) for a in args]
        for name, value in opts.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not False and value is not None:
                argv += [flag, str(value)]
        return argv

    def start(self, *args: Arg, **opts: Arg) -> tuple[subprocess.Popen[str], list[str]]:
        argv = self.argv(*args, **opts)
        proc = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=worker_env(),
            cwd=self.tmp_path,
        )
        self._procs.append(proc)
        return proc, argv

    def finish(self, proc: subprocess.Popen[str], argv: list[str]) -> Done:
        """Wait for a started worker (reaping it) and collect its output."""
        return finish(proc, argv)

    def run(self, *args: Arg, **opts: Arg) -> Done:
        proc, argv = self.start(*args, **opts)
        return finish(proc, argv)

    def ok(self, *args: Arg, **opts: Arg) -> dict[str, Any]:
        """Run a worker that must succeed; return its JSON output."""
        done = self.run(*args, **opts)
        assert done.returncode == 0 and done.out is not None and "error" not in done.out, done.describe()
        return done.out

    def state(self, thread: str, **opts: Arg) -> dict[str, Any]:
        """`get_state()` of a thread, read by a fresh process."""
        state: dict[str, Any] = self.ok(thread=thread, state=True, **opts)["state"]
        return state

    def lines(self) -> list[tuple[int, int]]:
        """Every ``(pid, task index)`` line the task bodies wrote, in file order."""
        if not self.count_file.exists():
            return []
        out = []
        for line in self.count_file.read_text().splitlines():
            pid, i = line.split()
            out.append((int(pid), int(i)))
        return out

    def counts(self) -> Counter[int]:
        return Counter(i for _, i in self.lines())

    def wait_for_lines(self, proc: subprocess.Popen[str], m: int, timeout: float = 30.0) -> None:
        """Poll the count file until it holds at least ``m`` complete lines."""
        deadline = time.monotonic() + timeout
        while True:
            if self.count_file.exists():
                data = self.count_file.read_bytes()
                if data.count(b"\n") >= m:
                    return
            if proc.poll() is not None:
                stdout, stderr = proc.communicate()
                raise AssertionError(
                    f"worker exited (rc={proc.returncode}) before writing {m} lines\n"
                    f"--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-6000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"worker wrote fewer than {m} lines in {timeout}s")
            time.sleep(0.001)

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    w = Worker(tmp_path)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="session")
def reference_result(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, int], dict[str, Any]]:
    """The result of an uninterrupted run, per (mode, n), computed once by a real worker."""
    cache: dict[tuple[str, int], dict[str, Any]] = {}

    def get(mode: str, n: int) -> dict[str, Any]:
        if (mode, n) not in cache:
            w = Worker(tmp_path_factory.mktemp(f"reference-{mode}-{n}"))
            try:
                out = w.ok(thread="reference", mode=mode, n=n)
            finally:
                w.close()
            result = out["result"]
            assert result["indices"] == list(range(n))
            assert result["values"] == [i * i + 1 for i in range(n)]
            assert result["pids"] == [out["pid"]] * n
            assert w.counts() == Counter(range(n))
            cache[mode, n] = result
        return cache[mode, n]

    return get
