"""Thread ids: non-empty text of at most 512 UTF-8 bytes, without NUL or lone surrogates; anything else is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from durable import ConfigurationError, MemoryStore, Threads, entrypoint, task
from durable._ids import MAX_THREAD_ID_BYTES, check_thread_id
from durable.stores._base import ThreadFilter

GOOD = {
    "text": ("job-1", "job-1"),
    "uuid": (uuid.UUID(int=7), str(uuid.UUID(int=7))),
    "int": (42, "42"),
    "ascii-at-the-limit": ("x" * 512, "x" * 512),
    "utf8-at-the-limit": ("é" * 256, "é" * 256),
}

BAD = {
    "empty": ("", "non-empty"),
    "none": (None, "non-empty string"),
    "bool": (True, "non-empty string"),
    "bytes": (b"job-1", "non-empty string"),
    "float": (1.5, "non-empty string"),
    "nul": ("job\x00-1", "NUL"),
    "lone-surrogate": ("job-\ud800", "lone surrogate"),
    "escaped-byte": ("job-\udcff", "lone surrogate"),
    "ascii-over-the-limit": ("x" * 513, "513 bytes in UTF-8; the limit is 512"),
    "utf8-over-the-limit": ("é" * 256 + "x", "513 bytes in UTF-8; the limit is 512"),
}


@pytest.mark.parametrize(("value", "expected"), GOOD.values(), ids=GOOD.keys())
def test_a_valid_thread_id_is_returned_as_its_text(value: object, expected: str) -> None:
    """A str, a UUID or an int of at most 512 UTF-8 bytes is accepted, as its text."""
    assert check_thread_id(value) == expected


@pytest.mark.parametrize(("value", "message"), BAD.values(), ids=BAD.keys())
def test_an_invalid_thread_id_raises_configuration_error_saying_why(value: object, message: str) -> None:
    """An empty, non-text, NUL-carrying, surrogate-carrying or over-long thread id raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message):
        check_thread_id(value)


def test_the_limit_is_512_bytes() -> None:
    """The documented limit is 512 bytes."""
    assert MAX_THREAD_ID_BYTES == 512


def test_an_over_long_thread_id_is_shown_cut_short() -> None:
    """The error for a huge thread id does not carry the whole id."""
    with pytest.raises(ConfigurationError) as info:
        check_thread_id("x" * 100_000)
    assert len(str(info.value)) < 400
    assert "100000 bytes" in str(info.value)


def _flow(store: MemoryStore, ran: list[int]) -> Any:
    @task
    def double(x: int) -> int:
        ran.append(x)
        return 2 * x

    @entrypoint(checkpointer=store)
    def flow(x: int) -> int:
        return double(x).result()

    return flow


NOT_RECORDED = {k: v for k, v in BAD.items() if k in ("nul", "lone-surrogate", "escaped-byte", "ascii-over-the-limit")}


@pytest.mark.parametrize(("value", "message"), NOT_RECORDED.values(), ids=NOT_RECORDED.keys())
def test_invoke_with_an_invalid_thread_id_runs_and_records_nothing(value: str, message: str) -> None:
    """``invoke(..., thread_id=bad)`` raises ConfigurationError before anything runs or is journaled."""
    store, ran = MemoryStore(), []
    flow = _flow(store, ran)
    with pytest.raises(ConfigurationError, match=message):
        flow.invoke(1, thread_id=value)
    with pytest.raises(ConfigurationError, match=message):
        flow.invoke(1, config={"configurable": {"thread_id": value}})
    with pytest.raises(ConfigurationError, match=message):
        flow.get_state(thread_id=value)
    assert ran == []
    assert store.list_threads(ThreadFilter()) == []


def test_a_thread_id_at_the_limit_runs() -> None:
    """A thread id of exactly 512 UTF-8 bytes is journaled and replayed like any other."""
    store, ran = MemoryStore(), []
    flow = _flow(store, ran)
    tid = "é" * 256
    assert flow.invoke(3, thread_id=tid) == 6
    assert flow.invoke(None, thread_id=tid) == 6
    assert ran == [3]


@pytest.mark.parametrize("new_id", ["f\x00", "f\ud800", "f" * 513], ids=["nul", "lone-surrogate", "over-the-limit"])
def test_fork_refuses_an_invalid_new_thread_id(new_id: str) -> None:
    """``Threads.fork(..., new_thread_id=bad)`` raises ConfigurationError and creates no thread."""
    store, ran = MemoryStore(), []
    _flow(store, ran).invoke(1, thread_id="t")
    with pytest.raises(ConfigurationError):
        Threads(store).fork("t", at=1, new_thread_id=new_id)
    assert [s.thread_id for s in store.list_threads(ThreadFilter())] == ["t"]


@pytest.mark.parametrize("bad_id", ["t\x00", "t\ud800", "t" * 513, ""], ids=["nul", "lone-surrogate", "long", "empty"])
def test_import_refuses_a_bundle_with_an_invalid_thread_id(bad_id: str) -> None:
    """A bundle whose thread id is not a valid thread id is refused with ConfigurationError; nothing is imported."""
    source, ran = MemoryStore(), []
    _flow(source, ran).invoke(1, thread_id="t")
    bundle = {**Threads(source).export("t"), "thread_id": bad_id}
    target = MemoryStore()
    with pytest.raises(ConfigurationError, match="thread id"):
        Threads(target).import_bundle(bundle)
    assert target.list_threads(ThreadFilter()) == []
