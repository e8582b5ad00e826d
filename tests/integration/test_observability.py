"""What a run tells the outside: the ``durable`` logger's records, and OpenTelemetry spans.

OpenTelemetry lets a process set its global tracer provider once, so this module sets one SDK provider for the
session (or joins the one already set) and records through a span processor that only passes spans on while a
test of this module listens. The no-provider path runs in a subprocess.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from durable import Interrupted, RetryPolicy, Store, interrupt

Flavor = Any  # the `flavor` fixture from tests/conftest.py

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


class Boom(Exception):
    pass


class _Gate(sdk_trace.SpanProcessor):  # type: ignore[misc]
    """Passes ended spans to the exporter only while a test of this module records."""

    def __init__(self, exporter: Any) -> None:
        self.inner = export.SimpleSpanProcessor(exporter)
        self.open = False

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if self.open:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.fixture(scope="session")
def _otel() -> tuple[Any, _Gate]:
    """One SDK provider for the whole session (OpenTelemetry refuses to replace one once set)."""
    exporter = in_memory.InMemorySpanExporter()
    gate = _Gate(exporter)
    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        trace.set_tracer_provider(provider)
        assert trace.get_tracer_provider() is provider
    provider.add_span_processor(gate)
    return exporter, gate


@pytest.fixture
def spans(_otel: tuple[Any, _Gate]) -> Iterator[Any]:
    """The session's in-memory exporter, emptied, recording for this test only."""
    exporter, gate = _otel
    exporter.clear()
    gate.open = True
    yield exporter
    gate.open = False
    exporter.clear()


def pipeline(f: Flavor, store: Store, calls: Any, fail: list[bool], **task_options: Any) -> Any:
    """Tasks first (key 0) and second (key 1), then third (key 2), which raises Boom while ``fail[0]``."""

    def step(name: str, fn: Any) -> Any:
        def body(x: Any) -> Any:
            calls.hit(name)
            return fn(x)

        return f.task(name=name)(body)

    first, second = step("first", lambda x: x + 1), step("second", lambda x: x * 10)

    def third_body(x: Any) -> Any:
        calls.hit("third")
        if fail[0]:
            raise Boom("third failed")
        return x + 5

    third = f.task(name="third", **task_options)(third_body)

    def flow(x: int) -> Any:
        a = yield first(x)
        b = yield second(a)
        return (yield third(b))

    return f.entrypoint(checkpointer=store, name="flow")(flow)


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "durable"]


# -- logging ------------------------------------------------------------------------------------------


def test_run_lifecycle_is_logged_at_info_and_failure_at_warning(
    store: Store, flavor: Flavor, calls: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="durable")
    fail = [True]
    ep = pipeline(flavor, store, calls, fail)
    with pytest.raises(Boom):
        flavor.invoke(ep, 1, thread_id="t")
    assert records(caplog) == [
        (logging.INFO, "starting run #1 of 'flow' on thread 't'"),
        (logging.WARNING, "run #1 of 'flow' on thread 't' failed: Boom: third failed"),
    ]
    caplog.clear()
    fail[0] = False
    assert flavor.invoke(ep, None, thread_id="t") == 25
    (resumed, completed) = records(caplog)
    assert resumed[0] == logging.INFO and resumed[1].startswith("resuming run #1 of 'flow' on thread 't' (")
    assert completed == (logging.INFO, "run #1 of 'flow' on thread 't' completed")
    assert not [r for r in caplog.records if r.name == "durable" and r.levelno == logging.DEBUG]


def test_a_pause_is_logged(store: Store, flavor: Flavor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="durable")
    ep = flavor.entrypoint(checkpointer=store, name="ask")(lambda x: interrupt(x))
    assert isinstance(flavor.invoke(ep, 1, thread_id="p"), Interrupted)
    assert records(caplog) == [
        (logging.INFO, "starting run #1 of 'ask' on thread 'p'"),
        (logging.INFO, "run #1 of 'ask' on thread 'p' paused on 1 interrupt(s)"),
    ]


