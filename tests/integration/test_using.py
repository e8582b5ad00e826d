"""`Entrypoint.using`: the same workflow on another store, for a thread moved there."""

from __future__ import annotations

from typing import Any

import pytest

from durable import ConfigurationError, MemoryStore, Store, Threads, entrypoint, task


def test_using_runs_the_same_entrypoint_on_another_store(store: Store, calls: Any) -> None:
    @task
    def double(x: int) -> int:
        calls.hit("double")
        return 2 * x

    @entrypoint(checkpointer=MemoryStore(), name="pipe")
    def pipe(n: int) -> int:
        return sum(double(i).result() for i in range(n))

    assert pipe.invoke(3, thread_id="t") == 6
    bundle = pipe.threads.export("t")
    Threads(store).import_bundle(bundle)
    moved = pipe.using(store)
    assert moved.checkpointer is store and pipe.checkpointer is not store
    assert (moved.name, moved.invoke(None, thread_id="t")) == ("pipe", 6)  # finished there too: nothing runs
    assert calls["double"] == 3
    assert moved.invoke(2, thread_id="t") == 2  # a new run on the other store only
    assert pipe.get_state(thread_id="t").run_id == 1 and moved.get_state(thread_id="t").run_id == 2
    with pytest.raises(ConfigurationError):
        pipe.using(42)  # type: ignore[arg-type]
