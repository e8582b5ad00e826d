"""What the engine trusts: a thread's owner, runs it cannot read, signatures over all that decides behaviour,
stored sizes and the keys themselves.

Tampering goes behind the library's back with SQL (`tamper`), so those tests run on SQLite and Postgres only
(the ``sql_store`` fixture): the memory store has no columns to edit, and editing its private dicts would test
the dicts, not what a database attacker can do.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from durable import (
    Command,
    ConfigurationError,
    EntrypointMismatchError,
    IntegrityError,
    Interrupted,
    Keyring,
    RunCancelledError,
    SerializationError,
    SQLiteStore,
    Store,
    Threads,
    Worker,
    WorkerStats,
    entrypoint,
    interrupt,
    task,
)
from durable._codec import keyring

Flavor = Any  # the `flavor` fixture from tests/conftest.py
KEY = b"k" * 32
K1 = b"1" * 32
K2 = b"2" * 32
T = "order-7"


@pytest.fixture(autouse=True)
def _no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLE_SECRET", raising=False)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest, new_store: Callable[..., Store]) -> Iterator[Store]:
    """A fresh SQLite or Postgres store: a database someone can write to behind the library's back."""
    with new_store(request.param) as store:
        yield store


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def small_store(request: pytest.FixtureRequest, new_store: Callable[..., Store]) -> Iterator[Store]:
    """A fresh store of each kind that stores no value over 200 bytes."""
    with new_store(request.param, max_result_bytes=200) as store:
        yield store


# -- helpers --------------------------------------------------------------------------------------


def tamper(store: Store, sql: str, *params: Any) -> None:
    """Run one SQL statement on the store's tables (``?`` placeholders), as someone with database access would."""
    if isinstance(store, SQLiteStore):
        with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
            conn.execute(sql, params)
        return
    import psycopg

    pg: Any = store  # a PostgresStore
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg.schema}"')
        conn.execute(sql.replace("?", "%s"), params)


def tid(store: Store, thread_id: str = T) -> int:
    thread = store.get_thread(thread_id)
    assert thread is not None
    return thread.tid


def recorded(store: Store, thread_id: str = T) -> tuple[Any, ...]:
    """Everything the store holds about the thread's runs: each run's row and its journal."""
    runs = store.list_runs(thread_id)
    return tuple((run, tuple(store.load_journal(tid(store, thread_id), run.run_id))) for run in runs)


def last_run(store: Store, thread_id: str = T) -> Any:
    thread = store.get_thread(thread_id)
    assert thread is not None and thread.run is not None
    return thread.run


def failing_after(flavor: Flavor, store: Store, calls: Any, **options: Any) -> tuple[Any, list[bool]]:
    """An entrypoint fetching pages 0..n-1 that fails after its tasks while ``fail[0]``, so a resume replays them."""
    fail = [True]

    @flavor.task(name="fetch")
    def fetch(i: int) -> str:
        calls.hit("fetch")
        return f"page {i}"

    def pipeline(n: int) -> Any:
        pages = yield [fetch(i) for i in range(n)]
        if fail[0]:
            raise RuntimeError("fails after its tasks, so a resume replays them")
        return pages

    return flavor.entrypoint(checkpointer=store, name="pipeline", **options)(pipeline), fail


def carry(worker: Worker, store: Store, thread_id: str = T, limit: float = 1.5) -> WorkerStats:
    """Run the worker in a thread until the run has failed (or ``limit`` s), a few polls more, then stop it."""
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and last_run(store, thread_id).status != "failed":
        time.sleep(0.02)
    time.sleep(6 * worker.poll_interval)  # a run left for the workers would be taken again in these polls
    worker.stop()
    runner.join(10)
    assert not runner.is_alive()
    return worker.stats


# -- 1. a thread belongs to the entrypoint that started it -----------------------------------------


