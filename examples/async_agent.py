"""An async workflow: tasks on the event loop, a nested task, and a sub-workflow, all journaled.

python examples/async_agent.py
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile

from durable import RetryPolicy, entrypoint, task

DB = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "agent.db")
attempts = {"search": 0}


@task(retry=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
async def search(query: str) -> list[str]:
    attempts["search"] += 1
    if attempts["search"] == 1:
        raise ConnectionError("search API hiccup")  # retried inside the task, never seen by the workflow
    await asyncio.sleep(0.01)
    return [f"{query}: result {i}" for i in range(3)]


@task
def pick(n: int) -> int:
    return random.randrange(n)  # non-deterministic, so it is a task: replays return the same choice


@task
async def draft(hit: str) -> str:
    await asyncio.sleep(0.01)
    return f"draft based on {hit!r}"


@entrypoint(checkpointer=DB)
async def research(topic: str) -> str:
    hits = await search(topic)
    choice = await pick(len(hits))
    return await draft(hits[choice])


@entrypoint(checkpointer=DB)
async def agent(topics: list[str]) -> list[str]:
    # Sub-workflows invoked without a thread id join this run's journal.
    return list(await asyncio.gather(*(research.ainvoke(t) for t in topics)))


async def main() -> None:
    first = await agent.ainvoke(["durable execution", "sqlite wal"], thread_id="agent-1")
    again = await agent.ainvoke(None, thread_id="agent-1")  # finished: the stored value, nothing runs
    assert first == again
    for line in first:
        print(line)
    state = agent.get_state(thread_id="agent-1")
    print(f"\n{len(state.entries)} journal entries:", ", ".join(f"{e.key}={e.task}" for e in state.entries))


asyncio.run(main())
