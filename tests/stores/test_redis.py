"""What is RedisStore's own: its URLs and options, its durability settings, the server's state it must survive
(scripts flushed, connections killed, a replica gone), its keys, and what it refuses. The interface's contract is
`test_conformance.py`'s; the engine's behaviours run on it through the ``store`` fixture."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from durable import (
    ConfigurationError,
    IntegrityError,
    JournalNotFoundError,
    MemoryStore,
    RedisStore,
    SchemaVersionError,
    StoreError,
    UsageError,
    VolatileJournalWarning,
    entrypoint,
    task,
)
from durable._urls import resolve_store
from durable.stores import _redis_ops as ops
from durable.stores._base import JournalRow, NewRun, ThreadFilter
from durable.stores._redis_ops import Call

KEY = b"k" * 32


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def counting_flow(store: RedisStore, calls: list[int], **options: Any) -> Any:
    @task
    def square(i: int) -> int:
        calls.append(i)
        return i * i

    @entrypoint(checkpointer=store, **options)
    def flow(n: int) -> list[int]:
        return [square(i).result() for i in range(n)]

    return flow


@pytest.fixture
def redis_store(redis_prefix: tuple[str, str]) -> Callable[..., RedisStore]:
    url, prefix = redis_prefix

    def make(**options: Any) -> RedisStore:
        return RedisStore(url, prefix=prefix, **options)

    return make


def raw(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


# -- URLs and options ---------------------------------------------------------------------------------------------


def test_a_redis_url_opens_a_redis_store_with_its_options(redis_prefix: tuple[str, str]) -> None:
    """``checkpointer="redis://..."`` takes the store's options off the query; both schemes are durable's."""
    url, prefix = redis_prefix
    store = resolve_store(f"{url}?prefix={prefix}&lease_seconds=5&wait_timeout=2")
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.lease_seconds, store.wait_timeout, store.wait_replicas) == (prefix, 5.0, 2.0, 0)
    assert "prefix" not in store.url and "lease_seconds" not in store.url
    tls = resolve_store("rediss://example.invalid:6380/2?prefix=x")
    assert isinstance(tls, RedisStore) and tls.url.startswith("rediss://")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/0?lease_seconds=soon", "lease_seconds"),
        ("redis://h/0?lease_seconds=0", "lease_seconds"),
        ("redis://h/0?wait_aof=maybe", "wait_aof"),
        ("redis://h/0?wait_replicas=-1", "wait_replicas"),
        ("redis://h/0?prefix=a%20b", "prefix"),
        ("redis://h/0?prefix=a*", "prefix"),
        ("redis://h/0?prefix=a:t", "prefix"),
        ("redis://h/0?retry_on_timeout=true", "retry_on_timeout"),
    ],
)
def test_bad_options_are_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        resolve_store(url)


def test_a_url_of_another_scheme_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        RedisStore("postgresql://h/db")


def test_the_password_never_shows() -> None:
    """Not in the repr, not in the error of a server that cannot be reached."""
    store = RedisStore("redis://alice:s3cret-pw@127.0.0.1:1/0", connect_timeout=1)
    assert "s3cret-pw" not in repr(store) and "***" in repr(store)
    with pytest.raises(StoreError, match="cannot reach the Redis journal") as info:
        store.get_thread("t")
    assert "s3cret-pw" not in str(info.value)


def test_same_database_is_server_database_and_prefix() -> None:
    a = RedisStore("redis://localhost:6379/0?prefix=app")
    assert a.same_database(RedisStore("redis://127.0.0.1/0", prefix="app"))
    assert not a.same_database(RedisStore("redis://localhost:6379/1?prefix=app"))
    assert not a.same_database(RedisStore("redis://localhost:6379/0?prefix=other"))
    assert not a.same_database(MemoryStore())


# -- durability settings ------------------------------------------------------------------------------------------


def test_a_server_that_keeps_nothing_on_disk_is_warned_about(redis_store: Callable[..., RedisStore]) -> None:
    """The machine's Redis has no append-only file and no save points: the first use says so."""
    with raw(redis_store().url) as client:
        if client.config_get("appendonly")["appendonly"] != "no" or client.config_get("save")["save"]:
            pytest.skip("this Redis persists: the warning is for one that does not")
    with pytest.warns(VolatileJournalWarning, match="keeps nothing on disk"):
        redis_store().get_thread("t")


