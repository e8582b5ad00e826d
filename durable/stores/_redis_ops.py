"""`RedisStore`'s operations, written once as generators and driven by its blocking and its async client.

An operation yields what it needs the server to do (`Call` a script of `_redis_lua`, or run one `Cmd`) and gets the
reply back, as `_pg_ops` yields statements. The decisions are made here, in Python, by `_rules`; a write that
depends on what was read is applied by a script that answers ``retry`` if the thread changed since (optimistic
concurrency, on the thread's version), and the operation reads again.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import LeaseLostError, StoreError, ThreadBusyError, ThreadExistsError
from ._base import (
    RUN_VALUES,
    JournalRow,
    Lease,
    NewRun,
    RunOutcome,
    RunRow,
    ThreadFilter,
    ThreadRow,
    ThreadSummary,
)
from ._rules import cancellable, held_by_another, resumed_by_hand, run_to_start

SCHEMA_VERSION = 1

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """Run script ``name`` of `_redis_lua.SCRIPTS` with these arguments (after the prefix). ``durable``: a write the
    store's ``wait_aof``/``wait_replicas`` must see confirmed (sent with the wait, on the same connection)."""

    name: str
    args: tuple[Any, ...]
    durable: bool = False


@dataclass(frozen=True, slots=True)
class Cmd:
    """Run one plain command."""

    args: tuple[Any, ...]


Op = Generator[Call | Cmd, Any, T]


