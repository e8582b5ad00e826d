"""Storage faults under the SQLite store: a damaged file or a full disk is a typed error, never a fresh start.

- A truncated or corrupted journal raises `StoreError` (sqlite3's error as ``__cause__``) on open or read: it
  is never read as an empty thread (`ThreadNotFoundError`), new input never starts a fresh run on it, and the
  failed attempt leaves the file's bytes as they were.
- A full disk fails the task whose result cannot be committed with `StoreError`; what was committed before
  stays intact, and once there is room again ``invoke(None)`` resumes without re-running committed tasks.
- A result over ``max_result_bytes`` is refused with a `SerializationError` naming the task and the size.

Two limits SQLite sets on this, by design: a file cut to 0 or 1 bytes *is* an empty database to SQLite (it
cannot be told from a new file), and without a checksum it cannot notice altered bytes inside a stored value;
a signed journal (``secret=``) does, and that is tested here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from durable import (
    IntegrityError,
    Memory,
    SerializationError,
    SQLiteStore,
    StoreError,
    ThreadNotFoundError,
    entrypoint,
    task,
)

PAGE = 4096  # SQLiteStore's page size for new files
THREADS = [f"t{i}" for i in range(80)]  # enough rows for 20 b-tree pages of 4 KB
USERS = [("users", f"u{i}") for i in range(30)]  # long-term memory items, beside the journal
TASKS_PER_RUN = 10
WORKER = Path(__file__).resolve().with_name("_disk_full_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
BTREE_PAGE_TYPES = {2, 5, 10, 13}  # interior/leaf index pages, interior/leaf table pages


# -- a journal with committed runs, and reading all of it back ----------------------------------------


def workflow(store: SQLiteStore, calls: Counter[str]) -> Any:
    """Each run calls ``add`` then ``label`` n times; results are small plain data (no overflow pages)."""

    @task(name="add")
    def add(x: int) -> int:
        calls["add"] += 1
        return x + 1

    @task(name="label")
    def label(x: int) -> str:
        calls["label"] += 1
        return f"item-{x}"

    @entrypoint(checkpointer=store, name="flow")
    def flow(n: int) -> list[str]:
        return [label(add(i).result()).result() for i in range(n)]

    return flow


def read_everything(path: Path, *, secret: str | None = None) -> dict[str, Any]:
    """Every thread's output and journal through the public API, and ``invoke(None)`` (which must run nothing);
    and the long-term memory's items (by search, then one by one) and namespaces, under ``"memory"``."""
    store = SQLiteStore(path, secret=secret)
    calls: Counter[str] = Counter()
    flow = workflow(store, calls)
    try:
        seen: dict[str, Any] = {}
        for thread_id in THREADS:
            state = flow.get_state(thread_id=thread_id)
            entries = sorted((e.key, e.task, e.status, e.result) for e in state.entries)
            assert flow.invoke(None, thread_id=thread_id) == state.output
            seen[thread_id] = (state.status, state.output, entries)
        assert not calls, f"reading the journal ran tasks: {dict(calls)}"
        memory = Memory(store)
        items = memory.search((), limit=len(USERS) + 1, refresh_ttl=False)  # a refresh would write
        assert all(memory.get(i.namespace, i.key, refresh_ttl=False) == i for i in items)
        seen["memory"] = (memory.list_namespaces(), [(i.namespace, i.key, i.value) for i in items])
        return seen
    finally:
        store.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A closed journal of eighty completed runs (one per thread, no overflow or free pages), and its contents."""
    path = tmp_path_factory.mktemp("pristine") / "journal.db"
    store = SQLiteStore(path)
    flow = workflow(store, Counter())
    for thread_id in THREADS:
        flow.invoke(TASKS_PER_RUN // 2, thread_id=thread_id)
    for i, namespace in enumerate(USERS):
        Memory(store).put(namespace, "prefs", {"theme": "dark", "n": i}, ttl=None if i % 2 else 7 * 24 * 60)
    store.close()
    assert not Path(f"{path}-wal").exists(), "closing the store checkpoints the WAL into the file"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    contents = read_everything(path)
    assert len(contents) == len(THREADS) + 1 and all(len(contents[t][2]) == TASKS_PER_RUN for t in THREADS)
    assert contents["memory"][0] == sorted(USERS) and len(contents["memory"][1]) == len(USERS)
    return path, contents


@pytest.fixture
def journal(pristine: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    """A private copy of the pristine journal."""
    copy = tmp_path / "journal.db"
    shutil.copyfile(pristine[0], copy)
    return copy


def damage(path: Path, data: bytes) -> None:
    """Replace the file's bytes, leaving no WAL or shared-memory file from an earlier open."""
    for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        side.unlink(missing_ok=True)
    path.write_bytes(data)


