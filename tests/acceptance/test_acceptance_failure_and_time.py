"""Failure handling and time across real processes: backoffs, durable sleeps, idempotency keys, cancellation.

Every run happens in a ``python _time_flows.py ...`` child (or a ``durable worker`` process); the pytest
process never imports `durable`. It SIGKILLs the children, reads the events their task bodies append
(fsynced JSON lines), reads the SQLite journal with ``sqlite3`` and the Postgres tables with psycopg,
and waits on those observable conditions with generous timeouts.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FLOWS = HERE / "_time_flows.py"
REPO_ROOT = HERE.parents[1]
TIMEOUT = 60.0
BACKOFF = 3.0  # _time_flows.BACKOFF
RETRY, OK = 3, 0  # journal row statuses
EXIT_CANCELLED = 6


def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURABLE_", "TF_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["TF_DIR"] = str(tmp_path)
    return env


def wait_until(cond: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def sleep_until(t: float) -> None:
    """Wait until the wall clock reads ``t`` (the journal's times are wall-clock times)."""
    while time.time() < t:
        time.sleep(0.005)


class Flows:
    """One test's SQLite journal, events file and `_time_flows.py` children."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.db = tmp_path / "journal.db"
        self.store = f"sqlite:///{self.db}"  # an absolute path: four slashes
        self.events_file = tmp_path / "events.jsonl"
        self.procs: list[subprocess.Popen[str]] = []

    def argv(self, command: str, flow: str, thread: str, *extra: str) -> list[str]:
        return [sys.executable, str(FLOWS), command, flow, "--store", self.store, "--thread", thread, *extra]

    def start(self, command: str, flow: str, thread: str, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(command, flow, thread, *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(self.tmp_path),
            cwd=self.tmp_path,
        )
        self.procs.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen[str], expect_rc: int = 0) -> dict[str, Any]:
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            raise AssertionError(f"child timed out\n{stdout[-3000:]}\n{stderr[-6000:]}") from None
        described = (
            f"pid={proc.pid} rc={proc.returncode}\n--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-6000:]}"
        )
        assert proc.returncode == expect_rc, described
        if expect_rc < 0:
            return {}
        lines = [line for line in stdout.splitlines() if line.strip()]
        assert lines, described
        out: dict[str, Any] = json.loads(lines[-1])
        return out

    def run(self, command: str, flow: str, thread: str, *extra: str, expect_rc: int = 0) -> dict[str, Any]:
        return self.finish(self.start(command, flow, thread, *extra), expect_rc)

    def kill(self, proc: subprocess.Popen[str]) -> None:
        assert proc.poll() is None, f"the child exited (rc={proc.returncode}) before the kill"
        proc.send_signal(signal.SIGKILL)
        self.finish(proc, expect_rc=-signal.SIGKILL)

    def state(self, flow: str, thread: str) -> dict[str, Any]:
        state: dict[str, Any] = self.run("state", flow, thread)["state"]
        return state

    def events(self, what: str | None = None) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        lines = self.events_file.read_text().splitlines(keepends=True)
        out = [json.loads(line) for line in lines if line.endswith("\n")]
        return [e for e in out if what is None or e["what"] == what]

    def journal(self, name: str | None = None) -> list[tuple[str, int, str, int, float]]:
        """``(key, attempt, name, status, finished_at)`` of every committed journal row, in key/attempt order."""
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT key, attempt, name, status, started_at + duration_us / 1e6 FROM durable_journal "
                "ORDER BY run_id, key, attempt"
            ).fetchall()
        except sqlite3.OperationalError as exc:  # the child has not created the tables yet
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()
        return [r for r in rows if name is None or r[2] == name]

    def run_row(self) -> tuple[str, str | None]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT status, error_text FROM durable_runs ORDER BY run_id DESC LIMIT 1").fetchone()
        finally:
            conn.close()
        assert row is not None
        return row[0], row[1]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture
def flows(tmp_path: Path) -> Iterator[Flows]:
    f = Flows(tmp_path)
    try:
        yield f
    finally:
        f.close()


def test_a_run_killed_during_a_retry_backoff_waits_only_the_rest_of_it(flows: Flows) -> None:
    first = flows.start("run", "retry", "t", "--input", "21")
    retry_rows = wait_until(lambda: flows.journal("flaky"), "the failed attempt's RETRY row")
    assert [(r[1], r[3]) for r in retry_rows] == [(1, RETRY)]
    failed_at = retry_rows[0][4]  # when the failed attempt was journaled: the backoff runs from here
    sleep_until(failed_at + 1.0)
    flows.kill(first)  # about 1 s into the 3 s backoff
    assert [e["attempt"] for e in flows.events("attempt")] == [1], "attempt 2 ran before the kill"
    assert [(r[1], r[3]) for r in flows.journal("flaky")] == [(1, RETRY)]

    out = flows.run("run", "retry", "t", "--resume")
    assert out["result"] == 42
    attempts = flows.events("attempt")
    assert [(e["attempt"], e["pid"]) for e in attempts] == [(1, first.pid), (2, out["pid"])]
    assert attempts[0]["key"] == attempts[1]["key"]  # one call, one idempotency key, across the crash
    second_at = attempts[1]["t"]
    wait = second_at - out["t_invoke"]
    remaining = failed_at + BACKOFF - out["t_invoke"]
    # The resume waits out what was left of the delay: not the whole delay again, and not nothing.
    assert second_at >= failed_at + BACKOFF - 0.05, (second_at - failed_at, wait)
    assert second_at <= failed_at + BACKOFF + 0.6, (second_at - failed_at, wait)
    assert 0.5 < wait < BACKOFF - 0.4, (wait, remaining)
    assert abs(wait - remaining) < 0.6, (wait, remaining)
    assert [(r[1], r[3]) for r in flows.journal("flaky")] == [(1, RETRY), (2, OK)]
    state = flows.state("retry", "t")
    assert state["status"] == "completed"
    assert [(e["status"], e["attempt"]) for e in state["entries"]] == [("retry", 1), ("ok", 2)]
    assert "Flaky" in state["entries"][0]["error"]


def test_a_run_killed_during_a_durable_sleep_sleeps_only_until_the_recorded_wake_time(flows: Flows) -> None:
    first = flows.start("run", "sleep", "t", "--input", "3")
    sleep_row = wait_until(lambda: flows.journal("durable.sleep"), "the durable.sleep row")
    slept_at = sleep_row[0][4]
    sleep_until(slept_at + 1.0)
    flows.kill(first)  # about 1 s into the 3 s sleep
    assert [e["pid"] for e in flows.events()] == [first.pid]  # A ran, B did not
    before = flows.state("sleep", "t")
    (entry,) = [e for e in before["entries"] if e["task"] == "durable.sleep"]
    wake = entry["result"]
    assert abs(wake - (slept_at + 3.0)) < 0.2, (wake, slept_at)
    sleep_until(slept_at + 1.5)

    out = flows.run("run", "sleep", "t", "--resume")
    assert out["result"] == ["A", "B"]
    events = flows.events()
    assert [(e["what"], e["pid"]) for e in events] == [("A", first.pid), ("B", out["pid"])]  # A not re-run
    b_at = events[1]["t"]
    assert wake - 0.02 <= b_at <= wake + 0.6, (b_at - wake, b_at - out["t_invoke"])
    assert 0.3 < b_at - out["t_invoke"] < 2.6, b_at - out["t_invoke"]  # ~1.5 s left, not the whole 3 s
    after = flows.state("sleep", "t")
    assert after["status"] == "completed"
    assert [e["result"] for e in after["entries"] if e["task"] == "durable.sleep"] == [wake]  # unchanged


def test_an_idempotency_key_survives_a_kill_after_the_side_effect(flows: Flows) -> None:
    job = json.dumps({"order": "o-1", "amount": 4200})
    flows.run("run", "pay", "t", "--input", job, "--kill-after-charge", expect_rc=-signal.SIGKILL)
    ledger = flows.tmp_path / "ledger.db"
    conn = sqlite3.connect(ledger)
    try:
        assert conn.execute("SELECT count(*) FROM charges").fetchone() == (1,)
    finally:
        conn.close()
    assert flows.journal("charge") == []  # the charge was made but the task's result never journaled

    out = flows.run("run", "pay", "t", "--resume")
    charged = flows.events("charged")
    assert len(charged) == 2 and charged[0]["pid"] != charged[1]["pid"] == out["pid"], charged
    assert charged[0]["key"] == charged[1]["key"] == out["result"]["key"]
    conn = sqlite3.connect(ledger)
    try:
        charges = conn.execute("SELECT key, charge_id FROM charges").fetchall()
        calls = conn.execute("SELECT key, outcome FROM calls ORDER BY rowid").fetchall()
    finally:
        conn.close()
    key = charged[0]["key"]
    assert charges == [(key, "ch_1")]  # charged once
    assert calls == [(key, "charged"), (key, "deduplicated")]  # the service saw the same key twice
    assert out["result"] == {"charge_id": "ch_1", "outcome": "deduplicated", "key": key}
    assert [(r[0], r[3]) for r in flows.journal("charge")] == [("0", OK)]


def test_a_run_cancelled_from_another_process_stops_and_can_be_resumed(flows: Flows) -> None:
    n = 10
    runner = flows.start("run", "steps", "t", "--input", str(n))
    wait_until(lambda: len(flows.events("step")) >= 3, "three steps done")
    cancel = flows.run("cancel", "steps", "t")
    assert cancel["cancelled"] is True
    out = flows.finish(runner, expect_rc=EXIT_CANCELLED)
    assert out["error"] == "RunCancelledError"

    recorded = flows.journal("slow_step")
    k = len(recorded)
    assert k >= 3 and [r[0] for r in recorded] == [str(i) for i in range(k)], recorded
    # Nothing was journaled after the cancel: every row was written before `cancel` returned.
    assert all(r[4] <= cancel["t_after"] for r in recorded), (recorded, cancel)
    done = flows.events("step")
    assert [e["i"] for e in done] in (list(range(k)), list(range(k + 1)))  # at most the one in flight
    assert [e for e in done if e["t"] > cancel["t_after"]] == done[k:]  # it stopped at its next write
    status, error_text = flows.run_row()
    assert status == "failed" and (error_text or "").startswith("RunCancelledError"), (status, error_text)
    assert flows.state("steps", "t")["error"] == "RunCancelledError"

    resumed = flows.run("run", "steps", "t", "--resume")
    assert resumed["result"] == [i * i for i in range(n)]
    by_index = Counter(e["i"] for e in flows.events("step"))
    pids = {e["i"]: e["pid"] for e in flows.events("step")}
    assert all(by_index[i] == 1 and pids[i] == runner.pid for i in range(k))  # recorded steps not re-run
    assert all(pids[i] == resumed["pid"] for i in range(k, n))
    assert flows.state("steps", "t")["status"] == "completed"


def test_a_worker_suspends_a_long_sleep_and_a_worker_resumes_it_when_due(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    import psycopg

    dsn, schema = pg_schema
    if not dsn.startswith(("postgres://", "postgresql://")):
        pytest.skip("this test builds a store URL from a postgresql:// DSN")
    url = f"{dsn}?schema={schema}&lease_seconds=5"
    env = child_env(tmp_path)
    flows = Flows(tmp_path)
    flows.store = url
    workers: list[subprocess.Popen[bytes]] = []

    def start_worker(name: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "durable", "worker", "_time_flows", "--url", url, "--poll-interval", "0.2"]
        with open(tmp_path / f"{name}.out", "wb") as fo, open(tmp_path / f"{name}.err", "wb") as fe:
            proc = subprocess.Popen(argv, cwd=HERE, env=env, stdout=fo, stderr=fe)
        workers.append(proc)
        return proc

    def row() -> tuple[str, str | None, float | None] | None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                f'SELECT r.status, t.owner, r.wake_at FROM "{schema}".durable_threads t '
                f'JOIN "{schema}".durable_runs r ON r.tid = t.tid AND r.run_id = t.last_run WHERE t.thread_id = %s',
                ("nap",),
            ).fetchall()
        return rows[0] if rows else None  # type: ignore[return-value]

    try:
        flows.run("submit", "sleep", "nap", "--input", "2")
        a = start_worker("a")
        status, owner, wake_at = wait_until(
            lambda: (r := row()) is not None and r[2] is not None and r, "the run to be suspended in its sleep"
        )
        # Suspended: still running, nobody holds it, due at the journaled wake-up time.
        assert status == "running" and owner is None, (status, owner)
        assert time.time() < wake_at, "the wake time passed before the test could look"
        state = flows.state("sleep", "nap")
        assert state["status"] == "running" and state["owner"] is None and state["wake_at"] == wake_at
        assert [e["result"] for e in state["entries"] if e["task"] == "durable.sleep"] == [wake_at]
        assert [(e["what"], e["pid"]) for e in flows.events()] == [("A", a.pid)]
        assert row() == ("running", None, wake_at)  # not picked up again before it is due

        # The worker that suspended it dies; another one, which never saw the run, wakes it when due.
        a.send_signal(signal.SIGKILL)
        a.wait(TIMEOUT)
        b = start_worker("b")
        wait_until(lambda: (r := row()) is not None and r[0] == "completed", "the run to complete")
        events = flows.events()
        assert [(e["what"], e["pid"]) for e in events] == [("A", a.pid), ("B", b.pid)]
        # B ran once due, after the poll, not after a lease expiry (lease_seconds=5).
        assert wake_at - 0.02 <= events[1]["t"] <= wake_at + 2.0, events[1]["t"] - wake_at
        final = flows.state("sleep", "nap")
        assert final["output"] == ["A", "B"] and final["recoveries"] == 0, final
        b.send_signal(signal.SIGTERM)
        assert b.wait(TIMEOUT) == 0, (tmp_path / "b.err").read_text()
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_a_run_cancelled_during_a_durable_sleep_stops_before_its_wake_time(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    dsn, schema = pg_schema
    if not dsn.startswith(("postgres://", "postgresql://")):
        pytest.skip("this test builds a store URL from a postgresql:// DSN")
    flows = Flows(tmp_path)
    flows.store = f"{dsn}?schema={schema}&lease_seconds=1.5"  # a heartbeat every 0.5 s
    try:
        sleeper = flows.start("run", "sleep", "t", "--input", "30")  # invoked, not carried by a worker
        wait_until(lambda: flows.events("A"), "step A")

        def sleeping() -> bool:
            assert sleeper.poll() is None, flows.finish(sleeper)
            return any(e["task"] == "durable.sleep" for e in flows.state("sleep", "t")["entries"])

        wait_until(sleeping, "the durable.sleep entry")
        cancel = flows.run("cancel", "sleep", "t")
        assert cancel["cancelled"] is True
        out = flows.finish(sleeper, expect_rc=EXIT_CANCELLED)  # long before the 30 s wake-up time
        assert out["error"] == "RunCancelledError"
        assert out["t_end"] - cancel["t_after"] < 5.0, out["t_end"] - cancel["t_after"]
        assert [e["what"] for e in flows.events()] == ["A"]
        state = flows.state("sleep", "t")
        assert state["status"] == "failed" and state["error"] == "RunCancelledError", state
    finally:
        flows.close()
