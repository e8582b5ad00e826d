"""The operator's tools never let the journal choose how it is read, and an imported bundle never runs by itself.

A journal is planted behind the store's back (raw SQL on SQLite and Postgres): a run's stamp set to NULL
and its values replaced by a pickle whose unpickling creates a marker file. `Threads` describes such values
as `durable.SealedValue` and runs nothing, unless the operator opts in. Bundles are checked field by field,
verified under a key, and land failed-and-resumable.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import pickle
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import ConfigurationError, IntegrityError, SQLiteStore, Store, Threads

KEY = b"k" * 32
SQL_KINDS = pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)


class Evil:
    """Unpickling this creates the file named by its argument: proof that a value was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def evil_pickle(marker: Path) -> bytes:
    """A stored pickle value (format tag, then the pickle) that creates ``marker`` when unpickled."""
    return b"P" + pickle.dumps(Evil(marker))


def tamper(store: Store, sql: str, *params: Any) -> None:
    """Run one statement on the store's tables behind its back (SQLite or Postgres; ``?`` placeholders)."""
    if isinstance(store, SQLiteStore):
        with contextlib.closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute(sql, params)
        return
    import psycopg

    dsn, schema = store.dsn, store.schema  # type: ignore[attr-defined]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(sql.replace("?", "%s"), params)


OF_THREAD = "tid = (SELECT tid FROM durable_threads WHERE thread_id = ?)"


def plant(store: Store, thread_id: str, column: str, blob: bytes) -> None:
    """Replace a run value of the thread's runs (and the payload of its journal key 0); its stamp becomes NULL."""
    tamper(store, f"UPDATE durable_runs SET stamp = NULL, {column} = ? WHERE {OF_THREAD}", blob, thread_id)
    tamper(store, f"UPDATE durable_journal SET payload = ? WHERE key = '0' AND {OF_THREAD}", blob, thread_id)


def assert_sealed(value: Any, blob: bytes, why: str) -> None:
    """``value`` describes ``blob`` (a pickle) without having read it."""
    assert isinstance(value, durable.SealedValue), value
    assert (value.format, value.size, value.sha256, value.why) == (
        "pickle", len(blob), hashlib.sha256(blob).hexdigest(), why,
    )  # fmt: skip


def fetching(store: Store, **options: Any) -> Any:
    """Two ``fetch`` tasks (keys 0 and 1); the input ``"ask"`` then pauses on an interrupt."""

    @durable.task(name="fetch")
    def fetch(i: int) -> dict[str, int]:
        return {"i": i}

    @durable.entrypoint(checkpointer=store, name="flow", **options)
    def flow(mode: str) -> Any:
        pages = [fetch(i).result() for i in range(2)]
        return durable.interrupt({"pages": pages}) if mode == "ask" else pages

    return flow


# -- stored data never chooses how it is deserialized ------------------------------------------------


