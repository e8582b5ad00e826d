"""The journal runs no code it did not write: signatures checked before reading, formats never guessed."""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from durable import (
    IncompatibleJournalError,
    IntegrityError,
    JsonSerializer,
    Keyring,
    ReplayedError,
    SerializationError,
    SQLiteStore,
    entrypoint,
    task,
)

KEY = b"k" * 32
OTHER = b"o" * 32


class Exploit:
    """Unpickling this creates the file named by its argument: proof that a blob was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def flow(path: Path, calls: list[int], *, secret: Any = None, serializer: Any = None, fail: list[bool] | None = None):  # type: ignore[no-untyped-def]
    """A two-task workflow on a SQLite file; it fails after both tasks while ``fail[0]``."""

    @task(name="fetch")
    def fetch(i: int) -> dict[str, Any]:
        calls.append(i)
        return {"i": i, "text": f"page {i}"}

    @entrypoint(checkpointer=SQLiteStore(path), secret=secret, serializer=serializer)
    def pipeline(n: int) -> list[Any]:
        out = [fetch(i).result() for i in range(n)]
        if fail and fail[0]:
            raise RuntimeError("fails after its tasks, so a resume replays them")
        return out

    return pipeline


def journal(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def rows(path: Path) -> list[tuple[str, bytes]]:
    with journal(path) as conn:
        return list(conn.execute("SELECT key, payload FROM durable_journal ORDER BY key"))


def set_payload(path: Path, key: str, payload: bytes) -> None:
    with journal(path) as conn:
        conn.execute("UPDATE durable_journal SET payload = ? WHERE key = ?", (payload, key))


def failed_run(tmp_path: Path, **options: Any) -> tuple[Path, Any, list[int]]:
    path, calls, fail = tmp_path / "j.db", [], [True]
    ep = flow(path, calls, fail=fail, **options)
    with pytest.raises(RuntimeError):
        ep.invoke(2, thread_id="t")
    fail[0] = False
    return path, ep, calls


def test_signed_journal_round_trips(tmp_path: Path) -> None:
    """With a key, runs replay and get_state reads as without one; every blob starts with the signed tag."""
    path, ep, calls = failed_run(tmp_path, secret=KEY)
    assert ep.invoke(None, thread_id="t") == [{"i": 0, "text": "page 0"}, {"i": 1, "text": "page 1"}]
    assert calls == [0, 1]
    assert [e.status for e in ep.get_state(thread_id="t").entries] == ["ok", "ok"]
    assert all(payload[:1] == b"T" for _, payload in rows(path))


def test_flipped_bit_is_an_integrity_error(tmp_path: Path) -> None:
    """One flipped bit in a recorded result fails verification on resume and in get_state."""
    path, ep, calls = failed_run(tmp_path, secret=KEY)
    payload = bytearray(rows(path)[0][1])
    payload[-3] ^= 0x01
    set_payload(path, "0", bytes(payload))
    with pytest.raises(IntegrityError, match="fails its signature check"):
        ep.invoke(None, thread_id="t")
    with pytest.raises(IntegrityError):
        ep.get_state(thread_id="t")
    assert calls == [0, 1]


def test_swapped_rows_are_integrity_errors(tmp_path: Path) -> None:
    """Two validly signed results swapped between keys fail: the signature covers the slot."""
    path, ep, _ = failed_run(tmp_path, secret=KEY)
    (k0, p0), (k1, p1) = rows(path)
    set_payload(path, k0, p1)
    set_payload(path, k1, p0)
    with pytest.raises(IntegrityError, match="moved from"):
        ep.invoke(None, thread_id="t")


def test_blob_copied_from_another_thread_is_an_integrity_error(tmp_path: Path) -> None:
    """A blob signed for one thread is refused in another thread's same slot."""
    path, calls, fail = tmp_path / "j.db", [], [True]
    ep = flow(path, calls, secret=KEY, fail=fail)
    for thread in ("a", "b"):
        with pytest.raises(RuntimeError):
            ep.invoke(2, thread_id=thread)
    with journal(path) as conn:
        tid_a, tid_b = (
            conn.execute("SELECT tid FROM durable_threads WHERE thread_id = ?", (t,)).fetchone()[0] for t in "ab"
        )
        blob = conn.execute("SELECT payload FROM durable_journal WHERE tid = ? AND key = '0'", (tid_a,)).fetchone()[0]
        conn.execute("UPDATE durable_journal SET payload = ? WHERE tid = ? AND key = '1'", (blob, tid_b))
    fail[0] = False
    with pytest.raises(IntegrityError):
        ep.invoke(None, thread_id="b")


