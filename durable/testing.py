"""Crash-test your own workflows: kill them at every fault point, resume them, compare the result.

(For a store of your own, `StoreConformance` is the contract's tests: see `durable.conformance`.)

`crash_matrix` runs an entrypoint in fresh subprocesses, once per *cell* (a fault point, a durability mode
and which hit of the point kills), each cell on its own SQLite journal:

1. one uninterrupted reference run (``durability="sync"``) gives the expected result;
2. the cell's run starts with ``DURABLE_FAULTS="<point>:<hit>"``: the process SIGKILLs itself the
   ``hit``-th time any task passes ``point`` (a run passes ``before_finish`` and ``after_finish`` once).
   It must die of SIGKILL, or finish with the reference's result: then the cell is "not reached";
3. the journal must pass ``PRAGMA integrity_check``; the tasks it holds results for are noted;
4. a new process resumes with ``invoke(None)``: it must succeed, leave the thread "completed", return the
   reference's result, and not record again a task journaled before the kill (it never runs twice).

What each durability mode promises, so what the resume has to redo:

- ``"sync"``: a task's result is committed before its future resolves; a kill loses only the tasks that
  were running. One killed between its body and its commit (``after_body``) runs again.
- ``"async"``: results are committed in background batches; a kill loses the results still in flight
  (those tasks run again), never corrupting the journal.
- ``"exit"``: results are written when the run finishes, pauses or fails; a kill before that
  (``before_finish`` included) loses the whole run, and the resume runs every task again.

A resumed run returning something else than an uninterrupted one depends on something that is not a
task's result (a clock, a pid, a file read outside a task). Results are compared as JSON text
(``json.dumps(value, sort_keys=True)``), or as ``repr()`` when JSON cannot encode them. The input goes to
the subprocesses by `pickle`; they import the entrypoint as ``"module:attribute"`` with this ``sys.path``,
run in their cell's directory with ``DURABLE_CRASH_PHASE`` set to ``"reference"``, ``"crash"`` or
``"resume"``, and replace the entrypoint's checkpointer with the cell's journal.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ._faults import POINTS
from ._writers import Durability
from .stores._base import OK
from .stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from .conformance import StoreConformance

__all__ = ["FAULT_POINTS", "Cell", "CrashReport", "CrashTestFailure", "FakeClock", "StoreConformance", "crash_matrix"]


def __getattr__(name: str) -> Any:
    if name == "StoreConformance":  # the store contract's tests (`durable.conformance`): they import pytest
        from .conformance import StoreConformance

        return StoreConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


FAULT_POINTS: tuple[str, ...] = POINTS  # every fault point, in the order a task, then its run, pass them

Outcome = Literal["passed", "not reached", "failed"]
_CHILD = "import durable.testing as t; t._child()"


@dataclass(frozen=True)
class Cell:
    """One crash test: where the process was killed, in which mode, and what the checks found."""

    point: str
    durability: str
    hit: int
    outcome: Outcome
    killed: bool  # the run died of SIGKILL at the fault point
    resumed: bool  # then invoke(None), in a new process, returned the reference's result
    journaled: tuple[str, ...]  # keys of the tasks whose results the journal held after the kill
    directory: str  # the cell's working directory: its journal, and the files the workflow wrote
    detail: str = ""  # why the cell failed (a failed process: the exception it raised, ``Type: message``)
    stderr: str = ""  # a failed process's whole stderr, its traceback included

    def __str__(self) -> str:
        return f"{self.point}:{self.hit} durability={self.durability}: {self.outcome} {self.detail}".rstrip()


class CrashTestFailure(AssertionError):
    """Raised by `CrashReport.raise_for_failures`: at least one cell failed its checks."""


@dataclass(frozen=True)
class CrashReport:
    """What `crash_matrix` found: the reference result and every cell."""

    target: str
    expected: str  # the uninterrupted run's result, as compared (JSON text or repr)
    cells: tuple[Cell, ...]

    @property
    def failures(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.outcome == "failed")

    def cell(self, point: str, durability: str, hit: int) -> Cell:  # the cell for this point, mode and hit
        return {(c.point, c.durability, c.hit): c for c in self.cells}[point, durability, hit]

    def raise_for_failures(self) -> None:
        """Raise `CrashTestFailure` listing every failed cell (cells "not reached" are not failures)."""
        if self.failures:
            raise CrashTestFailure(str(self))

    def __str__(self) -> str:
        counts = {o: sum(c.outcome == o for c in self.cells) for o in ("passed", "not reached", "failed")}
        head = f"crash_matrix({self.target}): " + ", ".join(f"{n} {o}" for o, n in counts.items())
        return "\n  ".join([head, *map(str, self.failures)])


def crash_matrix(
    target: str,
    input: Any,
    *,
    points: Iterable[str] = FAULT_POINTS,
    durability: Iterable[Durability] = ("sync", "async", "exit"),
    hits: Iterable[int] = (1,),
    url: str | None = None,
    thread_id: str = "crash-test",
    workers: int | None = None,
    timeout: float = 120.0,
) -> CrashReport:
    """Kill ``target`` at every (point, durability, hit), resume it, and check it (see the module docstring).

    ``url`` (``"sqlite:///dir/name.db"``, options such as ``?synchronous=FULL`` kept) keeps the cells:
    each gets ``dir/<point>-<durability>-<hit>/name.db`` (replacing an older one). Without it they live in
    a temporary directory that is removed on return. ``workers`` cells run at once; ``timeout`` bounds
    each subprocess. ``input`` is the run's input (not ``None``: that means "resume").
    """
    points, modes, hits = tuple(points), tuple(durability), tuple(hits)
    if unknown := [x for x in points + modes if x not in (*FAULT_POINTS, "sync", "async", "exit")]:
        raise ValueError(f"unknown fault points or durability modes {unknown}: see durable.testing.FAULT_POINTS")
    if any(h < 1 for h in hits) or input is None:
        raise ValueError("hits count from 1, and the input must not be None (None means resume)")
    with tempfile.TemporaryDirectory(prefix="durable-crash-") as tmp:
        root, name, query = Path(tmp), "journal.db", ""
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme != "sqlite" or not parts.path.startswith("/"):
                raise ValueError(f"url={url!r}: give a SQLite URL, 'sqlite:///dir/name.db'")
            path = Path((parts.netloc + parts.path)[1:]).resolve()
            root, name, query = path.parent, path.name, f"?{parts.query}" if parts.query else ""
        root.mkdir(parents=True, exist_ok=True)
        (root / "input.pickle").write_bytes(pickle.dumps(input))
        runner = _Runner(target, root, name, query, thread_id, timeout)
        rc, out, err = runner.spawn(runner.fresh("reference"), "reference", "sync", str(root / "input.pickle"))
        if rc != 0 or out is None:
            raise CrashTestFailure(
                f"the uninterrupted run of {target} failed (exit code {rc}): {_raised(err)}\n{err.rstrip()}"
            )
        grid = [(p, d, h) for p in points for d in modes for h in hits]
        with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 1)) as pool:
            cells = tuple(pool.map(lambda c: runner.cell(*c, expected=out["result"]), grid))
        return CrashReport(target, out["result"], cells)


@dataclass(frozen=True)
class _Runner:
    target: str
    root: Path
    name: str
    query: str
    thread_id: str
    timeout: float

    def fresh(self, label: str) -> Path:
        shutil.rmtree(self.root / label, ignore_errors=True)
        (self.root / label).mkdir(parents=True)
        return self.root / label

    def spawn(self, cwd: Path, phase: str, mode: str, input_file: str, faults: str = "") -> tuple[int, Any, str]:
        """Run one subprocess: (exit code, what it wrote, its stderr)."""
        out = cwd / f"{phase}.json"
        env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_FAULTS", "DURABLE_URL")}
        env.update(DURABLE_CRASH_PHASE=phase, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in sys.path))
        if faults:
            env["DURABLE_FAULTS"] = faults
        url = f"sqlite:///{cwd / self.name}{self.query}"
        argv = [sys.executable, "-c", _CHILD, self.target, url, self.thread_id, mode, input_file, str(out)]
        try:
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return -1, None, f"timed out after {self.timeout}s"
        written = json.loads(out.read_text()) if proc.returncode == 0 and out.exists() else None
        return proc.returncode, written, proc.stderr

    def cell(self, point: str, durability: str, hit: int, *, expected: str) -> Cell:
        cwd = self.fresh(f"{point}-{durability}-{hit}")
        killed, resumed, journaled = False, False, tuple[str, ...]()

        def done(outcome: Outcome, detail: str = "", stderr: str = "") -> Cell:
            return Cell(point, durability, hit, outcome, killed, resumed, journaled, str(cwd), detail, stderr)

        rc, out, err = self.spawn(cwd, "crash", durability, str(self.root / "input.pickle"), f"{point}:{hit}")
        if rc == 0 and out is not None:
            if out["result"] != expected:
                return done("failed", f"finished without a kill, returning {out['result']} instead of {expected}")
            return done("not reached")
        if rc != -signal.SIGKILL:
            return done("failed", f"the run exited with {rc} instead of being killed: {_raised(err)}", err)
        killed, db = True, cwd / self.name
        with closing(sqlite3.connect(db)) as conn:
            if (check := conn.execute("PRAGMA integrity_check").fetchall()) != [("ok",)]:
                return done("failed", f"the journal is corrupt after the kill: {check}")
        before = _committed(db, self.thread_id)
        journaled = tuple(sorted(before, key=lambda k: [int(p) for p in k.split(".") if p.isdigit()]))
        rc, out, err = self.spawn(cwd, "resume", durability, "-")
        if rc != 0 or out is None:
            return done("failed", f"the resume exited with {rc}: {_raised(err)}", err)
        if out["result"] != expected:
            return done("failed", f"the resume returned {out['result']} instead of {expected}")
        resumed, after = True, _committed(db, self.thread_id)
        if out["status"] != "completed":
            return done("failed", f"the thread is {out['status']!r} after the resume, not 'completed'")
        if again := sorted(k for k, rows in before.items() if after.get(k) != rows):
            return done("failed", f"tasks committed before the kill were recorded again: {again}")
        return done("passed")


def _raised(stderr: str) -> str:
    """What a failed process raised, on one line: a traceback's ``Type: message`` (a cut traceback reads as
    noise); without a traceback, its stderr's last line."""
    from ._cli_format import clean, first_line

    if "Traceback (most recent call last):" in stderr:
        return clean(first_line(stderr))
    lines = stderr.strip().splitlines()
    return clean(lines[-1].strip()) if lines else "nothing on stderr"


