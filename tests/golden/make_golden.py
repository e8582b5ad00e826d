"""Write the golden SQLite journals that ``tests/stores/test_golden.py`` replays with the current code.

Run it once per journal format, when the format is released, and commit what it writes::

    python tests/golden/make_golden.py            # -> tests/golden/v<schema version>/

It never overwrites a journal: golden files are a record of what an older `durable` wrote, so
regenerating them with today's code would test nothing. ``--add`` writes only the journals missing from
an existing directory of the same schema version (a scenario the format could not store before a fix).
``--out DIR`` writes elsewhere; ``--commit SHA`` names the source in the manifest when the package is not
in a git checkout. The journals of an older release are written by an export of it (``-S`` keeps an editable
install of the checkout from shadowing it; v1 was written so, from e6b9eca)::

    git archive e6b9eca durable | tar -x -C /tmp/old
    export PYTHONPATH=/tmp/old:$(python -c 'import site; print(site.getsitepackages()[0])')
    python -S tests/golden/make_golden.py --commit e6b9eca

A scenario this `durable` cannot journal (a `SerializationError`) is listed under ``unsupported`` in the
manifest instead of being written.

Each directory holds, per serializer the package has (pickle, and json once it exists), three threads; and,
from schema v4 on, the same three signed with `SECRET` (files ``signed-<serializer>-<scenario>.db``):

- ``completed``: a fan-out of three tasks, a task calling two child tasks, and a task whose error the
  entrypoint caught (a recorded error);
- ``failed``: two tasks, then a third whose error failed the run;
- ``paused``: a task, then three reviewers asking in parallel; one answer given, two still pending.

Results are plain data only (ints, strs, lists, dicts), so they stay loadable. (A pickle journal stamped
with its Python version is refused on resume under another minor version, by design: the test expects that
refusal there.)
Never change `build` or the constants below: the journals recorded these calls by key, task name and
arguments, and replaying them with other code is a NonDeterminismError, not a test of the format. Add
a scenario instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import durable
from durable import Command, Interrupted, SQLiteStore, entrypoint, interrupt, task

HERE = Path(__file__).resolve().parent
SCENARIOS = ("completed", "failed", "paused")
THREADS = {scenario: f"golden-{scenario}" for scenario in SCENARIOS}
INPUTS: dict[str, Any] = {"completed": 3, "failed": 5, "paused": "ship the quarterly report today"}
REVIEWERS = ("ann", "bob", "cy")
FIRST_ANSWER = {"bob": "approve"}  # given before the journal was saved
LAST_ANSWERS = {"ann": "approve", "cy": "changes"}  # what the test answers
# The key the signed journals are signed with (a test key: it is public).
SECRET = {"golden-2026": b"golden-journal-key-0123456789abcdef"}

DRAFT = {"doc": INPUTS["paused"], "words": 5}
EXPECTED: dict[str, Any] = {
    "completed": {
        "items": [{"id": 0, "tags": ["a", "t0"]}, {"id": 1, "tags": ["a", "t1"]}, {"id": 2, "tags": ["a", "t2"]}],
        "nested": [9, 12],
        "handled": "ValueError: bad input 3",
    },
    "failed": {"steps": [6, 7], "answer": "answer to q7"},
    "paused": {
        "draft": DRAFT,
        "reviews": [{"reviewer": r, "verdict": {**FIRST_ANSWER, **LAST_ANSWERS}[r]} for r in REVIEWERS],
    },
}
# (key, task, status) of each scenario's journal as saved, sorted by key.
ENTRIES: dict[str, list[tuple[str, str, str]]] = {
    "completed": [
        ("0", "golden.fetch", "ok"),
        ("1", "golden.fetch", "ok"),
        ("2", "golden.fetch", "ok"),
        ("3", "golden.parent", "ok"),
        ("3.0", "golden.child", "ok"),
        ("3.1", "golden.child", "ok"),
        ("4", "golden.flaky", "error"),
    ],
    "failed": [("0", "golden.step", "ok"), ("1", "golden.step", "ok"), ("2", "golden.llm", "error")],
    "paused": [("0", "golden.prepare", "ok"), ("2", "golden.review", "ok"), ("2.0", "interrupt", "answer")],
}


class Hooks:
    """What the task bodies report to (calls, by short name) and obey (``outage``: the LLM is down)."""

    def __init__(self, *, outage: bool) -> None:
        self.outage = outage
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hit(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1


def serializers() -> dict[str, Any]:
    """The serializers this `durable` has, by the name used in the golden file names."""
    found: dict[str, Any] = {"pickle": durable.PickleSerializer()}
    if hasattr(durable, "JsonSerializer"):
        found["json"] = durable.JsonSerializer()
    return found


def build(store: Any, serializer: Any, hooks: Hooks) -> dict[str, Any]:
    """The three scenarios' entrypoints on ``store``; the same code writes and replays the journals."""

    @task(name="golden.fetch")
    def fetch(i: int) -> dict[str, Any]:
        hooks.hit("fetch")
        return {"id": i, "tags": ["a", f"t{i}"]}

    @task(name="golden.child")
    def child(x: int) -> int:
        hooks.hit("child")
        return x * 3

    @task(name="golden.parent")
    def parent(x: int) -> list[int]:
        hooks.hit("parent")
        return [child(x).result(), child(x + 1).result()]

    @task(name="golden.flaky")
    def flaky(x: int) -> int:
        hooks.hit("flaky")
        raise ValueError(f"bad input {x}")

    @entrypoint(checkpointer=store, name="golden.completed", serializer=serializer)
    def completed(n: int) -> dict[str, Any]:
        futures = [fetch(i) for i in range(n)]
        items = [f.result() for f in futures]
        nested = parent(n).result()
        try:
            flaky(n).result()
            handled = "no error"
        except ValueError as exc:
            handled = f"ValueError: {exc}"
        return {"items": items, "nested": nested, "handled": handled}

    @task(name="golden.step")
    def step(x: int) -> int:
        hooks.hit("step")
        return x + 1

    @task(name="golden.llm")
    def llm(prompt: str) -> str:
        hooks.hit("llm")
        if hooks.outage:
            raise RuntimeError("llm outage")
        return f"answer to {prompt}"

    @entrypoint(checkpointer=store, name="golden.failed", serializer=serializer)
    def failed(x: int) -> dict[str, Any]:
        a = step(x).result()
        b = step(a).result()
        return {"steps": [a, b], "answer": llm(f"q{b}").result()}

    @task(name="golden.prepare")
    def prepare(doc: str) -> dict[str, Any]:
        hooks.hit("prepare")
        return {"doc": doc, "words": len(doc.split())}

    @task(name="golden.review")
    def review(who: str, draft: dict[str, Any]) -> dict[str, Any]:
        hooks.hit("review")
        verdict = interrupt({"reviewer": who, "words": draft["words"]})
        return {"reviewer": who, "verdict": verdict}

    @entrypoint(checkpointer=store, name="golden.paused", serializer=serializer)
    def paused(doc: str) -> dict[str, Any]:
        draft = prepare(doc).result()
        futures = [review(who, draft) for who in REVIEWERS]
        return {"draft": draft, "reviews": [f.result() for f in futures]}

    return {"completed": completed, "failed": failed, "paused": paused}


