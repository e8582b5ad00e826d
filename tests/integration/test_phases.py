"""A thread's phase: what its latest run is doing, in words a person can act on (`ThreadState.phase`,
`ThreadSummary.phase`, `Threads.list(phase=...)`).

The stored status cannot tell a run a live executor holds from one whose process died: both are "running". The
phase can, from the lease. Every test runs on every store.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

import durable
from durable import ConfigurationError, Interrupted, Store, Threads, Worker, interrupt
from durable._phases import PHASES, phase_of
from durable.testing import FakeClock


def dead_owner() -> str:
    """An executor id of this host whose process has exited (as a SIGKILLed one's would be)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}:{int(child.stdout)}:0badc0de"


def flows(store: Store, gate: threading.Event | None = None) -> Any:
    @durable.task
    def step(x: int) -> int:
        if gate is not None:
            gate.wait(30)
        if x < 0:
            raise ValueError("negative")
        return x

    @durable.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        if x == 7:
            return interrupt("ok?")
        if x == 9:
            durable.sleep(3600)
        return step(x).result()

    return flow


def test_each_phase_is_told_apart_and_listed(store: Store) -> None:
    gate = threading.Event()
    flow = flows(store, gate)
    gate.set()
    assert flow.invoke(1, thread_id="completed") == 1
    with pytest.raises(ValueError):
        flow.invoke(-1, thread_id="failed")
    assert isinstance(flow.invoke(7, thread_id="interrupted"), Interrupted)
    assert isinstance(flow.invoke(7, thread_id="cancelled"), Interrupted)
    assert flow.cancel(thread_id="cancelled")
    flow.submit(1, thread_id="queued")

    flow.submit(1, thread_id="crashed")  # taken by an executor that then died
    lease = store.claim("crashed", dead_owner())
    assert lease.thread.run is not None

    with FakeClock():
        flow.submit(9, thread_id="sleeping")
        assert Worker([flow], poll_interval=0.05).run_once().sleeping >= 1  # also carries "queued" and "crashed"
    flow.submit(1, thread_id="queued")  # (the worker carried the first "queued": a new one)

    gate.clear()
    running = threading.Thread(target=flow.invoke, args=(2,), kwargs={"thread_id": "running"})
    running.start()
    try:
        threads = Threads(store)
        wanted = {
            "completed": "completed", "failed": "failed", "interrupted": "interrupted", "cancelled": "cancelled",
            "queued": "queued", "sleeping": "sleeping", "running": "running",
        }  # fmt: skip
        for _ in range(500):  # the running thread claims its lease
            found = store.get_thread("running")
            if found is not None and found.run is not None and threads.state("running").phase == "running":
                break
            threading.Event().wait(0.01)
        for thread_id, phase in wanted.items():
            assert threads.state(thread_id).phase == phase, thread_id
            listed = [s.thread_id for s in threads.all(phase=phase)]
            assert thread_id in listed and all(threads.state(t).phase == phase for t in listed), phase
        assert threads.state("running").status == "running"  # the stored status is as it was
    finally:
        gate.set()
        running.join(30)


def test_a_run_whose_executor_died_is_crashed_until_resumed(store: Store) -> None:
    flow = flows(store)
    flow.submit(3, thread_id="t")
    store.claim("t", dead_owner())
    state = flow.get_state(thread_id="t")
    assert (state.status, state.phase) == ("running", "crashed")
    assert [s.thread_id for s in Threads(store).list(phase="crashed")] == ["t"]
    assert flow.invoke(None, thread_id="t") == 3
    assert flow.get_state(thread_id="t").phase == "completed"


def test_phase_of_reads_the_stored_fields_and_the_lease() -> None:
    """The rule itself, branch by branch (a dead-lettered run takes a worker and dead executors to make)."""
    alive = f"{socket.gethostname()}:1:x"  # pid 1 exists: not judged dead
    cases = [
        (("completed", None, None, None, None), "completed"),
        (("interrupted", None, None, None, None), "interrupted"),
        (("failed", None, None, None, "ValueError: no"), "failed"),
        (("failed", None, None, None, "RunCancelledError: run #1 ..."), "cancelled"),
        (("failed", None, None, None, "DeadLetteredError: run #1 ..."), "dead-lettered"),
        (("running", None, None, None, None), "queued"),
        (("running", None, None, 200.0, None), "sleeping"),
        (("running", alive, 150.0, None, None), "running"),
        (("running", alive, 50.0, None, None), "crashed"),  # its lease ran out
        (("running", dead_owner(), 150.0, None, None), "crashed"),  # its process is gone
        (("running", alive, 150.0, 200.0, None), "running"),  # sleeping in-process, lease held
    ]
    for fields, phase in cases:
        assert phase_of(*fields, now=100.0) == phase, fields  # type: ignore[arg-type]
    assert {phase for _, phase in cases} == set(PHASES)


def test_a_phase_filter_pages_through_the_other_threads(store: Store) -> None:
    flow = flows(store)
    for n in range(7):
        flow.invoke(n, thread_id=f"done-{n}")
        flow.submit(n, thread_id=f"queued-{n}")
    threads = Threads(store)
    first = threads.list(phase="queued", limit=3)
    assert [s.phase for s in first] == ["queued"] * 3 and first.next_cursor is not None
    every = [s.thread_id for s in threads.all(phase="queued", limit=3)]
    assert sorted(every) == [f"queued-{n}" for n in range(7)]


def test_bad_phases_are_refused(store: Store) -> None:
    threads = Threads(store)
    with pytest.raises(ConfigurationError, match="phase='stuck'"):
        threads.list(phase="stuck")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="part of status 'running'"):
        threads.list(phase="crashed", status="failed")


def test_the_command_lists_and_shows_phases(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """`durable threads --status crashed` finds the runs whose executor died; `show` says so beside the stored
    status; `--json` carries both."""
    import json

    from durable import SQLiteStore
    from durable._cli import main

    url = f"sqlite:///{tmp_path / 'j.db'}"
    store = SQLiteStore(str(tmp_path / "j.db"))
    flow = flows(store)
    flow.submit(3, thread_id="gone")
    store.claim("gone", dead_owner())
    flow.submit(4, thread_id="waiting")
    assert main(["threads", "--status", "crashed", "--url", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["threads"]
    assert [(t["thread_id"], t["status"], t["phase"]) for t in listed] == [("gone", "running", "crashed")]
    assert main(["threads", "--status", "queued", "--url", url]) == 0
    assert [line.split()[:3] for line in capsys.readouterr().out.splitlines()[1:]] == [["waiting", "flow", "queued"]]
    assert main(["show", "gone", "--url", url]) == 0
    assert "status: crashed (stored: running)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as bad:
        main(["threads", "--status", "stuck", "--url", url])
    assert bad.value.code == 2
