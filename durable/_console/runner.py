"""What runs workflow code in the console, when it is given MODULEs: a `durable.Worker` and a resume pool.

The worker carries, on the console's store, the runs a worker would: submitted ones, crashed ones, answered ones
(`Threads.answer` leaves a run for a worker) and those whose interrupt deadline passed. "Resume" of a failed run
is ``ep.using(store).invoke(None, thread_id=...)`` in a small pool of threads. Without MODULEs there is no runner:
answers are journaled and wait for ``durable worker MODULE`` (or the application) to carry them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .._api import Entrypoint, as_entrypoint
from .._worker import Worker
from ..errors import ConfigurationError
from ..stores._base import Store

log = logging.getLogger("durable.console")


def load_targets(targets: Sequence[str]) -> list[Any]:
    """The entrypoints of ``module``, ``module:attr``, ``path/to/file.py`` or ``path/to/file.py:attr`` targets."""
    from .._cli import load_entrypoints

    found: list[Any] = []
    for target in targets:
        where, attr = target, ""
        if ":" in target and target.rsplit(":", 1)[0].endswith(".py"):
            where, attr = target.rsplit(":", 1)
        if not where.endswith(".py"):
            found += load_entrypoints([target])
            continue
        found += _from_file(where, attr, target)
    return found


def _from_file(path: str, attr: str, target: str) -> list[Any]:
    if not os.path.isfile(path):
        raise ConfigurationError(f"{target!r}: no such file {path!r}")
    name = os.path.splitext(os.path.basename(path))[0]
    module = sys.modules.get(name)
    if module is None or os.path.abspath(getattr(module, "__file__", "") or "") != os.path.abspath(path):
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"{target!r}: cannot import {path!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as `python -m` would: the module's classes pickle by this name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ConfigurationError(f"cannot import {path!r} (from {target!r}): {exc}") from exc
    values = [getattr(module, attr, None)] if attr else list(vars(module).values())
    eps = [ep for v in values if (ep := as_entrypoint(v)) is not None]
    if not eps:
        what = f"{attr!r} is not an entrypoint" if attr else "it defines no @entrypoint nor compiled graph"
        raise ConfigurationError(f"{target!r}: {what}")
    return eps


class Runner:
    """A worker in a background thread, and a pool that resumes failed runs, for ``entrypoints`` on ``store``."""

    def __init__(self, entrypoints: Sequence[Any], store: Store, *, poll_interval: float = 0.5) -> None:
        self.store = store
        self.worker = Worker(entrypoints, checkpointer=store, poll_interval=poll_interval)
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="durable-console-resume")

    @property
    def names(self) -> list[str]:
        return sorted(self.worker.entrypoints)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="durable-console-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except Exception:  # the console stays up to show the journal; the log says why nothing is carried
            log.exception("the console's worker stopped")

    def stop(self) -> None:
        self.worker.stop()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._pool.shutdown(wait=True)

    def poke(self) -> None:
        """Look for work now (an answer was just journaled), rather than at the next poll."""
        self.worker.wake()

    def entrypoint(self, name: str) -> Entrypoint[Any, Any] | None:
        """The entrypoint runs recorded under ``name`` belong to (today's name or an alias), if loaded."""
        return self.worker.entrypoint_for(name)

    def resume(self, ep: Entrypoint[Any, Any], thread_id: str) -> Future[Any]:
        """Resume a failed or crashed run in the background (its outcome lands in the journal)."""
        return self._pool.submit(self._resume, ep, thread_id)

    def _resume(self, ep: Entrypoint[Any, Any], thread_id: str) -> Any:
        try:
            return ep.using(self.store).invoke(None, thread_id=thread_id)
        except Exception:
            log.warning("resuming thread %r failed", thread_id, exc_info=True)
            return None
