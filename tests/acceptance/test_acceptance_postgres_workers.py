"""`durable worker` processes on a real Postgres: crashes, races, stalls, dropped connections, poison runs.

Every worker is a real ``python -m durable worker _pg_flows ...`` process (its working directory is this
folder, so the CLI finds `_pg_flows` there); runs are submitted and read back by ``python -m _pg_flows``
children. The pytest process never imports `durable`: it signals the children, watches the count file the
task bodies append to, and reads the tables with psycopg. Leases are short (``lease_seconds`` in the URL) so
a takeover happens within seconds; every wait polls an observable condition with a generous timeout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _procs import TIMEOUT, Proc, child_env, start, wait_until

HERE = Path(__file__).resolve().parent
LEASE = 2.0  # seconds; the URL's lease_seconds


class Pg:
    """One test's schema, count file and worker processes."""

    def __init__(self, tmp_path: Path, dsn: str, schema: str) -> None:
        if not dsn.startswith(("postgres://", "postgresql://")):
            pytest.skip("these tests build store URLs from a postgresql:// DSN")
        self.tmp_path = tmp_path
        self.dsn = dsn
        self.schema = schema
        self.count_file = tmp_path / "count.txt"
        self.release = tmp_path / "release"
        self.procs: list[Proc] = []

    def url(self, lease: float = LEASE, **libpq: str) -> str:
        extra = "".join(f"&{k}={v}" for k, v in libpq.items())
        return f"{self.dsn}?schema={self.schema}&lease_seconds={lease}{extra}"

    def env(self, url: str | None = None, **extra: str) -> dict[str, str]:
        return child_env(
            DURABLE_URL=url or self.url(),
            PGFLOWS_COUNT=str(self.count_file),
            PGFLOWS_RELEASE=str(self.release),
            **extra,
        )

    # -- children ------------------------------------------------------------------------------

    def ctl(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "_pg_flows", *args],
            cwd=HERE,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, f"_pg_flows {' '.join(args)}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return result

    def submit(self, tags: list[str], n: int, *, poison: bool = False) -> None:
        args = [a for tag in tags for a in ("--tag", tag)]
        self.ctl("submit", *args, "--n", str(n), *(["--poison"] if poison else []))

    def state(self, tag: str) -> dict[str, Any]:
        state: dict[str, Any] = self.ctl("state", "--tag", tag)[tag]
        return state

    def start_worker(
        self, name: str, *args: str, url: str | None = None, env: dict[str, str] | None = None, cli_url: bool = True
    ) -> Proc:
        """``python -m durable worker _pg_flows`` (the store from ``--url``, or from $DURABLE_URL)."""
        url = url or self.url()
        argv = [sys.executable, "-m", "durable", "worker", "_pg_flows", "--poll-interval", "0.1", *args]
        if cli_url:
            argv += ["--url", url]
        proc = start(name, argv, HERE, self.env(url, **(env or {})), self.tmp_path)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGCONT)
                proc.popen.kill()
            proc.popen.wait()

    # -- the count file ------------------------------------------------------------------------

    def lines(self) -> list[tuple[int, str, int]]:
        """Every complete ``(pid, tag, step)`` line the task bodies wrote, in file order."""
        if not self.count_file.exists():
            return []
        out = []
        for line in self.count_file.read_text().splitlines(keepends=True):
            if line.endswith("\n"):
                pid, tag, i = line.split()
                out.append((int(pid), tag, int(i)))
        return out

    def wait_lines(self, m: int, procs: list[Proc], timeout: float = TIMEOUT) -> None:
        def enough() -> bool:
            for proc in procs:
                assert proc.popen.poll() is None, f"exited before {m} lines were written\n{proc.describe()}"
            return len(self.lines()) >= m

        wait_until(enough, f"{m} lines in the count file (have {self.lines()})", timeout)

    # -- the database --------------------------------------------------------------------------

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query.replace("{s}", f'"{self.schema}"'), params).fetchall()

    def run_row(self, tag: str) -> tuple[str, int, str | None, float | None] | None:
        """(status, recoveries, owner, lease expiry as epoch seconds) of the thread's latest run."""
        rows = self.sql(
            "SELECT r.status, r.recoveries, t.owner, extract(epoch FROM t.lease_expires)::float8 "
            "FROM {s}.durable_threads t JOIN {s}.durable_runs r ON r.tid = t.tid AND r.run_id = t.last_run "
            "WHERE t.thread_id = %s",
            (tag,),
        )
        return rows[0] if rows else None  # type: ignore[return-value]

    def status(self, tag: str) -> str | None:
        row = self.run_row(tag)
        return None if row is None else row[0]

    def wait_status(self, tags: list[str], statuses: tuple[str, ...], procs: list[Proc], timeout: float) -> None:
        def reached() -> bool:
            for proc in procs:
                assert proc.popen.poll() is None, f"worker exited\n{proc.describe()}"
            return all(self.status(tag) in statuses for tag in tags)

        wait_until(reached, f"runs {tags} {statuses} (now {[self.status(t) for t in tags]})", timeout)

    def journal(self, tag: str) -> list[tuple[str, int, float]]:
        """(key, attempt, started_at) of every journal row of the thread, all runs."""
        return self.sql(  # type: ignore[return-value]
            "SELECT j.key, j.attempt, j.started_at FROM {s}.durable_journal j JOIN {s}.durable_threads t "
            "ON t.tid = j.tid WHERE t.thread_id = %s ORDER BY j.started_at",
            (tag,),
        )

    def assert_one_row_per_key(self, tag: str, n: int) -> None:
        rows = self.journal(tag)
        keys = Counter(key for key, _, _ in rows)
        assert keys == Counter(str(i) for i in range(n)), f"journal of {tag!r} is not one row per step: {rows}"
        assert all(attempt == 1 for _, attempt, _ in rows), rows


