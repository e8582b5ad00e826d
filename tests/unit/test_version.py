"""The version: one number, in the package metadata, `durable.__version__`, `durable --version` and the CHANGELOG."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import durable
from durable._cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert declared is not None and durable.__version__ == declared.group(1)
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"durable {durable.__version__} (Python ")
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(durable.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)
