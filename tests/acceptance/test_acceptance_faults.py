"""Every fault point x every durability mode x several kill positions: killed, resumed, nothing committed ran again.

The matrix is run by `durable.testing.crash_matrix` (so these tests are also the harness's own tests) on the
10-task workflows of `_fault_flows.py`: ``seq`` (one task after the other), ``fan`` (all ten started at once,
on the task pool) and ``afan`` (an async entrypoint gathering async tasks on its event loop). Each cell kills
its run with ``DURABLE_FAULTS="<point>:<hit>"`` at hit 1, 3 or 7, checks the SQLite file, resumes the thread
with ``invoke(None)`` in a new process and compares the result with an uninterrupted run's.

On top of the harness's own checks, the tests read each cell's count file (one fsynced line per task body
that ran to its end, naming the process) against the keys the journal held after the kill:

* a task whose result was committed never runs again, and the resume runs exactly the others, once each;
* sequentially in "sync" mode, only the task caught between its body and its commit (``after_body``) runs
  twice; with fan-out, tasks running in parallel at the kill may be caught mid-way too, and only those;
* in "exit" mode a kill before the run's outcome is written loses the whole run: the resume runs everything;
* the journal passes ``PRAGMA integrity_check`` after the kill (the harness) and after the resume.

The workflows run only in the harness's subprocesses; this process reads their journals and count files.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from durable.testing import FAULT_POINTS, Cell, CrashReport, CrashTestFailure, crash_matrix

N = 10
HITS = (1, 3, 7)
SHAPES = ("seq", "fan", "afan")
DURABILITIES = ("sync", "async", "exit")
TASK_POINTS = ("before_body", "after_body", "after_commit")  # passed once per task
RUN_POINTS = ("before_finish", "after_finish")  # passed once per run
EXPECTED = {"values": [i * i + 1 for i in range(N)], "total": sum(i * i + 1 for i in range(N))}
ALL = set(range(N))


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CrashReport]:
    """One full matrix per workflow shape (45 cells each), kept on disk for the count files."""
    root = tmp_path_factory.mktemp("faults")
    return {
        shape: crash_matrix(
            f"_fault_flows:{shape}",
            N,
            points=FAULT_POINTS,
            durability=DURABILITIES,
            hits=HITS,
            url=f"sqlite:///{root / shape / 'journal.db'}",
            workers=3,
        )
        for shape in SHAPES
    }


def lines(directory: str | Path) -> list[tuple[str, int, int]]:
    """``(phase, pid, task index)`` for every task body that ran to its end, in file order."""
    path = Path(directory) / "count.txt"
    if not path.exists():
        return []
    return [(phase, int(pid), int(i)) for phase, pid, i in (line.split() for line in path.read_text().splitlines())]


def ran(cell: Cell, phase: str) -> Counter[int]:
    """How often each task body ran to its end in the cell's ``phase`` process ("crash" or "resume")."""
    return Counter(i for p, _, i in lines(cell.directory) if p == phase)


def journaled(cell: Cell) -> set[int]:
    """The task indices whose results the journal held after the kill (top-level keys are call order)."""
    assert all(key.isdigit() for key in cell.journaled), cell.journaled
    return {int(key) for key in cell.journaled}


def killed_cells(report: CrashReport) -> list[Cell]:
    cells = [c for c in report.cells if c.killed]
    assert cells, report
    return cells


@pytest.mark.parametrize("shape", SHAPES)
def test_every_cell_is_killed_resumed_and_returns_what_an_uninterrupted_run_returns(
    reports: dict[str, CrashReport], shape: str
) -> None:
    """Every task point kills at hits 1, 3 and 7, the run points at hit 1 only; every killed run resumes right."""
    report = reports[shape]
    report.raise_for_failures()
    assert json.loads(report.expected) == EXPECTED
    assert len(report.cells) == len(FAULT_POINTS) * len(DURABILITIES) * len(HITS)
    for cell in report.cells:
        reached = cell.point in TASK_POINTS or cell.hit == 1
        assert cell.outcome == ("passed" if reached else "not reached"), cell
        assert cell.killed == reached and cell.resumed == reached, cell


@pytest.mark.parametrize("shape", SHAPES)
def test_the_reference_and_unreached_runs_run_each_task_once(reports: dict[str, CrashReport], shape: str) -> None:
    """The uninterrupted reference, and a run whose fault point is never reached, run every task body once."""
    report = reports[shape]
    reference = Path(report.cells[0].directory).parent / "reference"
    assert Counter(i for phase, _, i in lines(reference) if phase == "reference") == Counter(ALL)
    for cell in report.cells:
        if cell.outcome == "not reached":
            assert ran(cell, "crash") == Counter(ALL) and not ran(cell, "resume"), cell


