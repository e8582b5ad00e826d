"""The operator commands of ``durable``: threads, show, interrupts, resume, cancel, fork, export, import,
delete, prune, diff and resign, on `durable.Threads`. Output helpers are in `_cli_format`.

The commands that only read (threads, show, interrupts, export, diff, prune --dry-run) open the journal
read-only: they never create a file or a schema, nor migrate one. Values are shown by `durable.Threads`'
rules: a pickle is unpickled only when it verified under the key (``DURABLE_SECRET`` or ``--secret-file``),
or with ``--unsafe-unpickle``; otherwise it is described (format, type, size, digest)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from . import _cli_format as fmt
from ._phases import PHASES
from ._urls import resolve_store
from .errors import ConfigurationError, DurableError, JournalNotFoundError

_READ_ONLY = {"threads", "show", "interrupts", "export", "diff"}


def _reads_only(args: argparse.Namespace) -> bool:
    return args.command in _READ_ONLY or (args.command == "prune" and args.dry_run)


_RUN = fmt.whole_arg(1, "a run number")  # runs count from 1


class _Usage(Exception):
    """A bad argument found after parsing (exit 2, as argparse's own usage errors)."""


def _add_admin_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the store (default: $DURABLE_URL, else sqlite:///durable.db)")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument(
        "--secret-file", metavar="FILE",
        help="read the journal's key from FILE (as DURABLE_SECRET: one key, or id=key,id2=key2; "
        "base64:... or hex:...), instead of $DURABLE_SECRET",
    )  # fmt: skip
    common.add_argument(
        "--unsafe-unpickle", action="store_true",
        help="unpickle values that no key verified: a pickle can run code, so only for a journal you trust",
    )  # fmt: skip

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help, description=description or help)  # type: ignore[no-any-return]

    when = "an ISO datetime (local time unless it has an offset) or an age such as 30m, 2h, 3d"
    threads = command("threads", "list threads, newest first", "List threads by their latest run, newest first.")
    threads.add_argument(
        "--status", choices=PHASES, metavar="PHASE",
        help=f"what the latest run is doing: {', '.join(PHASES)} (crashed: its executor died; queued: no worker "
        "has it yet)",
    )  # fmt: skip
    threads.add_argument("--entrypoint", metavar="NAME", help="only this entrypoint's threads")
    threads.add_argument("--since", type=fmt.when_arg, metavar="WHEN", help=f"started at or after WHEN: {when}")
    threads.add_argument("--until", type=fmt.when_arg, metavar="WHEN", help=f"started before WHEN: {when}")
    threads.add_argument("--limit", type=fmt.whole_arg(1), default=50, help="threads per page (default 50)")
    threads.add_argument("--cursor", type=fmt.cursor_arg, help="the next page: the cursor the previous page printed")

    show = command("show", "a thread's status, journal and pending interrupts")
    show.add_argument("thread", metavar="THREAD")
    show.add_argument("--run", type=_RUN, metavar="N", help="an earlier run (default: the latest)")

    interrupts = command("interrupts", "every pending interrupt of every paused thread, with its deadline")
    interrupts.add_argument(
        "--overdue", action="store_true",
        help="only those whose deadline passed and that no worker has carried on yet",
    )  # fmt: skip

    answer = command(
        "answer",
        "answer a paused thread's interrupts without its code (a worker carries the run on)",
        "Check the answer against each question's response_schema, journal it with --by and the time, and leave "
        "the run due: a worker (`durable worker MODULE`) or the application's next invoke carries it on.",
    )
    answer.add_argument("thread", metavar="THREAD")
    answer.add_argument(
        "--resume-json", type=fmt.json_arg("--resume-json"), required=True, metavar="VALUE",
        help="the answer as JSON (an object of id: answer for several pending interrupts)",
    )  # fmt: skip
    answer.add_argument("--by", metavar="NAME", help="who answers (journaled and signed with the answer)")

    resume = command(
        "resume",
        "resume an unfinished or paused thread with its entrypoint's code",
        "Resume THREAD with TARGET's code: a crashed or forked run replays its journal and runs the rest; "
        "a paused one is answered with --resume-json. Prints the output or the interrupts now pending; "
        "exits 1 if the run fails.",
    )
    resume.add_argument("target", metavar="MODULE:ENTRYPOINT")
    resume.add_argument("thread", metavar="THREAD")
    resume.add_argument(
        "--resume-json", type=fmt.json_arg("--resume-json"), metavar="VALUE",
        help="answer the pending interrupt(s) with this JSON value (an object of id: answer for several)",
    )  # fmt: skip
    resume.add_argument("--by", metavar="NAME", help="who answers (with --resume-json; journaled with the answer)")

    cancel = command("cancel", "cancel a thread's unfinished run")
    cancel.add_argument("thread", metavar="THREAD")

    fork = command("fork", "copy a thread's journal before a key into a new, resumable thread")
    fork.add_argument("thread", metavar="THREAD")
    fork.add_argument(
        "--at", type=fmt.key_arg, required=True, metavar="K", help="the first top-level key not copied (run again)"
    )
    fork.add_argument("--new-thread", metavar="ID", help="the new thread's id (default THREAD-fork-<random>)")
    fork.add_argument(
        "--override", type=fmt.override_arg, action="append", default=[], metavar="KEY=JSON",
        help="replace the recorded result of a copied key (repeatable)",
    )  # fmt: skip
    fork.add_argument("--run", type=_RUN, metavar="N", help="fork run N (default: the latest)")

    export = command(
        "export",
        "write threads as portable JSON bundles",
        'Write one thread as its bundle ({"format": "durable.thread", ...}), several as '
        '{"format": "durable.threads", "version": 1, "threads": [bundle, ...]}. `durable import` reads both.',
    )
    export.add_argument("threads", nargs="+", metavar="THREAD")
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")

    import_ = command(
        "import",
        "create the threads of an exported file in the store",
        "Create the threads of an exported file. Every field is checked, and with a key every value is "
        "verified, before anything is written. An unfinished run lands failed-and-resumable: nothing runs "
        "until it is resumed (`durable resume`), unless --runnable. A pickle bundle is code: import only "
        "bundles you trust, or signed ones with the key.",
    )
    import_.add_argument("file", metavar="FILE", help="a file `durable export` wrote, or - for stdin")
    import_.add_argument(
        "--runnable", action="store_true",
        help="keep unfinished runs runnable, so workers carry them at once (a migration between stores)",
    )  # fmt: skip

    resign = command(
        "resign",
        "re-sign threads with the current key and signature format",
        "Check every value of the threads (default: all) with the key(s) given, then sign them again with the "
        "first key, in the current format (with the thread's nonce). Run it after upgrading durable, to retire "
        "an old key (DURABLE_SECRET=new=...,old=..., then drop old), or with --sign-unsigned to sign a journal "
        "written before a key was set. Running threads are skipped: run it again.",
    )
    resign.add_argument("threads", nargs="*", metavar="THREAD")
    resign.add_argument(
        "--sign-unsigned", action="store_true",
        help="also sign values that have no signature (you vouch for them: only on a journal you trust)",
    )  # fmt: skip

    delete = command("delete", "delete threads, their runs and journals")
    delete.add_argument("threads", nargs="+", metavar="THREAD")

    prune = command("prune", "delete the threads that finished long enough ago")
    prune.add_argument(
        "--older-than", type=fmt.span_arg, required=True, metavar="AGE",
        help="finished more than AGE ago: 30d, 12h, 0s",
    )  # fmt: skip
    prune.add_argument(
        "--status", action="append", choices=("completed", "failed"),
        help="the latest run's status (repeatable; default completed)",
    )  # fmt: skip
    prune.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")

    diff = command(
        "diff",
        "the journal keys whose entries differ between two threads",
        "Compare the latest runs of two threads key by key. Sides are the THREAD ids given, then the --file "
        "bundles: `diff A B`, `diff A --file old.json`, `diff --file a.json --file b.json`.",
    )
    diff.add_argument("sides", nargs="*", metavar="THREAD")
    diff.add_argument("--file", action="append", default=[], metavar="BUNDLE", help="a side read from an export")


