"""Workers: processes that carry the runs nobody is executing.

A run needs a worker when it is marked running but no live lease covers it:
it was submitted (`Entrypoint.submit`) or its executor died (a crash, a kill,
a machine that went away; its lease expired). Workers find such runs with
`Store.reserve`, which Postgres answers with ``FOR UPDATE SKIP LOCKED`` so that
many workers on many machines never take the same run, and resume each one by
its entrypoint's name, exactly as ``invoke(None, thread_id=...)`` would.

A run whose executors keep dying (a poison input that crashes the process, an
OOM kill) would otherwise go round the workers forever: after
``dead_letter_after`` recoveries it is marked failed with `DeadLetteredError`
instead, and waits for a person to resume it. A run that cannot even be read
(an input a key no longer verifies, a class that moved) is failed by the engine
with the reason. And a run that a carry leaves running and unowned without
having run it (journaled by another Python, which another worker may read; the
database failed as it finished) is not taken again at once: the worker backs
off from that thread, doubling the wait each time.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from . import _clock
from ._api import Entrypoint, as_entrypoint
from ._codec import Codec
from ._interrupts import Interrupted, Suspended
from ._leases import new_owner, retire
from ._serde import error_text
from ._urls import resolve_store
from ._writers import DURABILITY_MODES, Durability
from .errors import ConfigurationError, DeadLetteredError, DurableError, LeaseLostError, ThreadBusyError
from .stores._base import Lease, RunOutcome, Store

log = logging.getLogger("durable.worker")

_MAX_BACKOFF = 300.0  # seconds: the longest a worker leaves a thread alone after failed carries
Outcome = Literal["completed", "interrupted", "sleeping", "failed", "dead_lettered", "taken", "lost"]


@dataclass
class WorkerStats:
    """What a worker's `Worker.run` has carried, by how each run it picked up ended."""

    completed: int = 0
    interrupted: int = 0
    sleeping: int = 0  # suspended in a long durable sleep: a worker resumes it when it is due
    failed: int = 0
    dead_lettered: int = 0
    taken: int = 0  # another executor got to the run first
    lost: int = 0  # the lease was lost mid-run (this worker stalled past it)

    @property
    def total(self) -> int:
        return (
            self.completed
            + self.interrupted
            + self.sleeping
            + self.failed
            + self.dead_lettered
            + self.taken
            + self.lost
        )