@pytest.mark.parametrize("shape", SHAPES)
def test_a_committed_task_never_runs_again_and_the_resume_runs_exactly_the_rest(
    reports: dict[str, CrashReport], shape: str
) -> None:
    """After any kill, the resume runs exactly the tasks without a journaled result, once; never a journaled one."""
    for cell in killed_cells(reports[shape]):
        crash, resume, done = ran(cell, "crash"), ran(cell, "resume"), journaled(cell)
        assert all(n == 1 for n in crash.values()), (cell, crash)
        assert done <= set(crash), f"{cell}: a result was journaled for a body that never finished: {crash}"
        assert not done & set(resume), f"{cell}: committed tasks ran again: {sorted(done & set(resume))}"
        assert resume == Counter(ALL - done), f"{cell}: journaled {sorted(done)}, the resume ran {resume}"
        pids = {(phase, pid) for phase, pid, _ in lines(cell.directory)}
        assert len({pid for _, pid in pids}) == len(pids) <= 2, f"{cell}: bodies ran in more processes: {pids}"


@pytest.mark.parametrize("durability", DURABILITIES)
def test_sequential_kills_leave_exactly_what_each_mode_promises(
    reports: dict[str, CrashReport], durability: str
) -> None:
    """Sequentially, sync keeps every committed task and reruns only an after_body one; async a prefix; exit none."""
    for cell in killed_cells(reports["seq"]):
        if cell.durability != durability:
            continue
        k = cell.hit if cell.point in TASK_POINTS else N  # tasks 0..k-1 have started
        started = set(range(k))
        finished = started - {k - 1} if cell.point == "before_body" else started
        crash, done = ran(cell, "crash"), journaled(cell)
        assert set(crash) == finished, (cell, crash)
        twice = set(crash) & set(ran(cell, "resume"))
        if durability == "sync" or cell.point == "after_finish":
            committed = finished - {k - 1} if cell.point in ("before_body", "after_body") else finished
            assert done == committed, (cell, sorted(done))
            assert twice == ({k - 1} if cell.point == "after_body" else set()), (cell, twice)
        elif durability == "async":
            assert done == set(range(len(done))), f"{cell}: not a prefix of the run: {sorted(done)}"
            assert twice == finished - done, (cell, twice)
        else:
            assert done == set() and twice == finished, (cell, sorted(done), twice)


@pytest.mark.parametrize("shape", ("fan", "afan"))
def test_fan_out_kills_lose_only_uncommitted_tasks(reports: dict[str, CrashReport], shape: str) -> None:
    """With fan-out, sync keeps at least every task past after_commit and all once gathered; async a subset."""
    for cell in killed_cells(reports[shape]):
        crash, done = ran(cell, "crash"), journaled(cell)
        twice = set(crash) & set(ran(cell, "resume"))
        assert twice == set(crash) - done, (cell, twice)
        if cell.point == "after_finish" or (cell.durability == "sync" and cell.point == "before_finish"):
            assert done == ALL and not twice, (cell, sorted(done))
        elif cell.durability == "sync" and cell.point == "after_commit":
            assert len(done) >= cell.hit, f"{cell}: {cell.hit} commits passed, {sorted(done)} journaled"
        elif cell.durability == "sync" and cell.point == "after_body":
            assert twice, f"{cell}: the task killed after its body did not run again"


@pytest.mark.parametrize("shape", SHAPES)
def test_exit_mode_kill_before_the_finish_reruns_everything(reports: dict[str, CrashReport], shape: str) -> None:
    """In exit mode nothing is journaled until the run's outcome: a kill before it makes the resume run all tasks."""
    for cell in killed_cells(reports[shape]):
        if cell.durability != "exit":
            continue
        resume = ran(cell, "resume")
        if cell.point == "after_finish":
            assert journaled(cell) == ALL and not resume, cell
        else:
            assert journaled(cell) == set(), cell
            assert resume == Counter(ALL), (cell, resume)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_journal_is_intact_after_the_resume(reports: dict[str, CrashReport], shape: str) -> None:
    """Every cell's SQLite file passes PRAGMA integrity_check and is still in WAL mode after the resume."""
    for cell in reports[shape].cells:
        with closing(sqlite3.connect(Path(cell.directory) / "journal.db")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], cell
            assert str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal", cell


def test_the_harness_reports_a_workflow_whose_result_changes_after_a_crash(tmp_path: Path) -> None:
    """A result depending on the process (not on a task) fails its killed cells, and raise_for_failures says so."""
    report = crash_matrix(
        "_fault_flows:impure",
        3,
        points=("after_commit", "after_finish"),
        durability=("sync",),
        hits=(2,),
        url=f"sqlite:///{tmp_path / 'impure.db'}",
    )
    failed = report.cell("after_commit", "sync", 2)
    assert (failed.outcome, failed.killed, failed.resumed) == ("failed", True, False), failed
    assert "the resume returned" in failed.detail and '"pid"' in failed.detail, failed.detail
    assert report.cell("after_finish", "sync", 2).outcome == "failed"  # finished, but not like the reference
    with pytest.raises(CrashTestFailure, match="after_commit:2 durability=sync: failed"):
        report.raise_for_failures()


def test_the_harness_refuses_unknown_points_modes_and_a_none_input() -> None:
    """crash_matrix names what it cannot run before starting any process."""
    with pytest.raises(ValueError, match="after_bodyy"):
        crash_matrix("_fault_flows:seq", N, points=("after_bodyy",))
    with pytest.raises(ValueError, match="fast"):
        crash_matrix("_fault_flows:seq", N, durability=("fast",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="None"):
        crash_matrix("_fault_flows:seq", None)