def _run_admin(args: argparse.Namespace) -> int:
    from ._admin import Threads

    handler = _HANDLERS[args.command]
    if not logging.getLogger().handlers:
        # The library's warnings (a run failed) would reach stderr through logging's last resort, twice
        # over with this command's own report of the same failure.
        logging.getLogger("durable").addHandler(logging.NullHandler())
    threads: Threads | None = None
    try:
        secret = fmt.read_secret(args.secret_file) if args.secret_file else None
        store = resolve_store(args.url, read_only=_reads_only(args))
        threads = Threads(store, secret=secret, unsafe_unpickle=args.unsafe_unpickle)
        code = handler(threads, args)
        if threads.signed_unread and not args.json:
            fmt.fail(
                args.command,
                f"note: this journal is signed and no key was given, so {threads.signed_unread} value(s) are "
                f"shown by size and digest only: give the key with DURABLE_SECRET or --secret-file",
            )
        return code
    except (_Usage, JournalNotFoundError) as exc:
        fmt.fail(args.command, exc)
        return 2
    except DurableError as exc:
        fmt.fail(args.command, exc)
        return 1
    except KeyboardInterrupt:
        fmt.fail(args.command, "interrupted")
        return 130
    finally:
        if threads is not None:
            threads.store.close()


def _cmd_threads(threads: Any, args: argparse.Namespace) -> int:
    import time

    page = threads.list(
        phase=args.status, entrypoint=args.entrypoint, limit=args.limit, cursor=args.cursor,
        since=args.since, until=args.until,
    )  # fmt: skip
    if args.json:
        fmt.emit_json({"threads": [fmt.summary_json(s) for s in page], "next_cursor": page.next_cursor})
        return 0
    if not page.threads:
        print("no threads" + (" on this page" if args.cursor else " match"))
        return 0
    now = time.time()
    fmt.table(fmt.THREAD_HEADERS, [fmt.summary_row(s, now) for s in page])
    if page.next_cursor:
        print(f"more: durable threads --cursor {page.next_cursor} (with the same filters)")
    return 0


