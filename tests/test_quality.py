"""The package stays lint-clean and strictly typed, and every example runs as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

pytestmark = pytest.mark.subprocess  # ruff, mypy and every example run in processes of their own


def needs_postgres(example: Path) -> bool:
    return "postgres" in example.read_text().lower()


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_is_clean() -> None:
    """ruff finds nothing in the package, tests, examples or benchmarks."""
    result = run(sys.executable, "-m", "ruff", "check", "durable", "tests", "examples", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    """mypy --strict accepts the package and the typing checks of its public API."""
    result = run(sys.executable, "-m", "mypy", "durable", "tests/typing")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "example", [pytest.param(p, id=p.name, marks=[pytest.mark.postgres] if needs_postgres(p) else []) for p in EXAMPLES]
)
def test_example_runs(example: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Each file in examples/ runs to completion on a fresh machine state (its own working directory)."""
    env = dict(os.environ)
    if needs_postgres(example):  # it needs the server: skipped without one, except in CI
        env["DURABLE_EXAMPLE_POSTGRES"] = request.getfixturevalue("postgres_url") or "postgresql://"
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
