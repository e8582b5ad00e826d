"""The hot path alone, for profilers: N sequential tasks on SQLite, durability=sync.

python -m cProfile -s cumtime benchmarks/profile_hot_path.py | head -40
python benchmarks/profile_hot_path.py --top 15      # profile only the invoke (no import, no setup)
python benchmarks/profile_hot_path.py --n 100000 --synchronous FULL
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from durable import SQLiteStore, entrypoint, task  # noqa: E402


@task
def step(i: int) -> int:
    return i


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    ap.add_argument("--durability", default="sync", choices=["sync", "async", "exit"])
    ap.add_argument("--top", type=int, default=0, help="profile the invoke itself and print the top K by cumtime")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="durable-profile-") as d:
        store = SQLiteStore(str(Path(d) / "journal.db"), synchronous=args.synchronous)

        @entrypoint(checkpointer=store)
        def seq(n: int) -> int:
            total = 0
            for i in range(n):
                total += step(i).result()
            return total

        seq.invoke(1, thread_id="warmup", durability=args.durability)
        prof = cProfile.Profile() if args.top else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        out = seq.invoke(args.n, thread_id="t1", durability=args.durability)
        if prof:
            prof.disable()
        dt = time.perf_counter() - t0
        assert out == args.n * (args.n - 1) // 2, out
        print(
            f"{args.n:,} tasks, SQLite {args.synchronous}, durability={args.durability}: "
            f"{dt * 1e6 / args.n:.1f} µs/task{' (under the profiler)' if prof else ''}"
        )
        if prof:
            pstats.Stats(prof).sort_stats("cumtime").print_stats(args.top)
        close = getattr(store, "close", None)
        if callable(close):
            close()


if __name__ == "__main__":
    main()