class Keys:
    """The store's key names under its prefix (see `_redis_lua` for what each holds)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.channel = prefix + "work"

    def journal(self, tid: int, run_id: int) -> str:
        return f"{self.prefix}j:{tid}:{run_id}"

    def finished(self, status: str) -> str:
        return f"{self.prefix}fin:{status}"


# -- encoding ---------------------------------------------------------------------------------------------------

_ROW = struct.Struct("<BiddIHi")  # status, attempt, started, finished, key bytes, name bytes, digest bytes (-1: None)


def encode_row(row: JournalRow) -> bytes:
    key, name, digest = row.key.encode(), row.name.encode(), row.digest
    head = _ROW.pack(
        row.status,
        row.attempt,
        row.started_at,
        row.finished_at,
        len(key),
        len(name),
        -1 if digest is None else len(digest),
    )
    return b"".join((head, key, name, digest or b"", row.payload))


def decode_row(blob: bytes) -> JournalRow:
    status, attempt, started, finished, nk, nn, nd = _ROW.unpack_from(blob)
    at = _ROW.size
    key = blob[at : at + nk].decode()
    at += nk
    name = blob[at : at + nn].decode()
    at += nn
    digest = None if nd < 0 else blob[at : at + nd]
    at += max(nd, 0)
    return JournalRow(key, attempt, name, status, digest, blob[at:], started, finished)


def slot(row: JournalRow) -> bytes:
    return f"{row.attempt}:{row.key}".encode()


def opt(value: bytes | str | None) -> bytes:
    """An optional value as one argument: ``b"b" + value``, or ``b"n"`` for ``None``."""
    if value is None:
        return b"n"
    return b"b" + (value.encode() if isinstance(value, str) else value)


def _fields(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _float(value: bytes | None) -> float | None:
    return None if value is None else float(value)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


# A run's fields in its hash: its values as given, its times as text, its retry keys as JSON.
_VALUE_FIELDS = {"input": b"input", "previous": b"prev", "output": b"output", "save": b"save", "error": b"error",
                 "interrupts": b"intr"}  # fmt: skip
assert set(_VALUE_FIELDS) == set(RUN_VALUES)


def run_row(flat: Sequence[bytes]) -> RunRow | None:
    if not flat:
        return None
    f = _fields(flat)
    retry = f.get(b"retry")
    return RunRow(
        run_id=int(f[b"id"]),
        entrypoint=f[b"ep"].decode(),
        status=f[b"status"].decode(),  # type: ignore[arg-type]
        input=f[b"input"],
        previous=f.get(b"prev"),
        started_at=float(f[b"started"]),
        output=f.get(b"output"),
        save=f.get(b"save"),
        error=f.get(b"error"),
        error_text=_text(f.get(b"etext")),
        retry_keys=tuple(json.loads(retry)) if retry else (),
        finished_at=_float(f.get(b"finished")),
        interrupts=f.get(b"intr"),
        stamp=_text(f.get(b"stamp")),
        recoveries=int(f.get(b"rec", b"0")),
        wake_at=_float(f.get(b"wake")),
    )


def run_fields(run: RunRow) -> list[bytes]:
    """A whole run as field/value pairs (for an import)."""
    pairs: list[tuple[bytes, bytes | None]] = [
        (b"id", str(run.run_id).encode()),
        (b"ep", run.entrypoint.encode()),
        (b"status", run.status.encode()),
        (b"started", repr(run.started_at).encode()),
        (b"etext", None if run.error_text is None else run.error_text.encode()),
        (b"retry", json.dumps(list(run.retry_keys)).encode() if run.retry_keys else None),
        (b"finished", None if run.finished_at is None else repr(run.finished_at).encode()),
        (b"stamp", None if run.stamp is None else run.stamp.encode()),
        (b"rec", str(run.recoveries).encode()),
        (b"wake", None if run.wake_at is None else repr(run.wake_at).encode()),
        *((field, getattr(run, name)) for name, field in _VALUE_FIELDS.items()),
    ]
    return [x for field, value in pairs if value is not None for x in (field, value)]


def _local(server_time: bytes | None, now: float) -> float | None:
    """A server time in this process's clock (``now`` is the server's time when it was read)."""
    return None if server_time is None else time.time() + float(server_time) - now


def thread_row(thread_id: str, now: float, flat: Sequence[bytes], run: Sequence[bytes]) -> ThreadRow:
    f = _fields(flat)
    owner = f.get(b"owner")
    return ThreadRow(
        thread_id=thread_id,
        tid=int(f[b"tid"]),
        owner=None if owner is None else owner.decode(),
        lease_expires=_local(f.get(b"exp"), now),
        fence=int(f[b"fence"]),
        run=run_row(run),
        nonce=f.get(b"nonce"),
    )


def lease_args(lease: Lease) -> tuple[Any, ...]:
    return lease.thread_id, lease.tid, lease.owner, lease.fence


# -- reads ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """A thread as a read found it: the row, and its version (``<tid>:<v>``: what a write that depends on it names)."""

    row: ThreadRow
    version: bytes


def read(thread_id: str) -> Op[Seen | None]:
    reply = yield Call("read", (thread_id,))
    now = float(reply[0])
    if len(reply) == 1:
        return None
    flat = reply[1]
    fields = _fields(flat)
    return Seen(thread_row(thread_id, now, flat, reply[2]), fields[b"tid"] + b":" + fields[b"v"])


def get_thread(thread_id: str) -> Op[ThreadRow | None]:
    seen = yield from read(thread_id)
    return None if seen is None else seen.row


def load_journal(keys: Keys, tid: int, run_id: int) -> Op[list[JournalRow]]:
    blobs = yield Cmd(("LRANGE", keys.journal(tid, run_id), 0, -1))
    return [decode_row(b) for b in blobs]


def journal_keys(keys: Keys, tid: int, run_id: int, wanted: Sequence[str]) -> Op[list[JournalRow]]:
    # Rows are not indexed by key: a replay on Redis reads its run's list whole (`journal_head` says so).
    if not wanted:
        return []
    want = set(wanted)
    rows = yield from load_journal(keys, tid, run_id)
    return [r for r in rows if r.key in want]


def list_threads(where: ThreadFilter) -> Op[list[ThreadSummary]]:
    after = ("", "") if where.after is None else (repr(where.after[0]), where.after[1])
    bound = ("" if x is None else repr(x) for x in (where.since, where.until))
    reply = yield Call("list", (where.status or "", where.entrypoint or "", *bound, *after, max(where.limit, 0)))
    now = float(reply[0])
    return [
        ThreadSummary(
            thread_id=t[0].decode(),
            run_id=int(t[3]),
            entrypoint=t[4].decode(),
            status=t[5].decode(),
            started_at=float(t[6]),
            finished_at=_float(t[7]),
            owner=_text(t[1]),
            lease_expires=_local(t[2], now),
            wake_at=_float(t[8]),
            recoveries=int(t[9] or b"0"),
            error_text=_text(t[10]),
        )
        for t in reply[1:]
    ]


def list_runs(thread_id: str) -> Op[list[RunRow]]:
    reply = yield Call("runs", (thread_id,))
    return [r for flat in reply if (r := run_row(flat)) is not None]


# -- a thread's lease and its runs ------------------------------------------------------------------------------


def claim(
    thread_id: str, owner: str, steal_from: str | None, new_run: NewRun | None, lease_seconds: float
) -> Op[Lease]:
    while True:
        seen = yield from read(thread_id)
        last = None if seen is None else seen.row.run
        if seen is not None:
            row = seen.row
            left = None if row.lease_expires is None else row.lease_expires - time.time()
            if held_by_another(row.owner, left, owner, steal_from):
                raise ThreadBusyError(thread_id, row.owner, left or 0.0)
        nonce = (new_run.nonce if new_run is not None else os.urandom(16)) if seen is None else seen.row.nonce
        number = run_to_start(last, nonce, new_run)
        start: tuple[Any, ...] = ("", "", "", b"n")
        if number is not None:
            assert new_run is not None
            start = (number, new_run.entrypoint, new_run.input, opt(new_run.stamp))
        reply = yield Call(
            "claim",
            (
                thread_id, b"" if seen is None else seen.version, owner, repr(lease_seconds), opt(nonce),
                "1" if resumed_by_hand(last, new_run) else "", *start,
            ),
        )  # fmt: skip
        if reply[0] == b"retry":
            continue
        row = thread_row(thread_id, float(reply[1]), reply[2], reply[3])
        return Lease(thread_id, row.tid, owner, row.fence, row, number is not None)


def renew(lease: Lease, lease_seconds: float) -> Op[bool]:
    renewed = yield Call("renew", (*lease_args(lease), repr(lease_seconds)))
    return bool(renewed)


def release(lease: Lease) -> Op[None]:
    # Durable: a submit is a claim that starts a run, then this release; its wait confirms both (a replica acknowledges
    # the replication stream up to this write, the claim's included). A claim under a run is confirmed by its first
    # journal write the same way, so the claim itself does not wait (a failed wait would leave its lease behind).
    yield Call("release", lease_args(lease), durable=True)


def append(lease: Lease, run_id: int, rows: Sequence[JournalRow], retried: Keys | None = None) -> Op[None]:
    """Record the rows, or none of them. ``retried``: an earlier try's answer was lost, so a duplicate of the very
    same rows is that try's write, done."""
    if not rows:
        return
    args = (*lease_args(lease), run_id, len(rows), *map(slot, rows), *map(encode_row, rows))
    answer = yield Call("append", args, durable=True)
    if answer == b"lost":
        raise LeaseLostError(lease.thread_id)
    if answer == b"dup":
        if retried is not None:
            stored = {(r.key, r.attempt): r for r in (yield from load_journal(retried, lease.tid, run_id))}
            if all((s := stored.get((r.key, r.attempt))) is not None and s == r for r in rows):
                return
        slots = sorted((run_id, r.key, r.attempt) for r in rows)
        raise StoreError(f"thread {lease.thread_id!r}: a journal slot in {slots} is already recorded")


