"""The ``durable`` command (also ``python -m durable``).

``durable worker TARGET...`` imports the user's modules and carries their
entrypoints' submitted and crashed runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from .errors import ConfigurationError, DurableError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="durable", description="Durable execution for plain Python.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    worker = commands.add_parser(
        "worker",
        help="carry submitted runs and recover crashed ones",
        description="Import the modules, then carry their entrypoints' submitted runs and recover the runs "
        "whose executor died, until SIGTERM or Ctrl-C (runs in flight then finish). Start several, "
        "on several machines, against one Postgres database.",
    )
    worker.add_argument(
        "targets", nargs="+", metavar="TARGET", help="a module (myapp.flows) or one entrypoint (myapp.flows:pipeline)"
    )
    worker.add_argument("--url", help="the store (default: the entrypoints' own, or $DURABLE_URL)")
    worker.add_argument("--concurrency", type=int, default=4, help="runs carried at once (default 4)")
    worker.add_argument("--poll-interval", type=float, default=1.0, help="seconds between looks (default 1)")
    worker.add_argument(
        "--dead-letter-after", type=int, default=3, help="dead-letter a run after this many dead executors"
    )
    worker.add_argument("--until-idle", action="store_true", help="exit once nothing is waiting or running")
    worker.add_argument("-v", "--verbose", action="store_true", help="log every run")

    args = parser.parse_args(argv)
    try:
        return _worker(args)
    except DurableError as exc:
        print(f"durable {args.command}: {exc}", file=sys.stderr)
        return 1


def load_entrypoints(targets: Sequence[str]) -> list[Any]:
    """The entrypoints named by ``module`` (all of a module's) or ``module:attribute`` targets."""
    from ._api import Entrypoint

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the user's modules sit in the working directory
    found: list[Any] = []
    for target in targets:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import {module_name!r} (from {target!r}): {exc}") from exc
        if attr:
            ep = getattr(module, attr, None)
            if not isinstance(ep, Entrypoint):
                raise ConfigurationError(f"{target!r} is not an entrypoint (got {type(ep).__name__})")
            found.append(ep)
            continue
        eps = [v for v in vars(module).values() if isinstance(v, Entrypoint)]
        if not eps:
            raise ConfigurationError(f"module {module_name!r} defines no @entrypoint at its top level")
        found.extend(eps)
    return found


def _worker(args: argparse.Namespace) -> int:
    from ._worker import Worker

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    worker = Worker(
        load_entrypoints(args.targets),
        checkpointer=args.url,
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        dead_letter_after=args.dead_letter_after,
    )
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: do not wait for the runs in flight
        stopping = True
        print("durable worker: stopping; runs in flight finish first", file=sys.stderr, flush=True)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"durable worker: carrying {', '.join(sorted(worker.entrypoints))} on {worker.store!r}", flush=True)
    stats = worker.run(until_idle=args.until_idle)
    lost = f"; {stats.lost} lost to another worker after stalling past the lease" if stats.lost else ""
    print(
        f"durable worker: done ({stats.completed} completed, {stats.interrupted} interrupted, {stats.failed} failed, "
        f"{stats.dead_lettered} dead-lettered){lost}",
        flush=True,
    )
    return 0