def _cmd_show(threads: Any, args: argparse.Namespace) -> int:
    st = threads.state(args.thread, run_id=args.run)
    if args.json:
        fmt.emit_json(fmt.state_json(st))
        return 0
    fmt.fields(fmt.state_header(st))
    print()
    if st.entries:
        fmt.table(fmt.ENTRY_HEADERS, [fmt.entry_row(e) for e in st.entries], title="journal")
    else:
        print("journal: empty")
    if st.interrupts:
        print()
        rows = [[i.id, fmt.deadline(i.deadline), fmt.preview(i.value)] for i in st.interrupts]
        fmt.table(("INTERRUPT", "DEADLINE", "VALUE"), rows, title="pending")
    return 0


def _cmd_interrupts(threads: Any, args: argparse.Namespace) -> int:
    pending = threads.interrupts(overdue=args.overdue)
    if args.json:
        fmt.emit_json([{"thread_id": t, **fmt.interrupt_json(i)} for t, i in pending])
    elif not pending:
        print("no overdue interrupts" if args.overdue else "no pending interrupts")
    else:
        rows = [[t, i.id, fmt.deadline(i.deadline), fmt.preview(i.value)] for t, i in pending]
        fmt.table(("THREAD", "INTERRUPT", "DEADLINE", "VALUE"), rows)
    return 0


def _cmd_answer(threads: Any, args: argparse.Namespace) -> int:
    answered = threads.answer(args.thread, args.resume_json, by=args.by)
    if args.json:
        fmt.emit_json({"thread_id": args.thread, "answered": list(answered), "by": args.by})
    else:
        print(fmt.clean(f"answered {', '.join(answered)} on {args.thread}: a worker carries the run on"))
    return 0


