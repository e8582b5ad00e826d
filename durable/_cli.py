"""The ``durable`` command (also ``python -m durable``).

``durable worker TARGET...`` imports the user's modules and carries their
entrypoints' submitted and crashed runs until SIGTERM or Ctrl-C. ``durable check
TARGET...`` reads their bodies and reports what would behave differently on replay.
The operator commands (``threads``, ``show``, ``interrupts``, ``resume``, ``cancel``,
``fork``, ``export``, ``import``, ``delete``, ``prune``, ``diff``) are in `_cli_threads`; ``durable ui``
(the web console) is in `_console`.

Exit codes: 0 success, 1 a failure (a `DurableError`, an unknown thread, a failed run,
an unreadable file), 2 bad usage (argparse, malformed JSON in an argument).
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
from typing import Any, NoReturn

from . import _cli_backup, _cli_verify
from . import _cli_format as fmt
from ._cli_threads import _add_admin_commands, _run_admin
from .errors import ConfigurationError, DurableError


class _Parser(argparse.ArgumentParser):
    """argparse's own, with its usage errors `clean`: they quote arguments, which may be pasted thread ids."""

    def error(self, message: str) -> NoReturn:
        super().error(fmt.clean(message))


def main(argv: Sequence[str] | None = None) -> int:
    from . import __version__

    parser = _Parser(prog="durable", description="Durable execution for plain Python.")
    parser.add_argument(
        "--version", action="version", version=f"durable {__version__} (Python {sys.version.split()[0]})"
    )
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
    worker.add_argument(
        "--concurrency", type=fmt.whole_arg(1, "a number of runs"), default=4, help="runs carried at once (default 4)"
    )
    worker.add_argument("--poll-interval", type=fmt.seconds_arg, default=1.0, help="seconds between looks (default 1)")
    worker.add_argument(
        "--dead-letter-after",
        type=fmt.whole_arg(1, "a number of dead executors"),
        default=3,
        help="dead-letter a run after this many dead executors",
    )
    worker.add_argument("--until-idle", action="store_true", help="exit once nothing is waiting or running")
    worker.add_argument("-v", "--verbose", action="store_true", help="log every run")

    check = commands.add_parser(
        "check",
        help="report non-deterministic calls in entrypoint bodies",
        description="Read the entrypoints' bodies (and the plain functions of their modules that they call) and "
        "report the calls outside tasks that would behave differently on replay: clock reads, random numbers, "
        "I/O. Exits 1 when anything is found, 0 when nothing is. Silence a line with `# durable: ignore[CODE]`.",
    )
    check.add_argument(
        "targets", nargs="+", metavar="TARGET", help="a module (myapp.flows) or one entrypoint (myapp.flows:pipeline)"
    )
    check.add_argument("--json", action="store_true", help="print the findings as a JSON list of objects")
    _add_admin_commands(commands)
    _add_ui_command(commands)
    _cli_verify.add_commands(commands)
    _cli_backup.add_commands(commands)

    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args)
    if args.command in ("verify", "plan"):
        return _cli_verify.run(args)
    if args.command in ("backup", "restore"):
        return _cli_backup.run(args)
    if args.command == "ui":
        from ._console import main as ui

        return ui(args)
    if args.command != "worker":
        return _run_admin(args)
    try:
        return _worker(args)
    except DurableError as exc:
        fmt.fail(args.command, exc)
        return 1


def _add_ui_command(commands: Any) -> None:
    ui = commands.add_parser(
        "ui",
        help="a web console: the inbox of pending interrupts, threads, journals, and a JSON API",
        description="Serve a web console over the journal (pip install 'durable-exec[ui]'): answer pending "
        "interrupts, watch, resume, cancel, fork and export threads, and a JSON API under /api/. Every request "
        "needs the token printed at start (or --token-file's). With MODULEs, answered runs resume here; "
        "without, they wait for a worker.",
    )
    ui.add_argument(
        "targets", nargs="*", metavar="MODULE", help="a module, module:entrypoint or file.py whose runs to carry"
    )
    ui.add_argument("--url", help="the store (default: $DURABLE_URL, else sqlite:///durable.db)")
    ui.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=fmt.port_arg, default=8765, help="the port (default 8765; 0 picks a free one)")
    ui.add_argument("--token-file", metavar="FILE", help="read the token from FILE instead of making one")
    ui.add_argument("--read-only", action="store_true", help="open the journal read-only; no answers nor actions")
    ui.add_argument("--secret-file", metavar="FILE", help="read the journal's key from FILE (as DURABLE_SECRET)")
    ui.add_argument(
        "--unsafe-unpickle", action="store_true",
        help="unpickle values that no key verified: a pickle can run code, so only for a journal you trust",
    )  # fmt: skip


def load_entrypoints(targets: Sequence[str]) -> list[Any]:
    """The entrypoints named by ``module`` (all of a module's) or ``module:attribute`` targets."""
    from ._api import as_entrypoint

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the user's modules sit in the working directory
    found: list[Any] = []
    for target in targets:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import {module_name!r} (from {target!r}): {exc}") from exc
        except Exception as exc:  # the module's own code failed (a missing setting, say): one line, not a traceback
            raise ConfigurationError(
                f"importing {module_name!r} (from {target!r}) raised {type(exc).__name__}: {exc}"
            ) from exc
        if attr:
            value = getattr(module, attr, None)
            ep = as_entrypoint(value)
            if ep is None:
                raise ConfigurationError(
                    f"{target!r} is not an entrypoint nor a compiled graph (got {type(value).__name__})"
                )
            found.append(ep)
            continue
        eps = [ep for v in vars(module).values() if (ep := as_entrypoint(v)) is not None]
        if not eps:
            raise ConfigurationError(
                f"module {module_name!r} defines no @entrypoint nor compiled graph at its top level"
            )
        found.extend(eps)
    return found


def _check(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from ._check import Finding, check

    try:
        # Imported (and so resolved) before any is read: a bad target is a usage error, not a finding.
        entrypoints = load_entrypoints(args.targets)
        findings: set[Finding] = set()
        for ep in entrypoints:
            findings.update(check(ep))
    except DurableError as exc:
        fmt.fail("check", exc)
        return 2
    ordered = sorted(findings)
    if args.json:
        print(json.dumps([asdict(f) for f in ordered], indent=2))
    else:
        for finding in ordered:
            print(finding)
        checked = f"{len(entrypoints)} entrypoint{'s' if len(entrypoints) != 1 else ''}"
        if ordered:
            print(f"Found {len(ordered)} non-deterministic call{'s' if len(ordered) != 1 else ''} in {checked}.")
        else:
            print(f"All clear: {checked} checked, nothing found.")
    return 1 if ordered else 0


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


# -- operator commands ----------------------------------------------------------------------------------------
