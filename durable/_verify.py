"""``durable verify``: before a deploy, dry-run every unfinished thread against the code about to ship.

For each thread whose latest run is unfinished (running, crashed, submitted, sleeping, failed, paused), `verify`
finds the entrypoint that owns it among those given and asks `_dry.forecast` what a resume would do now, running
no task body and writing nothing. A thread is ``ok`` when its journal replays cleanly up to where the resume would
go on: the next task it would run, a question it would ask, a sleep it would wait out, its finish. It is a
``problem`` when:

* ``diverges``: a call differs from the one its key recorded (another task, other arguments), a question is no
  longer asked at its key or is asked under another id, or the run would finish without reaching calls it recorded;
* ``undecodable``: a recorded value no longer reads (its class moved or lost a field, or its task's version has no
  upgrade for it): `RecordedValueError`;
* ``fails``: the body raises while replaying, where the run had not failed so;
* ``missing-entrypoint``: no entrypoint given owns the thread;
* ``unreadable``: its journal cannot be read here (another Python, a signature that fails, no key).

The threads come from a store (read-only: no lease is taken from a live owner, nothing is written), or from a
directory of exported bundles (``durable export``), which `verify` loads into a `MemoryStore` of its own: a team
can commit the journals of its long-lived workflows and gate every change on them in CI, with no access to
production. Bundles are read as the application reads its journal, with its serializer and key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._codec import Keyring, Secret, keyring
from ._dry import ResumePlan, describe, forecast
from .errors import (
    ConfigurationError,
    DurableError,
    IncompatibleJournalError,
    IntegrityError,
    InterruptTimeoutError,
    NonDeterminismError,
    SerializationError,
)
from .stores._base import Store, ThreadFilter

Problem = Literal["diverges", "undecodable", "fails", "missing-entrypoint", "unreadable"]
_UNFINISHED = ("running", "interrupted", "failed")


@dataclass(frozen=True, slots=True)
class ThreadCheck:
    """One thread's verdict: ``ok``, or the ``problem`` (a code) and ``detail`` (what to do) of its first
    divergence. ``plan`` is what a resume would do (``None`` when the thread could not be dry-run at all)."""

    thread_id: str
    entrypoint: str
    status: str
    ok: bool
    problem: Problem | None
    detail: str
    plan: ResumePlan | None = None
    skipped: bool = False  # another application's thread (`verify(ignore_missing=True)`): not checked

    def __str__(self) -> str:
        verdict = "skipped" if self.skipped else "ok" if self.ok else self.problem or "problem"
        return f"{verdict:<18} {self.thread_id}  [{self.entrypoint}, {self.status}]  {self.detail}"

    def as_json(self) -> dict[str, Any]:
        """The verdict for ``--json``: its own fields, and its plan's (`plan_json`)."""
        verdict = {
            "thread_id": self.thread_id, "entrypoint": self.entrypoint, "status": self.status, "ok": self.ok,
            "skipped": self.skipped, "problem": self.problem, "detail": self.detail,
        }  # fmt: skip
        if self.plan is None:  # not dry-run at all: the plan's fields, empty
            empty = ResumePlan(self.thread_id, self.entrypoint, self.status, "diverges")
            return {**plan_json(empty), "outcome": None, **verdict}
        return {**plan_json(self.plan), **verdict}


def plan_json(plan: ResumePlan) -> dict[str, Any]:
    """A `ResumePlan` as JSON, for ``durable plan --json`` and ``durable verify --json``."""
    from ._cli_format import error_line, jsonable

    def call(c: Any) -> dict[str, str]:
        return {"key": c.key, "task": c.task, "why": c.why, "detail": c.detail}

    error = plan.error
    return {
        "thread_id": plan.thread_id, "entrypoint": plan.entrypoint, "status": plan.status, "outcome": plan.outcome,
        "replayed": list(plan.replayed), "next": call(plan.next) if plan.next is not None else None,
        "runs": [call(c) for c in plan.runs],
        "interrupts": [{"id": i.id, "value": jsonable(i.value)} for i in plan.interrupts],
        "wake_at": plan.wake_at, "output": jsonable(plan.output),
        "error": None if error is None else {
            "type": type(error).__name__, "key": getattr(error, "key", None), "message": error_line(error),
        },
        "repeats": plan.repeats, "held_by": plan.held_by, "notes": list(plan.notes),
    }  # fmt: skip


