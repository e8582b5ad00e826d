"""Every Python block of docs/porting-from-langgraph.md runs, and each worked port is the diff it shows.

A block follows a marker: ``<!-- runs -->`` (durable code: it runs with LangGraph made unimportable, as on a
machine without it) or ``<!-- runs with langgraph -->`` (LangGraph code: it runs where LangGraph is installed).
Each runs as its own program, in a subprocess, in an empty working directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "porting-from-langgraph.md"
MARKERS = {"<!-- runs -->": "durable", "<!-- runs with langgraph -->": "langgraph"}
# Makes `import langgraph` (and its submodules) fail, then runs the block as __main__.
WITHOUT_LANGGRAPH = (
    "import runpy, sys; sys.modules['langgraph'] = None; runpy.run_path('block.py', run_name='__main__')"
)


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    lang: str
    runs: str | None  # "durable", "langgraph", or None (no marker)
    code: str


def blocks() -> list[Block]:
    """The fenced blocks of the guide, in order, each with the marker on the line before its fence."""
    found, lines = [], GUIDE.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\w+)", lines[i])
        if opening:
            end = lines.index("```", i + 1)
            before = lines[i - 1].strip() if i else ""
            found.append(Block(i + 1, opening[1], MARKERS.get(before), "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return found


PYTHON = [b for b in blocks() if b.lang == "python"]


def test_every_python_block_is_marked_to_run() -> None:
    """Each Python block of the guide is marked to run, with durable or with LangGraph."""
    assert len(PYTHON) >= 10
    assert [b.line for b in PYTHON if b.runs is None] == []


@pytest.mark.parametrize("block", PYTHON, ids=[f"line{b.line}-{b.runs}" for b in PYTHON])
@pytest.mark.subprocess
def test_block_runs(block: Block, tmp_path: Path) -> None:
    """The block runs to its end as a program (its asserts hold); durable's without LangGraph importable."""
    if block.runs == "langgraph":
        pytest.importorskip("langgraph")
    (tmp_path / "block.py").write_text(block.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    command = ["-c", WITHOUT_LANGGRAPH] if block.runs == "durable" else ["block.py"]
    result = subprocess.run(
        [sys.executable, "-W", "error", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{GUIDE.name}:{block.line}\n{result.stdout}{result.stderr}"


DIFFS = [i for i, b in enumerate(blocks()) if b.lang == "diff"]


def test_every_port_has_a_diff() -> None:
    """The guide shows a port as a diff twice: the Functional API's worked port, and the Graph API's."""
    assert len(DIFFS) >= 2


@pytest.mark.parametrize("at", DIFFS, ids=[f"line{blocks()[i].line}" for i in DIFFS])
def test_worked_port_is_the_diff(at: int) -> None:
    """The durable program of a port is its LangGraph program with the diff shown between them applied."""
    every = blocks()
    langgraph, diff, ported = every[at - 1], every[at], every[at + 1]
    assert (langgraph.runs, ported.runs) == ("langgraph", "durable")
    code = langgraph.code
    for hunk in re.split(r"^@@.*\n", diff.code, flags=re.M):
        if not hunk.strip():
            continue
        old = "".join(line[1:] + "\n" for line in hunk.splitlines() if line[:1] in " -")
        new = "".join(line[1:] + "\n" for line in hunk.splitlines() if line[:1] in " +")
        assert code.count(old) == 1, f"the diff's lines {old!r} are not in the LangGraph program once"
        code = code.replace(old, new)
    assert code == ported.code