class Worker:
    """Carries submitted runs and recovers crashed ones, for a set of entrypoints on one store.

    ``entrypoints`` are found by the name their runs were recorded under
    (``@entrypoint(name=...)``, default the function's qualified name), so the
    name must be unique among them and stable across deployments. The store is
    ``checkpointer`` (a store or URL) if given, else the one the entrypoints
    share. Up to ``concurrency`` runs execute at once, each in its own thread;
    the store is polled every ``poll_interval`` seconds while there is room. A
    run taken over from ``dead_letter_after`` dead executors is dead-lettered.

    `run` blocks until `stop` is called (from a signal handler, another thread);
    runs in flight then finish. `run_once` carries what is waiting now and returns.
    """

    def __init__(
        self,
        entrypoints: Iterable[Entrypoint[Any, Any] | Any],
        *,
        checkpointer: Store | str | None = None,
        concurrency: int = 4,
        poll_interval: float = 1.0,
        dead_letter_after: int = 3,
        durability: Durability = "sync",
    ) -> None:
        given_eps = list(entrypoints)
        if not given_eps:
            raise ConfigurationError("a Worker needs at least one entrypoint to carry")
        by_name: dict[str, Entrypoint[Any, Any]] = {}
        eps: list[Entrypoint[Any, Any]] = []
        for given in given_eps:
            ep = as_entrypoint(given)
            if ep is None:
                raise ConfigurationError(
                    f"{given!r} is not an entrypoint (decorate it with @entrypoint) nor a compiled graph"
                )
            eps.append(ep)
            other = by_name.setdefault(ep.name, ep)
            if other is not ep and other.__wrapped__ is not ep.__wrapped__:
                raise ConfigurationError(
                    f"two entrypoints are named {ep.name!r} ({_where(other)} and {_where(ep)}): a worker finds a "
                    f"run's code by its name, so give one of them @entrypoint(name=...)"
                )
        if concurrency < 1:
            raise ConfigurationError(f"concurrency={concurrency!r}: use 1 or more")
        if poll_interval <= 0:
            raise ConfigurationError(f"poll_interval={poll_interval!r}: use a positive number of seconds")
        if dead_letter_after < 1:
            raise ConfigurationError(f"dead_letter_after={dead_letter_after!r}: use 1 or more")
        if durability not in DURABILITY_MODES:
            raise ConfigurationError(f"durability={durability!r}: use 'sync', 'async' or 'exit'")
        self.entrypoints = by_name
        # Runs are found by the name they were recorded under: today's, or one an entrypoint had by default before.
        self._recorded = {alias: ep for ep in by_name.values() for alias in ep._spec.aliases} | by_name
        self.store = resolve_store(checkpointer) if checkpointer is not None else _shared_store(eps)
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.dead_letter_after = dead_letter_after
        self.durability = durability
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stats_lock = threading.Lock()
        self._loops = threading.local()
        self._opened: list[Any] = []
        # thread id -> (not before, the wait after the next failure): threads a carry left for nobody.
        self._backoff: dict[str, tuple[float, float]] = {}
        self._backoff_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Worker {sorted(self.entrypoints)} on {self.store!r}>"

    def wake(self) -> None:
        """Poll now rather than at the next interval (work was just made due: an answer journaled in this process)."""
        self._wake.set()

    def entrypoint_for(self, name: str) -> Entrypoint[Any, Any] | None:
        """The entrypoint that carries runs recorded under ``name`` (its name today, or one it had), if any."""
        return self._recorded.get(name)

    def stop(self) -> None:
        """Stop taking runs; `run` returns once the runs in flight have finished. Safe from a signal handler."""
        self._stop.set()
        self._wake.set()

    def run(self, *, until_idle: bool = False) -> WorkerStats:
        """Carry runs until `stop` (or, with ``until_idle``, until none is waiting or in flight).

        Returns what this call carried (also ``worker.stats`` while it runs).
        """
        self._stop.clear()
        self.stats = WorkerStats()
        owner = new_owner()
        log.info("worker %s carrying %s on %r", owner, sorted(self.entrypoints), self.store)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="durable-worker")
        inflight: set[Future[Outcome]] = set()
        # A store that can announce work (Postgres) wakes us at once; polling still finds anything missed.
        unlisten = None if until_idle else self.store.listen_for_work(self._wake)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                inflight = {f for f in inflight if not f.done()}
                got = self._reserve(owner, self.concurrency - len(inflight)) if len(inflight) < self.concurrency else []
                got, deferred = self._not_backing_off(got)
                for lease in got:
                    fut = pool.submit(self._carry, lease)
                    fut.add_done_callback(lambda _: self._wake.set())
                    inflight.add(fut)
                if until_idle and not got and not inflight:
                    break
                if got and not deferred and len(inflight) < self.concurrency:
                    continue  # there may be more waiting
                # Jitter keeps a fleet of workers from polling in lockstep.
                self._wake.wait(self.poll_interval * random.uniform(0.8, 1.2))
        finally:
            if unlisten is not None:
                unlisten()
            pool.shutdown(wait=True)
            self._close_loops()
            retire(owner)
        return self.stats

    def run_once(self) -> WorkerStats:
        """Carry the runs waiting now (up to ``concurrency`` at a time), then return."""
        return self.run(until_idle=True)

    # -- one run -----------------------------------------------------------------------------

    def _reserve(self, owner: str, limit: int) -> list[Lease]:
        try:
            return self.store.reserve(owner, list(self._recorded), limit, _clock.clock.time())
        except DurableError:
            log.warning("looking for runs on %r failed; trying again", self.store, exc_info=True)
            return []

    def _not_backing_off(self, leases: list[Lease]) -> tuple[list[Lease], bool]:
        """The leases to carry now; those on threads the worker backs off from are let go at once."""
        now = _clock.clock.time()
        with self._backoff_lock:
            waiting = {t for t, (until, _) in self._backoff.items() if until > now}
        keep = [lease for lease in leases if lease.thread_id not in waiting]
        for lease in leases:
            if lease.thread_id in waiting:
                self.store.release(lease)
        return keep, len(keep) != len(leases)

    def _after_failure(self, thread_id: str) -> None:
        """A carry failed. If it left the run running and held by nobody (it will be reserved again at once),
        back off from the thread; otherwise the run's failure is recorded, and it waits for a person."""
        try:
            thread = self.store.get_thread(thread_id)
        except DurableError:
            thread = None
        run = thread.run if thread is not None else None
        left = thread is not None and thread.owner is None and run is not None and run.status == "running"
        with self._backoff_lock:
            if not left:
                self._backoff.pop(thread_id, None)
                return
            _, wait = self._backoff.get(thread_id, (0.0, self.poll_interval))
            self._backoff[thread_id] = (_clock.clock.time() + wait, min(wait * 2, _MAX_BACKOFF))
        log.warning("thread %r was left unfinished by a failed carry: not taken again for %.1fs", thread_id, wait)

    def _carry(self, lease: Lease) -> Outcome:
        run = lease.thread.run
        assert run is not None
        ep = self._recorded[run.entrypoint]
        thread_id = lease.thread_id
        try:
            if run.recoveries >= self.dead_letter_after:
                self._dead_letter(ep, lease)
                outcome: Outcome = "dead_lettered"
                log.error("dead-lettered run #%d of thread %r: %d executors died running it",
                          run.run_id, thread_id, run.recoveries)  # fmt: skip
            else:
                if run.recoveries:
                    log.warning("recovering run #%d of thread %r (its executor died; recovery %d of %d)",
                                run.run_id, thread_id, run.recoveries, self.dead_letter_after - 1)  # fmt: skip
                out = self._resume(ep, thread_id, lease)
                outcome = (
                    "interrupted"
                    if isinstance(out, Interrupted)
                    else "sleeping"
                    if isinstance(out, Suspended)
                    else "completed"
                )
                log.info("run #%d of thread %r %s", run.run_id, thread_id, outcome)
                with self._backoff_lock:
                    self._backoff.pop(thread_id, None)
        except ThreadBusyError:
            outcome = "taken"
        except LeaseLostError:
            outcome = "lost"
            log.warning("lost the lease on thread %r mid-run; its new owner carries it on", thread_id)
        except Exception:
            outcome = "failed"
            log.warning("run #%d of thread %r failed", run.run_id, thread_id, exc_info=True)
            self._after_failure(thread_id)
        except BaseException:
            self.store.release(lease)  # let another worker have it at once
            raise
        with self._stats_lock:
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        return outcome

    def _resume(self, ep: Entrypoint[Any, Any], thread_id: str, reserved: Lease) -> Any:
        # A sleep much longer than a poll is better spent without the run: the worker lets it go, and
        # whichever worker polls after it is due resumes it.
        suspend = max(1.0, 2 * self.poll_interval)
        if not ep._spec.is_async:
            return ep._invoke(None, thread_id, self.durability, None, self.store, reserved, suspend)
        # One event loop per worker thread, kept between runs, so async connections are reused.
        loop = getattr(self._loops, "loop", None)
        if loop is None:
            import asyncio

            loop = self._loops.loop = asyncio.new_event_loop()
            self._opened.append(loop)
        return loop.run_until_complete(
            ep._ainvoke(None, thread_id, self.durability, None, self.store, reserved, suspend)
        )

    def _dead_letter(self, ep: Entrypoint[Any, Any], lease: Lease) -> None:
        run = lease.thread.run
        assert run is not None
        _, ring = ep._ring_for(self.store)
        exc = DeadLetteredError(lease.thread_id, run.run_id, run.recoveries)
        codec = Codec(ep._spec.serde, ring, lease.thread_id, lease.thread.nonce, run.entrypoint)
        error = codec.dump_error(exc, run.run_id, "#error")
        self.store.finish_run(lease, run.run_id, RunOutcome("failed", error=error, error_text=error_text(exc)))

    def _close_loops(self) -> None:
        for loop in self._opened:
            loop.close()
        self._opened.clear()
        self._loops = threading.local()


def _where(ep: Entrypoint[Any, Any]) -> str:
    fn = ep.__wrapped__
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def _shared_store(eps: list[Entrypoint[Any, Any]]) -> Store:
    """The one store every entrypoint journals to (two stores on the same database count as one:
    `Store.same_database`)."""
    stores: list[Store] = []
    for ep in eps:
        store = ep.checkpointer
        if not any(known.same_database(store) for known in stores):
            stores.append(store)
    if len(stores) != 1:
        raise ConfigurationError(
            f"these entrypoints journal to different stores ({', '.join(sorted(map(repr, stores)))}): "
            f"give the worker one with Worker(..., checkpointer=...) (or durable worker --url ...)"
        )
    return stores[0]
