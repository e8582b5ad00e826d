"""A person approves, edits or rejects what a workflow drafted, and the pause outlives the process.

    python examples/approval.py

Process 1 starts two threads of a publishing workflow. Each drafts a post (a
task; the "LLM" streams its words as custom events, printed as they arrive)
and then calls ``interrupt(...)`` to ask a person: approve, edit or reject?
Each run pauses, and process 1 exits.

Process 2 is a new interpreter with nothing in memory. It finds the questions
in the journal (``get_state(...).interrupts``), prompts for the answers on the
command line, and resumes each thread with ``Command(resume=answer)``:

- approve: the ``publish`` task runs, with the text as it stands;
- edit: the edited text replaces the draft, and the person is asked again;
- reject: the run finishes without publishing; no task runs.

The draft is not written again on resume: it comes back from the journal.
On a terminal you type the answers; otherwise (CI, ``< /dev/null``) scripted
answers are used and echoed as if typed: edit then approve for the first post,
reject for the second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from durable import Command, Entrypoint, SQLiteStore, entrypoint, get_stream_writer, interrupt, task

POSTS = {
    "post-release": "durable 0.1, out today",
    "post-tabs": "why tabs beat spaces",
}
SCRIPT = {  # the answers typed when nobody is at a terminal
    "post-release": ["edit", "durable 0.1 is out: workflows that survive a crash, in plain Python.", "approve"],
    "post-tabs": ["reject"],
}


def log_run(what: str) -> None:
    """Record which process ran a task body (the journal records results, not pids)."""
    with open(os.environ["DEMO_LOG"], "a") as f:
        f.write(f"{os.getpid()} {what}\n")


@task
def draft_post(topic: str) -> str:
    """A stand-in for an LLM call: it streams its words, and must not run twice."""
    log_run(f"draft_post({topic!r})")
    send = get_stream_writer()  # reaches whoever streams the run with stream_mode="custom"
    words = f"Big news: {topic}! Read all about it on our blog.".split()
    for word in words:
        send(word)
        time.sleep(0.02)
    return " ".join(words)


@task
def publish(text: str) -> str:
    """The side effect that needs a person's approval."""
    log_run(f"publish({text if len(text) <= 30 else text[:27] + '...'!r})")
    return f"https://social.example/p/{zlib.crc32(text.encode()):08x}"


def make_flow(db: str) -> Entrypoint[str, dict[str, Any]]:
    @entrypoint(checkpointer=SQLiteStore(db), name="post_flow")
    def post_flow(topic: str) -> dict[str, Any]:
        text = draft_post(topic).result()
        while True:  # each interrupt() takes the next call-order key, so a replay meets the same questions
            decision = interrupt({"question": "publish this post?", "text": text})
            if decision["action"] == "edit":
                text = decision["text"]  # use the person's text, and ask again
            elif decision["action"] == "approve":
                return {"status": "published", "url": publish(text).result(), "text": text}
            else:
                return {"status": "rejected", "text": text}

    return post_flow


# ---------------------------------------------------------------------------
# Process 1: start the runs, stream them until they pause.
# ---------------------------------------------------------------------------


def start(db: str) -> None:
    flow = make_flow(db)
    for thread_id, topic in POSTS.items():
        print(f"[{thread_id}] drafting: ", end="", flush=True)
        for mode, chunk in flow.stream(topic, thread_id=thread_id, stream_mode=["updates", "custom"]):
            if mode == "custom":
                print(chunk, end=" ", flush=True)  # the draft, word by word, as the task writes it
            elif "__interrupt__" in chunk:
                (pending,) = chunk["__interrupt__"]
                print(f"[{thread_id}] paused at interrupt {pending.id!r}: {pending.value['question']}\n")
            else:
                print(f"\n[{thread_id}] task {', '.join(chunk)} finished; its result is in the journal")


# ---------------------------------------------------------------------------
# Process 2: find the questions in the journal, ask a person, resume.
# ---------------------------------------------------------------------------


def reader(thread_id: str) -> Callable[[str], str]:
    """What the person types: input() on a terminal, else the script, echoed as if typed."""
    script = iter(SCRIPT[thread_id])

    def read(prompt: str) -> str:
        if sys.stdin.isatty():
            return input(prompt).strip()
        answer = next(script)
        print(prompt + answer)
        return answer

    return read


def ask(thread_id: str, text: str, read: Callable[[str], str]) -> dict[str, Any]:
    print(f'[{thread_id}] draft: "{text}"')
    while True:
        action = {"a": "approve", "e": "edit", "r": "reject"}.get(read("approve / edit / reject? ").lower()[:1])
        if action == "edit":
            return {"action": "edit", "text": read("new text: ") or text}
        if action:
            return {"action": action}
        print("  please type approve, edit or reject")


def review(db: str) -> None:
    flow = make_flow(db)
    print(f"process 2 (pid {os.getpid()}): a new interpreter, with nothing in memory")
    for thread_id in POSTS:
        read = reader(thread_id)
        state = flow.get_state(thread_id=thread_id)
        waiting = [i.id for i in state.interrupts]
        print(f"\n[{thread_id}] in the journal: {state.status}, waiting on interrupt {waiting}")
        while pending := flow.get_state(thread_id=thread_id).interrupts:
            (question,) = pending
            decision = ask(thread_id, question.value["text"], read)
            for update in flow.stream(Command(resume=decision), thread_id=thread_id):  # stream_mode="updates"
                for name, value in update.items():
                    if name != "__interrupt__":  # a new question: the loop reads it back from the journal
                        print(f"[{thread_id}] {name} -> {value}")


# ---------------------------------------------------------------------------
# The demo: process 1, then process 2, then what ran where.
# ---------------------------------------------------------------------------


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="durable-approval-"))
    db, log = str(workdir / "journal.db"), workdir / "executions.log"
    os.environ["DEMO_LOG"] = str(log)
    print(f"journal: {db}")

    print(f"process 1 (pid {os.getpid()}): start both runs; each drafts a post and pauses for a person\n")
    start(db)
    print("process 1 exits: the paused runs wait in the journal, not in memory\n", flush=True)

    second = subprocess.run([sys.executable, os.path.abspath(__file__), "--review", db])
    if second.returncode != 0:
        print("the review process failed")
        return 1

    flow = make_flow(db)
    ran = [line.split(" ", 1) for line in log.read_text().splitlines()]  # (pid, "task(args)") per task body run
    pids = list(dict.fromkeys(pid for pid, _ in ran))
    where: dict[str, list[int]] = {}
    print("\ntask bodies that ran, and where:")
    for pid, what in ran:
        print(f"  process {pids.index(pid) + 1}: {what}")
        where.setdefault(what.split("(")[0], []).append(pids.index(pid) + 1)

    published = 0
    for thread_id in POSTS:
        state = flow.get_state(thread_id=thread_id)
        print(f"\n[{thread_id}] {state.status}: {state.output}")
        for e in state.entries:
            print(f"  key {e.key}  {e.task:<10}  {e.status:<6}  {e.result!r}")
        published += state.output["status"] == "published"
    ok = where["draft_post"] == [1] * len(POSTS) and where.get("publish", []) == [2] * published
    print(
        f"\neach draft ran once, in process 1, and was not redone by the resume; publish ran once per approved "
        f"post ({published}), in process 2: {ok}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--review":
        review(sys.argv[2])
    else:
        sys.exit(main())