def test_tasks_are_logged_at_debug_as_ran_or_replayed(
    store: Store, flavor: Flavor, calls: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="durable")
    fail = [True]
    ep = pipeline(flavor, store, calls, fail)
    with pytest.raises(Boom):
        flavor.invoke(ep, 1, thread_id="t")
    debug = [m for level, m in records(caplog) if level == logging.DEBUG]
    assert len(debug) == 3
    assert debug[0].startswith("task 'first' (key 0, attempt 1) ran in ")
    assert debug[1].startswith("task 'second' (key 1, attempt 1) ran in ")
    assert debug[2] == "task 'third' (key 2, attempt 1) raised Boom: third failed"
    caplog.clear()
    fail[0] = False
    flavor.invoke(ep, None, thread_id="t")
    debug = [m for level, m in records(caplog) if level == logging.DEBUG]
    assert debug[:2] == [
        "task 'first' (key 0) replayed from the journal",
        "task 'second' (key 1) replayed from the journal",
    ]
    assert len(debug) == 3 and debug[2].startswith("task 'third' (key 2, attempt 2) ran in ")
    assert calls.as_dict() == {"first": 1, "second": 1, "third": 2}


def test_a_retry_is_logged_at_info(store: Store, flavor: Flavor, calls: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="durable")

    def flaky(x: int) -> int:
        calls.hit("flaky")
        if calls["flaky"] == 1:
            raise Boom("first attempt")
        return x

    task = flavor.task(name="flaky", retry=RetryPolicy(max_attempts=2, initial_interval=0.0, jitter=False))(flaky)

    def flow(x: int) -> Any:
        return (yield task(x))

    ep = flavor.entrypoint(checkpointer=store, name="flow")(flow)
    assert flavor.invoke(ep, 3, thread_id="r") == 3
    assert calls["flaky"] == 2
    retries = [(level, m) for level, m in records(caplog) if "retrying" in m]
    assert retries == [
        (logging.INFO, "task 'flaky' (key 0) attempt 1 failed with Boom: first attempt; retrying in 0.00 s"),
    ]


# -- spans --------------------------------------------------------------------------------------------


def by_name(finished: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in finished:
        out.setdefault(span.name, []).append(span)
    return out


def test_a_run_span_parents_its_task_spans(store: Store, flavor: Flavor, calls: Any, spans: Any) -> None:
    ep = pipeline(flavor, store, calls, [False])
    assert flavor.invoke(ep, 1, thread_id="t") == 25
    found = by_name(spans.get_finished_spans())
    assert sorted(found) == ["durable.run flow", "durable.task first", "durable.task second", "durable.task third"]
    (run,) = found["durable.run flow"]
    assert run.parent is None
    assert run.attributes["durable.thread_id"] == "t" and run.attributes["durable.run_id"] == 1
    assert run.attributes["durable.outcome"] == "completed" and run.attributes["durable.resumed"] is False
    assert run.status.status_code == trace.StatusCode.UNSET
    for key, name in enumerate(["first", "second", "third"]):
        (span,) = found[f"durable.task {name}"]
        assert span.parent is not None and span.parent.span_id == run.context.span_id
        assert span.context.trace_id == run.context.trace_id
        attrs = dict(span.attributes)
        assert attrs["durable.thread_id"] == "t" and attrs["durable.run_id"] == 1
        assert (attrs["durable.task"], attrs["durable.key"], attrs["durable.attempt"]) == (name, str(key), 1)
        assert attrs["durable.replayed"] is False
        assert span.status.status_code != trace.StatusCode.ERROR
        assert run.start_time <= span.start_time <= span.end_time <= run.end_time


def test_a_failure_and_its_resume_in_spans(store: Store, flavor: Flavor, calls: Any, spans: Any) -> None:
    """The failing task's span and the run's have ERROR status with the exception; on resume the journal's
    tasks are marked replayed and the one that runs again is not."""
    fail = [True]
    ep = pipeline(flavor, store, calls, fail)
    with pytest.raises(Boom):
        flavor.invoke(ep, 1, thread_id="t")
    found = by_name(spans.get_finished_spans())
    (run,) = found["durable.run flow"]
    (third,) = found["durable.task third"]
    for span in (run, third):
        assert span.status.status_code == trace.StatusCode.ERROR
        assert "Boom: third failed" in (span.status.description or "")
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes["exception.type"].endswith("Boom")
        assert event.attributes["exception.message"] == "third failed"
    assert run.attributes["durable.outcome"] == "failed"
    assert found["durable.task first"][0].status.status_code != trace.StatusCode.ERROR

    spans.clear()
    fail[0] = False
    assert flavor.invoke(ep, None, thread_id="t") == 25
    found = by_name(spans.get_finished_spans())
    (run,) = found["durable.run flow"]
    assert run.attributes["durable.resumed"] is True and run.attributes["durable.outcome"] == "completed"
    replayed = {name: found[f"durable.task {name}"][0].attributes["durable.replayed"] for name in ("first", "second")}
    assert replayed == {"first": True, "second": True}
    (third,) = found["durable.task third"]
    assert third.attributes["durable.replayed"] is False and third.attributes["durable.attempt"] == 2
    assert all(s.parent.span_id == run.context.span_id for n, ss in found.items() if n != run.name for s in ss)


def test_a_retried_attempt_has_its_own_error_span(store: Store, calls: Any, spans: Any) -> None:
    from durable import entrypoint, task

    @task(name="flaky", retry=RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=False))
    def flaky(x: int) -> int:
        calls.hit("flaky")
        if calls["flaky"] < 3:
            raise Boom(f"attempt {calls['flaky']}")
        return x

    @entrypoint(checkpointer=store, name="flow")
    def flow(x: int) -> int:
        return flaky(x).result()

    assert flow.invoke(4, thread_id="r") == 4
    attempts = sorted(
        (s.attributes["durable.attempt"], s.status.status_code == trace.StatusCode.ERROR)
        for s in spans.get_finished_spans()
        if s.name == "durable.task flaky"
    )
    assert attempts == [(1, True), (2, True), (3, False)]
    (run,) = [s for s in spans.get_finished_spans() if s.name == "durable.run flow"]
    assert run.status.status_code != trace.StatusCode.ERROR