def verify(
    entrypoints: Iterable[Any],
    *,
    checkpointer: Store | str | None = None,
    bundles: str | os.PathLike[str] | None = None,
    secret: Secret | Keyring | None = None,
    context: Any = None,
    ignore_missing: bool = False,
) -> list[ThreadCheck]:
    """Dry-run every unfinished thread against ``entrypoints`` (`Entrypoint` objects or compiled graphs) and
    return one `ThreadCheck` per thread, problems first. No task runs and nothing is written.

    The threads are those of ``checkpointer`` (a store or URL, opened read-only), of ``bundles`` (a directory of
    ``durable export`` files, or one such file), or else of each entrypoint's own store. ``secret`` is the
    journal's key (without it: the entrypoints', the store's or ``DURABLE_SECRET``, as a resume finds it).
    ``context`` is what the bodies get as ``runtime.context``, as an invoke would pass it. With
    ``ignore_missing``, threads of entrypoints not given (another application's, in a shared store) are
    listed as skipped instead of as problems.
    """
    from ._api import as_entrypoint

    eps = []
    for given in entrypoints:
        ep = as_entrypoint(given)
        if ep is None:
            raise ConfigurationError(f"verify({given!r}): pass entrypoints or compiled graphs")
        eps.append(ep)
    if not eps:
        raise ConfigurationError("verify() needs the entrypoints whose threads to check")
    if checkpointer is not None and bundles is not None:
        raise ConfigurationError("verify(): give a store or bundles, not both")
    ring = secret if isinstance(secret, Keyring) else keyring(secret) if secret is not None else None
    opened: list[Store] = []
    try:
        return _checks(eps, checkpointer, bundles, ring, context, ignore_missing, opened)
    finally:
        for store in opened:
            store.close()


def _checks(
    eps: list[Any], checkpointer: Store | str | None, bundles: str | os.PathLike[str] | None, ring: Keyring | None,
    context: Any, ignore_missing: bool, opened: list[Store],
) -> list[ThreadCheck]:  # fmt: skip
    from ._urls import resolve_store

    if bundles is not None:
        stores = [_bundle_store(Path(bundles), eps, ring)]
    else:
        # Opened read-only: a mistyped path is an error, not a new, empty journal that verifies clean.
        given = [checkpointer] if checkpointer is not None else [ep._checkpointer for ep in eps]
        stores = []
        for where in given:
            store = resolve_store(where, read_only=True)
            if not isinstance(where, Store):
                opened.append(store)
            if not any(store.same_database(seen) for seen in stores):  # entrypoints sharing $DURABLE_URL
                stores.append(store)
    checks: list[ThreadCheck] = []
    for store in stores:
        by_name: dict[str, Any] = {}
        for ep in eps:
            for name in (ep.name, *ep._spec.aliases):
                by_name.setdefault(name, ep)
        for summary in _unfinished(store):
            ep = by_name.get(summary.entrypoint)
            if ep is None:
                what = f"no entrypoint named {summary.entrypoint!r} among those given"
                checks.append(
                    ThreadCheck(summary.thread_id, summary.entrypoint, summary.status, True, None,
                                f"skipped: {what}", skipped=True)
                    if ignore_missing else
                    ThreadCheck(summary.thread_id, summary.entrypoint, summary.status, False, "missing-entrypoint",
                                f"{what}: a deploy without it strands this thread (keep it, or give its module)")
                )  # fmt: skip
                continue
            checks.append(check_thread(ep, store, summary.thread_id, ring, context))
    return sorted(checks, key=lambda c: (c.ok, c.thread_id))


