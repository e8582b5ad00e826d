"""Workflows the fault-point acceptance tests crash with `durable.testing.crash_matrix` (imported by its subprocesses).

``crash_matrix`` runs every subprocess in its cell's own directory, so each ``step`` body appends
``"<phase> <pid> <i>\\n"`` to ``count.txt`` there (opened with "a", flushed and fsynced) as the last thing
it does before returning: a line means the body ran to its end. ``<phase>`` is ``$DURABLE_CRASH_PHASE``
(``reference``, ``crash`` or ``resume``), so the tests can tell which process ran which body.

For input ``n`` every entrypoint returns ``{"values": [i*i + 1 for i in range(n)], "total": ...}``:

* ``seq``: a sync entrypoint calling ``step(i).result()`` one after the other (keys ``"0"`` .. ``"n-1"``);
* ``fan``: a sync entrypoint starting every ``step(i)`` first, then gathering the results (tasks run on the pool);
* ``afan``: an async entrypoint gathering async ``astep(i)`` tasks with ``asyncio.gather`` (on the event loop);
* ``impure``: like ``seq``, plus the pid of the process that finished it: its result differs after a crash,
  which the harness must report.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from durable import entrypoint, task

COUNT_FILE = "count.txt"


def record(i: int) -> None:
    """Append ``"<phase> <pid> <i>"`` to the count file of the working directory, durably."""
    with open(COUNT_FILE, "a") as f:
        f.write(f"{os.environ.get('DURABLE_CRASH_PHASE', '-')} {os.getpid()} {i}\n")
        f.flush()
        os.fsync(f.fileno())


@task(name="step")
def step(i: int) -> int:
    record(i)
    return i * i + 1


@task(name="astep")
async def astep(i: int) -> int:
    record(i)
    return i * i + 1


def summary(values: list[int]) -> dict[str, Any]:
    return {"values": values, "total": sum(values)}


@entrypoint(checkpointer="memory://")  # crash_matrix replaces it with each cell's SQLite file
def seq(n: int) -> dict[str, Any]:
    return summary([step(i).result() for i in range(n)])


@entrypoint(checkpointer="memory://")
def fan(n: int) -> dict[str, Any]:
    futures = [step(i) for i in range(n)]
    return summary([f.result() for f in futures])


@entrypoint(checkpointer="memory://")
async def afan(n: int) -> dict[str, Any]:
    return summary(list(await asyncio.gather(*[astep(i) for i in range(n)])))


@entrypoint(checkpointer="memory://")
def impure(n: int) -> dict[str, Any]:
    return {**summary([step(i).result() for i in range(n)]), "pid": os.getpid()}
