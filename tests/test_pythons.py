"""The oldest and the newest Python the package supports (`requires-python` and the classifiers) run the core tests.

CI runs the whole suite on the machine's Python; this test installs the package with the test tools into a fresh
virtual environment for each other supported version it finds (pyenv's, or ``python3.X`` on the PATH) and runs
the engine's tests there: the unit tests, and the resume, interrupt and change-safety behaviour on the embedded
stores. A version not on the machine is skipped with the reason (it is not a service: CI skips it too).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ["pytest>=8", "pytest-asyncio>=0.23", "pytest-timeout>=2.2", "hypothesis>=6", "pydantic>=2", "jsonschema>=4"]
SUITE = [
    "tests/unit/test_core.py", "tests/unit/test_keys.py", "tests/unit/test_parallel.py", "tests/unit/test_errors.py",
    "tests/integration/test_failure_resume.py", "tests/integration/test_interrupts.py",
    "tests/integration/test_change_safety.py", "tests/integration/test_durable_sleep.py",
]  # fmt: skip

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def supported() -> tuple[str, str]:
    """The oldest and newest ``3.X`` the project declares (its classifiers)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    versions = sorted({tuple(map(int, v.split("."))) for v in re.findall(r"Python :: (3\.\d+)\"", text)})
    assert len(versions) >= 2, "pyproject.toml lists the supported Python versions as classifiers"
    low = re.search(r'requires-python = ">=(3\.\d+)"', text)
    assert low is not None and tuple(map(int, low.group(1).split("."))) == versions[0]
    return ".".join(map(str, versions[0])), ".".join(map(str, versions[-1]))


def interpreter(version: str) -> str | None:
    """A working ``python{version}``: pyenv's build of it, else one on the PATH (a pyenv shim may not run)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(c / "bin" / "python") for c in sorted(root.glob(f"{version}.*"), reverse=True)]
    candidates.append(shutil.which(f"python{version}") or "")
    for python in filter(None, candidates):
        if subprocess.run([python, "-c", "pass"], capture_output=True, timeout=30).returncode == 0:
            return python
    return None


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_the_core_tests_pass_on_the_oldest_and_newest_supported_python(which: str, tmp_path: Path) -> None:
    version = supported()[0 if which == "oldest" else 1]
    if sys.version.startswith(version + "."):
        pytest.skip(f"Python {version} is the one running this suite")
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine (pyenv install {version}, or python{version} on PATH)")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, str(ROOT), *TOOLS], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUITE,
         "-k", "memory or sqlite or not store", "-m", "not (postgres or redis or browser or subprocess)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert re.search(r"\d+ passed", ran.stdout), ran.stdout[-2000:]