def _write(path: Path, serializer: Any, scenario: str, secret: Any = None) -> None:
    store = SQLiteStore(path, secret=secret)
    eps = build(store, serializer, Hooks(outage=True))
    ep, thread_id = eps[scenario], THREADS[scenario]
    if scenario == "completed":
        assert ep.invoke(INPUTS[scenario], thread_id=thread_id) == EXPECTED[scenario]
    elif scenario == "failed":
        try:
            ep.invoke(INPUTS[scenario], thread_id=thread_id)
        except RuntimeError as exc:
            assert str(exc) == "llm outage"
        else:
            raise AssertionError("the failed scenario did not fail")
    else:
        out = ep.invoke(INPUTS[scenario], thread_id=thread_id)
        assert isinstance(out, Interrupted) and len(out.interrupts) == len(REVIEWERS), out
        ids = {i.value["reviewer"]: i.id for i in out.interrupts}
        out = ep.invoke(Command(resume={ids[who]: answer for who, answer in FIRST_ANSWER.items()}), thread_id=thread_id)
        assert isinstance(out, Interrupted) and sorted(i.value["reviewer"] for i in out.interrupts) == sorted(
            LAST_ANSWERS
        ), out
    state = ep.get_state(thread_id=thread_id)
    assert sorted((e.key, e.task, e.status) for e in state.entries) == ENTRIES[scenario], state.entries
    store.close()
    assert not Path(f"{path}-wal").exists(), "the WAL was not checkpointed into the file"


def _stamp(path: Path) -> str | None:
    conn = sqlite3.connect(path)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(durable_runs)")}
        if "stamp" not in columns:
            return None
        row = conn.execute("SELECT stamp FROM durable_runs").fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(durable.__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    from durable.stores._sqlite_ops import SCHEMA_VERSION

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / f"v{SCHEMA_VERSION}")
    parser.add_argument("--add", action="store_true", help="write the journals missing from an existing --out")
    parser.add_argument("--commit", default=None, help="the source commit, for the manifest")
    args = parser.parse_args(argv)
    out: Path = args.out
    manifest_path = out / "MANIFEST.json"
    if out.exists() and not args.add:
        print(f"{out} exists: golden journals are never regenerated (see --add)", file=sys.stderr)
        return 1
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest and manifest["schema_version"] != SCHEMA_VERSION:
        print(f"{out} holds schema version {manifest['schema_version']}, not {SCHEMA_VERSION}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    journals: dict[str, dict[str, Any]] = manifest.get("journals", {})
    unsupported: dict[str, str] = {}
    for (name, serializer), signed in [(item, signed) for signed in (False, True) for item in serializers().items()]:
        for scenario in SCENARIOS:
            path = out / f"{'signed-' if signed else ''}{name}-{scenario}.db"
            if path.exists():
                continue
            try:
                _write(path, serializer, scenario, SECRET if signed else None)
            except durable.SerializationError as exc:
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    leftover.unlink(missing_ok=True)
                unsupported[path.name] = str(exc)
                print(f"{path.name}: not written, this durable cannot journal it: {exc}", file=sys.stderr)
                continue
            journals[path.name] = {
                "serializer": name,
                "scenario": scenario,
                "thread_id": THREADS[scenario],
                "stamp": _stamp(path),
                "signed": signed,
                "commit": args.commit or _commit(),
            }
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "durable_version": getattr(durable, "__version__", "unknown"),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "sqlite": sqlite3.sqlite_version,
        "journals": journals,
        "unsupported": unsupported,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for path in sorted(out.iterdir()):
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
