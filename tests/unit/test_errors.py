"""The error tree: one `DurableError` base, helpful messages, and errors that survive pickling."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

import durable
from durable import (
    ArgumentsChangedError,
    ConfigurationError,
    DurableError,
    LeaseLostError,
    NonDeterminismError,
    SchemaVersionError,
    SerializationError,
    StoreError,
    ThreadBusyError,
    ThreadNotFoundError,
    UnfinishedRunError,
)

ERRORS = [
    ConfigurationError("bad option"),
    ThreadNotFoundError("job-1"),
    UnfinishedRunError("job-1", 3, "failed"),
    ThreadBusyError("job-1", "host:12:ab", 4.5),
    LeaseLostError("job-1"),
    NonDeterminismError("2", "fetch", "store"),
    ArgumentsChangedError("2", "fetch", "fetch"),
    SerializationError("the result of task 'f' (key 0)", "_thread.lock", "cannot pickle"),
    StoreError("disk full"),
    SchemaVersionError("schema 9"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_derives_from_durable_error_and_is_exported(error: DurableError) -> None:
    """Every library error is a DurableError and importable from `durable`."""
    assert isinstance(error, DurableError)
    assert getattr(durable, type(error).__name__) is type(error)
    assert type(error).__name__ in durable.__all__


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_survives_pickling(error: DurableError, dumps: object) -> None:
    """An error round-trips through pickle with its type, message and attributes."""
    copy = pickle.loads(dumps(error))  # type: ignore[operator]
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_the_tree_has_the_documented_shape() -> None:
    """ArgumentsChangedError is a NonDeterminismError; SchemaVersionError a StoreError; stdlib bases are kept."""
    assert issubclass(ArgumentsChangedError, NonDeterminismError)
    assert issubclass(SchemaVersionError, StoreError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ThreadNotFoundError, LookupError)
    assert issubclass(SerializationError, TypeError)


def test_messages_say_what_happened_and_what_to_do() -> None:
    """Messages name the thread, key, tasks or type involved, and the next step."""
    assert "'job-1'" in str(ThreadNotFoundError("job-1"))
    unfinished = str(UnfinishedRunError("job-1", 3, "failed"))
    assert "#3" in unfinished and "invoke(None, thread_id='job-1')" in unfinished
    busy = str(ThreadBusyError("job-1", "host:12:ab", 4.5))
    assert "host:12:ab" in busy and "4.5s" in busy
    nondet = str(NonDeterminismError("2", "fetch", "store"))
    assert "'2'" in nondet and "'fetch'" in nondet and "'store'" in nondet
    assert "on_changed_args" in str(ArgumentsChangedError("2", "fetch", "fetch"))
    ser = str(SerializationError("the result of task 'f' (key 0)", "_thread.lock", "cannot pickle"))
    assert "task 'f'" in ser and "_thread.lock" in ser
