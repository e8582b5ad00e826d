"""Deploying new code next to runs in flight, across real processes: ``durable verify`` and ``durable plan`` judge
the journal before the deploy, ``@task(version=, upgrade=)`` carries old values over, ``durable.patched`` keeps old
runs on the old branch.

The workflow module is written into ``tmp_path`` as source text, rewritten for each "deploy", and run by child
processes (an application script, ``python -m durable ...``); this pytest process never imports `durable`. Task
bodies append ``"<pid> <event>"`` lines (fsynced) to an events file, and the journal is read with ``sqlite3``: after
every ``verify`` and ``plan`` both must be exactly as before (no task body ran, nothing was written).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0

EVENTS = """
import json, os, signal, sys


def log(event):
    with open("events.txt", "a") as f:
        f.write(f"{os.getpid()} {event}\\n")
        f.flush()
        os.fsync(f.fileno())
"""

# Scenario A, version 1: an order is loaded (a dataclass, journaled pickled), big ones need an approval, then the
# card is charged; DIE_IN_CHARGE makes `charge` SIGKILL its own process (its call is never journaled).
ORDERS_V1 = (
    EVENTS
    + """
from dataclasses import dataclass

from durable import entrypoint, interrupt, task


@dataclass
class Order:
    id: int
    amount: int


@task
def load_order(n):
    log(f"load_order {n}")
    return Order(n, n * 10)


@task
def charge(order):
    log(f"charge {order.id}")
    if os.environ.get("DIE_IN_CHARGE"):
        os.kill(os.getpid(), signal.SIGKILL)
    return order.amount


@entrypoint(checkpointer=os.environ["URL"])
def flow(n):
    order = load_order(n).result()
    if order.amount >= 100:
        if not interrupt({"approve": order.id}, id="approve"):
            return {"order": order.id, "paid": 0}
    return {"order": order.id, "paid": charge(order).result()}
"""
)

# Scenario B: version 1 prices with old_step before asking; version 2 patches it to new_step.
PRICING_V1 = (
    EVENTS
    + """
import durable
from durable import entrypoint, interrupt, task


@task
def step1(n):
    log(f"step1 {n}")
    return n + 1


@task
def old_step(a):
    log(f"old_step {a}")
    return a * 10


@task
def new_step(a):
    log(f"new_step {a}")
    return a * 100


@task
def finish(b, ok):
    log(f"finish {b}")
    return {"b": b, "ok": ok}


@entrypoint(checkpointer=os.environ["URL"])
def flow(n):
    a = step1(n).result()
    b = old_step(a).result()
    ok = interrupt({"price": b}, id="confirm")
    return finish(b, ok).result()
"""
)

# The application: runs [thread, how, value] triples in order ("new": start with value; "answer": Command(resume=
# value); "none": invoke(None)) and prints one JSON list of what each returned.
APP = """
import json, sys

from durable import Command

import flows

done = []
for thread, how, value in json.loads(sys.argv[1]):
    given = value if how == "new" else Command(resume=value) if how == "answer" else None
    out = flows.flow.invoke(given, thread_id=thread)
    done.append({"interrupts": [i.id for i in out.interrupts]} if hasattr(out, "interrupts") else {"output": out})
