"""Helpers for the CLI tests: run ``python -m durable`` in subprocesses, as an operator would.

Each test gets a working directory with a small ``flows`` module whose entrypoints journal to
``$DURABLE_URL`` (a SQLite file there unless a test points it elsewhere); nothing imports
`durable` into the pytest process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "cli-tests-key-0123456789abcdef"

FLOWS = '''
"""Workflows for the CLI tests. ``calls.log`` records every task body that really ran."""

import os

from durable import entrypoint, interrupt, task


def _log(name):
    with open("calls.log", "a") as f:
        f.write(name + "\\n")


@task
def double(x):
    _log(f"double({x})")
    return x * 2


@task
def add(a, b):
    _log(f"add({a}, {b})")
    if os.environ.get("CRASH_IN_ADD"):
        os._exit(3)  # the process dies mid-run: the run stays "running", resumable elsewhere
    return a + b


@task
def boom(x):
    raise ValueError(f"bad input {x}")


@entrypoint()
def pipeline(n):
    a = double(n).result()
    b = double(a).result()
    return {"a": a, "b": b, "sum": add(a, b).result()}


@entrypoint()
def ask(n):
    answer = interrupt({"question": f"approve {n}?"})
    return f"{n}: {answer}"


@entrypoint()
def failing(n):
    return boom(n).result()
'''


@dataclass
class Result:
    """A finished ``durable`` command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"durable {' '.join(self.args)} -> {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


class Cli:
    """Runs ``durable`` (and seeding snippets) in ``cwd`` with the ``flows`` module importable."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(cwd)])
        self.env["DURABLE_URL"] = "sqlite:///flows.db"
        # The journal is signed, and the commands get the key as the application does: the tools unpickle only
        # what verified under it (tests of unsigned journals drop it with DURABLE_SECRET="").
        self.env["DURABLE_SECRET"] = SECRET
        (cwd / "flows.py").write_text(FLOWS)

    def __call__(self, *args: str, code: int | None = 0, stdin: str | None = None, **env: str) -> Result:
        """Run ``durable ARGS`` and check its exit code (``code=None``: any)."""
        done = subprocess.run(
            [sys.executable, "-m", "durable", *args],
            cwd=self.cwd, env={**self.env, **env}, input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        result = Result(args, done.returncode, done.stdout, done.stderr)
        assert code is None or result.returncode == code, str(result)
        return result

    def seed(self, snippet: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run Python with ``flows`` imported (to start threads as the application would)."""
        return subprocess.run(
            [sys.executable, "-c", "import flows\n" + textwrap.dedent(snippet)],
            cwd=self.cwd, env={**self.env, **env}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def calls(self) -> list[str]:
        """The task bodies that ran, in order (and forget them)."""
        log = self.cwd / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return lines


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