def finish_run(lease: Lease, run_id: int, outcome: RunOutcome) -> Op[None]:
    values: list[tuple[bytes, bytes | None]] = [
        (b"status", outcome.status.encode()),
        (b"output", outcome.output),
        (b"save", outcome.save),
        (b"error", outcome.error),
        (b"etext", None if outcome.error_text is None else outcome.error_text.encode()),
        (b"retry", json.dumps(list(outcome.retry_keys)).encode() if outcome.retry_keys else None),
        (b"intr", outcome.interrupts),
        (b"wake", None if outcome.wake_at is None else repr(outcome.wake_at).encode()),
    ]
    given = [(f, v) for f, v in values if v is not None]
    cleared = [f for f, v in values if v is None]
    forget = outcome.forget_prior and outcome.status == "completed"
    answer = yield Call(
        "finish",
        (*lease_args(lease), run_id, "1" if forget else "", len(given), *(x for pair in given for x in pair), *cleared),
        durable=True,
    )
    if answer == b"lost":
        raise LeaseLostError(lease.thread_id)


def cancel_run(thread_id: str, run_id: int, outcome: RunOutcome) -> Op[bool]:
    while True:
        seen = yield from read(thread_id)
        if seen is None or not cancellable(seen.row.run, run_id):
            return False
        args = (thread_id, seen.version, run_id, outcome.status, opt(outcome.error), opt(outcome.error_text))
        answer = yield Call("cancel", args, durable=True)
        if answer != b"retry":
            return True


