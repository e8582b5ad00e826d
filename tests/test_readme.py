"""The README's first snippet, as a newcomer runs it: twice, and again after its run failed half-way.

The snippet is read out of README.md (so the test follows the README) and run in a fresh working directory with
its default journal, ``./durable.db``; nothing in this pytest process imports `durable`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.subprocess  # each test runs the snippet in fresh Python processes


def first_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert blocks, "README.md has no python block"
    return blocks[0]


def run(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_first_snippet_runs_twice(tmp_path: Path) -> None:
    code = first_snippet() + "\nprint(len(pages), pages[0])\n"
    for _ in range(2):  # the second run starts another run of the finished thread
        done = run(tmp_path, code)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["100", "SUMMARIZE", "PAGE", "0"]


def test_after_a_failed_run_the_snippet_resumes_and_redoes_nothing(tmp_path: Path) -> None:
    """The model fails at page 60 in the first run; the snippet, run again as it is, resumes the thread and
    summarizes only the pages the failed run did not finish."""
    snippet = first_snippet()
    counting = snippet.replace(
        "    return prompt.upper()",
        "    open('calls.txt', 'a').write(prompt + '\\n')\n"
        "    if prompt.endswith(' 60') and not os.path.exists('fixed'):\n"
        "        raise ConnectionError('the model is down')\n"
        "    return prompt.upper()",
    )
    assert counting != snippet
    code = "import os\n" + counting + "\nprint(len(pages))\n"
    failed = run(tmp_path, code)
    assert failed.returncode != 0 and "ConnectionError: the model is down" in failed.stderr
    first = (tmp_path / "calls.txt").read_text().splitlines()
    assert "summarize page 60" in first and len(first) == 100  # the others ran in parallel and were journaled
    (tmp_path / "fixed").touch()
    resumed = run(tmp_path, code)
    assert resumed.returncode == 0 and resumed.stdout.split() == ["100"], resumed.stderr
    again = (tmp_path / "calls.txt").read_text().splitlines()[len(first) :]
    assert again == ["summarize page 60"]


def test_new_input_on_an_unfinished_thread_says_how_to_resume_cancel_or_delete_it(tmp_path: Path) -> None:
    code = first_snippet().split("try:")[0] + (
        "import durable\n"
        "@durable.task\n"
        "def broken(): raise ValueError('no')\n"
        "@durable.entrypoint()\n"
        "def flow(x):\n"
        "    return broken().result()\n"
        "try:\n"
        "    flow.invoke(1, thread_id='job 2')\n"
        "except ValueError:\n"
        "    pass\n"
        "flow.invoke(1, thread_id='job 2')\n"
    )
    done = run(tmp_path, code)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("durable.UnfinishedRunError: thread 'job 2' has an unfinished run #1")
    for command in ("durable resume MODULE:flow 'job 2'", "durable cancel 'job 2'", "durable delete 'job 2'"):
        assert command in last