def assert_refused(path: Path) -> None:
    """Reading, resuming and starting runs raise StoreError (cause: sqlite3's error); the bytes stay as they were."""
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        read_everything(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError), repr(info.value.__cause__)
    assert not isinstance(info.value, ThreadNotFoundError)

    store = SQLiteStore(path)
    calls: Counter[str] = Counter()
    flow = workflow(store, calls)
    try:
        for attempt in (
            lambda: flow.invoke(None, thread_id="t0"),  # never "unknown thread"
            lambda: flow.invoke(2, thread_id="t0"),  # never a new run over the lost one
            lambda: flow.invoke(2, thread_id="brand-new"),  # nor on a thread the file may have held
            lambda: flow.get_state(thread_id="t3"),
        ):
            with pytest.raises(StoreError) as info:
                attempt()
            assert isinstance(info.value.__cause__, sqlite3.DatabaseError), repr(info.value.__cause__)
    finally:
        store.close()
    assert not calls, f"tasks ran on a damaged journal: {dict(calls)}"
    assert path.read_bytes() == before, "a failed attempt changed the file"


# -- truncation ---------------------------------------------------------------------------------------

CUTS = {
    "2-bytes": lambda n: 2,
    "inside-the-header": lambda n: 50,
    "header-only": lambda n: 100,
    "first-page-less-a-byte": lambda n: PAGE - 1,
    "first-page": lambda n: PAGE,
    "first-page-and-a-byte": lambda n: PAGE + 1,
    "three-pages-and-a-half": lambda n: 3 * PAGE + PAGE // 2,
    "half": lambda n: n // 2,
    "all-but-the-last-page": lambda n: n - PAGE,
    "all-but-two-pages-and-a-bit": lambda n: n - 2 * PAGE - 7,
}


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_truncated_journal_is_a_store_error(journal: Path, cut: Any) -> None:
    """A journal cut short (by one page or more, or inside its header) raises StoreError; nothing reads as missing."""
    data = journal.read_bytes()
    damage(journal, data[: cut(len(data))])
    assert_refused(journal)


@pytest.mark.parametrize("lost", [1, 8, 16, 100, PAGE - 1])
def test_cut_inside_the_last_page_is_a_store_error(journal: Path, lost: int) -> None:
    """A file that is not a whole number of pages is truncated: StoreError, not rows read back with zeroed bytes."""
    data = journal.read_bytes()
    damage(journal, data[:-lost])
    assert_refused(journal)


# -- corruption ---------------------------------------------------------------------------------------

HEADER_DAMAGE = {
    "magic-string": (0, b"Not SQLite at all"),
    "page-size-invalid": (16, b"\x00\x03"),
    "page-size-changed": (16, b"\x20\x00"),
    "database-size-too-large": (28, b"\x00\x0f\xff\xff"),
    "schema-format-unknown": (44, b"\x00\x00\x00\x09"),
    "text-encoding-invalid": (56, b"\x00\x00\x00\x07"),
    "whole-header": (0, b"\xa5" * 100),
    "first-btree-page-header": (100, b"\xff" * 8),
}


@pytest.mark.parametrize(("offset", "garbage"), HEADER_DAMAGE.values(), ids=HEADER_DAMAGE.keys())
def test_corrupted_header_is_a_store_error(journal: Path, offset: int, garbage: bytes) -> None:
    """Overwriting a field of the file header (or page 1's b-tree header) raises StoreError and changes nothing."""
    data = bytearray(journal.read_bytes())
    data[offset : offset + len(garbage)] = garbage
    damage(journal, bytes(data))
    assert_refused(journal)


