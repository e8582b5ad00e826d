"""Idle workers hear about new work at once: a thread subscribed to the store's channel of wake-ups.

A store sends a wake-up when it lets a run go unfinished (a submit, mostly): Postgres with ``pg_notify``, Redis with
``PUBLISH``. Each listening worker sets its wake event and polls now rather than at its next interval. Wake-ups are a
hint: a worker that misses one (its connection dropped) still finds the work by polling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

Subscription = Callable[[], AbstractContextManager[Callable[[float], bool]]]
"""Opens a connection subscribed to the channel; what it yields waits up to that many seconds for a wake-up and
says whether one came."""


def listen(
    name: str, subscribe: Subscription, errors: tuple[type[BaseException], ...], wake: threading.Event
) -> Callable[[], None]:
    """Start the listener; returns the function that stops it (and waits for it, briefly). ``errors`` are the
    client's: on one, the listener waits a second and subscribes again."""
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            try:
                with subscribe() as heard:
                    wake.set()  # anything released while we were not listening is found by polling now
                    while not stopping.is_set():
                        if heard(0.5):
                            wake.set()
            except errors:
                stopping.wait(1.0)  # the server is away: polling carries on; try again shortly

    thread = threading.Thread(target=loop, name=f"durable-listen-{name}", daemon=True)
    thread.start()

    def stop(*_: Any) -> None:
        stopping.set()
        thread.join(2.0)

    return stop