@pytest.fixture
def pg(tmp_path: Path, pg_schema: tuple[str, str]) -> Iterator[Pg]:
    dsn, schema = pg_schema
    p = Pg(tmp_path, dsn, schema)
    try:
        yield p
    finally:
        p.close()


def test_sigkilled_worker_run_is_finished_by_the_next_worker(pg: Pg) -> None:
    """Worker A is SIGKILLed mid-run; worker B takes the run over once A's lease lapses and finishes it."""
    n, k = 6, 3
    pg.submit(["crash"], n)
    a = pg.start_worker("a", env={"PGFLOWS_HOLD_AT": str(k)})
    pg.wait_lines(k + 1, [a])
    # Step k's body has started, so steps 0..k-1 were journaled (each step waits for the one before it).
    assert [key for key, _, _ in pg.journal("crash")] == [str(i) for i in range(k)]
    row = pg.run_row("crash")
    assert row is not None and row[0] == "running" and row[1] == 0, row
    assert row[2] is not None and f":{a.pid}:" in row[2], f"A should hold the lease: {row}"
    assert row[3] is not None
    expires_before_kill = row[3]

    a.signal(signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    killed_at = time.monotonic()
    b = pg.start_worker("b")
    pg.wait_status(["crash"], ("completed",), [b], timeout=LEASE + TIMEOUT)
    took = time.monotonic() - killed_at
    assert took < LEASE + 20, f"B took {took:.1f}s to finish a run whose lease was {LEASE}s"

    state = pg.state("crash")
    assert state["status"] == "completed" and state["error"] is None, state
    assert state["output"] == {
        "tag": "crash",
        "values": [i * i + 1 for i in range(n)],
        "pids": [a.pid] * k + [b.pid] * (n - k),
    }
    assert [e["key"] for e in state["entries"]] == [str(i) for i in range(n)]
    pg.assert_one_row_per_key("crash", n)
    # B took over only once A's lease had lapsed (A never renewed it after the kill).
    started_k = next(started for key, _, started in pg.journal("crash") if key == str(k))
    assert started_k >= expires_before_kill - 0.05, (started_k, expires_before_kill)

    lines = pg.lines()
    counts = Counter(i for _, _, i in lines)
    # Journaled steps ran exactly once; step k, running when A died, ran again in B (at-least-once).
    assert counts == Counter({**{i: 1 for i in range(n)}, k: 2}), lines
    assert [pid for pid, _, i in lines if i < k] == [a.pid] * k
    assert [pid for pid, _, i in lines if i == k] == [a.pid, b.pid]
    assert [pid for pid, _, i in lines if i > k] == [b.pid] * (n - k - 1)

    row = pg.run_row("crash")
    assert row is not None and row[1] == 1 and row[2] is None, f"one recovery, lease released: {row}"
    b.terminate()
    assert b.done() == (1, 0, 0, 0), b.describe()
    assert "recovering run #1 of thread 'crash'" in b.stderr(), b.describe()


def test_two_workers_racing_for_the_same_runs_carry_each_once(pg: Pg) -> None:
    """Two workers polling at once never take the same run: every run runs once, in one worker."""
    tags = [f"race{j}" for j in range(6)]
    n = 3
    pg.submit(tags, n)
    # Each worker carries two runs at a time and every run holds at step 0: four runs start, two per
    # worker, and the other two wait until a worker has room.
    hold = {"PGFLOWS_HOLD_AT": "0"}
    a = pg.start_worker("a", "--concurrency", "2", env=hold, cli_url=False)  # store from $DURABLE_URL
    b = pg.start_worker("b", "--concurrency", "2", env=hold)
    pg.wait_lines(4, [a, b])
    held = pg.lines()
    assert len(held) == 4, held
    assert Counter(pid for pid, _, _ in held) == {a.pid: 2, b.pid: 2}, held
    assert len({tag for _, tag, _ in held}) == 4, f"two workers started the same run: {held}"
    pg.release.touch()
    pg.wait_status(tags, ("completed",), [a, b], timeout=TIMEOUT)

    lines = pg.lines()
    assert Counter((tag, i) for _, tag, i in lines) == Counter((t, i) for t in tags for i in range(n)), lines
    for tag in tags:
        state = pg.state(tag)
        out = state["output"]
        assert out["values"] == [i * i + 1 for i in range(n)], state
        assert len(set(out["pids"])) == 1 and out["pids"][0] in (a.pid, b.pid), f"{tag} carried by: {out}"
        assert {pid for pid, t, _ in lines if t == tag} == {out["pids"][0]}, lines
        pg.assert_one_row_per_key(tag, n)
        row = pg.run_row(tag)
        assert row is not None and row[1] == 0 and row[2] is None, f"{tag}: no takeover, released: {row}"
    a.terminate()
    b.terminate()
    carried = Counter(pid for pid, _, i in lines if i == 0)
    assert a.done()[0] == carried[a.pid] and b.done()[0] == carried[b.pid], (a.describe(), b.describe())
    assert a.done()[0] + b.done()[0] == len(tags)


def test_stalled_worker_is_fenced_off_after_another_takes_over(pg: Pg) -> None:
    """A worker frozen (SIGSTOP) past its lease loses the run to another; thawed, its late write is refused."""
    n, k = 5, 2
    pg.submit(["stall"], n)
    a = pg.start_worker("a", "-v", env={"PGFLOWS_HOLD_AT": str(k)})
    pg.wait_lines(k + 1, [a])
    a.signal(signal.SIGSTOP)
    b = pg.start_worker("b")
    pg.wait_status(["stall"], ("completed",), [b], timeout=LEASE + TIMEOUT)
    row = pg.run_row("stall")
    assert row is not None and row[1] == 1 and row[2] is None, row

    # Thaw A: its step k returns now, and its journal write must be refused (B recorded step k already).
    pg.release.touch()
    a.signal(signal.SIGCONT)
    lost = "lost the lease on thread 'stall' mid-run"
    wait_until(lambda: lost in a.stderr() or a.popen.poll() is not None, "A to notice its lost lease")
    assert lost in a.stderr(), a.describe()
    a.terminate()
    assert a.done() == (0, 0, 0, 0), f"A's run should count as lost, not completed or failed\n{a.describe()}"
    b.terminate()
    assert b.done() == (1, 0, 0, 0), b.describe()

    pg.assert_one_row_per_key("stall", n)
    state = pg.state("stall")
    assert state["status"] == "completed", state
    pids = [a.pid] * k + [b.pid] * (n - k)
    assert state["output"] == {"tag": "stall", "values": [i * i + 1 for i in range(n)], "pids": pids}
    # The recorded results are A's for the steps A finished in time, B's from the stalled step on.
    assert [e["result"]["pid"] for e in state["entries"]] == pids, state["entries"]
    lines = pg.lines()
    assert Counter(i for _, _, i in lines) == Counter({**{i: 1 for i in range(n)}, k: 2}), lines
    assert [pid for pid, _, i in lines if i == k] == [a.pid, b.pid], lines
    row = pg.run_row("stall")
    assert row is not None and row[0] == "completed" and row[1] == 1 and row[2] is None, row


def test_worker_survives_its_connections_being_terminated(pg: Pg) -> None:
    """pg_terminate_backend on every connection of a worker mid-run: it reconnects and finishes the run."""
    app = f"durable_acc_{uuid.uuid4().hex[:10]}"
    url = pg.url(application_name=app)
    n, k = 5, 2
    pg.submit(["term"], n)
    w = pg.start_worker("w", url=url, env={"PGFLOWS_HOLD_AT": str(k)})
    pg.wait_lines(k + 1, [w])

    def terminate() -> int:
        rows = pg.sql(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND application_name = %s",
            (app,),
        )
        return int(rows[0][0])

    assert terminate() >= 1, "the worker should hold at least one connection"
    pg.release.touch()
    pg.wait_status(["term"], ("completed", "failed"), [w], timeout=TIMEOUT)
    state = pg.state("term")
    assert state["status"] == "completed", f"{state}\n{w.describe()}"
    assert state["output"] == {"tag": "term", "values": [i * i + 1 for i in range(n)], "pids": [w.pid] * n}
    pg.assert_one_row_per_key("term", n)
    assert Counter(i for _, _, i in pg.lines()) == Counter(range(n)), pg.lines()

    # Its idle connections die too; the worker still carries the next run.
    terminate()
    pg.submit(["term-next"], 2)
    pg.wait_status(["term-next"], ("completed",), [w], timeout=TIMEOUT)
    assert pg.state("term-next")["output"]["pids"] == [w.pid] * 2
    pg.assert_one_row_per_key("term-next", 2)
    w.terminate()
    assert w.done() == (2, 0, 0, 0), w.describe()


def test_poison_run_is_dead_lettered_after_repeated_crashes(pg: Pg) -> None:
    """A run that kills every worker carrying it is set aside as failed (DeadLetteredError) and not run again."""
    lease = 1.0
    url = pg.url(lease=lease)
    args = ("--dead-letter-after", "2")
    pg.submit(["poison"], 1, poison=True)
    dead = []
    for j in range(2):
        w = pg.start_worker(f"crash{j}", *args, url=url)
        rc = w.wait()  # it picks the run up (once the previous executor's lease lapsed) and dies in the step
        assert rc == -signal.SIGKILL, w.describe()
        dead.append(w.pid)
        assert [pid for pid, _, _ in pg.lines()] == dead
    row = pg.run_row("poison")
    assert row is not None and row[0] == "running" and row[1] == 1, row

    last = pg.start_worker("last", *args, url=url)
    pg.wait_status(["poison"], ("failed",), [last], timeout=TIMEOUT)
    state = pg.state("poison")
    assert state["status"] == "failed", state
    assert state["error_type"] == "DeadLetteredError", state
    assert "dead-lettered" in state["error"] and "dead-lettered" in state["error_text"], state
    assert [e["key"] for e in state["entries"]] == [], "the poison step never recorded a result"
    row = pg.run_row("poison")
    assert row is not None and row[1] == 2 and row[2] is None, row
    # Neither it nor a fresh worker runs the failed run again.
    again = pg.start_worker("again", *args, "--until-idle", url=url)
    assert again.wait() == 0, again.describe()
    assert again.done() == (0, 0, 0, 0), again.describe()
    last.terminate()
    assert last.done() == (0, 0, 0, 1), last.describe()
    assert "dead-lettered run #1 of thread 'poison'" in last.stderr(), last.describe()
    assert [pid for pid, _, _ in pg.lines()] == dead, "the dead-lettered run was executed again"
    assert pg.status("poison") == "failed"


@pytest.mark.parametrize(
    ("targets", "rc", "message"),
    [
        (["no_such_module_4711"], 1, "cannot import 'no_such_module_4711'"),
        (["_pg_flows:not_an_entrypoint"], 1, "'_pg_flows:not_an_entrypoint' is not an entrypoint"),
        (["_pg_flows:step"], 1, "'_pg_flows:step' is not an entrypoint"),
        (["json"], 1, "module 'json' defines no @entrypoint"),
        ([], 2, "the following arguments are required: TARGET"),
    ],
)
def test_cli_rejects_bad_targets(pg: Pg, targets: list[str], rc: int, message: str) -> None:
    """Bad targets exit 1 with one clear line on stderr (no traceback); a missing one is a usage error (2)."""
    done = subprocess.run(
        [sys.executable, "-m", "durable", "worker", *targets, "--url", pg.url()],
        cwd=HERE,
        env=pg.env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == rc, f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    if rc == 1:
        assert done.stderr.startswith("durable worker: "), done.stderr


def test_cli_sigterm_stops_an_idle_worker_promptly(pg: Pg) -> None:
    """SIGTERM on an idle worker exits 0 at once, without waiting out its (long) poll interval."""
    w = pg.start_worker("idle", "--poll-interval", "120")
    wait_until(
        lambda: "durable worker: carrying pg_pipeline, pg_poison" in w.stdout() or w.popen.poll() is not None,
        "the worker to start",
    )
    assert w.popen.poll() is None, w.describe()
    w.signal(signal.SIGTERM)
    started = time.monotonic()
    assert w.wait(timeout=30) == 0, w.describe()
    assert time.monotonic() - started < 15, "the worker waited out its poll interval"
    assert "stopping" in w.stderr(), w.describe()
    assert w.done() == (0, 0, 0, 0), w.describe()
