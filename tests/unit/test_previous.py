"""The ``previous`` parameter and ``entrypoint.final(value=..., save=...)``."""

from __future__ import annotations

from typing import Any

import pytest

from durable import MemoryStore, entrypoint

Flavor = Any  # the `flavor` fixture from tests/conftest.py


class Boom(Exception):
    pass


def test_previous_is_none_first_then_the_last_finished_value(flavor: Flavor) -> None:
    """The first run gets previous=None; each later run gets the value the run before it returned."""
    f = flavor
    seen: list[Any] = []

    @f.entrypoint(checkpointer=MemoryStore())
    def counter(step: int, *, previous: int | None = None) -> int:
        seen.append(previous)
        return (previous or 0) + step

    assert [f.invoke(counter, step, thread_id="t") for step in (1, 10, 100)] == [1, 11, 111]
    assert seen == [None, 1, 11]


def test_previous_is_per_thread(flavor: Flavor) -> None:
    """Each thread has its own ``previous``."""
    f = flavor

    @f.entrypoint(checkpointer=MemoryStore())
    def counter(step: int, *, previous: int | None = None) -> int:
        return (previous or 0) + step

    assert f.invoke(counter, 1, thread_id="a") == 1
    assert f.invoke(counter, 5, thread_id="b") == 5
    assert f.invoke(counter, 1, thread_id="a") == 2
    assert f.invoke(counter, 5, thread_id="b") == 10


def test_final_returns_value_and_saves_save_for_the_next_run(flavor: Flavor) -> None:
    """``entrypoint.final(value=v, save=s)`` makes the run return v while the next run's previous is s."""
    f = flavor
    seen: list[Any] = []

    @f.entrypoint(checkpointer=MemoryStore())
    def chat(message: str, *, previous: list[str] | None = None) -> Any:
        seen.append(previous)
        history = [*(previous or []), message]
        return entrypoint.final(value=f"{len(history)} messages", save=history)

    assert f.invoke(chat, "hi", thread_id="t") == "1 messages"
    assert f.invoke(chat, "there", thread_id="t") == "2 messages"
    assert seen == [None, ["hi"]]
    state = chat.get_state(thread_id="t")
    assert (state.status, state.output) == ("completed", "2 messages")
    # None on a finished thread returns the value, not what was saved.
    assert f.invoke(chat, None, thread_id="t") == "2 messages"
    assert len(seen) == 2


def test_a_resumed_run_keeps_the_previous_it_started_with(flavor: Flavor) -> None:
    """A failed run resumed with None gets the same ``previous`` as when it started, not its own failure."""
    f = flavor
    seen: list[Any] = []
    failing = [False]

    @f.task
    def check(x: int) -> int:
        if failing[0]:
            raise Boom("down")
        return x

    @f.entrypoint(checkpointer=MemoryStore())
    def counter(step: int, *, previous: int | None = None) -> Any:
        seen.append(previous)
        return (previous or 0) + (yield check(step))

    assert f.invoke(counter, 1, thread_id="t") == 1
    failing[0] = True
    with pytest.raises(Boom):
        f.invoke(counter, 2, thread_id="t")
    failing[0] = False
    assert f.invoke(counter, None, thread_id="t") == 3
    assert f.invoke(counter, 4, thread_id="t") == 7
    assert seen == [None, 1, 1, 3]


def test_an_entrypoint_without_previous_is_not_passed_one(flavor: Flavor) -> None:
    """An entrypoint that declares no ``previous`` runs again on a finished thread without receiving one."""
    f = flavor

    @f.entrypoint(checkpointer=MemoryStore())
    def echo(x: int) -> int:
        return x

    assert f.invoke(echo, 1, thread_id="t") == 1
    assert f.invoke(echo, 2, thread_id="t") == 2
    assert echo.get_state(thread_id="t").run_id == 2
