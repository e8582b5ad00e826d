"""``durable verify`` and ``durable plan``: change safety from the command line (see `_verify` and `_dry`).

``verify MODULE...`` dry-runs every unfinished thread against the code importable now and exits 0 when every one
replays cleanly, 1 when any does not (a CI gate), 2 on bad usage. ``plan MODULE:ENTRYPOINT THREAD`` prints what
resuming one thread would do. Neither runs a task nor writes to the journal.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import _cli_format as fmt
from .errors import ConfigurationError, DurableError, JournalNotFoundError


def add_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--secret-file", metavar="FILE", help="read the journal's key from FILE (as DURABLE_SECRET)")
    common.add_argument(
        "--context-json", type=fmt.json_arg("--context-json"), metavar="VALUE",
        help="what the bodies get as runtime.context, as the application's invokes pass it",
    )  # fmt: skip
    verify = commands.add_parser(
        "verify",
        parents=[common],
        help="dry-run every unfinished thread against the code about to ship",
        description="Replay every unfinished thread's journal (running, crashed, sleeping, failed, paused) against "
        "the entrypoints of MODULEs, running no task and writing nothing, and report per thread: ok (and what a "
        "resume would do next), or the first divergence: a changed call or arguments, a question no longer asked, "
        "a recorded value that no longer reads, a missing entrypoint. Exits 0 when all replay cleanly, 1 when any "
        "does not. With --bundles, the threads are exported bundles (`durable export`) instead of a store.",
    )
    verify.add_argument(
        "targets", nargs="+", metavar="MODULE", help="a module (myapp.flows) or one entrypoint (myapp.flows:pipeline)"
    )
    where = verify.add_mutually_exclusive_group()
    where.add_argument("--url", help="the store (default: the entrypoints' own, or $DURABLE_URL)")
    where.add_argument("--bundles", metavar="DIR", help="a directory of exported bundles (*.json), or one file")
    verify.add_argument(
        "--ignore-missing", action="store_true",
        help="skip threads of entrypoints not given (another application's, in a shared store) instead of failing",
    )  # fmt: skip

    plan = commands.add_parser(
        "plan",
        parents=[common],
        help="what resuming a thread would do, without doing it",
        description="Dry-run THREAD with TARGET's code: which recorded calls replay, which task runs next and why "
        "(never recorded, failed, a retry owed, arguments changed), the interrupts it would pause on, how long a "
        "durable sleep still waits, or where the journal no longer fits the code. Runs no task, writes nothing.",
    )
    plan.add_argument("target", metavar="MODULE:ENTRYPOINT")
    plan.add_argument("thread", metavar="THREAD")
    plan.add_argument(
        "--resume-json", type=fmt.json_arg("--resume-json"), metavar="VALUE",
        help="plan answering the pending interrupt(s) with this JSON value (checked, not journaled)",
    )  # fmt: skip
    plan.add_argument("--by", metavar="NAME", help="who would answer (with --resume-json)")
    plan.add_argument("--url", help="the store (default: the entrypoint's own, or $DURABLE_URL)")


def run(args: argparse.Namespace) -> int:
    from ._cli import load_entrypoints

    try:
        ring = fmt.read_secret(args.secret_file) if args.secret_file else None
        if args.command == "plan" and args.by is not None and args.resume_json is None:
            fmt.fail("plan", "--by says who would answer: give the answer with --resume-json too")
            return 2
        targets = [args.target] if args.command == "plan" else args.targets
        entrypoints = load_entrypoints(targets)
        if args.command == "plan" and len(entrypoints) != 1:
            names = ", ".join(sorted(f"{args.target}:{ep.__name__}" for ep in entrypoints))
            raise ConfigurationError(f"{args.target!r} defines {len(entrypoints)} entrypoints: name one ({names})")
    except DurableError as exc:
        fmt.fail(args.command, exc)
        return 2
    try:
        return _verify(args, entrypoints, ring) if args.command == "verify" else _plan(args, entrypoints, ring)
    except JournalNotFoundError as exc:  # bad usage, as for the other read-only commands
        fmt.fail(args.command, exc)
        return 2
    except DurableError as exc:
        fmt.fail(args.command, exc)
        return 1
    except KeyboardInterrupt:
        fmt.fail(args.command, "interrupted")
        return 130


def _verify(args: argparse.Namespace, entrypoints: list[Any], ring: Any) -> int:
    from ._verify import verify

    checks = verify(
        entrypoints, checkpointer=args.url, bundles=args.bundles, secret=ring, context=args.context_json,
        ignore_missing=args.ignore_missing,
    )  # fmt: skip
    problems = [c for c in checks if not c.ok]
    if args.json:
        fmt.emit_json({"ok": not problems, "threads": [c.as_json() for c in checks]})
    else:
        for check in checks:
            print(fmt.clean(str(check)))
        n = len(checks)
        summary = f"{n} unfinished thread{'s' if n != 1 else ''} checked"
        print(
            f"{summary}: {len(problems)} would not replay cleanly." if problems else f"{summary}: all replay cleanly."
        )
    return 1 if problems else 0


def _plan(args: argparse.Namespace, entrypoints: list[Any], ring: Any) -> int:
    from ._interrupts import Command
    from ._urls import resolve_store
    from ._verify import judge, plan_json, plan_on

    ep = entrypoints[0]
    given = None if args.resume_json is None else Command(resume=args.resume_json, by=args.by)
    # Read-only: a plan never creates a journal (nor migrates one).
    store = resolve_store(args.url if args.url is not None else ep._checkpointer, read_only=True)
    try:
        plan = plan_on(ep, store, args.thread, given, ring, deep=False, context=args.context_json)
    finally:
        if store is not ep._checkpointer:
            store.close()
    if args.json:
        fmt.emit_json(plan_json(plan))
    else:
        print(fmt.clean(f"{plan.thread_id} [{plan.entrypoint}, {plan.status}]: {plan}"))
    return 0 if judge(plan).ok else 1
