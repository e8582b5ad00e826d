"""`durable worker` processes on a real Redis: crashes, stalls, races, wake-ups, and the server itself dying.

Workers are real ``python -m durable worker _pg_flows --url redis://...`` processes (cwd: this folder); runs are
submitted and read back by ``python -m _pg_flows`` children. The pytest process never imports `durable`: it signals
the children, watches the count file the task bodies append to, and reads the keys with redis-py. Each test has a
key prefix of its own (deleted afterwards) and a 2 s lease; every wait polls an observable condition. The
server-crash tests start `redis-server` processes of their own (append-only file in ``tmp_path``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _procs import TIMEOUT, Proc, alive, child_env, start, wait_until

HERE = Path(__file__).resolve().parent
LEASE = 2.0  # seconds; the URL's lease_seconds

# Run in a child: the latest run's journal rows of a thread as JSON [[key, attempt, started_at], ...].
JOURNAL = """
import json, sys
from durable import RedisStore
with RedisStore(sys.argv[1]) as store:
    thread = store.get_thread(sys.argv[2])
    rows = store.load_journal(thread.tid, thread.run.run_id)
print(json.dumps([[r.key, r.attempt, r.started_at] for r in rows]))
"""


def run_child(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{argv[1:]}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Rd:
    """One test's key prefix, count file and worker processes on the test server."""

    def __init__(self, tmp_path: Path, server: str, prefix: str) -> None:
        self.tmp_path = tmp_path
        self.server = server
        self.prefix = prefix
        self.p = prefix + ":"
        self.count_file = tmp_path / "count.txt"
        self.release = tmp_path / "release"
        self.procs: list[Proc] = []
        self.client = __import__("redis").Redis.from_url(server)  # the fixture checked redis-py is there

    def url(self) -> str:
        return f"{self.server}{'&' if '?' in self.server else '?'}prefix={self.prefix}&lease_seconds={LEASE}"

    def env(self, **extra: str) -> dict[str, str]:
        return child_env(
            DURABLE_URL=self.url(), PGFLOWS_COUNT=str(self.count_file), PGFLOWS_RELEASE=str(self.release), **extra
        )

    def ctl(self, *args: str) -> Any:
        return json.loads(run_child([sys.executable, "-m", "_pg_flows", *args], HERE, self.env()).splitlines()[-1])

    def submit(self, tags: list[str], n: int) -> None:
        self.ctl("submit", *(a for tag in tags for a in ("--tag", tag)), "--n", str(n))

    def state(self, tag: str) -> dict[str, Any]:
        return self.ctl("state", "--tag", tag)[tag]  # type: ignore[no-any-return]

    def start_worker(self, name: str, *args: str, env: dict[str, str] | None = None, cli_url: bool = True) -> Proc:
        """``python -m durable worker _pg_flows`` (the store from ``--url``, or from $DURABLE_URL)."""
        argv = [sys.executable, "-m", "durable", "worker", "_pg_flows", "--poll-interval", "0.1", *args]
        argv += ["--url", self.url()] if cli_url else []
        proc = start(name, argv, HERE, self.env(**(env or {})), self.tmp_path)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGCONT)
                proc.popen.kill()
            proc.popen.wait()
        for key in self.client.scan_iter(match=f"{self.p}*", count=1000):
            self.client.unlink(key)
        self.client.close()

    # -- the count file ------------------------------------------------------------------------

    def lines(self) -> list[tuple[int, str, int]]:
        """Every complete ``(pid, tag, step)`` line the task bodies wrote, in file order."""
        if not self.count_file.exists():
            return []
        text = self.count_file.read_text().splitlines(keepends=True)
        return [(int(p), t, int(i)) for p, t, i in (ln.split() for ln in text if ln.endswith("\n"))]

    def wait_lines(self, m: int, procs: list[Proc]) -> None:
        what = f"{m} lines in the count file"
        wait_until(lambda: alive(procs, what) and len(self.lines()) >= m, lambda: f"{what} (have {self.lines()})")

    # -- the keys ------------------------------------------------------------------------------

    def thread(self, tag: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.client.hgetall(f"{self.p}t:{tag}").items() if k != b"nonce"}

    def run_row(self, tag: str) -> tuple[str, int, str | None, float | None] | None:
        """(status, recoveries, owner, lease expiry in server seconds) of the thread's latest run."""
        t = self.thread(tag)
        if not t or t["last"] == "0":
            return None
        status, rec = self.client.hmget(f"{self.p}r:{t['tid']}:{t['last']}", "status", "rec")
        exp = t.get("exp")
        return status.decode(), int(rec or 0), t.get("owner"), None if exp is None else float(exp)

    def status(self, tag: str) -> str | None:
        return (self.run_row(tag) or (None,))[0]

    def wait_status(self, tags: list[str], statuses: tuple[str, ...], procs: list[Proc], timeout: float) -> None:
        what = f"runs {tags} {statuses}"
        reached = lambda: alive(procs, what) and all(self.status(tag) in statuses for tag in tags)  # noqa: E731
        wait_until(reached, lambda: f"{what} (now {[self.status(t) for t in tags]})", timeout)

    def journal(self, tag: str) -> list[tuple[str, int, float]]:
        """(key, attempt, started_at) of the latest run's journal rows, decoded by a child process."""
        out = run_child([sys.executable, "-c", JOURNAL, self.url(), tag], self.tmp_path, child_env())
        return [(k, a, s) for k, a, s in json.loads(out.splitlines()[-1])]

    def assert_one_row_per_key(self, tag: str, n: int) -> None:
        t = self.thread(tag)
        where = f"{t['tid']}:{t['last']}"
        slots = {s.decode() for s in self.client.smembers(f"{self.p}s:{where}")}
        assert slots == {f"1:{i}" for i in range(n)}, f"{tag}: not one slot per step, attempt 1: {sorted(slots)}"
        assert self.client.llen(f"{self.p}j:{where}") == n, f"{tag}: {self.journal(tag)}"


