"""Journals written by earlier versions of `durable` (tests/golden/v*/) still replay with the current code.

Each golden file is copied to ``tmp_path`` first (the committed file is never opened for writing), then
opened with today's `SQLiteStore` (which migrates its schema) and driven by the same workflow code that
wrote it (``tests/golden/make_golden.py``):

- completed: ``invoke(None)`` returns the stored value and no task runs;
- failed: ``invoke(None)`` replays the finished tasks and runs only the failed one;
- paused: ``invoke(None)`` shows the same two pending interrupts, and a `Command` answering them completes.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from durable import Command, IncompatibleJournalError, Interrupted, ReplayedError, SQLiteStore
from durable.stores._sqlite_ops import SCHEMA_VERSION

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _load_maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("durable_golden_make", GOLDEN / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _load_maker()
HERE_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _journals() -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    found = []
    for manifest_path in sorted(GOLDEN.glob("v*/MANIFEST.json")):
        manifest = json.loads(manifest_path.read_text())
        for name, info in sorted(manifest["journals"].items()):
            found.append((manifest_path.parent / name, info, manifest))
    return found


JOURNALS = _journals()


def _cases(scenario: str) -> Any:
    cases = [pytest.param(*j, id=f"{j[0].parent.name}/{j[0].stem}") for j in JOURNALS if j[1]["scenario"] == scenario]
    return pytest.mark.parametrize(("golden", "info", "manifest"), cases)


@pytest.fixture(autouse=True)
def _no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # The unsigned golden journals would (rightly) be refused under a key from the environment; the signed
    # ones are opened with the key they were signed with.
    monkeypatch.delenv("DURABLE_SECRET", raising=False)


@pytest.fixture
def open_copy(tmp_path: Path) -> Iterator[Any]:
    """Copy a golden journal to tmp_path and build its workflows on it: (entrypoints, hooks); closed after the test."""
    stores: list[SQLiteStore] = []

    def open_copy(golden: Path, info: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        assert not Path(f"{golden}-wal").exists(), f"{golden} has a WAL next to it: the golden file is incomplete"
        copy = tmp_path / golden.name
        shutil.copyfile(golden, copy)
        stores.append(SQLiteStore(copy, secret=MAKER.SECRET if info.get("signed") else None))
        hooks = MAKER.Hooks(outage=False)
        return MAKER.build(stores[-1], MAKER.serializers()[info["serializer"]], hooks), hooks

    yield open_copy
    for store in stores:
        store.close()


def refused_here(info: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """A stamped pickle journal from another Python minor version is refused on resume, by design."""
    return info["serializer"] == "pickle" and info["stamp"] is not None and manifest["python"] != HERE_PYTHON


def error_text(error: BaseException | None) -> str:
    """The type name and message of a recorded error, whether it came back as itself or as a ReplayedError."""
    assert error is not None
    if isinstance(error, ReplayedError):
        return f"{error.type_name}: {error.message}"
    return f"{type(error).__name__}: {error}"


def schema_versions(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM durable_schema ORDER BY version")]


def test_golden_journals_exist_for_every_schema_version() -> None:
    """Every schema version up to the current one has golden journals of each scenario (make_golden.py writes them)."""
    versions = {int(p.parent.name[1:]) for p, _, _ in JOURNALS}
    assert versions == set(range(1, SCHEMA_VERSION + 1)), (
        f"golden journals exist for schema versions {sorted(versions)}; run tests/golden/make_golden.py "
        f"to write v{SCHEMA_VERSION}"
    )
    for version in versions:
        scenarios = {info["scenario"] for p, info, _ in JOURNALS if p.parent.name == f"v{version}"}
        assert scenarios == set(MAKER.SCENARIOS), (version, scenarios)


@_cases("completed")
def test_completed_golden_returns_its_value_without_running(
    golden: Path, info: dict[str, Any], manifest: dict[str, Any], open_copy: Any, tmp_path: Path
) -> None:
    """A completed golden thread: invoke(None) returns the stored value, runs nothing, and its journal reads back."""
    eps, hooks = open_copy(golden, info)
    ep, thread_id = eps["completed"], info["thread_id"]
    assert ep.invoke(None, thread_id=thread_id) == MAKER.EXPECTED["completed"]
    state = ep.get_state(thread_id=thread_id)
    assert state.status == "completed" and state.output == MAKER.EXPECTED["completed"]
    entries = sorted(state.entries, key=lambda e: e.key)
    assert [(e.key, e.task, e.status) for e in entries] == MAKER.ENTRIES["completed"]
    assert [e.result for e in entries[:3]] == MAKER.EXPECTED["completed"]["items"]
    assert [e.result for e in entries[4:6]] == MAKER.EXPECTED["completed"]["nested"]
    assert entries[3].result == MAKER.EXPECTED["completed"]["nested"]
    assert error_text(entries[6].error) == "ValueError: bad input 3"
    assert dict(hooks.calls) == {}
    assert schema_versions(tmp_path / golden.name) == list(range(1, SCHEMA_VERSION + 1))


@_cases("failed")
def test_failed_golden_resumes_running_only_the_failed_task(
    golden: Path, info: dict[str, Any], manifest: dict[str, Any], open_copy: Any
) -> None:
    """A failed golden thread: its error reads back, and invoke(None) re-runs only the failed task to complete."""
    eps, hooks = open_copy(golden, info)
    ep, thread_id = eps["failed"], info["thread_id"]
    state = ep.get_state(thread_id=thread_id)
    assert state.status == "failed" and error_text(state.error) == "RuntimeError: llm outage"
    assert sorted((e.key, e.task, e.status) for e in state.entries) == MAKER.ENTRIES["failed"]
    if refused_here(info, manifest):
        with pytest.raises(IncompatibleJournalError):
            ep.invoke(None, thread_id=thread_id)
        assert dict(hooks.calls) == {}
        return
    assert ep.invoke(None, thread_id=thread_id) == MAKER.EXPECTED["failed"]
    assert dict(hooks.calls) == {"llm": 1}
    state = ep.get_state(thread_id=thread_id)
    assert state.status == "completed"
    by_key = sorted((e.key, e.status, e.attempt) for e in state.entries)
    assert by_key == [("0", "ok", 1), ("1", "ok", 1), ("2", "error", 1), ("2", "ok", 2)]


@_cases("paused")
def test_paused_golden_completes_when_answered(
    golden: Path, info: dict[str, Any], manifest: dict[str, Any], open_copy: Any
) -> None:
    """A paused golden thread: invoke(None) shows its two pending interrupts, and answering them completes it."""
    eps, hooks = open_copy(golden, info)
    ep, thread_id = eps["paused"], info["thread_id"]
    paused = ep.invoke(None, thread_id=thread_id)
    assert isinstance(paused, Interrupted)
    words = MAKER.DRAFT["words"]
    assert [i.value for i in paused.interrupts] == [{"reviewer": who, "words": words} for who in MAKER.LAST_ANSWERS]
    assert dict(hooks.calls) == {}
    state = ep.get_state(thread_id=thread_id)
    assert state.status == "interrupted" and state.interrupts == paused.interrupts
    assert sorted((e.key, e.task, e.status) for e in state.entries) == MAKER.ENTRIES["paused"]
    answers = {i.id: MAKER.LAST_ANSWERS[i.value["reviewer"]] for i in paused.interrupts}
    if refused_here(info, manifest):
        with pytest.raises(IncompatibleJournalError):
            ep.invoke(Command(resume=answers), thread_id=thread_id)
        assert dict(hooks.calls) == {}
        return
    assert ep.invoke(Command(resume=answers), thread_id=thread_id) == MAKER.EXPECTED["paused"]
    # The two unanswered reviews run again from their start; the answered one and `prepare` replay.
    assert dict(hooks.calls) == {"review": len(MAKER.LAST_ANSWERS)}
    assert ep.get_state(thread_id=thread_id).status == "completed"


def _signed_before_v2() -> Any:
    """The signed golden journals written with signature version 1 (before thread nonces)."""
    cases = [
        pytest.param(*j, id=f"{j[0].parent.name}/{j[0].stem}")
        for j in JOURNALS
        if j[1].get("signed") and j[2]["schema_version"] < 5
    ]
    assert cases, "no golden journal signed with signature version 1"
    return pytest.mark.parametrize(("golden", "info", "manifest"), cases)


def _payloads(path: Path) -> list[bytes]:
    with closing(sqlite3.connect(path)) as conn:
        runs = [
            v for row in conn.execute("SELECT input, output, save, error, interrupts FROM durable_runs") for v in row
        ]
        rows = [p for (p,) in conn.execute("SELECT payload FROM durable_journal")]
    return [v for v in runs + rows if v is not None]


@_signed_before_v2()
def test_a_version_1_signed_journal_is_resigned_and_then_refuses_version_1(
    golden: Path, info: dict[str, Any], manifest: dict[str, Any], open_copy: Any, tmp_path: Path
) -> None:
    """`Threads.resign` re-signs a version-1 journal in version 2 (with a nonce); it still resumes, and a version-1
    value put back into it afterwards is refused."""
    from durable import IntegrityError, Threads

    eps, hooks = open_copy(golden, info)
    copy = tmp_path / golden.name
    scenario, thread_id = info["scenario"], info["thread_id"]
    store = eps[scenario].checkpointer
    before = eps[scenario].get_state(thread_id=thread_id)  # version 1 still verifies on a thread without a nonce
    assert store.get_thread(thread_id).nonce is None and all(p[:1] == b"S" for p in _payloads(copy))
    report = Threads(store, secret=MAKER.SECRET).resign()
    assert report.resigned == (thread_id,) and not report.failed and not report.busy
    assert store.get_thread(thread_id).nonce is not None and all(p[:1] == b"T" for p in _payloads(copy))
    after = eps[scenario].get_state(thread_id=thread_id)
    assert [(e.key, e.task, e.status, e.result) for e in after.entries] == [
        (e.key, e.task, e.status, e.result) for e in before.entries
    ]
    if not refused_here(info, manifest):
        if scenario == "completed":
            assert eps[scenario].invoke(None, thread_id=thread_id) == MAKER.EXPECTED["completed"]
        elif scenario == "failed":
            assert eps[scenario].invoke(None, thread_id=thread_id) == MAKER.EXPECTED["failed"]
        else:
            paused = eps[scenario].invoke(None, thread_id=thread_id)
            answers = {i.id: MAKER.LAST_ANSWERS[i.value["reviewer"]] for i in paused.interrupts}
            assert eps[scenario].invoke(Command(resume=answers), thread_id=thread_id) == MAKER.EXPECTED["paused"]
        # Only what had not finished ran: re-signing changed no recorded outcome.
        assert dict(hooks.calls) == {"completed": {}, "failed": {"llm": 1}, "paused": {"review": 2}}[scenario]
    # A version-1 value from the original file, planted back, no longer verifies.
    with closing(sqlite3.connect(golden)) as old:
        key, payload = old.execute("SELECT key, payload FROM durable_journal ORDER BY key LIMIT 1").fetchone()
    store.close()
    with closing(sqlite3.connect(copy)) as conn, conn:
        conn.execute(
            "UPDATE durable_journal SET payload = ? WHERE key = ? AND run_id = 1 AND attempt = 1", (payload, key)
        )
    with pytest.raises(IntegrityError, match="version-1 signature"):
        eps[scenario].get_state(thread_id=thread_id)
    assert Threads(store, secret=MAKER.SECRET).resign([thread_id]).failed  # and resign will not launder it
