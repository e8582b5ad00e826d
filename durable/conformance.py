"""The store interface's contract: a base class whose tests any backend's test suite runs.

Subclass `StoreConformance` in a test module and implement `open_store`; pytest collects every test of the contract
for it, each run through the blocking interface and through `Store.asession()` (the operations the engine's async
path uses; the workers' and the operator's, which have no async form, go to the blocking interface)::

    from durable.testing import StoreConformance   # or durable.conformance

    class TestMyStore(StoreConformance):
        def open_store(self, request, lease_seconds):
            return MyStore(..., lease_seconds=lease_seconds)   # a fresh, empty journal each time

Every store durable ships runs it (``tests/stores/test_conformance.py``). It needs pytest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from durable import LeaseLostError, StoreError, ThreadBusyError, ThreadExistsError
from durable.stores import JournalRow, NewRun, RunOutcome, RunRow, Store
from durable.stores._base import ThreadFilter, kv_labels, kv_namespace, kv_prefix_end

# The operations with no async form: the heartbeat's, the workers' and the operator's (`Threads`).
BLOCKING_ONLY = (
    "renew", "reserve", "cancel_run", "lease_seconds", "list_threads", "list_runs", "delete_thread", "prune",
    "import_thread", "rewrite_thread", "same_database", "kv_put", "kv_get", "kv_touch", "kv_delete", "kv_search",
    "kv_namespaces", "kv_clear",
)  # fmt: skip


class AsyncOps:
    """Calls the async session's operations from blocking test code, on one loop and one session."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        self._cm = store.asession()
        self.session = self.loop.run_until_complete(self._cm.__aenter__())

    def __getattr__(self, name: str) -> Any:
        if name in BLOCKING_ONLY:
            return getattr(self.store, name)  # the heartbeat, the workers and `Threads` use the blocking API only
        method = getattr(self.session, name)
        return lambda *args: self.loop.run_until_complete(method(*args))

    def close(self) -> None:
        self.loop.run_until_complete(self._cm.__aexit__(None, None, None))
        self.loop.close()


NONCE = b"n" * 16
NEW = NewRun("ep", b"Pin", None, 1, NONCE)  # the first run of a new thread, made with NONCE


def next_run(store: Any, thread_id: str, input: bytes, entrypoint: str = "ep") -> NewRun:
    """A new run for the thread as it is now: the next run number, the thread's nonce (as the engine asks)."""
    thread = store.get_thread(thread_id)
    if thread is None:
        return NewRun(entrypoint, input, None, 1, NONCE)
    return NewRun(entrypoint, input, None, (thread.run.run_id if thread.run else 0) + 1, thread.nonce)


def start(store: Any, thread_id: str = "t", owner: str = "me") -> Any:
    """Claim the thread and start a run in the same transaction."""
    lease = store.claim(thread_id, owner, None, next_run(store, thread_id, b"Pin"))
    assert lease.started
    return lease


def row(key: str, attempt: int = 1, payload: bytes = b"Pv") -> JournalRow:
    now = time.time()
    return JournalRow(key, attempt, "task", 0, b"d" * 8, payload, now - 0.0123, now)


def same_rows(loaded: list[JournalRow], written: list[JournalRow]) -> bool:
    """Equal rows, with durations to the microsecond (a store may keep no finer)."""
    loaded = sorted(loaded, key=lambda r: (r.key, r.attempt))
    written = sorted(written, key=lambda r: (r.key, r.attempt))
    return len(loaded) == len(written) and all(
        a[:6] == b[:6]
        and a.started_at == b.started_at
        and abs((a.finished_at - a.started_at) - (b.finished_at - b.started_at)) < 2e-6
        for a, b in zip(loaded, written, strict=True)
    )


# -- reserve: what workers pick up ------------------------------------------------------------------


def submitted(store: Any, thread_id: str, entrypoint: str = "ep") -> None:
    """A run started and left for a worker (what Entrypoint.submit does): claimed, started, released."""
    lease = store.claim(thread_id, "submitter", None, next_run(store, thread_id, b"Pin", entrypoint))
    assert lease.started
    store.release(lease)


# -- operating on threads: listing, deleting, pruning, importing ------------------------------------

T0 = 1_700_000_000.0  # a fixed start time for imported runs, so listings' order is decided by the test


def run_at(
    run_id: int = 1,
    started_at: float = T0,
    status: str = "completed",
    entrypoint: str = "ep",
    finished_at: float | None = None,
) -> RunRow:
    """A run as an import would bring it, started at ``started_at`` (finished a second later unless running)."""
    done = None if status == "running" else (finished_at if finished_at is not None else started_at + 1)
    return RunRow(
        run_id=run_id, entrypoint=entrypoint, status=status, input=b"Pin%d" % run_id, previous=None,  # type: ignore[arg-type]
        started_at=started_at, output=b"Pout" if status == "completed" else None, finished_at=done, stamp="pickle 5",
    )  # fmt: skip


def imported(store: Any, thread_id: str, *runs: RunRow) -> None:
    store.import_thread(thread_id, list(runs or (run_at(),)), [], None)


def listed(store: Any, **where: Any) -> list[str]:
    return [s.thread_id for s in store.list_threads(ThreadFilter(**where))]


def replace_run(run: RunRow, **changes: Any) -> RunRow:
    import dataclasses

    return dataclasses.replace(run, **changes)


# -- nonces, and the run a new input was signed for -----------------------------------------------------------


# -- key-value rows (the long-term memory and the task cache live there) -----------------------------------

U1, U2, USERS2 = kv_namespace(("users", "1")), kv_namespace(("users", "2")), kv_namespace(("users2",))


def kv_keys(rows: list[Any]) -> list[tuple[str, str]]:
    return [(r.namespace, r.key) for r in rows]