@pytest.fixture
def rd(tmp_path: Path, redis_prefix: tuple[str, str]) -> Iterator[Rd]:
    server, _ = redis_prefix  # skips (fails under CI=true) without a server
    r = Rd(tmp_path, server, f"durable-acc-{uuid.uuid4().hex[:12]}")
    try:
        yield r
    finally:
        r.close()


def test_sigkilled_worker_run_is_finished_by_the_next_worker(rd: Rd) -> None:
    """Worker A is SIGKILLed mid-run; worker B takes the run over once A's lease lapses and finishes it."""
    n, k = 6, 3
    rd.submit(["crash"], n)
    a = rd.start_worker("a", env={"PGFLOWS_HOLD_AT": str(k)})
    rd.wait_lines(k + 1, [a])
    # Step k's body has started, so steps 0..k-1 were journaled (each step waits for the one before it).
    assert [key for key, _, _ in rd.journal("crash")] == [str(i) for i in range(k)]
    row = rd.run_row("crash")
    assert row is not None and row[0] == "running" and row[1] == 0, row
    assert row[2] is not None and f":{a.pid}:" in row[2] and row[3] is not None, f"A should hold the lease: {row}"

    a.signal(signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    killed_at = time.monotonic()
    row = rd.run_row("crash")  # A renews its lease no more
    assert row is not None and row[3] is not None, row
    expires_at_kill = row[3]
    b = rd.start_worker("b")
    rd.wait_status(["crash"], ("completed",), [b], timeout=LEASE + TIMEOUT)
    took = time.monotonic() - killed_at
    assert took < LEASE + 15, f"B took {took:.1f}s to finish a run whose lease was {LEASE}s"

    state = rd.state("crash")
    assert state["status"] == "completed" and state["error"] is None, state
    pids = [a.pid] * k + [b.pid] * (n - k)
    assert state["output"] == {"tag": "crash", "values": [i * i + 1 for i in range(n)], "pids": pids}
    assert [e["key"] for e in state["entries"]] == [str(i) for i in range(n)]
    rd.assert_one_row_per_key("crash", n)
    # B took over only once A's lease had lapsed.
    journal = rd.journal("crash")
    assert all(attempt == 1 for _, attempt, _ in journal), journal
    started_k = next(started for key, _, started in journal if key == str(k))
    assert started_k >= expires_at_kill - 0.05, (started_k, expires_at_kill)

    lines = rd.lines()
    # Journaled steps ran exactly once; step k, running when A died, ran again in B (at-least-once).
    assert Counter(i for _, _, i in lines) == Counter({**{i: 1 for i in range(n)}, k: 2}), lines
    assert [pid for pid, _, i in lines if i < k] == [a.pid] * k
    assert [pid for pid, _, i in lines if i == k] == [a.pid, b.pid]
    row = rd.run_row("crash")
    assert row is not None and row[1] == 1 and row[2] is None, f"one recovery, lease released: {row}"
    b.terminate()
    assert b.done() == (1, 0, 0, 0), b.describe()
    assert "recovering run #1 of thread 'crash'" in b.stderr(), b.describe()


def test_stalled_worker_is_fenced_off_after_another_takes_over(rd: Rd) -> None:
    """A worker frozen (SIGSTOP) past its lease loses the run to another; thawed, its late write is refused."""
    n, k = 5, 2
    rd.submit(["stall"], n)
    a = rd.start_worker("a", "-v", env={"PGFLOWS_HOLD_AT": str(k)})
    rd.wait_lines(k + 1, [a])
    a.signal(signal.SIGSTOP)
    b = rd.start_worker("b")
    rd.wait_status(["stall"], ("completed",), [b], timeout=LEASE + TIMEOUT)
    row = rd.run_row("stall")
    assert row is not None and row[1] == 1 and row[2] is None, row

    # Thaw A: its step k returns now, and its journal write must be refused (B recorded step k already).
    rd.release.touch()
    a.signal(signal.SIGCONT)
    lost = "lost the lease on thread 'stall' mid-run"
    wait_until(lambda: lost in a.stderr() or a.popen.poll() is not None, "A to notice its lost lease")
    assert lost in a.stderr(), a.describe()
    a.terminate()
    assert a.done() == (0, 0, 0, 0), f"A's run should count as lost, not completed or failed\n{a.describe()}"
    b.terminate()
    assert b.done() == (1, 0, 0, 0), b.describe()

    rd.assert_one_row_per_key("stall", n)
    state = rd.state("stall")
    pids = [a.pid] * k + [b.pid] * (n - k)
    assert state["status"] == "completed", state
    assert state["output"] == {"tag": "stall", "values": [i * i + 1 for i in range(n)], "pids": pids}
    # The recorded results are A's for the steps A finished in time, B's from the stalled step on.
    assert [e["result"]["pid"] for e in state["entries"]] == pids, state["entries"]
    lines = rd.lines()
    assert Counter(i for _, _, i in lines) == Counter({**{i: 1 for i in range(n)}, k: 2}), lines
    assert [pid for pid, _, i in lines if i == k] == [a.pid, b.pid], lines
    row = rd.run_row("stall")
    assert row is not None and row[0] == "completed" and row[1] == 1 and row[2] is None, row


def test_two_workers_racing_for_the_same_runs_carry_each_once(rd: Rd) -> None:
    """Two workers polling at once never take the same run: every run runs once, in one worker."""
    tags = [f"race{j}" for j in range(6)]
    n = 3
    rd.submit(tags, n)
    # Each worker carries two runs at a time and every run holds at step 0: four runs start, two per worker.
    hold = {"PGFLOWS_HOLD_AT": "0"}
    a = rd.start_worker("a", "--concurrency", "2", env=hold, cli_url=False)  # store from $DURABLE_URL
    b = rd.start_worker("b", "--concurrency", "2", env=hold)
    rd.wait_lines(4, [a, b])
    held = rd.lines()
    assert len(held) == 4, held
    assert Counter(pid for pid, _, _ in held) == {a.pid: 2, b.pid: 2}, held
    assert len({tag for _, tag, _ in held}) == 4, f"two workers started the same run: {held}"
    rd.release.touch()
    rd.wait_status(tags, ("completed",), [a, b], timeout=TIMEOUT)

    lines = rd.lines()
    assert Counter((tag, i) for _, tag, i in lines) == Counter((t, i) for t in tags for i in range(n)), lines
    for tag in tags:
        out = rd.state(tag)["output"]
        assert out["values"] == [i * i + 1 for i in range(n)], out
        assert len(set(out["pids"])) == 1 and out["pids"][0] in (a.pid, b.pid), f"{tag} carried by: {out}"
        assert {pid for pid, t, _ in lines if t == tag} == {out["pids"][0]}, lines
        rd.assert_one_row_per_key(tag, n)
        row = rd.run_row(tag)
        assert row is not None and row[1] == 0 and row[2] is None, f"{tag}: no takeover, released: {row}"
    a.terminate()
    b.terminate()
    carried = Counter(pid for pid, _, i in lines if i == 0)
    assert (a.done()[0], b.done()[0]) == (carried[a.pid], carried[b.pid]), (a.describe(), b.describe())
    assert a.done()[0] + b.done()[0] == len(tags)


def test_idle_worker_is_woken_by_the_work_channel_not_by_polling(rd: Rd) -> None:
    """A worker polling every 30 s picks each newly submitted run up within seconds: the submit publishes on
    ``<prefix>:work`` and the worker listens there."""
    w = rd.start_worker("idle", "--poll-interval", "30")  # the last --poll-interval wins
    channel = f"{rd.p}work"

    def listening() -> bool:
        alive([w], f"subscribing to {channel}")
        return "durable worker: carrying" in w.stdout() and dict(rd.client.pubsub_numsub(channel))[channel.encode()]

    wait_until(listening, f"the worker to subscribe to {channel}")
    # The first run could in principle meet the poll the worker makes as it subscribes; the second cannot (the
    # worker looked once the first was done, and polls next in 24 s or more).
    for tag in ("wake1", "wake2"):
        rd.submit([tag], 2)
        submitted = time.monotonic()
        rd.wait_status([tag], ("completed",), [w], timeout=TIMEOUT)
        took = time.monotonic() - submitted
        assert took < 8, f"{tag} waited {took:.1f}s: the worker was not woken (poll interval 30 s)"
        assert rd.state(tag)["output"]["pids"] == [w.pid] * 2
        rd.assert_one_row_per_key(tag, 2)
    stopping = time.monotonic()
    w.terminate()
    assert time.monotonic() - stopping < 15, "the worker waited out its poll interval to stop"
    assert w.done() == (2, 0, 0, 0), w.describe()


# -- the server dies ----------------------------------------------------------------------------------------

# Run by children on a server of the test's own. argv: command, URL, count file[, n]. `run N` prints each step's
# value once its future resolved, `resume` prints the output, `state` prints get_state (JSON).
CRASH_FLOW = """
import json, os, sys, time
from durable import entrypoint, task

command, url, count = sys.argv[1:4]

@task(name="crash_step")
def step(i):
    time.sleep(0.003)
    with open(count, "a") as f:
        f.write(f"{os.getpid()} {i}\\n")
    return {"i": i, "v": i * i + 1}

@entrypoint(name="crash_flow", checkpointer=url)
def flow(n):
    values = []
    for i in range(n):
        values.append(step(i).result()["v"])
        print(f"result {i} {values[-1]}", flush=True)
    return {"values": values}

if command == "run":
    flow.invoke(int(sys.argv[4]), thread_id="crash", durability="sync")
elif command == "resume":
    print(json.dumps(flow.invoke(None, thread_id="crash", durability="sync")))
else:
    s = flow.get_state(thread_id="crash")
    print(json.dumps({"status": s.status, "entries": [[e.key, e.attempt, e.result] for e in s.entries]}))
"""


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_results_resolved_before_the_server_was_killed_survive_its_restart(
    tmp_path: Path, fsync: str, redis_server: Callable[..., Any]
) -> None:
    """SIGKILL the server mid-run: every step whose future had resolved (durability="sync") is in the journal once
    it restarts from its append-only file, and the resumed run never runs those steps again. With ``appendfsync
    everysec`` too: the server writes the file before it answers and only its fsync lags, so the death of the process
    loses nothing (Redis may postpone that write by up to 2 s while an fsync is slow, which a fast disk never sees)."""
    options = ("--appendonly", "yes", "--appendfsync", fsync)
    server = redis_server(*options, name="crash")
    url = f"{server.url}?prefix=durable-acc-crash&lease_seconds={LEASE}"
    script, count = tmp_path / "crash_flow.py", tmp_path / "count.txt"
    script.write_text(CRASH_FLOW)
    n, k = 400, 40

    def child(*args: str) -> Any:
        out = run_child([sys.executable, str(script), args[0], url, str(count), *args[1:]], tmp_path, child_env())
        return json.loads(out.splitlines()[-1])

    run = start("run", [sys.executable, str(script), "run", url, str(count), str(n)], tmp_path, child_env(), tmp_path)
    try:
        printed_k = lambda: alive([run], "the server was killed") and run.stdout().count("\n") >= k  # noqa: E731
        wait_until(printed_k, lambda: f"{k} results printed\n{run.describe()}")
        server.process.kill()
        server.process.wait()
        rc = run.wait(timeout=30)  # it fails on the lost connection
        assert rc != 0 and "cannot reach the Redis journal" in run.stderr(), run.describe()
        lines = [line.split() for line in run.stdout().splitlines(keepends=True) if line.endswith("\n")]
        printed = {int(i): int(v) for _, i, v in lines}
        assert len(printed) >= k and sorted(printed) == list(range(len(printed))), run.describe()
        assert len(printed) < n, f"the server died too late to test anything\n{run.describe()}"

        redis_server(*options, port=server.port, name="crash")  # from the same append-only file
        state = child("state")
        journaled = {int(key): (attempt, result) for key, attempt, result in state["entries"]}
        missing = sorted(set(printed) - set(journaled))
        assert not missing, f"steps resolved before the server died, lost by it: {missing} ({fsync})"
        assert all(journaled[i] == (1, {"i": i, "v": v}) for i, v in printed.items()), (printed, journaled)
        assert state["status"] == "running" and len(journaled) <= len(printed) + 1, state  # + the step in flight

        assert child("resume") == {"values": [i * i + 1 for i in range(n)]}
        ran = Counter(int(line.split()[1]) for line in count.read_text().splitlines())
        again = {i: c for i, c in ran.items() if c > 1}
        assert set(ran) == set(range(n)), sorted(set(range(n)) - set(ran))
        assert not set(again) & set(printed), f"steps resolved before the server died ran again: {again}"
        assert len(again) <= 1 and set(again.values()) <= {2}, f"only the step in flight may run again: {again}"
        final = child("state")
        assert final["status"] == "completed", final
        assert sorted((int(key), attempt) for key, attempt, _ in final["entries"]) == [(i, 1) for i in range(n)]
    finally:
        if run.popen.poll() is None:
            run.popen.kill()
        run.popen.wait()