def owner_and_intruder(flavor: Flavor, store: Store, calls: Any) -> tuple[Any, Any]:
    """Entrypoint "a" (its task fails on "fail" and asks a person on "pause") and entrypoint "b"."""

    @flavor.task(name="a.step")
    def step(x: str) -> Any:
        calls.hit("a.step")
        if x == "fail":
            raise ValueError("a's task failed")
        if x == "pause":
            return interrupt("approve?")
        return x.upper()

    def a(x: str) -> Any:
        return (yield step(x))

    @flavor.task(name="b.step")
    def other(x: Any) -> Any:
        calls.hit("b.step")
        return x

    def b(x: Any) -> Any:
        calls.hit("b")
        return (yield other(x))

    return (
        flavor.entrypoint(checkpointer=store, name="a")(a),
        flavor.entrypoint(checkpointer=store, name="b")(b),
    )


def start(flavor: Flavor, a: Any, situation: str) -> None:
    """Leave A's thread completed, failed (its task raised) or paused on an interrupt."""
    if situation == "completed":
        assert flavor.invoke(a, "go", thread_id=T) == "GO"
    elif situation == "failed":
        with pytest.raises(ValueError, match="a's task failed"):
            flavor.invoke(a, "fail", thread_id=T)
    else:
        assert isinstance(flavor.invoke(a, "pause", thread_id=T), Interrupted)


INTRUSIONS: dict[str, Callable[[Flavor, Any], Any]] = {
    "resume": lambda f, b: f.invoke(b, None, thread_id=T),
    "new input": lambda f, b: f.invoke(b, "new", thread_id=T),
    "command": lambda f, b: f.invoke(b, Command(resume="yes"), thread_id=T),
    "stream": lambda f, b: list(b.stream(None, thread_id=T)),
    "submit": lambda f, b: b.submit("new", thread_id=T),
    "cancel": lambda f, b: b.cancel(thread_id=T),
}


@pytest.mark.parametrize(
    ("situation", "action"),
    [
        ("completed", "resume"),
        ("failed", "resume"),
        ("completed", "new input"),
        ("paused", "command"),
        ("completed", "stream"),
        ("completed", "submit"),
        ("paused", "cancel"),
    ],
)
def test_another_entrypoint_is_refused_and_records_nothing(
    store: Store, flavor: Flavor, calls: Any, situation: str, action: str
) -> None:
    """Another entrypoint on a thread raises EntrypointMismatchError naming both and the thread; nothing runs."""
    a, b = owner_and_intruder(flavor, store, calls)
    start(flavor, a, situation)
    before, status = recorded(store), last_run(store).status
    with pytest.raises(EntrypointMismatchError) as refused:
        INTRUSIONS[action](flavor, b)
    assert (refused.value.thread_id, refused.value.recorded, refused.value.called) == (T, "a", "b")
    assert all(name in str(refused.value) for name in (repr(T), "'a'", "'b'"))
    assert calls["b"] == calls["b.step"] == 0
    assert recorded(store) == before and last_run(store).status == status


def test_the_owner_check_leaves_reading_and_the_operator_alone(store: Store, flavor: Flavor, calls: Any) -> None:
    """B may not cancel A's thread, but may read its state; Threads.cancel (the operator) cancels it."""
    a, b = owner_and_intruder(flavor, store, calls)
    start(flavor, a, "paused")
    with pytest.raises(EntrypointMismatchError):
        b.cancel(thread_id=T)
    state = b.get_state(thread_id=T)
    assert (state.status, [i.value for i in state.interrupts]) == ("interrupted", ["approve?"])
    assert Threads(store).cancel(T) is True
    cancelled = a.get_state(thread_id=T)
    assert cancelled.status == "failed" and (cancelled.error_text or "").startswith("RunCancelledError")