class StoreConformance:
    """The contract of `durable.stores.Store`, as tests: subclass it and implement `open_store`."""

    def open_store(self, request: pytest.FixtureRequest, lease_seconds: float) -> Store:
        """A new, empty store (a journal of its own) whose leases last ``lease_seconds``; closed after the test."""
        raise NotImplementedError("implement open_store(request, lease_seconds) in your StoreConformance subclass")

    @pytest.fixture(params=["sync", "async"])
    def make_store(self, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
        """``make_store(lease_seconds=30.0)``: a store through one interface, the blocking one or an async session."""
        opened: list[Any] = []

        def make(lease_seconds: float = 30.0) -> Any:
            store = self.open_store(request, lease_seconds)
            ops = AsyncOps(store) if request.param == "async" else store
            opened.append(ops)
            return ops

        yield make
        for ops in opened:
            ops.close()

    @pytest.fixture
    def store(self, make_store: Callable[..., Any]) -> Any:
        return make_store()

    def test_unknown_thread_is_none(self, store: Any) -> None:
        """A thread the store never saw reads as None, and reading creates nothing."""
        assert store.get_thread("nope") is None
        assert store.get_thread("nope") is None

    def test_claim_creates_thread_with_first_fence(self, store: Any) -> None:
        """The first claim creates the thread, owned by the claimer, with fencing token 1 and no run."""
        lease = store.claim("t", "me")
        assert (lease.thread_id, lease.owner, lease.fence) == ("t", "me", 1)
        thread = store.get_thread("t")
        assert thread.owner == "me" and thread.fence == 1 and thread.run is None
        assert thread.lease_expires > time.time()

    def test_second_owner_is_busy(self, store: Any) -> None:
        """A live lease held by another owner refuses a claim with ThreadBusyError naming the holder."""
        store.claim("t", "me")
        with pytest.raises(ThreadBusyError) as info:
            store.claim("t", "you")
        expires_in = info.value.expires_in
        assert info.value.owner == "me" and expires_in is not None and 0 < expires_in <= 30
        assert store.get_thread("t").owner == "me"

    def test_release_frees_the_thread(self, store: Any) -> None:
        """After release another owner claims, and the fencing token grows."""
        lease = store.claim("t", "me")
        store.release(lease)
        assert store.get_thread("t").owner is None
        assert store.claim("t", "you").fence == 2

    def test_expired_lease_is_claimable(self, make_store: Callable[..., Any]) -> None:
        """A lease not renewed within lease_seconds can be taken over."""
        store = make_store(lease_seconds=0.05)
        store.claim("t", "me")
        time.sleep(0.08)
        assert store.claim("t", "you").owner == "you"

    def test_steal_from_a_named_owner(self, store: Any) -> None:
        """steal_from takes a live lease from exactly that owner, and no other."""
        store.claim("t", "dead")
        with pytest.raises(ThreadBusyError):
            store.claim("t", "me", "someone-else")
        assert store.claim("t", "me", "dead").fence == 2

    def test_renew_extends_and_detects_loss(self, make_store: Callable[..., Any]) -> None:
        """renew() extends a held lease and returns False once another owner took it."""
        store = make_store(lease_seconds=0.2)
        lease = store.claim("t", "me")
        before = store.get_thread("t").lease_expires
        time.sleep(0.01)
        assert store.renew(lease) is True
        assert store.get_thread("t").lease_expires > before
        taken = store.claim("t", "you", "me")
        assert store.renew(lease) is False
        assert store.get_thread("t").owner == "you" and taken.fence == lease.fence + 1

    def test_claim_starts_a_new_run_in_the_same_transaction(self, store: Any) -> None:
        """With new_run, the claim starts run 1 on a new thread and the next run once the last one completed."""
        lease = start(store)
        run = lease.thread.run
        assert (run.run_id, run.status, run.input, run.previous) == (1, "running", b"Pin", None)
        assert store.get_thread("t").run == run
        store.finish_run(lease, 1, RunOutcome("completed", output=b"Pout", save=b"Psave"))
        second = store.claim("t", "me", None, next_run(store, "t", b"Pin2"))
        assert second.started and second.thread.run.run_id == 2 and second.thread.run.previous == b"Psave"

    def test_claim_does_not_start_over_an_unfinished_run(self, store: Any) -> None:
        """A failed (or running) latest run is not replaced: the claim takes the lease and starts nothing."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("failed", error=b"Perr"))
        again = store.claim("t", "me", None, next_run(store, "t", b"other"))
        assert not again.started
        assert (again.thread.run.run_id, again.thread.run.status, again.thread.run.input) == (1, "failed", b"Pin")

    def test_finish_run_releases_the_lease(self, store: Any) -> None:
        """Recording the outcome gives the lease up in the same commit: another owner can claim at once."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("completed", output=b"P1", save=b"P1"))
        assert store.get_thread("t").owner is None
        assert store.claim("t", "you").owner == "you"

    def test_run_and_journal_round_trip(self, store: Any) -> None:
        """A started run is the thread's latest; appended rows load back equal, in one batch or many."""
        lease = start(store)
        assert store.get_thread("t").run.run_id == 1
        assert store.load_journal(lease.tid, 1) == []
        rows = [row("0"), row("1", payload=b"P" + bytes(range(256)) * 40), row("1.0")]
        store.append(lease, 1, rows[:1])
        store.append(lease, 1, rows[1:])
        assert same_rows(store.load_journal(lease.tid, 1), rows)

    def test_attempts_are_new_rows(self, store: Any) -> None:
        """Re-running a key inserts attempt 2 beside attempt 1: the journal is insert-only."""
        lease = start(store)
        store.append(lease, 1, [row("0", 1, b"Pfirst")])
        store.append(lease, 1, [row("0", 2, b"Psecond")])
        assert sorted((r.attempt, r.payload) for r in store.load_journal(lease.tid, 1)) == [
            (1, b"Pfirst"),
            (2, b"Psecond"),
        ]

    def test_duplicate_slot_is_refused_atomically(self, store: Any) -> None:
        """A batch that repeats a recorded (key, attempt) fails whole: nothing of it is inserted."""
        lease = start(store)
        store.append(lease, 1, [row("0")])
        with pytest.raises(StoreError):
            store.append(lease, 1, [row("1"), row("0")])
        assert [r.key for r in store.load_journal(lease.tid, 1)] == ["0"]

    def test_stale_lease_writes_are_fenced(self, store: Any) -> None:
        """After a takeover, the old owner's appends and finish are refused and change nothing."""
        old = start(store)
        store.append(old, 1, [row("0")])
        store.claim("t", "you", "me")
        with pytest.raises(LeaseLostError):
            store.append(old, 1, [row("1"), row("2")])
        with pytest.raises(LeaseLostError):
            store.finish_run(old, 1, RunOutcome("completed", output=b"Px"))
        assert [r.key for r in store.load_journal(old.tid, 1)] == ["0"]
        thread = store.get_thread("t")
        assert thread.run.status == "running" and thread.run.run_id == 1 and thread.owner == "you"

    def test_finish_run_records_outcome(self, store: Any) -> None:
        """finish_run stores status, output, save, error and the keys to retry."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("failed", error=b"Perr", error_text="Boom", retry_keys=("3", "4.1")))
        run = store.get_thread("t").run
        assert (run.status, run.error, run.error_text, run.retry_keys) == ("failed", b"Perr", "Boom", ("3", "4.1"))
        assert run.finished_at is not None
        lease = store.claim("t", "me")
        store.finish_run(lease, 1, RunOutcome("completed", output=b"Pout", save=b"Psave"))
        run = store.get_thread("t").run
        assert (run.status, run.output, run.save, run.retry_keys) == ("completed", b"Pout", b"Psave", ())

    def test_forget_prior_keeps_one_copy_of_the_values(self, store: Any) -> None:
        """A completed run with forget_prior empties the earlier runs' values and its own previous; journals stay."""
        for n in (1, 2, 3):
            lease = start(store)
            store.append(lease, n, [row("0", payload=b"Pj%d" % n)])
            forget = n == 3
            store.finish_run(
                lease, n, RunOutcome("completed", output=b"Po%d" % n, save=b"Ps%d" % n, forget_prior=forget)
            )
        runs = store.list_runs("t")
        assert [(r.output, r.save, r.previous) for r in runs] == [
            (None, None, None),
            (None, None, None),
            (b"Po3", b"Ps3", None),
        ]
        assert [store.load_journal(lease.tid, n)[0].payload for n in (1, 2, 3)] == [b"Pj1", b"Pj2", b"Pj3"]
        lease = start(store)  # the next run still starts from the latest saved value
        assert store.get_thread("t").run.previous == b"Ps3"
        store.finish_run(lease, 4, RunOutcome("failed", error=b"Pe", forget_prior=True))
        assert store.list_runs("t")[2].save == b"Ps3"  # only a completed run lets the values go

    def test_runs_are_numbered_per_thread(self, store: Any) -> None:
        """A second run becomes the latest; the first run's journal stays readable and separate."""
        lease = start(store)
        store.append(lease, 1, [row("0", payload=b"Pone")])
        store.finish_run(lease, 1, RunOutcome("completed", output=b"P1", save=b"P1"))
        lease = start(store)
        store.append(lease, 2, [row("0", payload=b"Ptwo")])
        assert store.get_thread("t").run.run_id == 2
        assert [r.payload for r in store.load_journal(lease.tid, 1)] == [b"Pone"]
        assert [r.payload for r in store.load_journal(lease.tid, 2)] == [b"Ptwo"]

    def test_threads_are_isolated(self, store: Any) -> None:
        """Two threads have their own leases, runs and journals."""
        a = start(store, "a", "me")
        b = start(store, "b", "you")
        store.append(a, 1, [row("0", payload=b"Pa")])
        assert store.load_journal(b.tid, 1) == []
        assert a.tid != b.tid

    def test_reserve_takes_a_submitted_run_once(self, store: Any) -> None:
        """A run nobody holds is reserved under the worker's lease, and only once."""
        submitted(store, "t")
        (lease,) = store.reserve("worker", ["ep"], 10)
        assert (lease.thread_id, lease.owner, lease.started) == ("t", "worker", False)
        assert lease.thread.run.run_id == 1 and lease.thread.run.status == "running"
        assert lease.thread.run.recoveries == 0  # submitted, not abandoned
        assert store.get_thread("t").owner == "worker"
        assert store.reserve("another", ["ep"], 10) == []
        store.append(lease, 1, [row("0")])  # the reservation is a real lease: writes under it are accepted

    def test_reserve_leaves_held_finished_and_foreign_runs_alone(self, store: Any) -> None:
        """Live leases, finished or paused runs, and other entrypoints' runs are not reserved."""
        start(store, "held")  # running under a live lease
        done = start(store, "done", "me2")
        store.finish_run(done, 1, RunOutcome("completed", output=b"Pout"))
        paused = start(store, "paused", "me3")
        store.finish_run(paused, 1, RunOutcome("interrupted", interrupts=b"Pq"))
        failed = start(store, "failed", "me4")
        store.finish_run(failed, 1, RunOutcome("failed", error=b"Perr", error_text="boom"))
        submitted(store, "other", entrypoint="other-ep")
        assert store.reserve("worker", ["ep"], 10) == []
        assert [lease.thread_id for lease in store.reserve("worker", ["other-ep", "x"], 10)] == ["other"]

    def test_reserve_respects_the_limit(self, store: Any) -> None:
        """At most ``limit`` runs per call; the next call gets the rest."""
        for i in range(5):
            submitted(store, f"t{i}")
        first = store.reserve("worker", ["ep"], 3)
        rest = store.reserve("worker", ["ep"], 3)
        assert len(first) == 3 and len(rest) == 2
        assert {lease.thread_id for lease in first + rest} == {f"t{i}" for i in range(5)}

    def test_an_abandoned_run_counts_a_recovery(self, make_store: Callable[..., Any]) -> None:
        """A run whose lease expired while held was abandoned by a dead executor: each takeover counts one."""
        store = make_store(lease_seconds=0.05)
        start(store, "t", "crashed")
        time.sleep(0.08)
        (lease,) = store.reserve("w1", ["ep"], 1)
        assert lease.thread.run.recoveries == 1
        time.sleep(0.08)  # w1 dies too
        (lease,) = store.reserve("w2", ["ep"], 1)
        assert lease.thread.run.recoveries == 2
        assert store.get_thread("t").run.recoveries == 2
        store.release(lease)  # released, not abandoned: the next reservation counts nothing
        (lease,) = store.reserve("w3", ["ep"], 1)
        assert lease.thread.run.recoveries == 2
        # A failed run resumed by hand starts its count over.
        store.finish_run(lease, 1, RunOutcome("failed", error=b"Perr", error_text="dead"))
        store.claim("t", "person")
        assert store.get_thread("t").run.recoveries == 0

    def test_a_reservation_is_fenced_like_any_lease(self, make_store: Callable[..., Any]) -> None:
        """A worker that stalls past its reservation loses it: its writes are refused."""
        store = make_store(lease_seconds=0.05)
        submitted(store, "t")
        (stale,) = store.reserve("w1", ["ep"], 1)
        time.sleep(0.08)
        (fresh,) = store.reserve("w2", ["ep"], 1)
        assert fresh.fence > stale.fence
        with pytest.raises(LeaseLostError):
            store.append(stale, 1, [row("0")])
        store.append(fresh, 1, [row("0")])
        assert [r.key for r in store.load_journal(fresh.tid, 1)] == ["0"]

    def test_concurrent_reservers_never_share_a_run(self, store: Any) -> None:
        """Workers reserving at the same moment get disjoint runs, and together all of them."""
        for i in range(20):
            submitted(store, f"t{i}")
        got: dict[str, list[str]] = {}
        barrier = threading.Barrier(4)

        def reserve(name: str) -> None:
            barrier.wait()
            mine: list[str] = []
            while batch := store.reserve(name, ["ep"], 2):
                mine += [lease.thread_id for lease in batch]
            got[name] = mine

        threads = [threading.Thread(target=reserve, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        taken = [tid for mine in got.values() for tid in mine]
        assert sorted(taken) == sorted(f"t{i}" for i in range(20))

    def test_a_run_finished_meanwhile_is_never_reserved_again(self, store: Any) -> None:
        """Workers reserving while others finish runs never get a finished run (each run is carried once).

        (The benchmarks once saw 201 of 200 runs carried on Postgres: a reservation whose snapshot predated
        another worker's whole run re-checked only the thread's row. Both rows are locked now.)
        """
        if not isinstance(store, Store):
            pytest.skip("threads share the blocking API; an async session serves one run at a time")
        for i in range(60):
            submitted(store, f"t{i}")
        carried: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(4)

        def work(name: str) -> None:
            barrier.wait()
            while batch := store.reserve(name, ["ep"], 1):
                for lease in batch:
                    run = lease.thread.run
                    assert run is not None and run.status == "running"
                    store.finish_run(lease, run.run_id, RunOutcome("completed", output=b"Pout"))
                    with lock:
                        carried.append(lease.thread_id)

        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(carried) == sorted(f"t{i}" for i in range(60))

    def test_list_threads_newest_first_then_thread_id_descending(self, store: Any) -> None:
        """Threads are listed by their latest run's start, newest first; equal starts by thread id, descending."""
        imported(store, "old", run_at(started_at=T0))
        imported(store, "b", run_at(started_at=T0 + 10))
        imported(store, "c", run_at(started_at=T0 + 10))
        imported(store, "a", run_at(started_at=T0 + 10))
        imported(store, "new", run_at(started_at=T0 + 20))
        # A thread is placed by its latest run, not its first.
        imported(store, "second-run", run_at(1, started_at=T0 - 100), run_at(2, started_at=T0 + 5))
        assert listed(store) == ["new", "c", "b", "a", "second-run", "old"]
        summary = store.list_threads(ThreadFilter(limit=100))[-2]
        assert (summary.thread_id, summary.run_id, summary.started_at) == ("second-run", 2, T0 + 5)
        assert (summary.status, summary.entrypoint, summary.finished_at, summary.owner) == (
            "completed",
            "ep",
            T0 + 6,
            None,
        )

    def test_list_threads_skips_threads_without_a_run(self, store: Any) -> None:
        """A thread only claimed (no run yet) has nothing to list; a started run is listed with its lease."""
        store.claim("bare", "me")
        start(store, "live", "me")
        (summary,) = store.list_threads(ThreadFilter())
        assert (summary.thread_id, summary.status, summary.owner) == ("live", "running", "me")
        assert summary.lease_expires is not None and summary.lease_expires > time.time()

    def test_list_threads_filters(self, store: Any) -> None:
        """status, entrypoint, since (inclusive) and until (exclusive) each narrow the listing, and combine."""
        imported(store, "done", run_at(started_at=T0, status="completed"))
        imported(store, "failed", run_at(started_at=T0 + 1, status="failed"))
        imported(store, "paused", run_at(started_at=T0 + 2, status="interrupted"))
        imported(store, "running", run_at(started_at=T0 + 3, status="running"))
        imported(store, "other", run_at(started_at=T0 + 4, entrypoint="other-ep"))
        # status and entrypoint look at the latest run only
        imported(store, "was-failed", run_at(1, started_at=T0 - 9, status="failed"), run_at(2, started_at=T0 + 5))
        assert listed(store, status="completed") == ["was-failed", "other", "done"]
        assert listed(store, status="failed") == ["failed"]
        assert listed(store, status="interrupted") == ["paused"]
        assert listed(store, status="running") == ["running"]
        assert listed(store, entrypoint="other-ep") == ["other"]
        assert listed(store, entrypoint="nobody") == []
        assert listed(store, since=T0 + 2) == ["was-failed", "other", "running", "paused"]
        assert listed(store, until=T0 + 2) == ["failed", "done"]
        assert listed(store, since=T0 + 1, until=T0 + 4) == ["running", "paused", "failed"]
        assert listed(store, status="completed", entrypoint="ep", since=T0 + 1) == ["was-failed"]

    def test_list_threads_limit(self, store: Any) -> None:
        """At most ``limit`` threads, the newest ones."""
        for i in range(5):
            imported(store, f"t{i}", run_at(started_at=T0 + i))
        assert listed(store, limit=2) == ["t4", "t3"]
        assert listed(store, limit=1) == ["t4"]
        assert len(listed(store, limit=50)) == 5

    def test_list_threads_keyset_pages_have_no_gaps_or_duplicates(self, store: Any) -> None:
        """Paging with ``after`` = the last thread's (started_at, thread_id) visits every thread once, in order,
        even when many threads share a start time and a page boundary falls among them."""
        expected = []
        for i, started in enumerate([T0, T0, T0, T0 + 1, T0 + 1, T0 + 2, T0 + 2, T0 + 2, T0 + 2, T0 + 3]):
            imported(store, f"t{i:02d}", run_at(started_at=started))
            expected.append((started, f"t{i:02d}"))
        expected.sort(reverse=True)
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            page = store.list_threads(ThreadFilter(after=after, limit=3))
            pages += 1
            if not page:
                break
            seen += [s.thread_id for s in page]
            after = (page[-1].started_at, page[-1].thread_id)
        assert seen == [tid for _, tid in expected]
        assert pages == 5  # 3 + 3 + 3 + 1, then an empty page
        # after combines with the filters
        assert listed(store, after=(T0 + 2, "t07"), since=T0 + 1, limit=10) == ["t06", "t05", "t04", "t03"]

    def test_list_runs_oldest_first(self, store: Any) -> None:
        """Every run of the thread, oldest first, with its values; an unknown thread has none."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("completed", output=b"P1", save=b"S1"))
        lease = store.claim("t", "me", None, next_run(store, "t", b"Pin2"))
        store.finish_run(lease, 2, RunOutcome("failed", error=b"Perr", error_text="Boom"))
        runs = store.list_runs("t")
        assert [(r.run_id, r.status, r.input) for r in runs] == [(1, "completed", b"Pin"), (2, "failed", b"Pin2")]
        assert (runs[0].output, runs[0].save, runs[1].previous, runs[1].error_text) == (b"P1", b"S1", b"S1", "Boom")
        assert runs[1] == store.get_thread("t").run
        assert store.list_runs("nope") == []
        store.claim("bare", "me")
        assert store.list_runs("bare") == []

    def test_delete_thread_removes_thread_runs_and_journal(self, store: Any) -> None:
        """A deleted thread is gone with its runs and journal; other threads stay; the id can be used afresh."""
        lease = start(store)
        store.append(lease, 1, [row("0"), row("1")])
        store.finish_run(lease, 1, RunOutcome("completed", output=b"P1"))
        other = start(store, "other", "you")
        store.append(other, 1, [row("0")])
        assert store.delete_thread("t") is True
        assert store.get_thread("t") is None
        assert store.list_runs("t") == []
        assert store.load_journal(lease.tid, 1) == []
        assert listed(store) == ["other"]
        assert [r.key for r in store.load_journal(other.tid, 1)] == ["0"]
        assert store.delete_thread("t") is False
        again = start(store)  # a new thread of that id starts at run 1 with an empty journal
        assert again.thread.run.run_id == 1 and store.load_journal(again.tid, 1) == []

    def test_delete_unknown_thread_is_false(self, store: Any) -> None:
        assert store.delete_thread("nope") is False

    def test_delete_refuses_a_live_lease(self, store: Any) -> None:
        """While an executor holds a live lease the thread is not deleted (ThreadBusyError), and nothing changes."""
        lease = start(store)
        store.append(lease, 1, [row("0")])
        with pytest.raises(ThreadBusyError) as info:
            store.delete_thread("t")
        assert info.value.owner == "me"
        assert store.get_thread("t").run.status == "running"
        assert [r.key for r in store.load_journal(lease.tid, 1)] == ["0"]
        store.append(lease, 1, [row("1")])  # the executor carries on
        store.release(lease)
        assert store.delete_thread("t") is True

    def test_delete_takes_an_expired_lease(self, make_store: Callable[..., Any]) -> None:
        """A lease nobody renewed no longer protects the thread."""
        store = make_store(lease_seconds=0.05)
        lease = start(store)
        time.sleep(0.08)
        assert store.delete_thread("t") is True
        assert store.get_thread("t") is None and store.load_journal(lease.tid, 1) == []

    def test_prune_deletes_finished_threads_before_the_cutoff(self, store: Any) -> None:
        """Only threads whose latest run has one of the statuses and finished before the cutoff go; ids returned."""
        imported(store, "old-done", run_at(started_at=T0, finished_at=T0 + 1))
        imported(store, "old-failed", run_at(started_at=T0, status="failed", finished_at=T0 + 1))
        imported(store, "old-paused", run_at(started_at=T0, status="interrupted", finished_at=T0 + 1))
        imported(store, "running", run_at(started_at=T0, status="running"))
        imported(store, "new-done", run_at(started_at=T0, finished_at=T0 + 100))
        imported(store, "at-cutoff", run_at(started_at=T0, finished_at=T0 + 50))  # before means strictly before
        # judged by the latest run: an old completed run followed by a running one stays
        imported(store, "resumed", run_at(1, started_at=T0, finished_at=T0 + 1), run_at(2, T0 + 2, "running"))
        assert store.prune(T0 + 50, ["completed"], 100) == ["old-done"]
        assert store.get_thread("old-done") is None
        assert sorted(store.prune(T0 + 50, ["completed", "failed"], 100)) == ["old-failed"]
        assert store.prune(T0 + 50, ["completed", "failed"], 100) == []
        assert sorted(listed(store)) == ["at-cutoff", "new-done", "old-paused", "resumed", "running"]
        assert store.prune(T0 + 50.5, ["completed"], 100) == ["at-cutoff"]

    def test_prune_skips_live_leases_and_respects_the_limit(self, store: Any) -> None:
        """A finished thread someone holds a live lease on is kept; at most ``limit`` go per call."""
        for i in range(5):
            lease = start(store, f"t{i}", f"owner{i}")
            store.finish_run(lease, 1, RunOutcome("completed", output=b"P"))
        held = store.claim("t0", "holder")  # a completed thread claimed again: its run stays completed
        cutoff = time.time() + 60
        first = store.prune(cutoff, ["completed"], 2)
        assert len(first) == 2 and "t0" not in first
        rest = store.prune(cutoff, ["completed"], 2)
        assert len(rest) == 2 and "t0" not in rest
        assert store.prune(cutoff, ["completed"], 2) == []
        assert sorted(first + rest) == ["t1", "t2", "t3", "t4"]
        assert listed(store) == ["t0"]
        store.release(held)
        assert store.prune(cutoff, ["completed"], 2) == ["t0"]

    def test_import_thread_round_trips(self, store: Any) -> None:
        """An imported thread has the runs and journal rows it was given, and no lease: anyone can claim it."""
        runs = [
            run_at(1, started_at=T0),
            replace_run(run_at(2, started_at=T0 + 5, status="failed"), error=b"Perr", error_text="Boom",
                        retry_keys=("1", "2.0"), previous=b"Psave", recoveries=2, save=None),
        ]  # fmt: skip
        journal = [
            (1, row("0", payload=b"Pa")),
            (1, row("1", payload=b"Pb")),
            (2, row("0", payload=b"Pa2")),
            (2, row("1", 1, payload=b"Pfirst")),
            (2, row("1", 2, payload=b"P" + bytes(range(256)))),
            (2, JournalRow("2", 1, "other", 1, None, b"Pexc", T0 + 6, T0 + 6.5)),
        ]
        store.import_thread("t", runs, journal, b"imported-nonce!!")
        assert store.list_runs("t") == runs
        assert store.get_thread("t").nonce == b"imported-nonce!!"
        thread = store.get_thread("t")
        assert thread.run == runs[1] and thread.owner is None
        assert same_rows(store.load_journal(thread.tid, 1), [r for i, r in journal if i == 1])
        assert same_rows(store.load_journal(thread.tid, 2), [r for i, r in journal if i == 2])
        lease = store.claim("t", "me")  # resumes the failed run
        assert lease.fence > thread.fence and not lease.started
        assert store.get_thread("t").run.status == "running"
        store.append(lease, 2, [row("3")])  # writes under the new lease are accepted
        store.finish_run(lease, 2, RunOutcome("completed", output=b"P"))
        assert store.claim("t", "me", None, next_run(store, "t", b"Pin3")).thread.run.run_id == 3  # numbering continues

    def test_import_into_an_existing_thread_is_refused(self, store: Any) -> None:
        """ThreadExistsError when the id is taken, and the existing thread is left exactly as it was."""
        lease = start(store)
        store.append(lease, 1, [row("0", payload=b"Pmine")])
        store.finish_run(lease, 1, RunOutcome("completed", output=b"Pmine"))
        before = (store.get_thread("t"), store.list_runs("t"), store.load_journal(lease.tid, 1))
        with pytest.raises(ThreadExistsError):
            store.import_thread("t", [run_at(1), run_at(2)], [(1, row("0", payload=b"Ptheirs")), (2, row("9"))], None)
        assert (store.get_thread("t"), store.list_runs("t"), store.load_journal(lease.tid, 1)) == before
        assert store.load_journal(lease.tid, 2) == []
        store.claim("bare", "me")  # a thread without runs exists too
        with pytest.raises(ThreadExistsError):
            store.import_thread("bare", [run_at()], [], None)
        assert store.list_runs("bare") == []

    def test_an_imported_running_run_is_left_for_a_worker(self, store: Any) -> None:
        """An imported unfinished run is held by nobody: a worker reserves it like a submitted run."""
        store.import_thread("t", [run_at(1, status="running")], [(1, row("0"))], None)
        (lease,) = store.reserve("worker", ["ep"], 10)
        assert lease.thread_id == "t" and lease.thread.run.run_id == 1
        store.append(lease, 1, [row("1")])
        assert sorted(r.key for r in store.load_journal(lease.tid, 1)) == ["0", "1"]

    def test_import_with_a_repeated_journal_slot_imports_nothing(self, store: Any) -> None:
        """A (run, key, attempt) given twice fails the whole import, as a repeated slot fails an append."""
        with pytest.raises(StoreError):
            store.import_thread("t", [run_at()], [(1, row("0")), (1, row("0", payload=b"Pother"))], None)
        assert store.get_thread("t") is None

    def test_a_new_thread_keeps_the_nonce_of_its_first_run(self, store: Any) -> None:
        """The claim that creates a thread gives it the new run's nonce; every later read returns it."""
        lease = start(store)
        assert lease.thread.nonce == NONCE and store.get_thread("t").nonce == NONCE
        store.finish_run(lease, 1, RunOutcome("completed", output=b"P1", save=b"P1"))
        assert store.claim("t", "me", None, next_run(store, "t", b"Pin2")).thread.nonce == NONCE

    def test_a_claim_without_a_run_makes_a_random_nonce(self, store: Any) -> None:
        """A thread created by a claim that starts nothing still gets a nonce of its own, never another's."""
        a, b = store.claim("a", "me"), store.claim("b", "me")
        assert a.thread.nonce and b.thread.nonce and a.thread.nonce != b.thread.nonce
        assert store.get_thread("a").nonce == a.thread.nonce

    @pytest.mark.parametrize("stale", ["run_id", "nonce"])
    def test_a_new_run_signed_for_another_thread_state_does_not_start(self, store: Any, stale: str) -> None:
        """A new run expecting another run number or nonce (the thread changed since): the lease, and no run."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("completed", output=b"P1", save=b"P1"))
        wanted = next_run(store, "t", b"Pin2")
        wrong = (
            NewRun("ep", b"Pin2", None, 3, NONCE) if stale == "run_id" else NewRun("ep", b"Pin2", None, 2, b"x" * 16)
        )
        refused = store.claim("t", "me", None, wrong)
        assert not refused.started and refused.thread.run.run_id == 1
        assert [r.run_id for r in store.list_runs("t")] == [1]
        store.release(refused)
        assert store.claim("t", "me", None, wanted).started

    def test_rewrite_thread_replaces_values_and_nonce(self, store: Any) -> None:
        """rewrite_thread swaps the thread's nonce, its runs' values and its rows' payloads; nothing else moves."""
        lease = start(store)
        store.append(lease, 1, [row("0", payload=b"Pold0"), row("1", payload=b"Pold1")])
        store.finish_run(lease, 1, RunOutcome("completed", output=b"Pout", save=b"Psave"))
        thread = store.get_thread("t")
        (run,) = store.list_runs("t")
        rows = store.load_journal(thread.tid, 1)
        new_run = replace_run(run, input=b"Tin", output=b"Tout", save=b"Tsave")
        new_rows = [(1, r._replace(payload=b"T" + r.payload)) for r in rows]
        assert store.rewrite_thread(thread, b"m" * 16, [new_run], new_rows)
        after = store.get_thread("t")
        assert after.nonce == b"m" * 16 and after.fence == thread.fence and after.owner is None
        assert store.list_runs("t") == [new_run]
        assert sorted(r.payload for r in store.load_journal(thread.tid, 1)) == [b"TPold0", b"TPold1"]
        assert [(r.key, r.attempt, r.name, r.status) for r in store.load_journal(thread.tid, 1)] == [
            (r.key, r.attempt, r.name, r.status) for r in rows
        ]

    def test_rewrite_thread_refuses_a_thread_held_or_claimed_since(self, store: Any) -> None:
        """Nothing is written while someone holds the thread, or when it was claimed after it was read."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("completed", output=b"Pout", save=b"Psave"))
        read = store.get_thread("t")
        (run,) = store.list_runs("t")
        held = store.claim("t", "other")
        assert not store.rewrite_thread(store.get_thread("t"), b"m" * 16, [replace_run(run, output=b"Tx")], [])
        store.release(held)
        assert not store.rewrite_thread(read, b"m" * 16, [replace_run(run, output=b"Tx")], [])  # claimed since
        assert store.list_runs("t") == [run] and store.get_thread("t").nonce == NONCE

    def test_kv_namespace_encoding_makes_text_prefixes_label_prefixes(self) -> None:
        """An encoded prefix starts exactly the namespaces below it and decodes back; kv_prefix_end bounds it."""
        assert kv_namespace(("users", "1")) == "users\x1f1\x1f" and kv_labels("users\x1f1\x1f") == ("users", "1")
        assert kv_namespace(()) == "" and kv_labels("") == ()
        assert U1.startswith(kv_namespace(("users",))) and not USERS2.startswith(kv_namespace(("users",)))
        assert kv_prefix_end("users\x1f") == "users\x20" and kv_prefix_end("") is None
        assert kv_prefix_end("a\U0010ffff") == "b" and kv_prefix_end("\ud7ff") == "\ue000"
        for text in ("users\x1f", "users\x1f1\x1f", "users\x1fzz\x1f", "users\x1f\U0010ffff\x1f"):
            assert "users\x1f" <= text < "users\x20"
        assert not ("users\x1f" <= USERS2 < "users\x20")

    def test_kv_put_then_get(self, store: Any) -> None:
        """A put row reads back with its value and times; an unknown key or namespace reads as None."""
        before = time.time()
        store.kv_put(U1, "prefs", b'{"theme":"dark"}', None)
        row = store.kv_get(U1, "prefs", False)
        assert (row.namespace, row.key, row.value) == (U1, "prefs", b'{"theme":"dark"}')
        assert row.expires_at is None and row.ttl is None
        assert row.created_at == row.updated_at and before - 1 < row.created_at < time.time() + 1
        assert store.kv_get(U1, "nope", False) is None and store.kv_get(U2, "prefs", True) is None

    def test_kv_put_replaces_the_value_and_keeps_created_at(self, store: Any) -> None:
        """A second put replaces the value; created_at stays, updated_at moves on."""
        store.kv_put(U1, "k", b"one", None)
        first = store.kv_get(U1, "k", False)
        time.sleep(0.01)
        store.kv_put(U1, "k", b"two", None)
        second = store.kv_get(U1, "k", False)
        assert second.value == b"two" and second.created_at == first.created_at and second.updated_at > first.updated_at
        assert kv_keys(store.kv_search("", False)) == [(U1, "k")]

    def test_kv_values_keys_and_namespaces_are_kept_exactly(self, store: Any) -> None:
        """Any bytes, any Unicode key and namespace label (no NUL) come back as they were put."""
        blob = bytes(range(256)) * 300
        ns = kv_namespace(("ümlaut", "日本", "🙂 space"))
        store.kv_put(ns, "clé 🔑", blob, None)
        store.kv_put(ns, "", b"", None)
        assert store.kv_get(ns, "clé 🔑", False).value == blob and store.kv_get(ns, "", False).value == b""
        assert kv_keys(store.kv_search(kv_namespace(("ümlaut",)), False)) == [(ns, "clé 🔑"), (ns, "")]

    def test_kv_delete(self, store: Any) -> None:
        """A deleted row is gone; deleting an absent one does nothing."""
        store.kv_put(U1, "k", b"v", None)
        store.kv_put(U1, "other", b"v", None)
        store.kv_delete(U1, "k")
        store.kv_delete(U1, "k")
        store.kv_delete(U2, "never")
        assert store.kv_get(U1, "k", False) is None and kv_keys(store.kv_search("", False)) == [(U1, "other")]

    def test_kv_search_matches_label_prefixes_only(self, store: Any) -> None:
        """A prefix finds its namespace and those below, never a sibling sharing its first letters ("users2")."""
        for ns in (U1, U2, USERS2, kv_namespace(("users",))):
            store.kv_put(ns, "k", ns.encode(), None)
        users = kv_namespace(("users",))
        assert kv_keys(store.kv_search(users, False)) == [(U1, "k"), (U2, "k"), (users, "k")]
        assert kv_keys(store.kv_search(U1, False)) == [(U1, "k")]
        assert kv_keys(store.kv_search(USERS2, False)) == [(USERS2, "k")]
        assert len(store.kv_search("", False)) == 4 and store.kv_search(kv_namespace(("user",)), False) == []

    def test_kv_search_order_is_in_memory_stores(self, store: Any) -> None:
        """Namespaces in the order they were opened, keys in insertion order; an update keeps its place, a delete
        then put goes last; a namespace keeps its place while it has rows, and reopens last once emptied."""
        a, b, c = (kv_namespace(("n", x)) for x in "abc")
        for ns, key in [(b, "b1"), (a, "a1"), (b, "b2"), (a, "a2"), (c, "c1"), (a, "a3")]:
            store.kv_put(ns, key, b"v", None)
        assert kv_keys(store.kv_search("", False)) == [(b, "b1"), (b, "b2"), (a, "a1"), (a, "a2"), (a, "a3"), (c, "c1")]
        store.kv_put(b, "b1", b"updated", None)  # keeps its place
        store.kv_delete(a, "a1")  # a's first row: a keeps its place
        store.kv_delete(b, "b2")
        store.kv_put(b, "b2", b"again", None)  # goes last in b
        assert kv_keys(store.kv_search("", False)) == [(b, "b1"), (b, "b2"), (a, "a2"), (a, "a3"), (c, "c1")]
        store.kv_delete(b, "b1")
        store.kv_delete(b, "b2")
        store.kv_put(b, "b3", b"v", None)  # b was emptied: it reopens last
        assert kv_keys(store.kv_search("", False)) == [(a, "a2"), (a, "a3"), (c, "c1"), (b, "b3")]

    def test_kv_rows_expire_after_their_ttl(self, store: Any) -> None:
        """An expired row is invisible to get, search, namespaces and clear's count; a put over it starts anew."""
        store.kv_put(U1, "short", b"v", 0.3)
        store.kv_put(U1, "long", b"v", 60)
        store.kv_put(U2, "short", b"v", 0.3)
        row = store.kv_get(U1, "short", False)
        assert row.ttl == pytest.approx(0.3) and row.expires_at == pytest.approx(time.time() + 0.3, abs=0.2)
        assert len(store.kv_search("", False)) == 3
        time.sleep(0.45)
        assert store.kv_get(U1, "short", False) is None and store.kv_get(U1, "short", True) is None
        assert kv_keys(store.kv_search("", True)) == [(U1, "long")]
        assert store.kv_namespaces("") == [U1]
        store.kv_put(U1, "short", b"new", None)  # over the expired row: a new row, last in its namespace
        again = store.kv_get(U1, "short", False)
        assert again.value == b"new" and again.created_at > row.created_at and again.expires_at is None
        assert kv_keys(store.kv_search("", False)) == [(U1, "long"), (U1, "short")]
        assert store.kv_clear("") == 2

    def test_kv_refresh_extends_a_row_by_its_ttl(self, store: Any) -> None:
        """A read with refresh (get, touch or search) restarts a row's ttl; a read without it does not."""
        for key in ("get", "touch", "search", "plain"):
            store.kv_put(U1, key, b"v", 0.5)
        store.kv_put(U2, "forever", b"v", None)
        time.sleep(0.3)
        refreshed = store.kv_get(U1, "get", True)
        assert refreshed.expires_at == pytest.approx(time.time() + 0.5, abs=0.15)
        store.kv_touch([(U1, "touch"), (U2, "forever"), (U2, "absent")])
        assert store.kv_get(U1, "plain", False).expires_at < time.time() + 0.35
        found = {r.key: r for r in store.kv_search(U1, False)}
        assert set(found) == {"get", "touch", "search", "plain"}
        time.sleep(0.3)  # 0.6 s after the puts, 0.3 s after the refreshes
        assert store.kv_get(U1, "plain", False) is None and store.kv_get(U1, "search", False) is None
        assert store.kv_get(U1, "get", False) is not None and store.kv_get(U1, "touch", False) is not None
        assert store.kv_get(U2, "forever", True).expires_at is None
        store.kv_put(U1, "search", b"v", 0.5)
        time.sleep(0.3)
        (row,) = [r for r in store.kv_search(U1, True) if r.key == "search"]
        assert row.expires_at == pytest.approx(time.time() + 0.5, abs=0.15)
        time.sleep(0.3)
        assert store.kv_get(U1, "search", False) is not None

    def test_kv_namespaces_lists_live_namespaces_under_a_prefix(self, store: Any) -> None:
        """Each namespace with a live row, once, in code point order; only those under the prefix."""
        for ns in (USERS2, U2, U1, kv_namespace(("users",)), kv_namespace(("other", "x"))):
            store.kv_put(ns, "k", b"v", None)
            store.kv_put(ns, "k2", b"v", None)
        store.kv_put(kv_namespace(("gone",)), "k", b"v", 0.05)
        users = kv_namespace(("users",))
        assert store.kv_namespaces(users) == [users, U1, U2]
        time.sleep(0.1)
        assert store.kv_namespaces("") == sorted([USERS2, U2, U1, users, kv_namespace(("other", "x"))])

    def test_kv_clear_deletes_under_a_prefix_and_counts_live_rows(self, store: Any) -> None:
        """clear(prefix) deletes that prefix's rows (expired ones too) and returns how many were live."""
        for ns in (U1, U2, USERS2):
            store.kv_put(ns, "a", b"v", None)
            store.kv_put(ns, "b", b"v", None)
        store.kv_put(U1, "gone", b"v", 0.05)
        time.sleep(0.1)
        assert store.kv_clear(kv_namespace(("users",))) == 4
        assert kv_keys(store.kv_search("", False)) == [(USERS2, "a"), (USERS2, "b")]
        store.kv_put(U1, "gone", b"back", None)
        assert store.kv_get(U1, "gone", False).value == b"back"
        assert store.kv_clear("") == 3 and store.kv_search("", False) == []

    # -- cancel_run ------------------------------------------------------------------------------------------

    def test_cancel_run_fails_a_running_run_and_fences_its_executor(self, store: Any) -> None:
        """Cancelling the latest run, while an executor holds it, records the outcome, frees the thread and moves
        the fencing token on: the executor's next write is refused and nothing it writes lands."""
        lease = start(store)
        store.append(lease, 1, [row("0")])
        outcome = RunOutcome("failed", error=b"Perr", error_text="cancelled by an operator")
        assert store.cancel_run("t", 1, outcome) is True
        thread = store.get_thread("t")
        assert thread.run.status == "failed" and thread.run.error_text == "cancelled by an operator"
        assert thread.run.error == b"Perr" and thread.run.finished_at is not None
        assert thread.owner is None and thread.fence > lease.fence
        with pytest.raises(LeaseLostError):
            store.append(lease, 1, [row("1")])
        assert [r.key for r in store.load_journal(lease.tid, 1)] == ["0"]
        assert store.claim("t", "you").owner == "you"  # nobody holds it now

    def test_cancel_run_fails_an_interrupted_run(self, store: Any) -> None:
        """A run paused on an interrupt (no owner) is cancelled too."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("interrupted", interrupts=b"Pq"))
        assert store.cancel_run("t", 1, RunOutcome("failed", error_text="cancelled")) is True
        assert store.get_thread("t").run.status == "failed"

    def test_cancel_run_leaves_finished_older_and_unknown_runs_alone(self, store: Any) -> None:
        """A finished run, a run that is not the latest, and an unknown thread are not cancelled (False), and
        nothing changes."""
        lease = start(store)
        store.finish_run(lease, 1, RunOutcome("completed", output=b"P1", save=b"P1"))
        before = store.get_thread("t")
        cancel = RunOutcome("failed", error_text="cancelled")
        assert store.cancel_run("t", 1, cancel) is False
        assert store.get_thread("t") == before
        second = start(store)
        assert store.cancel_run("t", 1, cancel) is False  # run 2 is the latest
        assert store.get_thread("t").run.status == "running"
        store.append(second, 2, [row("0")])  # its executor still holds the lease
        assert store.cancel_run("nope", 1, cancel) is False and store.get_thread("nope") is None

    # -- reading a journal by parts (a replay's head and windows), same_database ------------------------------

    def test_journal_head_is_whole_up_to_its_limit_then_cut_before_a_key(self, store: Any) -> None:
        """journal_head gives every row when the run has at most ``limit``. Past it, a store that reads by keys
        gives at most ``limit`` rows, each key with all of its attempts (the cut never splits a key's attempts),
        and says they are not the whole journal; a store that does not may give them all, saying so."""
        lease = start(store)
        written = [row(str(i)) for i in range(6)] + [row("3", attempt=2), row("3", attempt=3)]
        store.append(lease, 1, written)
        head, whole = store.journal_head(lease.tid, 1, 8)
        assert whole and same_rows(head, written)
        for limit in range(1, 8):
            head, whole = store.journal_head(lease.tid, 1, limit)
            if whole:
                assert same_rows(head, written)
                continue
            assert len(head) <= limit
            for key in {r.key for r in head}:
                assert same_rows([r for r in head if r.key == key], [r for r in written if r.key == key])

    def test_journal_keys_reads_every_attempt_at_those_keys_and_nothing_else(self, store: Any) -> None:
        """journal_keys gives the rows of the run at the keys asked (all attempts, large payloads whole), none of
        another run's, and nothing for keys without rows."""
        lease = start(store)
        big = b"P" + bytes(range(256)) * 64  # 16 KiB: past any store's inline limit
        written = [row("0"), row("1"), row("1", attempt=2, payload=big), row("2", payload=big), row("1.0")]
        store.append(lease, 1, written)
        got = store.journal_keys(lease.tid, 1, ["1", "2", "7", "1.0"])
        assert same_rows(got, [r for r in written if r.key in ("1", "2", "1.0")])
        assert store.journal_keys(lease.tid, 1, []) == [] and store.journal_keys(lease.tid, 2, ["0"]) == []
        assert same_rows(store.load_journal(lease.tid, 1), written)

    def test_a_store_is_its_own_database(self, store: Any) -> None:
        """same_database is reflexive (whatever else a backend counts as the same journal)."""
        blocking = store if isinstance(store, Store) else store.store
        assert blocking.same_database(blocking)
