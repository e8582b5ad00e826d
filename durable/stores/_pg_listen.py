"""Idle workers hear about new work at once: a thread LISTENing on the store's channel.

A release of an unfinished run (a submit, mostly) sends ``pg_notify`` on the
schema's channel; each listening worker sets its wake event and polls now rather
than at its next interval. Notices are a hint: a worker that misses one (its
connection dropped) still finds the work by polling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def listen(dsn: str, channel: str, wake: threading.Event, connect_timeout: float) -> Callable[[], None]:
    """Start the listener; returns the function that stops it (and waits for it, briefly)."""
    stopping = threading.Event()

    def loop() -> None:
        import psycopg

        while not stopping.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(connect_timeout))) as conn:
                    conn.execute(f'LISTEN "{channel}"')
                    wake.set()  # anything released while we were not listening is found by polling now
                    while not stopping.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            wake.set()
            except psycopg.Error:
                stopping.wait(1.0)  # the server is away: polling carries on; try again shortly

    thread = threading.Thread(target=loop, name=f"durable-listen-{channel}", daemon=True)
    thread.start()

    def stop(*_: Any) -> None:
        stopping.set()
        thread.join(2.0)

    return stop