def test_a_pause_in_the_run_span(store: Store, spans: Any) -> None:
    from durable import entrypoint

    @entrypoint(checkpointer=store, name="ask")
    def ask(x: int) -> Any:
        return interrupt(x)

    assert isinstance(ask.invoke(1, thread_id="p"), Interrupted)
    (run,) = spans.get_finished_spans()
    assert run.name == "durable.run ask" and run.attributes["durable.outcome"] == "paused on 1 interrupt(s)"
    assert run.status.status_code != trace.StatusCode.ERROR


# -- nobody listening -----------------------------------------------------------------------------------

_QUIET = """
import logging, sys
{block}
import durable
from durable import _observe

assert _observe.run_started("ep", "t", 1, False, 0) is None, "an observer although nobody listens"
calls = []

POLICY = durable.RetryPolicy(max_attempts=2, initial_interval=0.0, jitter=False, retry_on=ValueError)

@durable.task(name="flaky", retry=POLICY)
def flaky(x):
    calls.append(x)
    if len(calls) == 1:
        raise ValueError("once")
    return x

fail = [True]

@durable.task(name="last")
def last(x):
    if fail[0]:
        raise RuntimeError("boom")
    return x + 1

@durable.entrypoint(checkpointer=durable.MemoryStore(), name="flow")
def flow(x):
    return last(flaky(x).result()).result()

try:
    flow.invoke(1, thread_id="t")
except RuntimeError:
    pass
else:
    raise AssertionError("the run did not fail")
fail[0] = False
assert flow.invoke(None, thread_id="t") == 2
assert isinstance(durable.entrypoint(checkpointer=durable.MemoryStore())(
    lambda x: durable.interrupt(x)).invoke(1, thread_id="p"), durable.Interrupted)
logging.basicConfig(level=logging.DEBUG)  # DEBUG logging alone gives an observer, without spans
observer = _observe.run_started("ep", "t", 1, False, 0)
assert observer is not None and observer.span is None
assert flow.invoke(5, thread_id="u") == 6
print("ok", len(calls))
"""


@pytest.mark.parametrize(
    "block",
    [
        "import opentelemetry.trace  # installed, but no provider configured",
        "sys.modules['opentelemetry'] = None  # not installed",
    ],
    ids=["no-provider", "no-opentelemetry"],
)
@pytest.mark.subprocess
def test_nobody_listening_breaks_nothing(block: str) -> None:
    script = textwrap.dedent(_QUIET).format(block=block)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 3"
    assert "Traceback" not in done.stderr
