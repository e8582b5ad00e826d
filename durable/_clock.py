"""The clock durable reads and sleeps by: retries' backoff, durable sleeps and `durable.now()`.

One module-level object, so tests can swap it (`durable.testing.FakeClock`) and
run a week of backoff and sleeping in microseconds.
"""

from __future__ import annotations

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


clock = Clock()
