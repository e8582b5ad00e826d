"""``durable ui``: a web console over a journal, and a JSON API (``pip install 'durable-exec[ui]'``).

Pages (server-rendered, htmx vendored under ``static/``): ``/`` the inbox of every pending interrupt with an answer
form (one input per property of a simple object ``response_schema``, else a JSON editor); ``/threads`` the threads
with filters and pages; ``/threads/{thread_id}`` a thread's header, output or error, runs, journal timeline (polled
every second while the run is unfinished), pending interrupts and actions (resume, cancel, fork, export).

The JSON API (errors are ``{"error": type name, "message": ..., "errors": [...]}``: 400 a bad request, 401 no
token, 403 read-only or a missing CSRF header, 404 an unknown thread, 409 busy or nothing to do, 422 an answer
its question's schema rejects)::

    GET  /api/threads                      ?status=&entrypoint=&q=&limit=&cursor=  -> {"threads", "next_cursor"}
    GET  /api/threads/{thread_id}          the latest run: header, output, error, runs, entries, interrupts
    GET  /api/interrupts                   ?overdue=1                             -> {"interrupts": [...]}
    POST /api/threads/{thread_id}/resume   {"resume": answer | {id: answer}, "by": "ann"}: journal the answer(s),
                                           as Command(resume=...) reads them; without "resume": resume a failed
                                           or crashed run (202; needs MODULEs)
    POST /api/threads/{thread_id}/cancel   -> {"thread_id", "cancelled"}
    POST /api/threads/{thread_id}/fork     {"at": key, "overrides": {key: value}, "new_thread_id": optional} (201)
    GET  /api/threads/{thread_id}/export   the thread's bundle, as `durable export` writes it

Every request carries the token: ``Authorization: Bearer TOKEN``, or the cookie ``/?token=TOKEN`` sets (then a
write also needs ``X-CSRF-Token``, which the pages carry). With MODULEs the console runs a `durable.Worker` for
their entrypoints, which carries answered runs; without, answers are journaled and wait for a worker.

This package imports Starlette, uvicorn and Jinja2; ``import durable`` never imports it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

EXTRA = "pip install 'durable-exec[ui]'"
NEEDS = ("starlette", "uvicorn", "jinja2")


def missing() -> list[str]:
    """The console's dependencies that are not installed."""
    return [name for name in NEEDS if importlib.util.find_spec(name) is None]


def main(args: argparse.Namespace) -> int:
    """Run ``durable ui``: exit 2 with one line when the extra is not installed."""
    lacking = missing()
    if lacking:
        print(f"durable ui: the web console needs {', '.join(lacking)}: {EXTRA}", file=sys.stderr)
        return 2
    from .server import serve

    return serve(args)
