"""The web console's fixtures: a journal, and a console app over it (the workflows are in `_console_kit`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web console needs its extra: pip install 'durable-exec[ui]'")

from _console_kit import FAIL, Console

from durable import Store


@pytest.fixture(autouse=True)
def _no_failures() -> Iterator[None]:
    FAIL.clear()
    yield
    FAIL.clear()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    from durable import SQLiteStore

    with SQLiteStore(tmp_path / "journal.db") as store:
        yield store


@pytest.fixture
def console() -> Callable[..., Console]:
    """``console(store, modules=[...], read_only=True)``: a console app (use it as a context manager)."""
    return Console