def test_a_server_with_an_append_only_file_gets_no_warning(redis_server: Callable[..., Any]) -> None:
    server = redis_server("--appendonly", "yes", "--appendfsync", "always")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RedisStore(server.url).get_thread("t") is None


def test_a_server_that_evicts_any_key_is_warned_about(redis_server: Callable[..., Any]) -> None:
    """``allkeys-*`` eviction would drop journal keys when memory runs out: the first use says so."""
    server = redis_server("--appendonly", "yes", "--maxmemory-policy", "allkeys-lru")
    with pytest.warns(VolatileJournalWarning, match="maxmemory-policy allkeys-lru"):
        RedisStore(server.url).get_thread("t")


def test_wait_aof_needs_an_append_only_file(redis_server: Callable[..., Any]) -> None:
    """Asked of a server without one (or older than 7.2), it is refused at first use, before anything is written."""
    server = redis_server()
    store = RedisStore(server.url, wait_aof=True)
    with pytest.raises(ConfigurationError, match=r"wait_aof=True needs Redis 7\.2"):
        store.get_thread("t")


def test_a_write_no_replica_confirms_fails_the_run_and_stays_resumable(redis_server: Callable[..., Any]) -> None:
    """With ``wait_replicas=1`` and no replica, a journal write gives up after ``wait_timeout``: the run fails
    with `StoreError`; a store that waits for nothing then resumes it, and no task runs twice."""
    server = redis_server()
    calls: list[int] = []
    flow = counting_flow(RedisStore(server.url, wait_replicas=1, wait_timeout=0.2), calls)
    with pytest.raises(StoreError, match=r"replicas: 0 of 1"):
        flow.invoke(3, config("t"))
    assert calls == [0]
    resumed = counting_flow(RedisStore(server.url), calls)
    assert resumed.invoke(None, config("t")) == [0, 1, 4]
    assert calls == [0, 1, 2]

    @task
    async def double(i: int) -> int:
        calls.append(i)
        return 2 * i

    @entrypoint(checkpointer=RedisStore(server.url, wait_replicas=1, wait_timeout=0.2))
    async def aflow(n: int) -> list[int]:
        return [await double(i) for i in range(n)]

    with pytest.raises(StoreError, match=r"replicas: 0 of 1"):  # the async path waits on the write's connection too
        asyncio.run(aflow.ainvoke(2, config("a")))
    assert calls == [0, 1, 2, 0]


def test_writes_wait_for_a_live_replica(redis_server: Callable[..., Any]) -> None:
    """With a replica attached, journal writes are confirmed; when it dies, the next one is refused in time."""
    primary = redis_server("--repl-diskless-sync-delay", "0", name="primary")
    replica = redis_server("--replicaof", "127.0.0.1", str(primary.port), name="replica")
    with raw(replica.url) as client:
        deadline = time.monotonic() + 20
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never finished its first sync"
            time.sleep(0.05)
    calls: list[int] = []
    store = RedisStore(primary.url, wait_replicas=1, wait_timeout=2)
    assert counting_flow(store, calls).invoke(3, config("a")) == [0, 1, 4]
    with raw(replica.url) as client:
        deadline = time.monotonic() + 20
        while client.hget(b"durable:t:a", b"last") != b"1":
            assert time.monotonic() < deadline, "the replica never got the thread"
            time.sleep(0.05)
    replica.process.send_signal(signal.SIGKILL)
    replica.process.wait()
    with pytest.raises(StoreError, match="not confirmed"):
        counting_flow(store, calls).invoke(2, config("b"))


# -- what the server may do under a running store -----------------------------------------------------------------


def test_flushed_scripts_are_loaded_again(redis_store: Callable[..., RedisStore]) -> None:
    """A server restarted (or ``SCRIPT FLUSH``ed) has no scripts: the next operation loads them and goes on."""
    store, calls = redis_store(), []
    flow = counting_flow(store, calls)
    assert flow.invoke(2, config("a")) == [0, 1]
    with raw(store.url) as client:
        client.script_flush()
    assert flow.invoke(2, config("b")) == [0, 1]


