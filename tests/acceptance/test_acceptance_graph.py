"""A graph's nodes across real process deaths: SIGKILL inside a node, or while paused, then resume elsewhere.

Every run happens in a `_graph_worker.py` subprocess on one SQLite file in ``tmp_path``; this pytest process
never imports `durable`. The graph: ``START -> a -> (b, c, d, and Send("s", 0..4)) -> e -> f -> END``
(supersteps 1: a; 2: b, c, d, s0-s4; 3: e; 4: f). Each node appends ``"<pid> <node>"`` to a side-effect log
(fsynced) each time it runs, so the tests count what really ran, and in which process.

What each durability mode promises a node that finished before the process died:

* ``"sync"``: its writes were committed before the superstep went on, so it never runs again;
* ``"async"``: its writes are committed in the background, so only the nodes of the last supersteps (the
  killed one and the one before) may run again;
* ``"exit"``: nothing is written before the run ends, so every node may run again.

In every mode the resumed run ends with the same state as an uninterrupted one, and a node runs again exactly
when its journal row had not reached the file (read by a fresh process between the kill and the resume).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("_graph_worker.py")
TIMEOUT = 60.0
KILLED = -signal.SIGKILL

FAN = ["s0", "s1", "s2", "s3", "s4"]
STEPS = [["a"], ["b", "c", "d", *FAN], ["e"], ["f"]]  # the nodes of each superstep
NODES = [n for step in STEPS for n in step]
BEFORE_E = NODES[: NODES.index("e")]
# An uninterrupted run's final state (the same as LangGraph's for this graph).
EXPECTED = {"log": ["a", "b", "c", "d", *FAN, "e", "f"]}
MODES = ["sync", "async", "exit"]


class GraphWorker:
    """Runs `_graph_worker.py` processes on one SQLite file and one side-effect log."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "journal.db"
        self.log = tmp_path / "nodes.log"

    def run(self, *args: str) -> tuple[int, dict[str, Any] | None, str]:
        """Run a worker to its end: (return code, its JSON output, a description for failures)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, str(WORKER), "--db", str(self.db), "--log", str(self.log), "--thread", "t", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.tmp_path, timeout=TIMEOUT)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        out = json.loads(lines[-1]) if lines else None
        about = f"{' '.join(args)}: rc={proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        return proc.returncode, out, about

    def ok(self, *args: str) -> dict[str, Any]:
        rc, out, about = self.run(*args)
        assert rc == 0 and out is not None, about
        return out

    def state(self) -> dict[str, Any]:
        """`get_state()`, read by a fresh process."""
        state: dict[str, Any] = self.ok("--state")["state"]
        return state

    def lines(self) -> list[tuple[int, str]]:
        """Every ``(pid, node)`` the nodes wrote, in file order."""
        if not self.log.exists():
            return []
        return [(int(pid), node) for pid, node in (line.split() for line in self.log.read_text().splitlines())]

    def counts(self, pid: int | None = None) -> Counter[str]:
        return Counter(node for p, node in self.lines() if pid is None or p == pid)


@pytest.fixture
def graph_worker(tmp_path: Path) -> GraphWorker:
    return GraphWorker(tmp_path)


def committed(state: dict[str, Any]) -> list[str]:
    """The nodes whose writes reached the journal (a Send's task named by its index, in key order)."""
    names = [task for _, task, status in state["entries"] if status == "ok" and task != "__start__"]
    fan = iter(FAN)
    return [next(fan) if name == "s" else name for name in names]


@pytest.mark.parametrize("durability", MODES)
def test_sigkill_inside_a_node_then_resume_in_a_new_process(graph_worker: GraphWorker, durability: str) -> None:
    """Killed inside node e: the resume ends in the same state; which finished nodes re-run is the mode's promise."""
    w = graph_worker
    rc, _, about = w.run("--kill-in", "e", "--durability", durability)
    assert rc == KILLED, about
    pid1 = w.lines()[0][0]
    assert w.counts() == Counter([*BEFORE_E, "e"]) and w.counts(pid1) == w.counts(), w.lines()

    crashed = w.state()
    assert crashed["status"] == "running", crashed
    kept = committed(crashed)
    assert set(kept) <= set(BEFORE_E), kept
    if durability == "sync":
        assert kept == BEFORE_E and crashed["next"] == ["e"], crashed
        assert crashed["values"] == {"log": BEFORE_E}
    elif durability == "async":
        assert set(STEPS[0]) <= set(kept), f"a node two supersteps before the kill was lost: {kept}"
    else:
        assert kept == [], f'"exit" writes nothing before the run ends: {kept}'

    resumed = w.ok("--resume", "--durability", durability)
    pid2 = resumed["pid"]
    assert pid2 != pid1
    assert resumed["result"] == EXPECTED
    assert (resumed["state"]["status"], resumed["state"]["values"]) == ("completed", EXPECTED)
    # A node ran again exactly when its row had not reached the file; e (killed in its body) and f ran after.
    assert w.counts(pid2) == Counter([n for n in BEFORE_E if n not in kept] + ["e", "f"]), (kept, w.lines())
    counts = w.counts()
    assert counts["e"] == 2 and counts["f"] == 1
    if durability == "sync":
        assert counts == Counter({**dict.fromkeys(NODES, 1), "e": 2}), w.lines()
    elif durability == "async":
        assert all(counts[n] == 1 for n in STEPS[0]) and all(counts[n] in (1, 2) for n in STEPS[1]), w.lines()
    else:
        assert all(counts[n] == 2 for n in BEFORE_E), w.lines()

    again = w.ok("--resume")  # finished: a third process reads the result, nothing runs
    assert again["result"] == EXPECTED and w.counts(again["pid"]) == Counter()


@pytest.mark.parametrize("durability", MODES)
def test_sigkill_while_paused_then_answer_from_another_process(graph_worker: GraphWorker, durability: str) -> None:
    """A process dying while its run is paused on interrupt() loses nothing: another answers, only e and f run."""
    w = graph_worker
    rc, paused, about = w.run("--ask", "--die-after", "--durability", durability)
    assert rc == KILLED and paused is not None, about
    pid1 = paused["pid"]
    assert paused["paused"] == [["10.0", "approve?"]], about
    assert paused["result"] == {"log": BEFORE_E}
    assert w.counts() == Counter([*BEFORE_E, "e"]) and w.counts(pid1) == w.counts()

    state = w.state()
    assert (state["status"], state["next"], state["interrupts"]) == ("interrupted", ["e"], [["10.0", "approve?"]])
    assert committed(state) == BEFORE_E, state

    resumed = w.ok("--ask", "--answer", "ok", "--durability", durability)
    want = {"log": [*BEFORE_E, "e:ok", "f"]}
    assert resumed["result"] == want and resumed["paused"] == []
    assert (resumed["state"]["status"], resumed["state"]["values"]) == ("completed", want)
    assert w.counts(resumed["pid"]) == Counter(["e", "f"]), w.lines()  # e re-runs from its start, nothing else
