"""Who holds a thread: owner ids, telling a dead local owner, and the heartbeat that renews leases."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from .stores._base import Lease, Store

_HOST = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "localhost")


_active: set[str] = set()  # this process's owners whose invoke has not returned yet


def new_owner() -> str:
    """A unique executor id: host, pid, and a token telling two invokes of one process apart."""
    owner = f"{_HOST}:{os.getpid()}:{os.urandom(4).hex()}"
    _active.add(owner)
    return owner


def retire(owner: str) -> None:
    """The invoke that used ``owner`` has returned: a lease it could not release is dead."""
    _active.discard(owner)


def owner_is_dead(owner: str) -> bool:
    """True only when the owner is a process on this host that no longer exists.

    This lets a run whose process was killed be resumed at once, instead of
    after its lease expires. Owners on other hosts are never judged dead here.
    """
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        # One of ours: alive while its invoke runs, dead once it returned without releasing
        # (say the disk was full for the release too).
        return owner not in _active
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # A killed child that its parent has not reaped yet is a zombie: dead all the same.
            if f.read().rpartition(b")")[2].split()[0] == b"Z":
                return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Heartbeat:
    """One daemon thread per process renews every held lease a third of the way through its term.

    Adding a lease does not renew anything (the claim has just set its expiry);
    it only wakes the thread when the new lease is due before its next beat.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(lease) -> (store, lease, due, what to call if a renewal finds the lease gone)
        self._leases: dict[int, tuple[Store, Lease, float, Callable[[], None] | None]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next = float("inf")

    def add(self, store: Store, lease: Lease, on_lost: Callable[[], None] | None = None) -> None:
        due = time.monotonic() + store.lease_seconds / 3
        with self._lock:
            self._leases[id(lease)] = (store, lease, due, on_lost)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="durable-heartbeat", daemon=True)
                self._thread.start()
            elif due < self._next:
                self._wake.set()

    def remove(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(id(lease), None)

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                due = [(key, s, lease, lost) for key, (s, lease, at, lost) in self._leases.items() if at <= now]
            for key, store, lease, on_lost in due:
                try:
                    if not store.renew(lease) and on_lost is not None:
                        on_lost()
                except Exception:
                    # The next beat tries again; the lease only lapses if every renewal fails.
                    import logging

                    logging.getLogger("durable").warning(
                        "renewing the lease on thread %r failed", lease.thread_id, exc_info=True
                    )
                with self._lock:
                    if key in self._leases:
                        self._leases[key] = (store, lease, now + store.lease_seconds / 3, on_lost)
            with self._lock:
                self._next = min((entry[2] for entry in self._leases.values()), default=now + 60.0)
                self._wake.clear()
            self._wake.wait(max(self._next - time.monotonic(), 0.0))


heartbeat = Heartbeat()
