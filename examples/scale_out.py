"""Two worker processes share one Postgres journal; one is killed mid-run, the other carries on.

    pip install 'durable-exec[postgres]'    # PostgresStore's driver: psycopg 3 with its pool
    python examples/scale_out.py

It needs the ``postgres`` extra (psycopg 3; from a checkout, ``pip install -e '.[postgres]'``,
which ``.[dev]`` includes) and a Postgres server: the local one at 127.0.0.1:5432, or the URL in
``DURABLE_EXAMPLE_POSTGRES`` (it works in a schema of its own, which it resets).

The main process plays the web app: it *submits* six report runs and returns at
once. Two ``durable worker`` processes (in production: on several machines)
carry them. Worker A is killed with SIGKILL while it is running two reports,
as a lost machine would be. Worker B finishes its own reports, and once A's
leases run out (two seconds here), it recovers A's runs from the journal:
the research steps A finished are not run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from durable import entrypoint, task

SERVER = os.environ.get("DURABLE_EXAMPLE_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "durable_scale_out_demo"
URL = f"{SERVER}{'&' if '?' in SERVER else '?'}schema={SCHEMA}&lease_seconds=2"
TOPICS = ["pricing", "churn", "hiring", "latency", "security", "roadmap"]


@task
def research(topic: str, part: int) -> str:
    """A slow side effect we must not repeat (think: an LLM call)."""
    time.sleep(0.3)
    with open(os.environ["DEMO_LOG"], "a") as log:
        log.write(f"{os.getpid()} {topic} {part}\n")
    return f"{topic} finding #{part}"


@task
def write_report(topic: str, findings: list[str]) -> str:
    return f"{topic}: " + "; ".join(findings)


@entrypoint(checkpointer=URL, name="report")
def report(topic: str) -> str:
    findings = [research(topic, part).result() for part in range(3)]
    return write_report(topic, findings).result()


def start_worker(log: Path) -> subprocess.Popen[str]:
    here = Path(__file__).resolve().parent
    env = {**os.environ, "DEMO_LOG": str(log), "PYTHONPATH": str(here)}
    return subprocess.Popen(
        [sys.executable, "-m", "durable", "worker", "scale_out", "--concurrency", "2", "--poll-interval", "0.2"],
        env=env,
        text=True,
    )


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def main() -> None:
    import psycopg

    try:
        with psycopg.connect(SERVER, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")  # a fresh demo every time
    except psycopg.OperationalError as exc:
        sys.exit(f"this example needs Postgres at {SERVER} (set DURABLE_EXAMPLE_POSTGRES): {exc}")

    log = Path(tempfile.mkdtemp()) / "steps.log"
    os.environ["DEMO_LOG"] = str(log)
    for topic in TOPICS:  # what a web request would do: record the run, answer at once
        report.submit(topic, thread_id=f"report-{topic}")
    print(f"submitted {len(TOPICS)} reports; starting workers A and B")

    a = start_worker(log)
    b = start_worker(log)
    while not any(line.startswith(f"{a.pid} ") for line in lines(log)):
        time.sleep(0.05)
    a.kill()  # SIGKILL: no cleanup, its leases stay behind until they expire
    a.wait()
    print(f"worker A (pid {a.pid}) killed after {sum(line.startswith(f'{a.pid} ') for line in lines(log))} step(s)")

    deadline = time.monotonic() + 60
    states = {}
    while time.monotonic() < deadline:
        states = {t: report.get_state(thread_id=f"report-{t}") for t in TOPICS}
        if all(s.status == "completed" for s in states.values()):
            break
        time.sleep(0.2)
    b.send_signal(signal.SIGTERM)
    b.wait(30)

    runs_by_step = Counter(tuple(line.split()[1:]) for line in lines(log))
    for topic, state in states.items():
        print(f"  {topic:<9} {state.status:<10} recovered {state.recoveries}x  {state.output!r:.60}")
    done = sum(s.status == "completed" for s in states.values())
    recovered = sum(s.recoveries for s in states.values())
    twice = [step for step, n in runs_by_step.items() if n > 1]
    # A step A was in the middle of when it died had no recorded result, so B ran it again: at most one per run.
    print(f"{done} of {len(TOPICS)} reports completed; {recovered} recovered from the killed worker; "
          f"steps run twice (in flight at the kill): {len(twice)}")  # fmt: skip
    if done != len(TOPICS) or len(twice) > 2:
        sys.exit("the demo did not go as expected")


if __name__ == "__main__":
    main()
