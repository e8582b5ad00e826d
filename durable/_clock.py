"""The clock durable reads and sleeps by: retries' backoff, durable sleeps and `durable.now()`.

One module-level object, so tests can swap it (`durable.testing.FakeClock`) and
run a week of backoff and sleeping in microseconds.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall-clock time and real sleeping."""

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(seconds, 0.0))

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Sleep, unless ``stop`` is set first; whether it was."""
        return stop.wait(seconds) if seconds > 0 else stop.is_set()

    async def await_(self, stop: threading.Event, seconds: float) -> bool:
        """`wait` for async code: ``stop`` is set by another thread, so it is looked at every second."""
        import asyncio

        end = time.monotonic() + seconds
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 1.0))
        return True


clock = Clock()