def test_every_corrupted_page_is_a_store_error(journal: Path) -> None:
    """Garbage over the header of any page (the middle ones too) raises StoreError on read; nothing is misread."""
    data = journal.read_bytes()
    # Page 1 (the file header) is the test above; an overflow page holds only a value's bytes (see the signed test).
    # The memory's expiry index is read by a put only (its sweep of expired items): the next test damages it.
    # The indexes of listings, prunes and workers' polls are not read here either, nor the (empty) blob table.
    btree = [n for n in range(2, len(data) // PAGE + 1) if data[(n - 1) * PAGE] in BTREE_PAGE_TYPES]
    btree = [n for n in btree if n not in root_pages(journal, NOT_READ_HERE)]
    assert len(btree) >= 20, f"the pristine journal should span at least 20 b-tree pages: {btree}"
    for number in btree:
        start = (number - 1) * PAGE
        damaged = data[:start] + b"\xff" * 8 + data[start + 8 :]
        damage(journal, damaged)
        with pytest.raises(StoreError) as info:
            read_everything(journal)
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError), (number, repr(info.value.__cause__))
        assert journal.read_bytes() == damaged, f"reading page {number} changed the file"


NOT_READ_HERE = (
    "durable_kv_expiry", "durable_runs_started", "durable_runs_running", "durable_runs_due", "durable_blobs",
)  # fmt: skip


def root_pages(path: Path, names: tuple[str, ...]) -> set[int]:
    with closing(sqlite3.connect(path)) as conn:
        marks = ", ".join("?" * len(names))
        return {int(p) for (p,) in conn.execute(f"SELECT rootpage FROM sqlite_master WHERE name IN ({marks})", names)}


def expiry_index_page(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'durable_kv_expiry'").fetchone()
    return int(page)


def test_a_corrupted_expiry_index_fails_the_next_put(journal: Path) -> None:
    """Garbage over the memory's expiry index (which only a put reads, to sweep) makes the put a StoreError."""
    data = journal.read_bytes()
    start = (expiry_index_page(journal) - 1) * PAGE
    damage(journal, data[:start] + b"\xff" * 8 + data[start + 8 :])
    store = SQLiteStore(journal)
    try:
        with pytest.raises(StoreError) as info:
            Memory(store).put(("users", "new"), "prefs", {"theme": "light"})
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError), repr(info.value.__cause__)
    finally:
        store.close()


def test_altered_result_in_a_signed_journal_is_an_integrity_error(tmp_path: Path) -> None:
    """SQLite cannot see a changed byte inside a stored value; with a key it is an IntegrityError, never a value."""
    path = tmp_path / "signed.db"
    secret = "k" * 32
    store = SQLiteStore(path, secret=secret)
    flow = workflow(store, Counter())
    for thread_id in THREADS:
        flow.invoke(TASKS_PER_RUN // 2, thread_id=thread_id)
    store.close()
    data = path.read_bytes()
    at = data.index(b"item-2")  # a stored result of `label`
    damage(path, data[:at] + b"item-7" + data[at + 6 :])
    with pytest.raises(IntegrityError):
        read_everything(path, secret=secret)


# -- a full disk ----------------------------------------------------------------------------------------


def steps(store: SQLiteStore, calls: Counter[str]) -> Any:
    """``a -> b -> c -> d``; ``c`` returns 20 KB, more than the pages the journal may still grow by."""

    @task(name="a")
    def a(x: int) -> int:
        calls["a"] += 1
        return x + 1

    @task(name="b")
    def b(x: int) -> int:
        calls["b"] += 1
        return x * 2

    @task(name="c")
    def c(x: int) -> str:
        calls["c"] += 1
        return "x" * 20_000

    @task(name="d")
    def d(s: str) -> int:
        calls["d"] += 1
        return len(s)

    @entrypoint(checkpointer=store, name="steps")
    def flow(x: int) -> int:
        y = b(a(x).result()).result()
        return d(c(y).result()).result() + y

    return flow


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
@pytest.mark.subprocess
def test_full_database_fails_the_commit_and_resumes_once_there_is_room(tmp_path: Path, durability: str) -> None:
    """With the file capped (max_page_count), a result that does not fit is a StoreError; lifted, the run resumes."""
    path = tmp_path / "j.db"
    store = SQLiteStore(path)
    calls: Counter[str] = Counter()
    flow = steps(store, calls)
    assert store.get_thread("t") is None
    assert store._conn is not None
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    assert store._conn.execute(f"PRAGMA max_page_count = {pages}").fetchone() == (pages,)

    with pytest.raises(StoreError) as info:
        flow.invoke(1, thread_id="t", durability=durability)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError), repr(info.value.__cause__)
    assert "full" in str(info.value)

    state = flow.get_state(thread_id="t")
    assert state.status in ("running", "failed")
    committed = sorted((e.key, e.task) for e in state.entries if e.status == "ok")
    expected = {"sync": [("0", "a"), ("1", "b")], "async": None, "exit": []}[durability]
    if expected is None:  # in the background: whatever reached the file before the failing batch
        assert set(committed) <= {("0", "a"), ("1", "b")}, committed
    else:
        assert committed == expected
    assert all(e.status == "ok" for e in state.entries), state.entries
    assert integrity(path) == "ok"

    store._conn.execute("PRAGMA max_page_count = 1000000")  # room again, on the connection that failed
    ran_before = Counter(calls)
    assert flow.invoke(None, thread_id="t", durability=durability) == 20_004
    for _, name in committed:
        assert calls[name] == ran_before[name] == 1, f"{name} was committed, yet ran again: {dict(calls)}"
    assert calls["c"] == 2
    assert sorted((e.key, e.task, e.status) for e in flow.get_state(thread_id="t").entries if e.attempt == 1) == [
        ("0", "a", "ok"),
        ("1", "b", "ok"),
        ("2", "c", "ok"),
        ("3", "d", "ok"),
    ]
    store.close()
    assert integrity(path) == "ok"


def _worker(db: Path, flavor: str, mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, str(WORKER), str(db), flavor, mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("flavor", ["sync", "async"])
@pytest.mark.slow
def test_disk_full_for_every_write_then_resumed_in_the_same_process(tmp_path: Path, flavor: str) -> None:
    """Every write failing (RLIMIT_FSIZE) is a StoreError that keeps a and b; with room, the same process resumes."""
    # The commit of c, the run's outcome and the lease's release all fail; the resume must re-run only c.
    db = tmp_path / "j.db"
    out = _worker(db, flavor, "fill")
    assert out["error"] == "StoreError", out
    assert out["cause"] == "sqlite3.OperationalError", out
    assert out["committed"] == [["0", "a", "ok"], ["1", "b", "ok"]], out
    same_process = (out.get("resume_error"), out.get("resume_message"))
    if "value" not in out:
        out = _worker(db, flavor, "resume")  # a new process: the first one's lease counts as dead
    assert out.get("value") == 5004, out
    assert Counter(Path(f"{db}.calls").read_text().split()) == {"a": 1, "b": 1, "c": 2, "d": 1}
    assert integrity(db) == "ok"
    assert same_process == (None, None), (
        f"after the disk had room again, invoke(None) in the process that hit the full disk failed: {same_process}"
    )


# -- a result over the size limit ---------------------------------------------------------------------------


def test_result_over_max_result_bytes_is_refused_and_the_journal_stays_consistent(
    tmp_path: Path, flavor: Any, calls: Any
) -> None:
    """A result over SQLiteStore(max_result_bytes=N) is a SerializationError naming task and size; nothing is stored."""
    limit = 10_000
    path = tmp_path / "j.db"
    store = SQLiteStore(path, max_result_bytes=limit)
    size = [5 * limit]

    @flavor.task(name="small")
    def small(x: int) -> str:
        calls.hit("small")
        return "s" * (limit // 2)  # under the limit, with room for the format's overhead

    @flavor.task(name="big")
    def big(x: int) -> str:
        calls.hit("big")
        return "b" * size[0]

    @flavor.task(name="after")
    def after(n: int) -> int:
        calls.hit("after")
        return n

    @flavor.entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> Any:
        a = yield small(x)
        b = yield big(x)
        return (yield after(len(a) + len(b)))

    with pytest.raises(SerializationError) as info:
        flavor.invoke(flow, 1, thread_id="t")
    message = str(info.value)
    assert "'big'" in message, message
    numbers = [int(n.replace(",", "").replace("_", "")) for n in re.findall(r"\d[\d,_]*", message)]
    assert limit in numbers, f"the message should give the limit: {message}"
    assert any(n >= size[0] for n in numbers), f"the message should give the result's size: {message}"

    state = flow.get_state(thread_id="t")
    assert state.status == "failed"
    assert [(e.key, e.task) for e in state.entries if e.status == "ok"] == [("0", "small")]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT MAX(LENGTH(payload)) FROM durable_journal").fetchone()[0] <= limit

    size[0] = 100
    assert flavor.invoke(flow, None, thread_id="t") == limit // 2 + 100
    assert calls.as_dict() == {"small": 1, "big": 2, "after": 1}
    store.close()