@SQL_KINDS
def test_a_planted_pickle_in_a_json_journal_is_described_not_run(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """state, interrupts, export and diff show a planted pickle (stamp NULL) as a SealedValue and create no file."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    flow = fetching(store, serializer=durable.JsonSerializer())
    flow.invoke("done", thread_id="t")
    flow.invoke("ask", thread_id="q")
    marker = tmp_path / "marker"
    bad = evil_pickle(marker)
    plant(store, "t", "output", bad)
    plant(store, "q", "interrupts", bad)
    threads = Threads(store)

    state = threads.state("t")
    assert_sealed(state.output, bad, "unsigned-pickle")
    assert_sealed(state.entries[0].result, bad, "unsigned-pickle")
    assert state.entries[1].result == {"i": 1}  # a JSON value of the same journal is read
    assert state.output.type_name in ("io.open", "builtins.open")
    [(thread_id, pending)] = threads.interrupts()
    assert thread_id == "q"
    assert_sealed(pending.value, bad, "unsigned-pickle")
    bundle = threads.export("t")
    assert base64.b64decode(bundle["runs"][0]["output"]) == bad and bundle["runs"][0]["stamp"] is None
    assert threads.diff("t", "t") == []
    assert not marker.exists()


@SQL_KINDS
def test_unsafe_unpickle_is_the_explicit_opt_in(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads(unsafe_unpickle=True) unpickles an unsigned pickle: the planted one runs."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    fetching(store, serializer=durable.JsonSerializer()).invoke("done", thread_id="t")
    marker = tmp_path / "marker"
    plant(store, "t", "output", evil_pickle(marker))
    state = Threads(store, unsafe_unpickle=True).state("t")
    state.output.close()  # the planted "value" is an open file
    state.entries[0].result.close()
    assert marker.exists()


def test_a_signed_journal_without_its_key_is_sealed(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no key, a signed journal's pickles are SealedValue("signed-no-key") and counted; the key reads them."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    fetching(store, secret=KEY).invoke("done", thread_id="t")
    threads = Threads(store)
    state = threads.state("t")
    assert isinstance(state.output, durable.SealedValue) and state.output.why == "signed-no-key"
    assert state.output.format == "pickle" and state.output.type_name in ("list", "builtins.list")
    assert {e.result.why for e in state.entries} == {"signed-no-key"}
    assert threads.signed_unread == 3
    keyed = Threads(store, secret=KEY).state("t")
    assert keyed.output == [{"i": 0}, {"i": 1}]
    assert [e.result for e in keyed.entries] == [{"i": 0}, {"i": 1}]


@SQL_KINDS
def test_a_planted_value_in_a_signed_journal_fails_its_signature(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pickle planted under a copied signature header is "bad-signature" with the key, and is never run."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    fetching(store, secret=KEY).invoke("done", thread_id="t")
    signed = store.get_thread("t").run.output  # type: ignore[union-attr]
    assert signed[:1] == b"T"
    marker = tmp_path / "marker"
    bad = evil_pickle(marker)
    plant(store, "t", "output", signed[: 34 + signed[1]] + bad)
    state = Threads(store, secret=KEY).state("t")
    assert_sealed(state.output, bad, "bad-signature")
    assert_sealed(state.entries[0].result, bad, "bad-signature")
    assert state.entries[1].result == {"i": 1}
    assert not marker.exists()


@dataclasses.dataclass
class Point:
    x: int


def test_pickled_type_reads_opcodes_and_runs_nothing(tmp_path: Path) -> None:
    """pickled_type names builtins, dataclass instances and exceptions; an unknown module is named, not imported."""
    from durable._peek import pickled_type

    assert pickled_type(pickle.dumps({"a": 1})) in ("dict", "builtins.dict")
    assert pickled_type(pickle.dumps(Point(1))) == f"{Point.__module__}.Point"
    assert pickled_type(pickle.dumps(ValueError("no"), protocol=3)) == "builtins.ValueError"
    assert pickled_type(pickle.dumps(ValueError("no"))) == "builtins.ValueError"

    module = "no_such_module_for_durable"
    ghost = (  # protocol 4: module and name as strings, STACK_GLOBAL, then an empty NEWOBJ
        b"\x80\x04\x8c" + bytes([len(module)]) + module.encode() + b"\x8c\x05Ghost\x93)\x81."
    )
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(ghost)
    assert pickled_type(ghost) == f"{module}.Ghost"
    assert pickled_type(f"c{module}\nGhost\n)\x81.".encode()) == f"{module}.Ghost"  # protocol 0's GLOBAL
    marker = tmp_path / "marker"
    assert pickled_type(evil_pickle(marker)[1:]) in ("io.open", "builtins.open")
    assert module not in sys.modules and not marker.exists()


# -- importing a bundle never runs anything --------------------------------------------------------


def doubling(store: Store, calls: Any, **options: Any) -> Any:
    """Two ``double`` tasks whose executions ``calls`` counts; returns their sum."""

    @durable.task(name="double")
    def double(x: int) -> int:
        calls.hit("double")
        return x * 2

    @durable.entrypoint(checkpointer=store, name="doubling", **options)
    def flow(n: int) -> int:
        return double(n).result() + double(n + 1).result()

    return flow


def submitted_bundle(calls: Any) -> dict[str, Any]:
    """The bundle of a thread whose run was submitted for a worker and is still "running"."""
    source = durable.MemoryStore()
    doubling(source, calls).submit(1, thread_id="t")
    bundle = json.loads(json.dumps(Threads(source).export("t")))
    assert bundle["runs"][-1]["status"] == "running"
    return bundle


def test_an_imported_running_run_waits_to_be_resumed(store: Store, calls: Any) -> None:
    """It lands failed (saying it was imported), no worker carries it, and invoke(None) resumes it."""
    Threads(store).import_bundle(submitted_bundle(calls))
    flow = doubling(durable.MemoryStore(), calls)
    state = flow.using(store).get_state(thread_id="t")
    assert state.status == "failed" and "imported" in (state.error_text or "")
    assert durable.Worker([flow], checkpointer=store).run_once().total == 0
    assert calls.total() == 0
    assert flow.using(store).invoke(None, thread_id="t") == 6
    assert calls["double"] == 2


def test_an_import_with_runnable_keeps_it_for_the_workers(store: Store, calls: Any) -> None:
    """import_bundle(runnable=True) keeps the run "running", and a worker carries it."""
    Threads(store).import_bundle(submitted_bundle(calls), runnable=True)
    flow = doubling(durable.MemoryStore(), calls)
    assert flow.using(store).get_state(thread_id="t").status == "running"
    assert durable.Worker([flow], checkpointer=store).run_once().completed == 1
    assert calls["double"] == 2
    assert flow.using(store).invoke(None, thread_id="t") == 6


def signed_bundle(calls: Any) -> dict[str, Any]:
    source = durable.MemoryStore()
    doubling(source, calls, secret=KEY).invoke(1, thread_id="t")
    return json.loads(json.dumps(Threads(source, secret=KEY).export("t")))


def test_an_altered_signed_bundle_imports_nothing(store: Store, calls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a key, a bundle with one payload byte flipped is an IntegrityError and writes nothing; intact, it loads."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    bundle = signed_bundle(calls)
    altered = copy.deepcopy(bundle)
    payload = bytearray(base64.b64decode(altered["journal"][1]["payload"]))
    payload[-1] ^= 1
    altered["journal"][1]["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(IntegrityError):
        Threads(store, secret=KEY).import_bundle(altered)
    assert store.get_thread("t") is None
    Threads(store, secret=KEY).import_bundle(bundle)
    assert Threads(store, secret=KEY).state("t").output == 6


def test_an_unsigned_bundle_under_a_key_imports_nothing(
    store: Store, calls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a key, a bundle written without one is an IntegrityError, and nothing is written."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    source = durable.MemoryStore()
    doubling(source, calls).invoke(1, thread_id="t")
    with pytest.raises(IntegrityError):
        Threads(store, secret=KEY).import_bundle(Threads(source).export("t"))
    assert store.get_thread("t") is None


def failed_bundle(calls: Any) -> dict[str, Any]:
    """The bundle of an unsigned thread whose only run failed, with journal rows at keys 0 and 1."""
    source, broken = durable.MemoryStore(), [True]

    @durable.task(name="step")
    def step(x: int) -> int:
        calls.hit("step")
        if broken[0] and x > 1:
            raise RuntimeError("broken")
        return x + 1

    @durable.entrypoint(checkpointer=source, name="stepping")
    def flow(n: int) -> int:
        return step(step(n).result()).result()

    with pytest.raises(RuntimeError):
        flow.invoke(1, thread_id="t")
    return json.loads(json.dumps(Threads(source).export("t")))


def _edit(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(bundle: dict[str, Any]) -> None:
        target: Any = bundle
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _duplicate_row(bundle: dict[str, Any]) -> None:
    bundle["journal"].append(copy.deepcopy(bundle["journal"][0]))


def _unfinished_earlier_run(bundle: dict[str, Any]) -> None:
    later = copy.deepcopy(bundle["runs"][0])
    later["run_id"] = 2
    bundle["runs"].append(later)  # run 1 stays "failed" while run 2 follows it


MALFORMED: dict[str, Callable[[dict[str, Any]], None]] = {
    "run_id-as-text": _edit(("runs", 0, "run_id"), "1"),
    "run_id-as-bool": _edit(("runs", 0, "run_id"), True),
    "row-run_id-as-bool": _edit(("journal", 0, "run_id"), True),
    "attempt-as-float": _edit(("journal", 0, "attempt"), 1.5),
    "attempt-zero": _edit(("journal", 0, "attempt"), 0),
    "run_id-too-large": _edit(("runs", 0, "run_id"), 2**40),
    "started_at-negative": _edit(("runs", 0, "started_at"), -1),
    "started_at-nan": _edit(("runs", 0, "started_at"), math.nan),
    "started_at-inf": _edit(("runs", 0, "started_at"), math.inf),
    "row-started_at-nan": _edit(("journal", 0, "started_at"), math.nan),
    "unknown-top-field": _edit(("extra",), 1),
    "unknown-run-field": _edit(("runs", 0, "extra"), 1),
    "unknown-row-field": _edit(("journal", 0, "extra"), 1),
    "duplicate-row": _duplicate_row,
    "unfinished-earlier-run": _unfinished_earlier_run,
    "nonce-too-short": _edit(("nonce",), base64.b64encode(b"1234").decode()),
    "version-3": _edit(("version",), 3),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_bundle_is_refused_and_writes_nothing(store: Store, calls: Any, name: str) -> None:
    """Wrong types, out-of-range numbers, unknown fields, duplicates, a bad nonce or version: nothing written."""
    bundle = failed_bundle(calls)
    MALFORMED[name](bundle)
    with pytest.raises(ConfigurationError, match="malformed"):
        Threads(store).import_bundle(bundle)
    assert store.get_thread("t") is None


def test_a_version_1_bundle_still_imports(store: Store, calls: Any) -> None:
    """A bundle from before nonces (version 1, no nonce field) imports and resumes."""
    bundle = failed_bundle(calls)
    bundle["version"] = 1
    del bundle["nonce"]
    Threads(store).import_bundle(bundle)
    assert store.get_thread("t").nonce is None  # type: ignore[union-attr]

    @durable.task(name="step")
    def step(x: int) -> int:
        calls.hit("step")
        return x + 1

    @durable.entrypoint(checkpointer=store, name="stepping")
    def flow(n: int) -> int:
        return step(step(n).result()).result()

    assert flow.invoke(None, thread_id="t") == 3
    assert calls["step"] == 3  # two in the source (the second failed), one more here