def _cmd_resume(threads: Any, args: argparse.Namespace) -> int:

    from ._cli import load_entrypoints  # the worker's loader: cwd on sys.path, module or module:attr
    from ._interrupts import Command, Interrupted

    found = load_entrypoints([args.target])
    if len(found) != 1:
        names = ", ".join(sorted(f"{args.target}:{ep.__name__}" for ep in found))
        raise ConfigurationError(f"{args.target!r} defines {len(found)} entrypoints: name one ({names})")
    ep = found[0]
    if args.by is not None and args.resume_json is None:
        raise _Usage("--by says who answers: give the answer with --resume-json too")
    value = None if args.resume_json is None else Command(resume=args.resume_json, by=args.by)
    try:
        if args.url is None:
            result = ep.invoke(value, thread_id=args.thread)
        else:  # the run goes to the store named here, not the one the entrypoint declares (as a worker's)
            result = ep.using(threads.store).invoke(value, thread_id=args.thread)
    except DurableError:
        raise
    except Exception as exc:  # the workflow's own failure: report it, as `durable show` would
        fmt.fail("resume", f"thread {args.thread!r} failed: {fmt.error_line(exc)}")
        return 1
    if isinstance(result, Interrupted):
        pending = [{"id": i.id, "value": fmt.jsonable(i.value)} for i in result.interrupts]
        if args.json:
            fmt.emit_json({"thread_id": args.thread, "status": "interrupted", "interrupts": pending})
        else:
            print(fmt.clean(f"thread {args.thread!r} paused; answer with --resume-json:"))
            fmt.table(("INTERRUPT", "VALUE"), [[i.id, fmt.preview(i.value)] for i in result.interrupts])
        return 0
    if args.json:
        fmt.emit_json({"thread_id": args.thread, "status": "completed", "output": fmt.jsonable(result)})
    else:
        try:
            print(json.dumps(result))
        except (TypeError, ValueError):
            print(fmt.clean(repr(result)))
    return 0


def _cmd_cancel(threads: Any, args: argparse.Namespace) -> int:
    cancelled = threads.cancel(args.thread)
    if args.json:
        fmt.emit_json({"thread_id": args.thread, "cancelled": cancelled})
    else:
        thread = fmt.clean(args.thread)
        print(f"cancelled {thread}" if cancelled else f"nothing to cancel: {thread} has no unfinished run")
    return 0


def _cmd_fork(threads: Any, args: argparse.Namespace) -> int:
    overrides = dict(args.override)
    new_id = threads.fork(args.thread, at=args.at, new_thread_id=args.new_thread, overrides=overrides, run_id=args.run)
    if args.json:
        fmt.emit_json({"thread_id": new_id, "forked_from": args.thread, "at": args.at})
    else:
        print(fmt.clean(new_id))
    return 0


