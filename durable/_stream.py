"""`stream` and `astream`: a run's events, as it goes.

Modes (``stream_mode=``, one or a list; with a list, each event is a ``(mode, chunk)`` pair):

- ``"updates"`` (default): ``{task_name: result}`` as each task finishes, ``{entrypoint_name: value}``
  when the run finishes, ``{"__interrupt__": (Interrupt, ...)}`` when it pauses. Tasks replayed from
  the journal are not emitted again unless ``replayed=True``.
- ``"custom"``: whatever tasks or the entrypoint send through `get_stream_writer()`.
- ``"values"``: what ``invoke`` returns, once: the run's value, or its `Interrupted`.

The run goes on in a worker thread (``stream``) or a task (``astream``) and its events are handed
over through a queue. A consumer that stops early does not stop the run: it still finishes, pauses
or fails, and is journaled as usual.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextvars import copy_context
from typing import Any, Literal

from .errors import ConfigurationError

StreamMode = Literal["updates", "custom", "values"]
MODES = ("updates", "custom", "values")
_DONE: Any = object()


class _Sink:
    """Receives (mode, chunk) from the run and forwards the modes asked for."""

    def __init__(self, modes: frozenset[str], put: Callable[[tuple[Any, Any]], None], replayed: bool) -> None:
        self.modes, self.put, self.replayed = modes, put, replayed

    def __call__(self, mode: str, chunk: Any) -> None:
        if mode in self.modes:
            self.put((mode, chunk))


def _modes(stream_mode: str | Sequence[str]) -> tuple[frozenset[str], bool]:
    single = isinstance(stream_mode, str)
    modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigurationError(f"stream_mode={stream_mode!r}: use {', '.join(map(repr, MODES))} or a list of them")
    return frozenset(modes), single


def stream_sync(run: Callable[[Any], Any], stream_mode: str | Sequence[str], replayed: bool) -> Iterator[Any]:
    modes, single = _modes(stream_mode)
    return _iterate(run, modes, single, replayed)


def _iterate(run: Callable[[Any], Any], modes: frozenset[str], single: bool, replayed: bool) -> Iterator[Any]:
    events: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
    sink = _Sink(modes, events.put, replayed)

    def work() -> None:
        try:
            run(sink)
        except BaseException as exc:  # handed to the consumer
            events.put((_DONE, exc))
        else:
            events.put((_DONE, None))

    threading.Thread(target=copy_context().run, args=(work,), name="durable-stream", daemon=True).start()
    while True:
        mode, chunk = events.get()
        if mode is _DONE:
            if chunk is not None:
                raise chunk
            return
        yield chunk if single else (mode, chunk)


def stream_async(
    run: Callable[[Any], Awaitable[Any]], stream_mode: str | Sequence[str], replayed: bool
) -> AsyncIterator[Any]:
    modes, single = _modes(stream_mode)
    return _aiterate(run, modes, single, replayed)


async def _aiterate(
    run: Callable[[Any], Awaitable[Any]], modes: frozenset[str], single: bool, replayed: bool
) -> AsyncIterator[Any]:
    import asyncio

    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
    loop_thread = threading.get_ident()

    def put(event: tuple[Any, Any]) -> None:
        # Sync tasks run in worker threads: they hand events to the loop thread.
        if threading.get_ident() == loop_thread:
            events.put_nowait(event)
        else:
            loop.call_soon_threadsafe(events.put_nowait, event)

    task = asyncio.ensure_future(run(_Sink(modes, put, replayed)))
    task.add_done_callback(lambda _: put((_DONE, None)))
    while True:
        mode, chunk = await events.get()
        if mode is _DONE:
            await task  # its value is in the events; its exception, if any, is raised here
            return
        yield chunk if single else (mode, chunk)