def test_killed_connections_are_replaced(redis_store: Callable[..., RedisStore]) -> None:
    """``CLIENT KILL`` of every connection between two runs: the next operations reconnect."""
    store, calls = redis_store(), []
    flow = counting_flow(store, calls)
    assert flow.invoke(2, config("a")) == [0, 1]
    with raw(store.url) as client:
        client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert flow.invoke(2, config("b")) == [0, 1]
    assert store.get_thread("a") is not None


def test_a_tampered_journal_row_fails_its_signature(redis_store: Callable[..., RedisStore]) -> None:
    """Someone with access to the server changes a recorded value: the replay refuses it and runs nothing."""
    store, calls = redis_store(), []
    fail = [True]

    @task
    def fetch(i: int) -> int:
        calls.append(i)
        if i == 1 and fail[0]:
            raise RuntimeError("down")
        return i + 100

    @entrypoint(checkpointer=store, secret=KEY)
    def flow(n: int) -> list[int]:
        return [fetch(i).result() for i in range(n)]

    with pytest.raises(RuntimeError):
        flow.invoke(2, config("t"))
    fail[0] = False
    thread = store.get_thread("t")
    assert thread is not None
    with raw(store.url) as client:
        key = f"{store.prefix}:j:{thread.tid}:1"
        blob = bytearray(client.lindex(key, 0))
        blob[-1] ^= 0x01
        client.lset(key, 0, bytes(blob))
    with pytest.raises(IntegrityError, match="fails its signature check"):
        flow.invoke(None, config("t"))
    assert calls == [0, 1]


# -- the journal's keys and versions ------------------------------------------------------------------------------