def test_malicious_pickle_is_never_unpickled_when_signed(tmp_path: Path) -> None:
    """A pickle that would create a file, planted in a signed journal, is refused before unpickling."""
    path, ep, _ = failed_run(tmp_path, secret=KEY)
    marker = tmp_path / "pwned"
    set_payload(path, "0", b"P" + pickle.dumps(Exploit(str(marker))))
    with pytest.raises(IntegrityError, match="not signed"):
        ep.invoke(None, thread_id="t")
    with pytest.raises(IntegrityError):
        ep.get_state(thread_id="t")
    assert not marker.exists()


def test_malicious_pickle_is_never_unpickled_in_json_mode(tmp_path: Path) -> None:
    """An entrypoint on the JSON serializer refuses a pickle blob instead of falling back to pickle."""
    path, ep, _ = failed_run(tmp_path, serializer=JsonSerializer())
    marker = tmp_path / "pwned"
    set_payload(path, "0", b"P" + pickle.dumps(Exploit(str(marker))))
    with pytest.raises(SerializationError, match="pickle serializer"):
        ep.invoke(None, thread_id="t")
    assert not marker.exists()


def test_wrong_key_is_an_integrity_error_naming_the_key_id(tmp_path: Path) -> None:
    """A journal signed with one key, read with another, is refused and the message names the signing key id."""
    path, _, calls = failed_run(tmp_path, secret=Keyring({"old": KEY}, "old"))
    other = flow(path, calls, secret=Keyring({"new": OTHER}, "new"))
    with pytest.raises(IntegrityError, match="'old'"):
        other.invoke(None, thread_id="t")


def test_unsigned_journal_is_refused_once_a_key_is_set(tmp_path: Path) -> None:
    """Blobs written without a key are refused by an entrypoint that has one."""
    path, _, calls = failed_run(tmp_path)
    with pytest.raises(IntegrityError, match="not signed"):
        flow(path, calls, secret=KEY).invoke(None, thread_id="t")


def test_signed_journal_needs_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signed journal read with no key configured is refused, not read unchecked."""
    monkeypatch.delenv("DURABLE_SECRET", raising=False)
    path, _, calls = failed_run(tmp_path, secret=KEY)
    with pytest.raises(IntegrityError, match="no key is configured"):
        flow(path, calls).invoke(None, thread_id="t")


def test_key_rotation_reads_old_blobs_and_signs_new_ones_with_the_new_key(tmp_path: Path) -> None:
    """A keyring verifies with every key it holds and signs with its write key."""
    path, _, calls = failed_run(tmp_path, secret=Keyring({"k1": KEY}, "k1"))
    rotated = flow(path, calls, secret=Keyring({"k2": OTHER, "k1": KEY}, "k2"))
    assert len(rotated.invoke(None, thread_id="t")) == 2
    assert calls == [0, 1]
    with journal(path) as conn:
        output = conn.execute("SELECT output FROM durable_runs").fetchone()[0]
    assert output[:4] == b"T\x02k2"


def test_durable_secret_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DURABLE_SECRET signs journals of entrypoints and stores that set no key of their own."""
    monkeypatch.setenv("DURABLE_SECRET", "main=" + "x" * 32 + ",old=" + "y" * 32)
    path, ep, _ = failed_run(tmp_path)
    assert ep.invoke(None, thread_id="t")
    assert all(payload[:6] == b"T\x04main" for _, payload in rows(path))