def _cmd_export(threads: Any, args: argparse.Namespace) -> int:

    bundles = []
    with fmt.progress("exporting", len(args.threads)) as update:
        for done, thread_id in enumerate(args.threads, 1):
            bundles.append(threads.export(thread_id))
            update(done)
    document = bundles[0] if len(bundles) == 1 else {"format": fmt.MANY_FORMAT, "version": 1, "threads": bundles}
    text = json.dumps(document, indent=None if len(bundles) > 1 else 2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    fmt.write_private(args.output, text)  # 0600: a journal's contents
    if args.json:
        fmt.emit_json({"exported": args.threads, "file": args.output})
    else:
        print(fmt.clean(f"exported {len(bundles)} thread{'s' if len(bundles) != 1 else ''} to {args.output}"))
    return 0


def _cmd_import(threads: Any, args: argparse.Namespace) -> int:
    bundles = fmt.read_bundles(args.file)
    imported, failed = [], []
    with fmt.progress("importing", len(bundles)) as update:
        for done, bundle in enumerate(bundles, 1):
            try:
                imported.append(threads.import_bundle(bundle, runnable=args.runnable))
            except DurableError as exc:  # one bad or existing thread does not stop the others
                name = bundle.get("thread_id") if isinstance(bundle, dict) else None
                failed.append({"thread_id": name, "error": str(exc)})
            update(done)
    for failure in failed:
        fmt.fail("import", f"{failure['thread_id']!r}: {failure['error']}")
    if args.json:
        fmt.emit_json({"imported": imported, "failed": failed})
    else:
        for thread_id in imported:
            print(f"imported {fmt.clean(thread_id)}")
    return 1 if failed else 0


def _cmd_delete(threads: Any, args: argparse.Namespace) -> int:
    deleted: list[str] = []
    missing: list[str] = []
    failed: list[dict[str, str]] = []
    for thread_id in args.threads:
        try:
            (deleted if threads.delete(thread_id) else missing).append(thread_id)
        except DurableError as exc:  # busy: the others are still deleted
            failed.append({"thread_id": thread_id, "error": str(exc)})
            fmt.fail("delete", exc)
    for thread_id in missing:
        fmt.fail("delete", f"no thread {thread_id!r} in this store")
    if args.json:
        fmt.emit_json({"deleted": deleted, "missing": missing, "failed": failed})
    else:
        for thread_id in deleted:
            print(f"deleted {fmt.clean(thread_id)}")
    return 1 if missing or failed else 0


def _cmd_prune(threads: Any, args: argparse.Namespace) -> int:
    import time

    age = args.older_than
    statuses = tuple(dict.fromkeys(args.status or ["completed"]))
    if not args.dry_run:
        with fmt.progress("pruning") as update:
            count = threads.prune(age, statuses=statuses, progress=update)
        if args.json:
            fmt.emit_json({"pruned": count, "statuses": list(statuses), "older_than_seconds": age})
        else:
            print(f"pruned {count} thread{'s' if count != 1 else ''}")
        return 0
    # Listings filter by start time; a run finished before the cutoff started before it too, so `until`
    # narrows the listing and the finish time decides. (Held threads are skipped by prune, and here.)
    now = time.time()
    cutoff = now - age
    doomed = [
        s for status in statuses for s in threads.all(status=status, until=cutoff, limit=500)
        if s.finished_at is not None and s.finished_at < cutoff and not (s.owner and (s.lease_expires or 0) > now)
    ]  # fmt: skip
    if args.json:
        fmt.emit_json({"dry_run": True, "would_prune": [fmt.summary_json(s) for s in doomed]})
    else:
        if doomed:
            fmt.table(fmt.THREAD_HEADERS, [fmt.summary_row(s, now) for s in doomed])
        print(f"would prune {len(doomed)} thread{'s' if len(doomed) != 1 else ''} (dry run: nothing deleted)")
    return 0


def _cmd_diff(threads: Any, args: argparse.Namespace) -> int:
    sides: list[Any] = list(args.sides)
    for path in args.file:
        bundles = fmt.read_bundles(path)
        if len(bundles) != 1:
            raise ConfigurationError(f"{path!r} holds {len(bundles)} threads: diff compares one with one")
        sides.append(bundles[0])
    if len(sides) != 2:
        raise _Usage(f"give two sides (THREAD ids, then --file bundles), not {len(sides)}")
    diffs = threads.diff(sides[0], sides[1])
    if args.json:
        fmt.emit_json([{"key": d.key, "left": fmt.diff_side(d.left), "right": fmt.diff_side(d.right)} for d in diffs])
    elif not diffs:
        print("no differences")
    else:
        fmt.table(("KEY", "LEFT", "RIGHT"), [[d.key, fmt.diff_cell(d.left), fmt.diff_cell(d.right)] for d in diffs])
    return 0


def _cmd_resign(threads: Any, args: argparse.Namespace) -> int:
    ids = args.threads or None
    with fmt.progress("re-signing", len(ids) if ids else None) as update:
        report = threads.resign(ids, sign_unsigned=args.sign_unsigned, progress=update)
    for thread_id, error in report.failed.items():
        fmt.fail("resign", f"{thread_id!r}: {error}")
    for thread_id in report.busy:
        fmt.fail("resign", f"{thread_id!r} is running: skipped, run resign again once it is not")
    if args.json:
        fmt.emit_json({"resigned": list(report.resigned), "busy": list(report.busy), "failed": dict(report.failed)})
    else:
        print(f"re-signed {len(report.resigned)} thread{'s' if len(report.resigned) != 1 else ''}")
    return 1 if report.failed or report.busy else 0


_HANDLERS = {
    "threads": _cmd_threads, "show": _cmd_show, "interrupts": _cmd_interrupts, "answer": _cmd_answer,
    "resume": _cmd_resume,
    "cancel": _cmd_cancel, "fork": _cmd_fork, "export": _cmd_export, "import": _cmd_import, "delete": _cmd_delete,
    "prune": _cmd_prune, "diff": _cmd_diff, "resign": _cmd_resign,
}  # fmt: skip