def _committed(db: Path, thread_id: str) -> dict[str, list[tuple[int, int]]]:
    """Key -> its (attempt, status) rows, for every key with a recorded result in the thread's latest run."""
    with SQLiteStore(db) as store:
        thread = store.get_thread(thread_id)
        rows = [] if thread is None or thread.run is None else store.load_journal(thread.tid, thread.run.run_id)
    return {
        k: sorted((r.attempt, r.status) for r in rows if r.key == k) for k in {r.key for r in rows if r.status == OK}
    }


def _child() -> None:
    """The subprocess: ``target url thread durability input-file|- out-file`` (see `crash_matrix`)."""
    from . import Entrypoint, Interrupted

    target, url, thread_id, durability, input_file, out_file = sys.argv[1:7]
    module, _, attr = target.partition(":")
    ep: Any = importlib.import_module(module)
    for part in attr.split("."):
        ep = getattr(ep, part)
    if not isinstance(ep, Entrypoint):
        raise TypeError(f"{target} is {ep!r}, not an @entrypoint")
    ep._checkpointer, ep._journal = url, None  # the cell's fresh journal, whatever the entrypoint was given
    value = None if input_file == "-" else pickle.loads(Path(input_file).read_bytes())
    result = ep.invoke(value, thread_id=thread_id, durability=durability)  # type: ignore[call-overload]
    if isinstance(result, Interrupted):
        raise RuntimeError(f"{target} paused on {result.interrupts}: crash_matrix needs a run that finishes")
    try:
        text = json.dumps(result, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(result)
    Path(out_file).write_text(json.dumps({"result": text, "status": ep.get_state(thread_id=thread_id).status}))


class FakeClock:
    """Durable's clock, frozen: time moves only when something sleeps (instantly), or by `advance`.

    Retries' backoff, `durable.sleep`/`asleep` and `durable.now` read it, so a test runs a week of
    waiting in microseconds and checks exactly how long each wait was::

        with FakeClock() as clock:
            flow.invoke(x, thread_id="t")
        assert clock.slept == [0.5, 1.0]

    It replaces the clock for the whole process (every thread), so use it in one test at a time.
    """

    def __init__(self, start: float | None = None) -> None:
        import threading

        from . import _clock

        self.now = _clock.Clock().time() if start is None else float(start)
        self.slept: list[float] = []  # every sleep, in order, in seconds
        self._lock = threading.Lock()
        self._saved: object = None

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.slept.append(seconds)
                self.now += seconds

    async def asleep(self, seconds: float) -> None:
        import asyncio

        self.sleep(seconds)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    def wait(self, stop: Any, seconds: float) -> bool:
        self.sleep(seconds)
        return bool(stop.is_set())

    async def await_(self, stop: Any, seconds: float) -> bool:
        await self.asleep(seconds)
        return bool(stop.is_set())

    def advance(self, seconds: float) -> None:
        """Move time on without sleeping (say, the days a crashed process lay dead)."""
        with self._lock:
            self.now += seconds

    def __enter__(self) -> FakeClock:
        from . import _clock

        self._saved = _clock.clock
        _clock.clock = self  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        from . import _clock

        _clock.clock = self._saved  # type: ignore[assignment]
