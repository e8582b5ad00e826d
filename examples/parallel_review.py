"""Three reviewers in parallel: one pause, three questions, answered in any order, one at a time.

    python examples/parallel_review.py

Each reviewer is a task that prepares a brief for its reviewer (a slow "LLM"
call, itself a task) and then calls ``interrupt(...)``. The three run in
parallel, so the run pauses once, with all three interrupts in one
`Interrupted`. The reviewers then answer in a random order, each with
``Command(resume={id: verdict})``: every answer resumes the run, which pauses
again on the questions still open, until the last answer lets it finish.

A reviewer task that paused is not recorded, so it starts again on each resume
until its reviewer has answered; its brief, a finished child task, comes back
from the journal instead of running again. The journal and the execution
counts at the end show it: each brief ran once, the final decision once.
"""

from __future__ import annotations

import collections
import os
import random
import tempfile
import threading
import time
from typing import Any

from durable import Command, Interrupted, SQLiteStore, entrypoint, interrupt, task

REVIEWERS = ("legal", "security", "style")
VERDICTS = {
    "legal": {"approve": True, "comment": "license headers are fine"},
    "security": {"approve": False, "comment": "rotate the key in config.py before merging"},
    "style": {"approve": True, "comment": "nit: long line in run.py"},
}
ran: collections.Counter[str] = collections.Counter()  # task bodies started, by "task:reviewer"
lock = threading.Lock()


def count(what: str) -> None:
    with lock:
        ran[what] += 1


@task
def prepare_brief(reviewer: str, change: str) -> str:
    """The expensive part (think: an LLM summarizing the change for this reviewer): it must run once."""
    count(f"prepare_brief:{reviewer}")
    time.sleep(0.2)
    return f"{change}: what matters for {reviewer}"


@task
def review(reviewer: str, change: str) -> dict[str, Any]:
    count(f"review:{reviewer}")
    brief = prepare_brief(reviewer, change).result()  # replayed from the journal when this task starts again
    verdict = interrupt({"reviewer": reviewer, "brief": brief}, id=reviewer)  # the id the answer names
    return {"reviewer": reviewer, **verdict}


@task
def decide(verdicts: list[dict[str, Any]]) -> str:
    count("decide")
    blocking = [v["reviewer"] for v in verdicts if not v["approve"]]
    return f"changes requested by {', '.join(blocking)}" if blocking else "approved"


@entrypoint(checkpointer=SQLiteStore(os.path.join(tempfile.mkdtemp(), "review.db")))
def review_change(change: str) -> str:
    futures = [review(r, change) for r in REVIEWERS]  # the three start at once
    verdicts = [f.result() for f in futures]
    return decide(verdicts).result()


def main() -> None:
    t0 = time.perf_counter()
    out = review_change.invoke("PR #42: add a cache", thread_id="pr-42")
    assert isinstance(out, Interrupted)
    print(f"the run paused once, after {time.perf_counter() - t0:.2f} s (three 0.2 s briefs, in parallel):")
    for question in out.interrupts:
        print(f"  interrupt {question.id!r}: {question.value}")

    order = list(out.ids)
    random.shuffle(order)
    print(f"\nthe reviewers answer in this order: {', '.join(order)}")
    for reviewer in order:
        out = review_change.invoke(Command(resume={reviewer: VERDICTS[reviewer]}), thread_id="pr-42")
        pending = [i.id for i in review_change.get_state(thread_id="pr-42").interrupts]
        assert pending == (list(out.ids) if isinstance(out, Interrupted) else [])  # the journal and invoke agree
        print(f"  {reviewer:<8} answered -> still pending: {pending or 'nothing'}")
    print(f"\nthe run finished: {out!r}")
    assert out == "changes requested by security"

    state = review_change.get_state(thread_id="pr-42")
    print(f"\njournal of thread {state.thread_id} ({state.status}):")
    for e in state.entries:
        print(f"  key {e.key:<4} {e.task:<14} {e.status:<7} {e.result!r}")

    print("\ntask bodies started (a paused review starts again on each resume until answered; its brief replays):")
    print(f"  {'reviewer':<9} {'answered #':>10}  {'prepare_brief':>13}  {'review':>6}  {'review expected':>15}")
    ok = ran["decide"] == 1
    for reviewer in REVIEWERS:
        nth = order.index(reviewer) + 1
        briefs, reviews = ran[f"prepare_brief:{reviewer}"], ran[f"review:{reviewer}"]
        expected = 1 + nth  # the first run, then every resume up to and including the one that answered it
        print(f"  {reviewer:<9} {nth:>10}  {briefs:>13}  {reviews:>6}  {expected:>15}")
        ok &= briefs == 1 and reviews == expected
    recorded = collections.Counter(e.task for e in state.entries)
    ok &= recorded == {"prepare_brief": 3, "interrupt": 3, "review": 3, "decide": 1}
    print(f"  decide ran {ran['decide']} time(s)")
    print(f"\neach brief ran once, each review was recorded once, the decision ran once: {ok}")
    assert ok


if __name__ == "__main__":
    main()
