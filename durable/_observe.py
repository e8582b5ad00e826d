"""What a run tells the outside: the ``durable`` logger, and OpenTelemetry spans when a tracer is set up.

Run-level events (started or resumed, paused, sleeping, finished, failed) go to
the ``durable`` logger at INFO (a failure at WARNING). Per-task events (run or
replayed, each retry) go at DEBUG, and to spans: a ``durable.run`` span per
invocation and a ``durable.task`` span per task call under it, with the
thread id, key, task, attempt and ``durable.replayed`` as attributes. Spans are
made only when ``opentelemetry`` is installed and a tracer provider other than
the default no-op one is configured; then the per-task cost is a span each.

A run with neither DEBUG logging nor tracing gets no `Observer` at all, so the
task path pays one ``is None`` check.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("durable")
log.addHandler(logging.NullHandler())  # a library's convention: silent until the application configures logging

_trace: Any = None  # the opentelemetry.trace module, False when it is not installed


def _tracer() -> Any:
    global _trace
    if _trace is None:
        import importlib

        try:
            _trace = importlib.import_module("opentelemetry.trace")
        except ImportError:
            _trace = False
    if _trace is False:
        return None
    provider = _trace.get_tracer_provider()
    if isinstance(provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider):
        return None  # nobody configured tracing: do not pay for spans nobody records
    from . import __version__

    return provider.get_tracer("durable", __version__)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class Observer:
    """Logs and traces one run's tasks (made by `run_started` only when someone is listening)."""

    __slots__ = ("_debug", "_tracer", "attrs", "context", "span")

    def __init__(self, tracer: Any, debug: bool, attrs: dict[str, Any]) -> None:
        self._tracer = tracer
        self._debug = debug
        self.attrs = attrs
        self.span: Any = None
        self.context: Any = None

    def task(self, name: str, key: str, attempt: int, started: float, error: BaseException | None) -> None:
        """A task body ran (and its outcome was journaled)."""
        if self._debug:
            took = (time.time() - started) * 1000
            if error is None:
                log.debug("task %r (key %s, attempt %d) ran in %.1f ms", name, key, attempt, took)
            else:
                log.debug("task %r (key %s, attempt %d) raised %s: %s", name, key, attempt, type(error).__name__, error)
        if self._tracer is not None:
            self._span(name, key, attempt, started, replayed=False, error=error)

    def replayed(self, name: str, key: str, attempt: int) -> None:
        """A task call was answered from the journal without running."""
        if self._debug:
            log.debug("task %r (key %s) replayed from the journal", name, key)
        if self._tracer is not None:
            now = time.time()
            self._span(name, key, attempt, now, replayed=True, error=None)

    def _span(self, name: str, key: str, attempt: int, started: float, *, replayed: bool, error: Any) -> None:
        span = self._tracer.start_span(
            f"durable.task {name}",
            context=self.context,
            start_time=_ns(started),
            attributes={
                **self.attrs,
                "durable.task": name,
                "durable.key": key,
                "durable.attempt": attempt,
                "durable.replayed": replayed,
            },
        )
        if error is not None:
            span.record_exception(error)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()


def retrying(observer: Observer | None, name: str, key: str, attempt: int, error: BaseException, delay: float) -> None:
    """A failed attempt that the task's policy tries again after ``delay`` seconds."""
    log.info(
        "task %r (key %s) attempt %d failed with %s: %s; retrying in %.2f s",
        name, key, attempt, type(error).__name__, error, delay,
    )  # fmt: skip
    if observer is not None and observer._tracer is not None:
        observer._span(name, key, attempt, time.time(), replayed=False, error=error)


def run_started(entrypoint: str, thread_id: str, run_id: int, resumed: bool, recorded: int) -> Observer | None:
    """Log the start of a run; the run's `Observer`, or ``None`` when nobody listens to its tasks."""
    if resumed:
        log.info("resuming run #%d of %r on thread %r (%d journal entries)", run_id, entrypoint, thread_id, recorded)
    else:
        log.info("starting run #%d of %r on thread %r", run_id, entrypoint, thread_id)
    tracer = _tracer()
    debug = log.isEnabledFor(logging.DEBUG)
    if tracer is None and not debug:
        return None
    attrs = {"durable.thread_id": thread_id, "durable.run_id": run_id, "durable.entrypoint": entrypoint}
    observer = Observer(tracer, debug, attrs)
    if tracer is not None:
        observer.span = tracer.start_span(f"durable.run {entrypoint}", attributes={**attrs, "durable.resumed": resumed})
        observer.context = _trace.set_span_in_context(observer.span)
    return observer


def run_ended(
    observer: Observer | None, entrypoint: str, thread_id: str, run_id: int, outcome: str, error: BaseException | None
) -> None:
    """Log (and end the span of) a run that completed, paused, went to sleep or failed."""
    if error is not None:
        log.warning("run #%d of %r on thread %r failed: %s: %s", run_id, entrypoint, thread_id,
                    type(error).__name__, error)  # fmt: skip
    else:
        log.info("run #%d of %r on thread %r %s", run_id, entrypoint, thread_id, outcome)
    if observer is not None and observer.span is not None:
        span = observer.span
        span.set_attribute("durable.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
