"""The README's quickstart, runnable: a pipeline fails partway, then resumes without redoing finished work.

    python examples/quickstart.py

The first invoke fails at page 3 (a flaky "LLM"), the second resumes the same
thread with ``None``: pages 0-2 and 4 come back from the journal, page 3 runs
again and succeeds. ``get_state`` shows the journal, failed attempt included.
"""

from __future__ import annotations

import os
import tempfile

from durable import SQLiteStore, entrypoint, task

flaky = {"page 3": 1}  # page 3 fails once, like an LLM call that times out
calls: list[int] = []


@task
def summarize(page: int) -> str:
    calls.append(page)
    if flaky.get(f"page {page}", 0) > 0:
        flaky[f"page {page}"] -= 1
        raise TimeoutError(f"the model timed out on page {page}")
    return f"summary of page {page}"


store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "quickstart.db"))


@entrypoint(checkpointer=store)
def pipeline(pages: int) -> list[str]:
    futures = [summarize(p) for p in range(pages)]  # started at once, run in parallel
    return [f.result() for f in futures]


try:
    pipeline.invoke(5, thread_id="job-1")
except TimeoutError as exc:
    print(f"first attempt failed: {exc}; ran pages {sorted(calls)}")

calls.clear()
print("resumed:", pipeline.invoke(None, thread_id="job-1"))
print(f"the resume ran only pages {calls}")
assert calls == [3]

state = pipeline.get_state(thread_id="job-1")
print(f"\nthread {state.thread_id}: {state.status}")
for entry in state.entries:
    outcome = entry.result if entry.status == "ok" else f"{type(entry.error).__name__}: {entry.error}"
    print(f"  key {entry.key:>2}  {entry.task}  attempt {entry.attempt}  {entry.status:5}  {outcome}")

print("\nasking again returns the stored value without running anything:", pipeline.invoke(None, thread_id="job-1"))