print(json.dumps(done))
"""


def variant(source: str, *changes: tuple[str, str]) -> str:
    """``source`` with each (old, new) replaced; each old text must be there (so a variant never silently equals
    the original)."""
    for old, new in changes:
        assert old in source, old
        source = source.replace(old, new)
    return source


class App:
    """One application directory: its ``flows.py`` (the code deployed now), its SQLite journal, its events."""

    def __init__(self, tmp_path: Path, flows: str) -> None:
        self.dir = tmp_path
        self.db = tmp_path / "journal.db"
        self.url = f"sqlite:///{self.db}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), self.env.get("PYTHONPATH", "")) if p)
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"  # flows.py is rewritten within a second: no stale bytecode
        self.env["URL"] = self.url
        (tmp_path / "app.py").write_text(APP)
        self.deploy(flows)

    def deploy(self, flows: str) -> None:
        (self.dir / "flows.py").write_text(flows)

    def run(self, steps: list[list[Any]], code: int | None = 0, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "app.py", json.dumps(steps)], cwd=self.dir, env={**self.env, **env},
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert code is None or done.returncode == code, f"rc={done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def app(self, steps: list[list[Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(self.run(steps).stdout.splitlines()[-1])
        return out

    def durable(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "durable", *args], cwd=self.dir, env=self.env, capture_output=True, text=True,
            timeout=TIMEOUT,
        )  # fmt: skip
        assert code is None or done.returncode == code, (
            f"durable {' '.join(args)} -> {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        return done

    def events(self) -> list[tuple[int, str]]:
        path = self.dir / "events.txt"
        if not path.exists():
            return []
        return [(int(pid), event) for pid, event in (line.split(" ", 1) for line in path.read_text().splitlines())]

    def journal(self) -> tuple[str, dict[str, list[tuple[Any, ...]]]]:
        """The database file's digest and every row of every table."""
        digest = hashlib.sha256(self.db.read_bytes()).hexdigest()
        with sqlite3.connect(self.db) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            rows = {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
        conn.close()
        assert {"durable_threads", "durable_runs", "durable_journal"} <= set(rows)
        return digest, rows

    def untouched(self, command: tuple[str, ...], code: int) -> subprocess.CompletedProcess[str]:
        """Run a command that must neither run a task body nor write: the events and the journal stay as they were."""
        events, journal = self.events(), self.journal()
        done = self.durable(*command, code=code)
        assert self.events() == events, f"a task body ran during {command}"
        assert self.journal() == journal, f"the journal changed during {command}"
        return done

    def verify(self, code: int, *where: str) -> tuple[list[str], dict[str, Any]]:
        """``durable verify flows`` (text, then --json) against ``where`` (default: the store): the lines, the doc."""
        where = where or ("--url", self.url)
        text = self.untouched(("verify", "flows", *where), code).stdout.splitlines()
        doc = json.loads(self.untouched(("verify", "flows", *where, "--json"), code).stdout)
        assert doc["ok"] is (code == 0)
        assert len(text) == len(doc["threads"]) + 1  # a line per thread, then the summary
        for line, check in zip(text, doc["threads"], strict=False):
            assert line.split()[:2] == ["ok" if check["ok"] else check["problem"], check["thread_id"]], line
        return text, doc

    def plan(self, thread: str, *extra: str) -> dict[str, Any]:
        done = self.untouched(("plan", "flows:flow", thread, "--url", self.url, "--json", *extra), 0)
        plan: dict[str, Any] = json.loads(done.stdout)
        return plan


def threads_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["thread_id"]: t for t in doc["threads"]}


def brief(part: dict[str, Any] | None) -> dict[str, Any] | None:
    """A planned call (key, task, why) or a plan's error (type, key), without its words."""
    if part is None:
        return None
    return {k: v for k, v in part.items() if k not in ("detail", "message")}