def plan_on(
    ep: Any, store: Store, thread_id: str, input: Any, ring: Keyring | None, deep: bool, context: Any = None
) -> ResumePlan:
    """`Entrypoint.plan` on ``store`` (not necessarily the entrypoint's own), with ``ring`` when one is given."""
    env = ep._env(None, thread_id, context)
    return forecast(ep._spec, store, ring or ep._ring_for(store)[1], thread_id, input, env, deep)


def check_thread(
    ep: Any, store: Store, thread_id: str, ring: Keyring | None = None, context: Any = None
) -> ThreadCheck:
    """The verdict on one thread: what `Entrypoint.plan` says a resume would do, judged. Whatever goes wrong is
    this thread's verdict, never the end of the whole check."""
    thread = store.get_thread(thread_id)
    run = thread.run if thread is not None else None
    status = run.status if run is not None else "?"
    try:
        plan = plan_on(ep, store, thread_id, None, ring, deep=True, context=context)
    except (IntegrityError, IncompatibleJournalError) as exc:
        return ThreadCheck(thread_id, ep.name, status, False, "unreadable", str(exc))
    except SerializationError as exc:  # its input or previous value no longer reads
        return ThreadCheck(thread_id, ep.name, status, False, "undecodable", str(exc))
    except DurableError as exc:
        return ThreadCheck(thread_id, ep.name, status, False, "unreadable", f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        detail = f"the dry run raised {type(exc).__name__}: {exc}"
        return ThreadCheck(thread_id, ep.name, status, False, "fails", detail)
    return judge(plan)


def judge(plan: ResumePlan) -> ThreadCheck:
    """Whether a resume's plan is a clean one, for `verify`."""
    ok = ThreadCheck(plan.thread_id, plan.entrypoint, plan.status, True, None, describe(plan), plan)
    error = plan.error
    if plan.outcome == "diverges":
        problem: Problem = (
            "undecodable" if isinstance(error, SerializationError)
            else "diverges" if isinstance(error, NonDeterminismError) else "fails"
        )  # fmt: skip
        return ThreadCheck(plan.thread_id, plan.entrypoint, plan.status, False, problem, str(error), plan)
    if plan.outcome == "fails" and isinstance(error, IntegrityError):  # a recorded value whose signature fails
        return ThreadCheck(plan.thread_id, plan.entrypoint, plan.status, False, "unreadable", str(error), plan)
    if plan.outcome == "fails" and not plan.repeats and not isinstance(error, InterruptTimeoutError):
        # (A question past its deadline with no default fails the run whatever the code: the workflow's own doing.)
        detail = f"the body raises {type(error).__name__}: {error} while replaying recorded calls"
        return ThreadCheck(plan.thread_id, plan.entrypoint, plan.status, False, "fails", detail, plan)
    return ok


def _unfinished(store: Store) -> Iterator[Any]:
    for status in _UNFINISHED:
        after = None
        while True:
            page = store.list_threads(ThreadFilter(status=status, after=after, limit=500))  # type: ignore[arg-type]
            yield from page
            if len(page) < 500:
                break
            after = (page[-1].started_at, page[-1].thread_id)


def _bundle_store(path: Path, eps: Sequence[Any], ring: Keyring | None) -> Store:
    """A `MemoryStore` holding the threads of the bundles at ``path`` (a directory of export files, or one)."""
    from ._admin import Threads
    from ._cli_format import read_bundles
    from .stores import MemoryStore

    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise ConfigurationError(f"bundles={str(path)!r}: no such file or directory")
    store = MemoryStore()
    # Verified, when the entrypoints sign, with their key: a bundle is read as the application reads its journal.
    given = ring or next((ep._ring for ep in eps if ep._secret is not None), None) or keyring(None)
    threads = Threads(store, secret=given)
    for file in files:
        for bundle in read_bundles(str(file)):
            try:
                threads.import_bundle(bundle, runnable=True)
            except DurableError as exc:
                raise ConfigurationError(f"{file}: {exc}") from exc
    return store