def test_an_operators_cancel_without_the_key_changes_nothing(store: Store, flavor: Flavor, calls: Any) -> None:
    """An operator without the key cannot cancel a signed thread (it would write an unsigned error): nothing
    changes, and with the key the cancel goes through, readable by the thread's owner."""
    ep = asking(flavor, store, calls, secret=KEY)
    assert isinstance(flavor.invoke(ep, "ok? ", thread_id=T), Interrupted)
    with pytest.raises(ConfigurationError, match="is signed"):
        Threads(store).cancel(T)  # no key: DURABLE_SECRET is unset
    assert ep.get_state(thread_id=T).status == "interrupted"
    assert Threads(store, secret=KEY).cancel(T) is True
    state = ep.get_state(thread_id=T)
    assert state.status == "failed" and isinstance(state.error, RunCancelledError)


# -- 2. a run that cannot be read never spins a worker -------------------------------------------


def _refuse_to_load() -> None:
    raise RuntimeError("this value cannot be read back")


class Unreadable:
    """Pickles fine; unpickling it raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse_to_load, ())


UNREADABLE = {
    "wrong key": "IntegrityError",
    "unpicklable input": "SerializationError",
    "unreadable previous": "IntegrityError",
}


def unreadable_run(case: str, make: Callable[[bytes | None], Any]) -> Any:
    """Leave a submitted run of "job" on thread T that the returned entrypoint cannot read (see UNREADABLE)."""
    if case == "wrong key":
        make(K1).submit(1, thread_id=T)
        return make(K2)
    if case == "unpicklable input":
        job = make(None)
        job.submit(Unreadable(), thread_id=T)
        return job
    make(K1).invoke(1, thread_id=T)  # run 1 completes: run 2's `previous` is its value, signed with K1
    job = make(K2)
    job.submit(2, thread_id=T)
    return job


def job_maker(store: Store, calls: Any, flavor: Flavor | None = None) -> Callable[[bytes | None], Any]:
    """``make(secret)``: the entrypoint "job" on the store, signing with ``secret`` (sync, or the flavor's)."""

    def make(secret: bytes | None) -> Any:
        if flavor is None:

            @task(name="work")
            def work(x: Any) -> Any:
                calls.hit("work")
                return x

            @entrypoint(checkpointer=store, secret=secret, name="job")
            def job(x: Any, previous: Any = None) -> Any:
                calls.hit("job")
                return work(x).result()

            return job

        @flavor.task(name="work")
        def fwork(x: Any) -> Any:
            calls.hit("work")
            return x

        def fjob(x: Any, previous: Any = None) -> Any:
            calls.hit("job")
            return (yield fwork(x))

        return flavor.entrypoint(checkpointer=store, secret=secret, name="job")(fjob)

    return make


@pytest.mark.parametrize("case", list(UNREADABLE))
@pytest.mark.slow
def test_a_run_that_cannot_be_read_is_failed_once_by_a_worker(store: Store, calls: Any, case: str) -> None:
    """A worker that cannot read a run (wrong key, input that fails to unpickle, unreadable previous) fails it once."""
    job = unreadable_run(case, job_maker(store, calls))
    ran = calls.as_dict()
    stats = carry(Worker([job], checkpointer=store, poll_interval=0.05), store)
    assert stats.total <= 2, f"the run was carried {stats.total} times"
    run = last_run(store)
    assert run.status == "failed" and (run.error_text or "").startswith(UNREADABLE[case]), run.error_text
    assert calls.as_dict() == ran


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_a_run_that_cannot_be_read_fails_the_invoke_that_finds_it(
    store: Store, flavor: Flavor, calls: Any, case: str
) -> None:
    """invoke(None) on a run it cannot read raises why, and leaves the run failed (not running for a worker)."""
    job = unreadable_run(case, job_maker(store, calls, flavor))
    ran = calls.as_dict()
    error = IntegrityError if UNREADABLE[case] == "IntegrityError" else SerializationError
    with pytest.raises(error):
        flavor.invoke(job, None, thread_id=T)
    run = last_run(store)
    assert run.status == "failed" and (run.error_text or "").startswith(UNREADABLE[case]), run.error_text
    assert calls.as_dict() == ran


# -- 3. the signature covers everything that decides behaviour --------------------------------------


def test_a_recorded_error_flipped_to_a_value_fails_its_signature(sql_store: Store, flavor: Flavor, calls: Any) -> None:
    """A row whose status was flipped from error to value fails its signature: the caught error is not a value."""
    fail = [True]

    @flavor.task(name="check")
    def check(x: int) -> int:
        calls.hit("check")
        raise ValueError(f"{x} is too big")

    def decide(x: int) -> Any:
        try:
            yield check(x)
            ok = True
        except ValueError:
            ok = False
        if fail[0]:
            raise RuntimeError("fails after the caught error, so a resume replays it")
        return "accepted" if ok else "declined"

    ep = flavor.entrypoint(checkpointer=sql_store, secret=KEY, name="decide")(decide)
    with pytest.raises(RuntimeError):
        flavor.invoke(ep, 7, thread_id=T)
    fail[0] = False
    tamper(sql_store, "UPDATE durable_journal SET status = 0 WHERE tid = ? AND key = '0'", tid(sql_store))
    with pytest.raises(IntegrityError, match="fails its signature check"):
        flavor.invoke(ep, None, thread_id=T)
    assert calls["check"] == 1


def test_a_rows_changed_attempt_fails_its_signature(sql_store: Store, flavor: Flavor, calls: Any) -> None:
    """A row whose attempt number was changed fails its signature on replay."""
    ep, fail = failing_after(flavor, sql_store, calls, secret=KEY)
    with pytest.raises(RuntimeError):
        flavor.invoke(ep, 2, thread_id=T)
    fail[0] = False
    tamper(sql_store, "UPDATE durable_journal SET attempt = 2 WHERE tid = ? AND key = '1'", tid(sql_store))
    with pytest.raises(IntegrityError, match="fails its signature check"):
        flavor.invoke(ep, None, thread_id=T)
    assert calls["fetch"] == 2


def test_one_runs_signed_input_given_to_another_run_fails(sql_store: Store, flavor: Flavor, calls: Any) -> None:
    """A pending run whose input was replaced by an earlier run's signed input fails; the task never sees it."""
    seen: list[int] = []

    @flavor.task(name="spend")
    def spend(amount: int) -> int:
        seen.append(amount)
        return amount

    def pay(amount: int) -> Any:
        return (yield spend(amount))

    ep = flavor.entrypoint(checkpointer=sql_store, secret=KEY, name="pay")(pay)
    assert flavor.invoke(ep, 1000, thread_id=T) == 1000
    ep.submit(1, thread_id=T)
    first = sql_store.list_runs(T)[0].input
    tamper(sql_store, "UPDATE durable_runs SET input = ? WHERE tid = ? AND run_id = 2", first, tid(sql_store))
    with pytest.raises(IntegrityError):
        flavor.invoke(ep, None, thread_id=T)
    assert seen == [1000]
    run = last_run(sql_store)
    assert (run.run_id, run.status) == (2, "failed") and (run.error_text or "").startswith("IntegrityError")


def test_a_run_repointed_at_another_entrypoint_fails_in_the_worker(sql_store: Store, calls: Any) -> None:
    """A run whose entrypoint column names another registered entrypoint fails its signature; that body never runs."""

    @entrypoint(checkpointer=sql_store, secret=KEY, name="a")
    def a(x: int) -> int:
        calls.hit("a")
        return x

    @entrypoint(checkpointer=sql_store, secret=KEY, name="b")
    def b(x: int) -> int:
        calls.hit("b")
        return -x

    a.submit(5, thread_id=T)
    tamper(sql_store, "UPDATE durable_runs SET entrypoint = 'b' WHERE tid = ?", tid(sql_store))
    stats = carry(Worker([a, b], checkpointer=sql_store, poll_interval=0.05), sql_store)
    assert calls.total() == 0
    assert stats.total <= 2
    run = last_run(sql_store)
    assert run.status == "failed" and (run.error_text or "").startswith("IntegrityError"), run.error_text


def test_a_deleted_threads_rows_do_not_replay_in_a_new_thread_of_its_id(
    sql_store: Store, flavor: Flavor, calls: Any
) -> None:
    """Rows of a deleted thread, copied into a new thread with the same id, fail their signature (a new nonce)."""
    ep, fail = failing_after(flavor, sql_store, calls, secret=KEY)
    with pytest.raises(RuntimeError):
        flavor.invoke(ep, 2, thread_id=T)
    old_rows = sql_store.load_journal(tid(sql_store), 1)
    assert len(old_rows) == 2
    assert Threads(sql_store, secret=KEY).delete(T)
    ep.submit(2, thread_id=T)  # the same id, a new thread: run 1 again, with nothing journaled
    new_tid = tid(sql_store)
    for row in old_rows:
        tamper(
            sql_store,
            "INSERT INTO durable_journal (tid, run_id, key, attempt, name, status, digest, payload, started_at, "
            "duration_us) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, 0)",
            new_tid, row.key, row.attempt, row.name, row.status, row.digest, row.payload, row.started_at,
        )  # fmt: skip
    fail[0] = False
    with pytest.raises(IntegrityError):
        flavor.invoke(ep, None, thread_id=T)
    assert calls["fetch"] == 2


def test_a_fork_never_launders_a_tampered_row(sql_store: Store, flavor: Flavor, calls: Any) -> None:
    """Forking a thread with a flipped row status raises IntegrityError and creates no thread."""
    ep, _ = failing_after(flavor, sql_store, calls, secret=KEY)
    with pytest.raises(RuntimeError):
        flavor.invoke(ep, 2, thread_id=T)
    tamper(sql_store, "UPDATE durable_journal SET status = 1 WHERE tid = ? AND key = '0'", tid(sql_store))
    with pytest.raises(IntegrityError):
        Threads(sql_store, secret=KEY).fork(T, at=2, new_thread_id="forked")
    assert sql_store.get_thread("forked") is None


# -- 4. max_result_bytes covers every stored value --------------------------------------------------


BIG = "x" * 1000


def asking(flavor: Flavor, store: Store, calls: Any, **options: Any) -> Any:
    """An entrypoint whose task asks its input, ten times over, as a question and returns the answer."""

    @flavor.task(name="ask")
    def ask(question: str) -> Any:
        calls.hit("ask")
        return interrupt(question * 10)

    def review(question: str) -> Any:
        return (yield ask(question))

    return flavor.entrypoint(checkpointer=store, name="review", **options)(review)


def test_an_input_over_the_limit_creates_no_thread(small_store: Store, flavor: Flavor, calls: Any) -> None:
    """An input over max_result_bytes raises SerializationError from invoke and submit; no thread is created."""
    ep = asking(flavor, small_store, calls)
    with pytest.raises(SerializationError, match="max_result_bytes"):
        flavor.invoke(ep, BIG, thread_id=T)
    with pytest.raises(SerializationError, match="max_result_bytes"):
        ep.submit(BIG, thread_id="submitted")
    assert small_store.get_thread(T) is None and small_store.get_thread("submitted") is None
    assert calls.total() == 0


def test_an_output_over_the_limit_fails_the_run(small_store: Store, flavor: Flavor) -> None:
    """A returned value over max_result_bytes fails the run instead of leaving it running."""
    ep = flavor.entrypoint(checkpointer=small_store, name="big")(lambda n: "x" * n)
    with pytest.raises(SerializationError, match="max_result_bytes"):
        flavor.invoke(ep, 1000, thread_id=T)
    assert last_run(small_store).status == "failed"


def test_a_question_over_the_limit_fails_the_run(small_store: Store, flavor: Flavor, calls: Any) -> None:
    """An interrupt whose question is over max_result_bytes fails the run instead of leaving it running."""
    ep = asking(flavor, small_store, calls)
    with pytest.raises(SerializationError, match="max_result_bytes"):
        flavor.invoke(ep, "?" * 50, thread_id=T)  # the input fits; the question does not
    assert last_run(small_store).status == "failed"


def test_an_answer_over_the_limit_is_refused_and_the_question_stands(
    small_store: Store, flavor: Flavor, calls: Any
) -> None:
    """A Command whose answer is over max_result_bytes raises SerializationError; the thread stays paused as it was."""
    ep = asking(flavor, small_store, calls)
    paused = flavor.invoke(ep, "ok? ", thread_id=T)
    assert isinstance(paused, Interrupted)
    before = recorded(small_store)
    with pytest.raises(SerializationError, match="max_result_bytes"):
        flavor.invoke(ep, Command(resume=BIG), thread_id=T)
    assert recorded(small_store) == before
    state = ep.get_state(thread_id=T)
    assert (state.status, state.interrupts) == ("interrupted", paused.interrupts)
    assert calls["ask"] == 1


# -- 5. secrets -----------------------------------------------------------------------------------------


def test_a_base64_durable_secret_ending_in_padding_signs_and_resumes(
    store: Store, flavor: Flavor, calls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DURABLE_SECRET set to base64 text ending in "=" is one key: it signs a journal and resumes it."""
    text = base64.b64encode(os.urandom(32)).decode()
    assert text.endswith("=")
    monkeypatch.setenv("DURABLE_SECRET", text)
    ep, fail = failing_after(flavor, store, calls)
    with pytest.raises(RuntimeError):
        flavor.invoke(ep, 2, thread_id=T)
    fail[0] = False
    assert flavor.invoke(ep, None, thread_id=T) == ["page 0", "page 1"]
    assert calls["fetch"] == 2
    (_, rows), *_ = recorded(store)
    assert rows and all(row.payload[:1] == b"T" for row in rows)


def test_binary_keys_given_as_base64_or_hex_are_those_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys written "base64:..." or "hex:..." (alone, or as id=key in DURABLE_SECRET) are the bytes they encode."""
    raw = os.urandom(32)
    b64 = base64.b64encode(raw).decode()
    assert keyring("base64:" + b64) == keyring("hex:" + raw.hex()) == keyring(raw)
    monkeypatch.setenv("DURABLE_SECRET", f"new=base64:{b64},old=hex:{K1.hex()}")
    assert keyring(None) == Keyring({"new": raw, "old": K1}, write="new")


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("tiny-secret=", ["tiny-secret"]),
        ("base64:" + base64.b64encode(b"8 bytes!").decode(), [base64.b64encode(b"8 bytes!").decode().rstrip("=")]),
        ("hex:" + "ab" * 8, ["ab" * 8]),
        ("prod7=" + "k" * 32 + "," + "j" * 32, ["prod7", "k" * 16, "j" * 16]),
    ],
    ids=["short", "short-base64", "short-hex", "mixed"],
)
def test_a_bad_secret_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, secret: str, shown: list[str]
) -> None:
    """A too-short key, or id=key pairs mixed with bare keys, is a ConfigurationError that does not show the key."""
    monkeypatch.setenv("DURABLE_SECRET", secret)
    with pytest.raises(ConfigurationError) as refused:
        keyring(None)
    assert not [text for text in shown if text in str(refused.value)], str(refused.value)


def test_an_unknown_key_id_is_named_without_listing_the_keyring(store: Store, flavor: Flavor, calls: Any) -> None:
    """A blob signed with a key id the keyring lacks is refused, naming that id but not the keyring's ids."""
    written, _ = failing_after(flavor, store, calls, secret=Keyring({"old-key": K1}, write="old-key"))
    with pytest.raises(RuntimeError):
        flavor.invoke(written, 2, thread_id=T)
    reader, _ = failing_after(flavor, store, calls, secret=Keyring({"new-key": K2}, write="new-key"))
    with pytest.raises(IntegrityError, match="'old-key'") as refused:
        flavor.invoke(reader, None, thread_id=T)
    assert "new-key" not in str(refused.value)
