"""Worker for the disk-full tests (run as ``python _disk_full_worker.py DB sync|async fill|resume``, never imported).

The workflow is ``a -> b -> c -> d``. Every task body appends its name to ``DB.calls`` before it returns.

- ``fill``: task ``c``'s body lowers ``RLIMIT_FSIZE`` to the WAL's current size, so from then on no file
  this process writes may grow: the commit of ``c``, the run's outcome and the lease's release all fail,
  as on a full disk (SIGXFSZ is ignored, so a write fails with EFBIG instead of killing the process).
  The worker catches the error, lifts the limit, and resumes the thread with ``invoke(None)`` in the
  same process, with the same store.
- ``resume``: only resumes the thread with ``invoke(None)``.

The last line of stdout is a JSON object: the error of the filled run (type, message, the types of its
``__cause__`` and ``__context__`` chain), the journal as it was after the error (``committed``), and the
outcome of the resume (``value``, or ``resume_error`` / ``resume_message``).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from durable import SQLiteStore, entrypoint, task

BIG = 5000  # c's result: several pages, so its commit must grow the WAL


def main() -> None:
    db, flavor, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    store = SQLiteStore(db)
    calls = Path(f"{db}.calls")
    fill = [mode == "fill"]

    def hit(name: str) -> None:
        with calls.open("a") as f:
            f.write(name + "\n")

    def disk_full() -> None:
        if fill[0]:
            wal = os.path.getsize(f"{db}-wal")
            resource.setrlimit(resource.RLIMIT_FSIZE, (wal, resource.RLIM_INFINITY))

    if flavor == "sync":

        @task(name="a")
        def a(x: int) -> int:
            hit("a")
            return x + 1

        @task(name="b")
        def b(x: int) -> int:
            hit("b")
            return x * 2

        @task(name="c")
        def c(x: int) -> str:
            hit("c")
            disk_full()
            return "x" * BIG

        @task(name="d")
        def d(s: str) -> int:
            hit("d")
            return len(s)

        @entrypoint(checkpointer=store, name="flow")
        def flow(x: int) -> int:
            y = b(a(x).result()).result()
            return d(c(y).result()).result() + y

        def run(value: Any) -> Any:
            return flow.invoke(value, thread_id="t")

    else:

        @task(name="a")
        async def a(x: int) -> int:
            hit("a")
            return x + 1

        @task(name="b")
        async def b(x: int) -> int:
            hit("b")
            return x * 2

        @task(name="c")
        async def c(x: int) -> str:
            hit("c")
            disk_full()
            return "x" * BIG

        @task(name="d")
        async def d(s: str) -> int:
            hit("d")
            return len(s)

        @entrypoint(checkpointer=store, name="flow")
        async def flow(x: int) -> int:
            y = await b(await a(x))
            return await d(await c(y)) + y

        def run(value: Any) -> Any:
            return asyncio.run(flow.ainvoke(value, thread_id="t"))

    out: dict[str, Any] = {}
    if mode == "fill":
        try:
            run(1)
        except Exception as exc:
            out["error"] = type(exc).__name__
            out["message"] = str(exc)
            out["cause"] = type(exc.__cause__).__module__ + "." + type(exc.__cause__).__name__
            chain, ctx = [], exc.__context__
            while ctx is not None:
                chain.append(type(ctx).__name__)
                ctx = ctx.__context__
            out["context"] = chain
        fill[0] = False
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        state = flow.get_state(thread_id="t")
        out["committed"] = [[e.key, e.task, e.status] for e in state.entries]
    try:
        out["value"] = run(None)
    except Exception as exc:
        out["resume_error"] = type(exc).__name__
        out["resume_message"] = str(exc)
    store.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