def reserve(owner: str, entrypoints: Sequence[str], limit: int, due: float, lease_seconds: float) -> Op[list[Lease]]:
    if limit <= 0 or not entrypoints:
        return []
    reply = yield Call("reserve", (owner, repr(lease_seconds), repr(due), limit, *entrypoints))
    now = float(reply[0])
    return [_reserved(owner, now, flat, run) for flat, run in zip(reply[1::2], reply[2::2], strict=True)]


def _reserved(owner: str, now: float, flat: Sequence[bytes], run: Sequence[bytes]) -> Lease:
    thread_id = _fields(flat)[b"id"].decode()
    row = thread_row(thread_id, now, flat, run)
    return Lease(thread_id, row.tid, owner, row.fence, row)


# -- operating on threads ---------------------------------------------------------------------------------------


def delete_thread(thread_id: str) -> Op[bool]:
    while True:
        seen = yield from read(thread_id)
        if seen is None:
            return False
        row = seen.row
        left = None if row.lease_expires is None else row.lease_expires - time.time()
        if held_by_another(row.owner, left, None):
            raise ThreadBusyError(thread_id, row.owner, left or 0.0)
        answer = yield Call("delete", (thread_id, seen.version))
        if answer != b"retry":
            return True


def prune(keys: Keys, finished_before: float, statuses: Sequence[str], limit: int) -> Op[list[str]]:
    gone: list[str] = []
    for status in statuses:
        # Candidates by finish time; each is deleted only if nobody holds it when it is read (a skipped one is
        # left in the index, so look past as many as were skipped).
        offset = 0
        while len(gone) < limit:
            ids = yield Cmd(
                ("ZRANGEBYSCORE", keys.finished(status), "-inf", f"({finished_before!r}", "LIMIT", offset, limit)
            )
            if not ids:
                break
            for raw in ids:
                thread_id = raw.decode()
                if len(gone) < limit and (yield from _prune_one(thread_id, status, finished_before)):
                    gone.append(thread_id)
                else:
                    offset += 1
    return gone


def _prune_one(thread_id: str, status: str, finished_before: float) -> Op[bool]:
    while True:
        seen = yield from read(thread_id)
        if seen is None:
            return False
        row, run = seen.row, seen.row.run
        left = None if row.lease_expires is None else row.lease_expires - time.time()
        if run is None or run.status != status or run.finished_at is None or run.finished_at >= finished_before:
            return False
        if held_by_another(row.owner, left, None):
            return False
        answer = yield Call("delete", (thread_id, seen.version))
        if answer != b"retry":
            return True


def import_thread(
    thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
) -> Op[None]:
    slots = [(run_id, row.key, row.attempt) for run_id, row in journal]
    if len(set(slots)) != len(slots):
        raise StoreError(f"thread {thread_id!r}: the import repeats a journal slot; nothing was imported")
    args: list[Any] = [thread_id, opt(nonce), len(runs)]
    for run in runs:
        fields = run_fields(run)
        args += [run.run_id, len(fields) // 2, *fields]
    for run_id, row in journal:
        args += [run_id, slot(row), encode_row(row)]
    answer = yield Call("import", tuple(args), durable=True)
    if answer == b"exists":
        raise ThreadExistsError(thread_id)


def rewrite_thread(
    keys: Keys, thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
) -> Op[bool]:
    seen = yield from read(thread.thread_id)
    if seen is None:
        return False
    row = seen.row
    left = None if row.lease_expires is None else row.lease_expires - time.time()
    if row.tid != thread.tid or row.fence != thread.fence or held_by_another(row.owner, left, None):
        return False
    args: list[Any] = [thread.thread_id, seen.version, nonce, len(runs)]
    for run in runs:
        given = [(field, v) for name, field in _VALUE_FIELDS.items() if (v := getattr(run, name)) is not None]
        cleared = [field for name, field in _VALUE_FIELDS.items() if getattr(run, name) is None]
        args += [run.run_id, len(given), *(x for pair in given for x in pair), len(cleared), *cleared]
    payloads: dict[int, dict[tuple[str, int], bytes]] = {}
    for run_id, r in journal:
        payloads.setdefault(run_id, {})[(r.key, r.attempt)] = r.payload
    for run_id, new in payloads.items():
        rows = yield from load_journal(keys, row.tid, run_id)
        blobs = [encode_row(r._replace(payload=new.get((r.key, r.attempt), r.payload))) for r in rows]
        args += [run_id, len(blobs), *blobs]
    answer = yield Call("rewrite", tuple(args), durable=True)
    return bool(answer != b"retry")