def verdicts(doc: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Per thread, what a deploy decision rests on (not the run status: a bundle imports a crashed run as failed)."""
    return {
        t["thread_id"]: (
            t["ok"], t["problem"], t["outcome"], [i["id"] for i in t["interrupts"]],
            (t["next"]["task"], t["next"]["key"]) if t["next"] else None,
            (t["error"]["type"], t["error"]["key"]) if t["error"] else None,
        )
        for t in doc["threads"]
    }  # fmt: skip


def test_a_deploy_that_would_break_in_flight_runs_is_caught_before_it_ships(tmp_path: Path) -> None:
    """Three threads under v1: one SIGKILLed in `charge`, one paused on an approval, one finished. Six candidate
    deploys are verified (against the store, then against exported bundles with the store gone): the breaking ones
    exit 1 naming the thread, the key and the problem; the safe ones exit 0. Verify and plan never run a task nor
    write. The versioned deploy then really resumes both threads: the recorded orders are upgraded, not reloaded."""
    app = App(tmp_path, ORDERS_V1)
    killed = app.run([["crashed", "new", 3]], code=None, DIE_IN_CHARGE="1")
    assert killed.returncode == -9, killed.stderr
    assert app.app([["paused", "new", 20], ["done", "new", 4]]) == [
        {"interrupts": ["approve"]}, {"output": {"order": 4, "paid": 40}},
    ]  # fmt: skip
    assert [e for _, e in app.events()] == ["load_order 3", "charge 3", "load_order 20", "load_order 4", "charge 4"]
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for thread in ("crashed", "paused"):
        app.durable("export", thread, "-o", str(bundles / f"{thread}.json"), "--url", app.url)

    deploys: dict[str, str] = {}
    from_store: dict[str, dict[str, tuple[Any, ...]]] = {}

    # (a) The same code: both unfinished threads replay; the crashed one would run `charge` next, at key 1.
    deploys["same"] = ORDERS_V1
    text, doc = app.verify(0)
    assert text[-1] == "2 unfinished threads checked: all replay cleanly."
    checks = threads_of(doc)
    assert set(checks) == {"crashed", "paused"}  # the finished thread is not checked
    crashed = checks["crashed"]
    assert set(crashed) == {
        "thread_id", "entrypoint", "status", "ok", "skipped", "problem", "detail", "outcome", "next", "runs",
        "replayed", "interrupts", "wake_at", "output", "error", "repeats", "held_by", "notes",
    }  # fmt: skip
    assert (crashed["entrypoint"], crashed["status"], crashed["ok"], crashed["problem"]) == (
        "flow",
        "running",
        True,
        None,
    )
    assert crashed["outcome"] == "runs"
    assert brief(crashed["next"]) == {"key": "1", "task": "charge", "why": "unrecorded"}
    assert crashed["replayed"] == ["0"] and crashed["error"] is None and "runs 'charge' at key 1" in crashed["detail"]
    paused = checks["paused"]
    assert (paused["status"], paused["ok"], paused["outcome"], [i["id"] for i in paused["interrupts"]]) == (
        "interrupted", True, "waits", ["approve"],
    )  # fmt: skip
    from_store["same"] = verdicts(doc)

    # (b) `Order` gains a required field: the recorded orders no longer read.
    deploys["new-field"] = variant(
        ORDERS_V1,
        ("    amount: int\n", "    amount: int\n    currency: str\n"),
        ("Order(n, n * 10)", 'Order(n, n * 10, "EUR")'),
    )
    app.deploy(deploys["new-field"])
    text, doc = app.verify(1)
    assert text[-1] == "2 unfinished threads checked: 2 would not replay cleanly."
    for thread, check in threads_of(doc).items():
        assert (check["ok"], check["problem"], check["outcome"]) == (False, "undecodable", "diverges")
        assert brief(check["error"]) == {"type": "RecordedValueError", "key": "0"} and check["next"] is None
        assert f"thread {thread!r}, key 0 (task 'load_order')" in check["detail"]
        assert "flows.Order" in check["detail"] and "currency" in check["detail"]
    assert any(line.startswith("undecodable") and " crashed " in line and "flows.Order" in line for line in text)
    from_store["new-field"] = verdicts(doc)

    # (b') `Order` renamed: the pickles name a class that is gone.
    deploys["class-moved"] = variant(
        ORDERS_V1, ("class Order:", "class PurchaseOrder:"), ("Order(n,", "PurchaseOrder(n,")
    )
    app.deploy(deploys["class-moved"])
    _, doc = app.verify(1)
    assert {t: (c["problem"], brief(c["error"])) for t, c in threads_of(doc).items()} == {
        t: ("undecodable", {"type": "RecordedValueError", "key": "0"}) for t in ("crashed", "paused")
    }
    from_store["class-moved"] = verdicts(doc)

    # (d) The approval's id renamed: an answer by the recorded id would reach nothing. The crashed thread never asked.
    deploys["renamed-question"] = variant(ORDERS_V1, ('id="approve"', 'id="sign-off"'))
    app.deploy(deploys["renamed-question"])
    text, doc = app.verify(1)
    checks = threads_of(doc)
    assert (checks["paused"]["problem"], brief(checks["paused"]["error"])) == (
        "diverges", {"type": "NonDeterminismError", "key": "1"},
    )  # fmt: skip
    assert "'approve'" in checks["paused"]["detail"] and "'sign-off'" in checks["paused"]["detail"]
    assert checks["crashed"]["ok"] and text[0].startswith("diverges") and " paused " in text[0]
    from_store["renamed-question"] = verdicts(doc)

    # (e) The entrypoint renamed: nothing would own either thread.
    deploys["renamed-entrypoint"] = variant(ORDERS_V1, ("def flow(n):", "def checkout(n):"))
    app.deploy(deploys["renamed-entrypoint"])
    _, doc = app.verify(1)
    for check in doc["threads"]:
        assert (check["problem"], check["entrypoint"], check["outcome"]) == ("missing-entrypoint", "flow", None)
        assert "'flow'" in check["detail"]
    from_store["renamed-entrypoint"] = verdicts(doc)

    # (c) The new field, with a version and an upgrade for version-1 orders: safe to ship.
    deploys["upgraded"] = variant(
        deploys["new-field"],
        ("@task\ndef load_order", '@task(version=2, upgrade={1: lambda old: Order(old.id, old.amount, "USD")})\n'
         "def load_order"),
        ('"paid": charge(order).result()}', '"paid": charge(order).result(), "currency": order.currency}'),
    )  # fmt: skip
    app.deploy(deploys["upgraded"])
    text, doc = app.verify(0)
    checks = threads_of(doc)
    assert brief(checks["crashed"]["next"]) == {"key": "1", "task": "charge", "why": "unrecorded"}
    assert checks["paused"]["outcome"] == "waits"
    from_store["upgraded"] = verdicts(doc)

    # ... and shipped: `plan` says what each resume runs first, and it is what the real resume runs first.
    plan = app.plan("crashed")
    assert (plan["status"], plan["outcome"], plan["replayed"]) == ("running", "runs", ["0"])
    assert plan["next"]["task"] == "charge" and plan["next"]["key"] == "1"
    seen = len(app.events())
    resumed = app.durable("resume", "flows:flow", "crashed", "--url", app.url, "--json")
    assert json.loads(resumed.stdout)["output"] == {"order": 3, "paid": 30, "currency": "USD"}  # the upgraded order
    new = app.events()[seen:]
    assert [e for _, e in new] == ["charge 3"]  # load_order replayed (upgraded), charge ran exactly once more
    assert new[0][1].split()[0] == plan["next"]["task"]

    answer = app.plan("paused", "--resume-json", "true")
    assert (answer["outcome"], answer["replayed"], answer["next"]["task"], answer["next"]["key"]) == (
        "runs", ["0", "1"], "charge", "2",
    )  # fmt: skip
    seen = len(app.events())
    assert app.app([["paused", "answer", True]]) == [{"output": {"order": 20, "paid": 200, "currency": "USD"}}]
    assert [e for _, e in app.events()[seen:]] == ["charge 20"] and answer["next"]["task"] == "charge"
    assert app.verify(0)[0] == ["0 unfinished threads checked: all replay cleanly."]

    # The same verdicts from the exported bundles, with no store at all.
    for path in tmp_path.glob("journal.db*"):
        path.unlink()
    events = app.events()
    for name, source in deploys.items():
        app.deploy(source)
        code = 0 if name in ("same", "upgraded") else 1
        done = app.durable("verify", "flows", "--bundles", str(bundles), "--json", code=code)
        assert verdicts(json.loads(done.stdout)) == from_store[name], name
    assert app.events() == events and not list(tmp_path.glob("journal.db*"))


def test_patching_across_a_process_restart(tmp_path: Path) -> None:
    """A thread recorded past the patch point by v1 keeps the old branch under v2, in every new process; a thread
    started under v2 takes the new one; v1 code (a rollback) would not replay the v2 thread, and verify says so."""
    app = App(tmp_path, PRICING_V1)
    assert app.app([["old", "new", 1]]) == [{"interrupts": ["confirm"]}]  # old_step(2) is journaled at key 1
    v2 = variant(
        PRICING_V1,
        ("    b = old_step(a).result()",
         '    b = (new_step(a) if durable.patched("new-pricing") else old_step(a)).result()'),
    )  # fmt: skip
    app.deploy(v2)
    assert app.app([["new", "new", 4]]) == [{"interrupts": ["confirm"]}]  # a fresh process, the v2 code
    assert [e for _, e in app.events()] == ["step1 1", "old_step 2", "step1 4", "new_step 5"]

    # Before answering: v2 replays both, each on its own branch (finish would come at key 3, resp. 4).
    _, doc = app.verify(0)
    assert {t: (c["ok"], c["outcome"], c["replayed"]) for t, c in threads_of(doc).items()} == {
        "old": (True, "waits", ["0", "1"]), "new": (True, "waits", ["0", "1", "2"]),
    }  # fmt: skip
    plan_old = app.plan("old", "--resume-json", "true")  # the answer replays at the question's key
    assert plan_old["replayed"] == ["0", "1", "2"] and plan_old["next"] == {
        "key": "3", "task": "finish", "why": "unrecorded", "detail": "not recorded: the run has not got here yet",
    }  # fmt: skip
    plan_new = app.plan("new", "--resume-json", "true")
    assert (plan_new["replayed"], plan_new["next"]["key"], plan_new["next"]["task"]) == (
        ["0", "1", "2", "3"], "4", "finish",
    )  # fmt: skip
    with sqlite3.connect(app.db) as conn:
        markers = conn.execute(
            "SELECT t.thread_id, j.key, j.name FROM durable_journal j JOIN durable_threads t ON t.tid = j.tid "
            "ORDER BY t.thread_id, CAST(j.key AS INTEGER)"
        ).fetchall()
    conn.close()
    assert markers == [  # (a question is journaled once it is answered)
        ("new", "0", "step1"), ("new", "1", "durable.patched"), ("new", "2", "new_step"),
        ("old", "0", "step1"), ("old", "1", "old_step"),
    ]  # fmt: skip

    # A rollback to v1 would strand the v2 thread (its key 1 is the patch's marker, not old_step): caught.
    app.deploy(PRICING_V1)
    _, doc = app.verify(1)
    checks = threads_of(doc)
    assert checks["old"]["ok"] and (checks["new"]["problem"], checks["new"]["error"]["key"]) == ("diverges", "1")
    app.deploy(v2)

    # Answered, each in a fresh process: old keeps old_step's 20 (not re-run, new_step never run), new has 500.
    assert app.app([["old", "answer", True]]) == [{"output": {"b": 20, "ok": True}}]
    assert app.app([["new", "answer", "yes"]]) == [{"output": {"b": 500, "ok": "yes"}}]
    events = app.events()
    assert [e for _, e in events] == ["step1 1", "old_step 2", "step1 4", "new_step 5", "finish 20", "finish 500"]
    assert len({pid for pid, _ in events[-2:]}) == 2  # two processes, neither the one that started its thread

    # And a third process gets the same outputs back, running nothing.
    assert app.app([["old", "none", None], ["new", "none", None]]) == [
        {"output": {"b": 20, "ok": True}}, {"output": {"b": 500, "ok": "yes"}},
    ]  # fmt: skip
    assert app.events() == events
