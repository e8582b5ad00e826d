"""`crash_matrix` says what a failed process raised, in one line, and keeps its whole stderr on the cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable.testing import _raised, crash_matrix

MESSAGE = " ".join(["cannot reach the payment provider at https://payments.example.com/v2/charges: refused"] * 3)

FLOW = f"""
import os

from durable import entrypoint, task


@task
def step(i):
    return i * 2


@entrypoint()
def flaky(n):
    total = sum(step(i).result() for i in range(n))
    if os.environ.get("DURABLE_CRASH_PHASE") == "resume":
        raise RuntimeError({MESSAGE!r})
    return total
"""

TRACEBACK = """\
WARNING durable: run #1 of thread 'crash-test' failed
Traceback (most recent call last):
  File "<string>", line 1, in <module>
    import durable.testing as t; t._child()
                                 ^^^^^^^^^^
RuntimeError: first line
second line
"""


def test_a_failure_is_named_by_its_exception() -> None:
    """A traceback gives its ``Type: message`` (first line); other stderr its last line; none, a note."""
    assert _raised(TRACEBACK) == "RuntimeError: first line"
    assert _raised("starting\nSegmentation fault\n") == "Segmentation fault"
    assert _raised("") == "nothing on stderr" and _raised("bad \x1b[2J\n") == "bad \\x1b[2J"


@pytest.mark.subprocess
def test_a_failed_resume_reports_its_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cell's detail ends with the whole exception line; its stderr holds the traceback."""
    (tmp_path / "crash_report_flow.py").write_text(FLOW)
    monkeypatch.syspath_prepend(str(tmp_path))
    report = crash_matrix("crash_report_flow:flaky", 3, points=("after_commit",), durability=("sync",))
    (cell,) = report.failures
    assert cell.detail == f"the resume exited with 1: RuntimeError: {MESSAGE}" and str(cell).endswith(MESSAGE)
    assert "Traceback (most recent call last):" in cell.stderr and cell.stderr.endswith(f"RuntimeError: {MESSAGE}\n")
