"""What the CLI prints from a journal someone else wrote cannot drive the terminal; exports are owner-only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from typing import Any

EVIL = "\x1b[31m\r\x08\u202e"  # colour, carriage return, backspace, right-to-left override
RAW = ("\x1b", "\r", "\x08", "\u202e")
SHOWN = "\\x1b[31m\\r\\x08\\u202e"  # EVIL as the CLI prints it

HOSTILE = """
from durable import entrypoint, interrupt, task

EVIL = "\\x1b[31m\\r\\x08\\u202e"


class Shout:
    def __repr__(self):
        return "<shout" + EVIL + ">"


@task(name="step" + EVIL)
def step(x):
    return Shout()


@task(name="explode" + EVIL)
def explode(x):
    raise ValueError("bad" + EVIL)


@entrypoint(name="ask" + EVIL)
def ask(n):
    step(n).result()
    return interrupt(Shout(), id="approve" + EVIL)


@entrypoint(name="boom" + EVIL)
def boom(n):
    return explode(n).result()
"""

SEED = """
import hostile
hostile.ask.invoke(1, thread_id="t" + hostile.EVIL)
try:
    hostile.boom.invoke(1, thread_id="f" + hostile.EVIL)
except ValueError:
    pass
"""


def seed_hostile(cli: Any) -> None:
    """A paused and a failed thread whose every name, id, value and error is hostile, in a signed journal
    (so the CLI, which holds the key too, reads the values back)."""
    cli.env["DURABLE_SECRET"] = "cli-safety-" + "k" * 32
    (cli.cwd / "hostile.py").write_text(HOSTILE)
    seeded = cli.seed(SEED)
    assert seeded.returncode == 0, seeded.stderr


def run(cli: Any, *args: str, code: int = 0) -> tuple[str, str]:
    """``durable ARGS`` with its output read as bytes (text mode would turn a raw ``\\r`` into ``\\n``)."""
    done = subprocess.run(
        [sys.executable, "-m", "durable", *args],
        cwd=cli.cwd, env={**cli.env, "PYTHONIOENCODING": "utf-8"}, capture_output=True, timeout=60,
    )  # fmt: skip
    out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert done.returncode == code, f"durable {args!r} -> {done.returncode}\n{out!r}\n{err!r}"
    for raw in RAW:
        assert raw not in out and raw not in err, f"durable {args!r} printed {raw!r}:\n{out!r}\n{err!r}"
    return out, err


def test_listings_escape_what_the_journal_holds(cli: Any) -> None:
    """Hostile thread ids, entrypoint and task names, interrupt ids, values and errors are printed escaped."""
    seed_hostile(cli)

    listed, _ = run(cli, "threads")
    assert all(name + SHOWN in listed for name in ("t", "f", "ask", "boom")) and "ValueError: bad" in listed

    paused, _ = run(cli, "show", "t" + EVIL)
    for name in ("thread:     t", "entrypoint: ask", "step", "<shout", "approve"):
        assert name + SHOWN in paused, name
    failed, _ = run(cli, "show", "f" + EVIL)
    assert "error:      ValueError: bad\\x1b[31m" in failed and "explode" + SHOWN in failed

    pending, _ = run(cli, "interrupts")
    assert all(name + SHOWN in pending for name in ("t", "approve", "<shout"))


def test_error_lines_escape_what_they_quote(cli: Any) -> None:
    """Failing commands quote hostile ids and error messages escaped on stderr, argparse's errors included."""
    seed_hostile(cli)

    out, err = run(cli, "show", "x\x1b[2Jy", code=1)
    assert out == "" and err.startswith("durable show: thread 'x\\x1b[2Jy' has no journal")
    _, err = run(cli, "delete", "x\x1b[2Jy", code=1)
    assert err == "durable delete: no thread 'x\\x1b[2Jy' in this store\n"
    _, err = run(cli, "resume", "hostile:boom", "f" + EVIL, code=1)
    assert err == f"durable resume: thread 'f{SHOWN}' failed: ValueError: bad{SHOWN}\n"
    out, _ = run(cli, "cancel", "t" + EVIL)
    assert out == f"cancelled t{SHOWN}\n"
    _, err = run(cli, "show", "t", "extra\x1b]0;title\x07", code=2)
    assert "unrecognized arguments: extra\\x1b]0;title\\x07" in err


def test_json_output_escapes_and_keeps_the_exact_strings(cli: Any) -> None:
    """`--json` prints control and bidi characters as JSON escapes, and parses back to the stored strings."""
    seed_hostile(cli)

    out, _ = run(cli, "threads", "--json")
    assert "\\u001b[31m\\r\\b\\u202e" in out
    assert {t["thread_id"] for t in json.loads(out)["threads"]} == {"t" + EVIL, "f" + EVIL}
    out, _ = run(cli, "show", "t" + EVIL, "--json")
    assert (json.loads(out)["thread_id"], json.loads(out)["entrypoint"]) == ("t" + EVIL, "ask" + EVIL)
    out, _ = run(cli, "interrupts", "--json")
    assert [(p["thread_id"], p["id"]) for p in json.loads(out)] == [("t" + EVIL, "approve" + EVIL)]


def export(cli: Any, path: str, umask: int) -> subprocess.CompletedProcess[str]:
    """``durable export p -o PATH`` in a process started with ``umask``."""
    return subprocess.run(
        [sys.executable, "-m", "durable", "export", "p", "-o", path],
        cwd=cli.cwd, env=cli.env, capture_output=True, text=True, timeout=60, umask=umask,
    )  # fmt: skip


def test_export_file_is_owner_only(cli: Any) -> None:
    """An export is written 0600 whatever the umask, and an existing readable file is tightened to 0600."""
    assert cli.seed("flows.pipeline.invoke(2, thread_id='p')").returncode == 0
    for umask in (0o022, 0o000):
        path = cli.cwd / f"new-{umask:o}.json"
        done = export(cli, str(path), umask)
        assert done.returncode == 0 and done.stdout == f"exported 1 thread to {path}\n", done.stderr
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert json.loads(path.read_text())["thread_id"] == "p"

    old = cli.cwd / "old.json"
    old.write_text("x" * 100_000)
    old.chmod(0o644)
    assert export(cli, str(old), 0o022).returncode == 0
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600 and json.loads(old.read_text())["thread_id"] == "p"

    failed = export(cli, where := str(cli.cwd), 0o022)  # a directory: the same error as before
    assert failed.returncode == 1 and failed.stderr == f"durable export: cannot write {where!r}: Is a directory\n"