def test_every_key_is_under_the_prefix_and_prefixes_are_apart(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    other = "other-" + prefix
    one, two = RedisStore(url, prefix=prefix), RedisStore(url, prefix=other)
    try:
        counting_flow(one, []).invoke(2, config("t"))
        assert two.get_thread("t") is None and two.list_threads(ThreadFilter()) == []
        with raw(url) as client:
            keys = [k.decode() for k in client.scan_iter(match=f"{prefix}*")]
        assert keys and all(k.startswith(prefix + ":") for k in keys), keys
    finally:
        with raw(url) as client:
            for k in client.scan_iter(match=f"{other}:*"):
                client.unlink(k)


def test_a_batch_larger_than_luas_stack_is_appended_whole(redis_store: Callable[..., RedisStore]) -> None:
    """Twenty thousand rows in one append (``durability="exit"`` writes a run's rows so) land, in order."""
    store = redis_store()
    lease = store.claim("t", "me", new_run=NewRun("e", b"in", None, 1, None))
    rows = [JournalRow(str(i), 1, "t", 0, None, b"P%d" % i, 1.0, 2.0) for i in range(20_000)]
    store.append(lease, 1, rows)
    assert store.load_journal(lease.tid, 1) == rows


def test_read_only_reads_and_refuses_every_write(redis_store: Callable[..., RedisStore]) -> None:
    with pytest.raises(JournalNotFoundError):
        redis_store(read_only=True).get_thread("t")
    counting_flow(redis_store(), []).invoke(1, config("t"))
    reader = redis_store(read_only=True)
    thread = reader.get_thread("t")
    assert thread is not None and thread.run is not None and thread.run.status == "completed"
    with pytest.raises(UsageError, match="read-only"):
        reader.claim("t", "me")
    with pytest.raises(UsageError, match="read-only"):
        reader.delete_thread("t")
    assert redis_store().get_thread("t") is not None


def test_a_journal_of_a_newer_durable_is_refused(redis_store: Callable[..., RedisStore]) -> None:
    store = redis_store()
    with raw(store.url) as client:
        client.hset(f"{store.prefix}:meta", "schema", 99)
    with pytest.raises(SchemaVersionError, match="version 99"):
        store.get_thread("t")


# -- races a read-then-write must not lose -------------------------------------------------------------------------


def call(step: Call) -> Any:
    """One script call, as an operation of `_redis_ops` (to play one step of a race by hand)."""
    return (yield step)


def test_a_thread_deleted_and_made_again_is_not_the_one_that_was_read(redis_store: Callable[..., RedisStore]) -> None:
    """A claim decided on a read of a thread applies only to that thread: one of the same id, deleted and created
    again since (its version counted up to the same number), makes the claim read again."""
    store = redis_store()
    store.release(store.claim("t", "me", new_run=NewRun("e", b"in", None, 1, None)))
    seen = store._run(lambda: ops.read("t"))
    assert seen is not None
    assert store.delete_thread("t")
    lease = store.claim("t", "other", new_run=NewRun("e", b"in2", None, 1, None))
    while store._run(lambda: ops.read("t")).version.split(b":")[1] < seen.version.split(b":")[1]:  # type: ignore[union-attr]
        assert store.renew(lease)
    assert store._run(lambda: ops.read("t")).version.split(b":")[1] == seen.version.split(b":")[1]  # type: ignore[union-attr]
    stale = Call("claim", ("t", seen.version, "me", "30.0", b"n", "", 2, "e", b"in", b"n"))
    assert store._run(lambda: call(stale)) == [b"retry"]
    thread = store.get_thread("t")
    assert thread is not None and thread.owner == "other" and thread.run is not None and thread.run.input == b"in2"


def test_a_rewrite_that_would_drop_a_late_append_writes_nothing(redis_store: Callable[..., RedisStore]) -> None:
    """A resign reads a journal, then rewrites it whole; an append that slipped in between (an executor whose lease
    ran out unnoticed still holds its fence until someone claims) makes the rewrite refuse, not drop that row."""
    store = redis_store(lease_seconds=0.05)
    lease = store.claim("t", "me", new_run=NewRun("e", b"in", None, 1, None))
    store.append(lease, 1, [JournalRow("a", 1, "t", 0, None, b"Pa", 1.0, 2.0)])
    time.sleep(0.1)  # the lease runs out; nobody claims it
    seen = store._run(lambda: ops.read("t"))
    assert seen is not None
    store.append(lease, 1, [JournalRow("b", 1, "t", 0, None, b"Pb", 1.0, 2.0)])  # the late append
    rewritten = ops.encode_row(JournalRow("a", 1, "t", 0, None, b"Pa-resigned", 1.0, 2.0))
    late = Call("rewrite", ("t", seen.version, b"nonce", 0, 1, 1, rewritten))
    assert store._run(lambda: call(late)) == b"retry"
    assert [r.payload for r in store.load_journal(lease.tid, 1)] == [b"Pa", b"Pb"]


def test_dead_executors_of_other_entrypoints_never_hide_this_ones(redis_store: Callable[..., RedisStore]) -> None:
    """A worker recovers its own entrypoint's runs whose executor died, however many of other entrypoints' lie
    expired in front of them."""
    store = redis_store(lease_seconds=0.3)
    for i in range(1_100):
        store.claim(f"b{i}", "dead", new_run=NewRun("b", b"in", None, 1, None))
    store.claim("a0", "dead", new_run=NewRun("a", b"in", None, 1, None))
    time.sleep(0.4)
    leases = store.reserve("w", ["a"], 10)
    assert [x.thread_id for x in leases] == ["a0"] and leases[0].thread.run.recoveries == 1  # type: ignore[union-attr]


# -- workers ------------------------------------------------------------------------------------------------------


def test_idle_workers_hear_of_a_run_left_for_them(redis_store: Callable[..., RedisStore]) -> None:
    """A run released unfinished (a submit) publishes a wake-up; a finished one does not."""
    store = redis_store()
    wake = threading.Event()
    stop = store.listen_for_work(wake)
    assert stop is not None
    try:
        assert wake.wait(5), "the listener never subscribed"
        wake.clear()
        done = store.claim("done", "me", new_run=NewRun("e", b"in", None, 1, None))
        store.finish_run(done, 1, __import__("durable.stores", fromlist=["RunOutcome"]).RunOutcome("completed"))
        assert not wake.wait(0.5)
        lease = store.claim("t", "me", new_run=NewRun("e", b"in", None, 1, None))
        store.release(lease)
        assert wake.wait(5), "no wake-up for a run left for workers"
        assert [x.thread.thread_id for x in store.reserve("w", ["e"], 10)] == ["t"]
    finally:
        stop()


@pytest.mark.subprocess
def test_a_forked_child_uses_connections_of_its_own(redis_store: Callable[..., RedisStore]) -> None:
    """redis-py's pool notices the fork: the child's operations do not share the parent's sockets."""
    store = redis_store()
    counting_flow(store, []).invoke(1, config("parent"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            counting_flow(store, []).invoke(2, config("child"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get_thread("child") is not None and store.get_thread("parent") is not None