@pytest.mark.subprocess
def test_checks_hold_under_python_O(tmp_path: Path) -> None:
    """Verification does not rely on assert: a tampered blob is refused under python -O too."""
    path, _, _ = failed_run(tmp_path, secret=KEY)
    payload = bytearray(rows(path)[0][1])
    payload[-2] ^= 0xFF
    set_payload(path, "0", bytes(payload))
    script = (
        "import sys\n"
        "from durable import IntegrityError, SQLiteStore, entrypoint, task\n"
        "@task(name='fetch')\n"
        "def fetch(i): return i\n"
        f"@entrypoint(checkpointer=SQLiteStore({str(path)!r}), secret={KEY!r}, name='pipeline')\n"
        "def pipeline(n): return [fetch(i).result() for i in range(n)]\n"
        "try:\n    pipeline.invoke(None, thread_id='t')\nexcept IntegrityError:\n    sys.exit(7)\n"
    )
    done = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, done.stderr


def test_json_serializer_round_trips_and_keeps_lookalike_data(tmp_path: Path) -> None:
    """JSON mode keeps tuples, bytes and non-string keys, and data shaped like its wrappers stays data."""
    path, calls = tmp_path / "j.db", []
    value = {"t": (1, "a"), "b": b"\x00\xff", 3: [None, 1.5, True], "$bytes": "not base64", "nested": {"$tuple": [1]}}

    @task
    def make() -> Any:
        calls.append(1)
        return value

    @entrypoint(checkpointer=SQLiteStore(path), serializer=JsonSerializer())
    def ep(_: int) -> Any:
        return make().result()

    assert ep.invoke(1, thread_id="t") == value
    assert ep.get_state(thread_id="t").entries[0].result == value
    assert ep.invoke(None, thread_id="t") == value


def test_json_serializer_refuses_other_objects_and_stores_errors_as_text(tmp_path: Path) -> None:
    """An object JSON cannot hold is a SerializationError; a task's exception replays as a ReplayedError."""

    class Custom:
        pass

    @task
    def odd() -> Any:
        return Custom()

    @task
    def boom() -> None:
        raise KeyError("missing")

    @entrypoint(checkpointer=SQLiteStore(tmp_path / "j.db"), serializer=JsonSerializer())
    def ep(which: str) -> Any:
        if which == "odd":
            return odd().result()
        try:
            boom().result()
        except KeyError:
            return "handled"

    with pytest.raises(SerializationError, match="plain data"):
        ep.invoke("odd", thread_id="a")
    assert ep.invoke("boom", thread_id="b") == "handled"
    error = ep.get_state(thread_id="b").entries[0].error
    assert isinstance(error, ReplayedError) and error.type_name == "KeyError"


def test_journal_from_another_python_is_refused_before_unpickling(tmp_path: Path) -> None:
    """A pickle journal stamped by another Python minor version raises IncompatibleJournalError up front."""
    path, ep, calls = failed_run(tmp_path)
    with journal(path) as conn:
        conn.execute("UPDATE durable_runs SET stamp = 'pickle python3.4 cloudpickle0.1'")
    with pytest.raises(IncompatibleJournalError, match=r"Python 3\.4"):
        ep.invoke(None, thread_id="t")
    assert calls == [0, 1]


def test_unknown_format_tag_is_an_error_not_an_empty_slot(tmp_path: Path) -> None:
    """A blob with an unknown format tag raises; the task is not treated as unrecorded and re-run."""
    path, ep, calls = failed_run(tmp_path)
    set_payload(path, "0", b"Z" + os.urandom(8))
    with pytest.raises(SerializationError, match="never guessed"):
        ep.invoke(None, thread_id="t")
    assert calls == [0, 1]


def test_recorded_class_that_no_longer_exists_is_named(tmp_path: Path) -> None:
    """A result whose class is gone raises an error naming it; the task is not re-run."""
    path, ep, calls = failed_run(tmp_path)
    blob = pickle.dumps(0).replace(b"K\x00", b"c" + b"no_such_module\nGone\n")
    set_payload(path, "0", b"P" + blob)
    with pytest.raises(SerializationError, match="no_such_module"):
        ep.invoke(None, thread_id="t")
    assert calls == [0, 1]
