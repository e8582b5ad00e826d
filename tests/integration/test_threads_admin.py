"""`Threads`: listing and paging, reading earlier runs, interrupts, fork, export/import, diff, delete, prune, cancel.

Every test runs on every store (the ``store`` fixture); the ones that resume a run also run sync and async
(the ``flavor`` fixture). Export and import are checked across store kinds.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
from collections.abc import Callable
from typing import Any

import pytest

import durable
from durable import (
    Command,
    ConfigurationError,
    IntegrityError,
    Interrupt,
    Interrupted,
    RunCancelledError,
    Store,
    ThreadBusyError,
    ThreadExistsError,
    ThreadNotFoundError,
    Threads,
    interrupt,
)

Flavor = Any  # the `flavor` fixture from tests/conftest.py
KEY = b"k" * 32


class _Sync:
    """The ``flavor`` fixture's sync form, for tests that need no async twin: generator bodies, run in order."""

    name = "sync"

    @staticmethod
    def _body(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def body(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            if not inspect.isgenerator(result):
                return result
            value: Any = None
            while True:
                try:
                    value = result.send(value).result()
                except StopIteration as stop:
                    return stop.value

        return body

    def task(self, **options: Any) -> Callable[..., Any]:
        return lambda fn: durable.task(**options)(self._body(fn))

    def entrypoint(self, **options: Any) -> Callable[..., Any]:
        return lambda fn: durable.entrypoint(**options)(self._body(fn))

    @staticmethod
    def invoke(ep: Any, input: Any, **kwargs: Any) -> Any:
        return ep.invoke(input, **kwargs)


SYNC = _Sync()


class Boom(Exception):
    pass


def counted(f: Flavor, calls: Any, name: str, fn: Callable[[Any], Any]) -> Any:
    def body(x: Any) -> Any:
        calls.hit(name)
        return fn(x)

    return f.task(name=name)(body)


def pipeline(f: Flavor, store: Store, calls: Any, fail: list[bool] | None = None, **options: Any) -> Any:
    """Three tasks at keys 0, 1, 2 (each feeding the next); the last raises Boom while ``fail[0]``."""
    fail = fail if fail is not None else [False]
    first = counted(f, calls, "first", lambda x: x + 1)
    second = counted(f, calls, "second", lambda x: x * 10)

    def third_body(x: Any) -> Any:
        calls.hit("third")
        if fail[0]:
            raise Boom("third failed")
        return x + 5

    third = f.task(name="third")(third_body)

    def flow(x: int) -> Any:
        a = yield first(x)
        b = yield second(a)
        c = yield third(b)
        return [a, b, c]

    return f.entrypoint(checkpointer=store, name=options.pop("name", "flow"), **options)(flow)


def journal_of(threads: Threads, thread_id: str) -> list[Any]:
    """Everything stored for the thread: its runs and every run's journal rows."""
    store = threads.store
    thread = store.get_thread(thread_id)
    runs = store.list_runs(thread_id)
    return [runs, [store.load_journal(thread.tid, r.run_id) for r in runs]]


# -- listing ------------------------------------------------------------------------------------------


def test_list_pages_through_cursors(store: Store, calls: Any) -> None:
    """Pages of ``limit`` with a cursor to the next; together every thread once, newest first; filters apply."""
    ep = pipeline(SYNC, store, calls)
    other = pipeline(SYNC, store, calls, name="other")
    for i in range(7):
        ep.invoke(i, thread_id=f"t{i}")
    other.invoke(1, thread_id="o")
    threads = Threads(store)
    seen, cursor, sizes = [], None, []
    while True:
        page = threads.list(limit=3, cursor=cursor)
        sizes.append(len(page))
        seen += list(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [3, 3, 2]
    ids = [s.thread_id for s in seen]
    assert sorted(ids) == sorted([f"t{i}" for i in range(7)] + ["o"]) and len(set(ids)) == 8
    order = [(s.started_at, s.thread_id) for s in seen]
    assert order == sorted(order, reverse=True)
    assert [s.thread_id for s in threads.all(limit=2)] == ids
    # an exact fit leaves no next page
    assert threads.list(limit=8).next_cursor is None and len(threads.list(limit=8)) == 8
    assert [s.thread_id for s in threads.list(entrypoint="other")] == ["o"]
    assert {s.thread_id for s in threads.all(status="completed", entrypoint="flow", limit=4)} == {
        f"t{i}" for i in range(7)
    }
    assert threads.list(status="failed").threads == ()
    # the entrypoint's handle sees only its own threads
    assert sorted(s.thread_id for s in ep.threads.all()) == [f"t{i}" for i in range(7)]
    assert [s.thread_id for s in other.threads.list()] == ["o"]


@pytest.mark.parametrize("cursor", ["nonsense", "!!!", base64.urlsafe_b64encode(b'{"a": 1}').decode(), ""])
def test_a_bad_cursor_is_a_configuration_error(store: Store, cursor: str) -> None:
    with pytest.raises(ConfigurationError):
        Threads(store).list(cursor=cursor)


def test_bad_listing_arguments_are_configuration_errors(store: Store) -> None:
    threads = Threads(store)
    with pytest.raises(ConfigurationError):
        threads.list(status="done")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        threads.list(limit=0)


def test_state_of_an_earlier_run(store: Store, calls: Any) -> None:
    """state(run_id=) reads that run's output and entries; runs() lists them oldest first."""
    ep = pipeline(SYNC, store, calls)
    assert ep.invoke(1, thread_id="t") == [2, 20, 25]
    assert ep.invoke(2, thread_id="t") == [3, 30, 35]
    threads = Threads(store, unsafe_unpickle=True)  # an unsigned pickle journal: shown only by this opt-in
    first = threads.state("t", run_id=1)
    assert (first.run_id, first.status, first.output) == (1, "completed", [2, 20, 25])
    assert [(e.key, e.task, e.result) for e in first.entries] == [
        ("0", "first", 2),
        ("1", "second", 20),
        ("2", "third", 25),
    ]
    latest = threads.state("t")
    assert (latest.run_id, latest.output) == (2, [3, 30, 35])
    assert threads.state("t", run_id=2).output == latest.output
    assert [r.run_id for r in threads.runs("t")] == [1, 2]
    with pytest.raises(ConfigurationError):
        threads.state("t", run_id=3)
    with pytest.raises(ThreadNotFoundError):
        threads.state("nope")
    with pytest.raises(ThreadNotFoundError):
        threads.runs("nope")


def test_interrupts_across_threads(store: Store, flavor: Flavor) -> None:
    """interrupts() lists every pending interrupt of every paused thread, and none of answered ones."""

    def flow(x: int) -> Any:
        answer = interrupt({"approve": x}, id=f"q{x}")
        return answer

    ep = flavor.entrypoint(checkpointer=store, name="ask")(flow)
    for i in range(3):
        assert isinstance(flavor.invoke(ep, i, thread_id=f"t{i}"), Interrupted)
    assert flavor.invoke(ep, Command(resume="yes"), thread_id="t1") == "yes"
    pending = Threads(store, unsafe_unpickle=True).interrupts()
    assert sorted(pending, key=lambda p: p[0]) == [
        ("t0", Interrupt("q0", {"approve": 0})),
        ("t2", Interrupt("q2", {"approve": 2})),
    ]
    assert len(Threads(store).interrupts(limit=1)) == 1


# -- fork ---------------------------------------------------------------------------------------------


def test_fork_replays_the_prefix_and_runs_the_tail(store: Store, flavor: Flavor, calls: Any) -> None:
    """A fork at key 2 keeps keys 0 and 1: its resume runs only the third task; the original is untouched."""
    ep = pipeline(flavor, store, calls)
    assert flavor.invoke(ep, 1, thread_id="t") == [2, 20, 25]
    threads = Threads(store)
    before = journal_of(threads, "t")
    new = threads.fork("t", at=2, new_thread_id="t2")
    assert new == "t2"
    forked = threads.state("t2")
    assert [e.key for e in forked.entries] == ["0", "1"] and forked.status == "failed"
    assert "forked from thread 't'" in (forked.error_text or "")
    assert journal_of(threads, "t") == before
    assert flavor.invoke(ep, None, thread_id="t2") == [2, 20, 25]
    assert calls.as_dict() == {"first": 1, "second": 1, "third": 2}
    assert journal_of(threads, "t") == before
    assert ep.get_state(thread_id="t").output == [2, 20, 25]


def test_fork_with_an_override_feeds_the_tail(store: Store, flavor: Flavor, calls: Any) -> None:
    """An override replaces a kept result: the replay returns it and the tail computes from it."""
    ep = pipeline(flavor, store, calls)
    flavor.invoke(ep, 1, thread_id="t")
    threads = Threads(store)
    before = journal_of(threads, "t")
    new = threads.fork("t", at="2", overrides={"1": 100})
    assert new.startswith("t-fork-")
    assert flavor.invoke(ep, None, thread_id=new) == [2, 100, 105]
    assert calls.as_dict() == {"first": 1, "second": 1, "third": 2}
    assert journal_of(threads, "t") == before
    assert [d.key for d in threads.diff("t", new)] == ["1", "2"]  # the tail ran on the override
    whole = threads.fork("t", at=3, overrides={"1": 100})  # keeps every key, one of them overridden
    diffs = threads.diff("t", whole)
    assert [d.key for d in diffs] == ["1"]
    assert diffs[0].left[:2] == ("second", "ok") and diffs[0].right[:2] == ("second", "ok")
    assert diffs[0].left[3] != diffs[0].right[3]


def test_fork_of_an_earlier_run_keeps_the_runs_before_it(store: Store, calls: Any) -> None:
    ep = pipeline(SYNC, store, calls)
    ep.invoke(1, thread_id="t")
    ep.invoke(2, thread_id="t")
    threads = Threads(store)
    threads.fork("t", at=1, new_thread_id="f", run_id=1)
    assert [r.run_id for r in threads.runs("f")] == [1]
    assert ep.invoke(None, thread_id="f") == [2, 20, 25]
    assert calls.as_dict() == {"first": 2, "second": 3, "third": 3}
    with pytest.raises(ConfigurationError):
        threads.fork("t", at=1, run_id=7)


def test_fork_refusals_change_nothing(store: Store, calls: Any) -> None:
    """Overriding a key the fork does not keep, forking onto the same or a taken id: errors, nothing written."""
    ep = pipeline(SYNC, store, calls)
    ep.invoke(1, thread_id="t")
    ep.invoke(5, thread_id="taken")
    threads = Threads(store)
    before = (journal_of(threads, "t"), journal_of(threads, "taken"))
    with pytest.raises(ConfigurationError, match="override for key '2'"):
        threads.fork("t", at=2, new_thread_id="f", overrides={"2": 0})
    with pytest.raises(ConfigurationError):
        threads.fork("t", at=2, new_thread_id="f", overrides={"9": 0})
    with pytest.raises(ConfigurationError):
        threads.fork("t", at=2, new_thread_id="t")
    with pytest.raises(ConfigurationError):
        threads.fork("t", at="x", new_thread_id="f")
    with pytest.raises(ThreadExistsError):
        threads.fork("t", at=2, new_thread_id="taken")
    with pytest.raises(ThreadNotFoundError):
        threads.fork("nope", at=1, new_thread_id="f")
    assert store.get_thread("f") is None
    assert (journal_of(threads, "t"), journal_of(threads, "taken")) == before


def test_fork_of_a_signed_journal(store: Store, calls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the key, a fork re-signs for the new thread and its values verify; without it, IntegrityError."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    ep = pipeline(SYNC, store, calls, secret=KEY)
    ep.invoke(1, thread_id="t")
    new = Threads(store, secret=KEY).fork("t", at=2, new_thread_id="f", overrides={"1": 7})
    assert ep.invoke(None, thread_id=new) == [2, 7, 12]
    assert calls.as_dict() == {"first": 1, "second": 1, "third": 2}
    assert [e.result for e in ep.get_state(thread_id="f").entries if e.key == "1"] == [7]
    assert ep.threads.fork("t", at=1, new_thread_id="g") == "g"  # the entrypoint's handle has its key
    assert ep.invoke(None, thread_id="g") == [2, 20, 25]
    with pytest.raises(IntegrityError):
        Threads(store).fork("t", at=2, new_thread_id="h")
    with pytest.raises(IntegrityError):
        Threads(store, secret=b"o" * 32).fork("t", at=2, new_thread_id="h")
    assert store.get_thread("h") is None


# -- export and import --------------------------------------------------------------------------------

KINDS = [
    ("sqlite", "postgres"),
    ("postgres", "sqlite"),
    ("memory", "sqlite"),
    ("postgres", "memory"),
    ("redis", "sqlite"),
    ("sqlite", "redis"),
]


@pytest.mark.parametrize(("src", "dst"), KINDS, ids=lambda k: k)
def test_export_import_resumes_an_unfinished_run(
    new_store: Callable[..., Store], flavor: Flavor, calls: Any, src: str, dst: str
) -> None:
    """A failed run exported through JSON and imported into another store resumes there, replaying its tasks."""
    source, target, fail = new_store(src), new_store(dst), [True]
    there = pipeline(flavor, source, calls, fail)
    with pytest.raises(Boom):
        flavor.invoke(there, 1, thread_id="t")
    bundle = json.loads(json.dumps(Threads(source).export("t")))
    assert (bundle["format"], bundle["version"], bundle["thread_id"]) == ("durable.thread", 2, "t")
    assert Threads(target).import_bundle(bundle) == "t"
    fail[0] = False
    here = pipeline(flavor, target, calls, fail)
    assert here.get_state(thread_id="t").status == "failed"
    assert flavor.invoke(here, None, thread_id="t") == [2, 20, 25]
    assert calls.as_dict() == {"first": 1, "second": 1, "third": 2}
    assert there.get_state(thread_id="t").status == "failed"  # the source keeps its copy
    with pytest.raises(ThreadExistsError):
        Threads(target).import_bundle(bundle)


@pytest.mark.parametrize(("src", "dst"), KINDS, ids=lambda k: k)
def test_export_import_of_a_completed_thread(
    new_store: Callable[..., Store], calls: Any, src: str, dst: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completed (signed, two-run) thread arrives byte for byte: invoke(None) returns its output, running nothing."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    source, target = new_store(src), new_store(dst)
    there = pipeline(SYNC, source, calls, secret=KEY)
    there.invoke(1, thread_id="t")
    there.invoke(2, thread_id="t")
    bundle = json.loads(json.dumps(Threads(source).export("t")))
    Threads(target).import_bundle(bundle)
    here = pipeline(SYNC, target, calls, secret=KEY)
    assert here.invoke(None, thread_id="t") == [3, 30, 35]
    assert calls.total() == 6
    assert Threads(target, secret=KEY).state("t", run_id=1).output == [2, 20, 25]
    assert Threads(target).diff("t", bundle) == []
    assert Threads(target).export("t")["runs"] == bundle["runs"]
    assert here.invoke(3, thread_id="t") == [4, 40, 45]  # the previous run's value carries over


def good_bundle(store: Store, calls: Any) -> dict[str, Any]:
    fail = [True]
    ep = pipeline(SYNC, store, calls, fail)
    with pytest.raises(Boom):
        ep.invoke(1, thread_id="src")
    return json.loads(json.dumps(Threads(store).export("src")))


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        target: Any = bundle
        for part in path[:-1]:
            target = target[part]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


MALFORMED = {
    "wrong-format": _set(("format",), "langgraph.checkpoint"),
    "no-format": _set(("format",), KeyError),
    "wrong-version": _set(("version",), 3),
    "version-as-text": _set(("version",), "1"),
    "no-runs": _set(("runs",), KeyError),
    "no-journal": _set(("journal",), KeyError),
    "no-thread-id": _set(("thread_id",), KeyError),
    "run-without-input": _set(("runs", 0, "input"), KeyError),
    "run-without-id": _set(("runs", 0, "run_id"), KeyError),
    "run-bad-status": _set(("runs", 0, "status"), "exploded"),
    "run-bad-started": _set(("runs", 0, "started_at"), "yesterday"),
    "row-bad-base64": _set(("journal", 0, "payload"), "not base64 !"),
    "input-bad-base64": _set(("runs", 0, "input"), "@@@@"),
    "row-without-key": _set(("journal", 1, "key"), KeyError),
    "row-bad-status": _set(("journal", 1, "status"), "maybe"),
    "row-of-unknown-run": _set(("journal", 1, "run_id"), 2),
    "runs-not-a-list": _set(("runs",), 5),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_bundle_imports_nothing(store: Store, calls: Any, name: str) -> None:
    bundle = good_bundle(store, calls)
    bundle["thread_id"] = "copy"
    MALFORMED[name](bundle)
    with pytest.raises(ConfigurationError):
        Threads(store).import_bundle(bundle)
    assert store.get_thread("copy") is None
    assert [s.thread_id for s in Threads(store).all()] == ["src"]


@pytest.mark.parametrize("bundle", [None, [], "durable.thread", {"format": "durable.thread"}])
def test_a_bundle_that_is_not_one_is_a_configuration_error(store: Store, bundle: Any) -> None:
    with pytest.raises(ConfigurationError):
        Threads(store).import_bundle(bundle)
    assert Threads(store).list().threads == ()


def test_diff_of_identical_threads_is_empty(store: Store, calls: Any) -> None:
    """A thread and its copy (imported, or forked after its last key) differ in nothing; other inputs differ."""
    ep = pipeline(SYNC, store, calls)
    ep.invoke(1, thread_id="t")
    threads = Threads(store)
    bundle = threads.export("t")
    bundle["thread_id"] = "copy"
    threads.import_bundle(bundle)
    assert threads.diff("t", "copy") == []
    assert threads.diff("t", bundle) == []
    threads.fork("t", at=3, new_thread_id="f")
    assert threads.diff("t", "f") == []
    ep.invoke(2, thread_id="u")
    assert [d.key for d in threads.diff("t", "u")] == ["0", "1", "2"]
    short = threads.fork("t", at=1, new_thread_id="short")
    (only,) = threads.diff("t", short)[:1]
    assert [d.key for d in threads.diff("t", short)] == ["1", "2"] and only.right is None


# -- delete, prune, cancel -----------------------------------------------------------------------------


def test_delete(store: Store, calls: Any) -> None:
    ep = pipeline(SYNC, store, calls)
    ep.invoke(1, thread_id="t")
    ep.invoke(1, thread_id="u")
    threads = Threads(store)
    assert threads.delete("t") is True
    with pytest.raises(ThreadNotFoundError):
        ep.get_state(thread_id="t")
    assert threads.delete("t") is False
    assert [s.thread_id for s in threads.all()] == ["u"]
    lease = store.claim("u", "someone")
    with pytest.raises(ThreadBusyError):
        threads.delete("u")
    store.release(lease)
    assert threads.delete("u") is True
    assert ep.invoke(1, thread_id="t") == [2, 20, 25]  # a deleted id starts afresh
    assert calls["first"] == 3


def test_prune(store: Store, calls: Any) -> None:
    """prune(0) deletes completed threads only, reporting running totals; statuses=("failed",) the failed ones."""
    fail = [False]
    ep = pipeline(SYNC, store, calls, fail)
    paused = SYNC.entrypoint(checkpointer=store, name="ask")(lambda x: interrupt(x))
    for i in range(5):
        ep.invoke(i, thread_id=f"done{i}")
    fail[0] = True
    for i in range(2):
        with pytest.raises(Boom):
            ep.invoke(i, thread_id=f"failed{i}")
    assert isinstance(paused.invoke(1, thread_id="paused"), Interrupted)
    threads = Threads(store)
    assert threads.prune(3600) == 0  # nothing finished an hour ago
    totals: list[int] = []
    assert threads.prune(0, batch=2, progress=totals.append) == 5
    assert totals == [2, 4, 5]
    assert sorted(s.thread_id for s in threads.all()) == ["failed0", "failed1", "paused"]
    assert threads.prune(0, statuses=("failed",)) == 2
    assert [s.thread_id for s in threads.all()] == ["paused"]
    with pytest.raises(ConfigurationError):
        threads.prune(0, statuses=("interrupted",))
    with pytest.raises(ConfigurationError):
        threads.prune(-1)
    assert [s.thread_id for s in threads.all()] == ["paused"]


def test_cancel_without_the_entrypoint(store: Store, flavor: Flavor) -> None:
    """Threads.cancel fails a paused run with RunCancelledError, as the entrypoint's own cancel would."""

    def flow(x: int) -> Any:
        return interrupt(x)

    ep = flavor.entrypoint(checkpointer=store, name="ask")(flow)
    assert isinstance(flavor.invoke(ep, 1, thread_id="t"), Interrupted)
    assert Threads(store).cancel("t") is True
    state = ep.get_state(thread_id="t")
    assert state.status == "failed" and isinstance(state.error, RunCancelledError)
    assert (state.error.thread_id, state.error.run_id) == ("t", 1)
    assert Threads(store).interrupts() == []
    assert Threads(store).cancel("t") is False
    with pytest.raises(ThreadNotFoundError):
        Threads(store).cancel("nope")


def test_a_bundle_without_runs_and_a_cursor_without_a_thread_id_are_refused(store: Store) -> None:
    """Neither would name anything real: an empty bundle is not imported, a hand-made cursor is rejected."""
    import base64
    import json

    threads = Threads(store)
    empty = {"format": "durable.thread", "version": 1, "thread_id": "t", "runs": [], "journal": []}
    with pytest.raises(ConfigurationError, match="non-empty list of runs"):
        threads.import_bundle(empty)
    assert store.get_thread("t") is None
    forged = base64.urlsafe_b64encode(json.dumps([1.0, None]).encode()).decode()
    with pytest.raises(ConfigurationError, match="cursor"):
        threads.list(cursor=forged)
