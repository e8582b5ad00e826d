"""The console's pages: the inbox, the threads, a thread (and the fragment of it that refreshes itself)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .. import _cli_format as fmt
from ..errors import DurableError
from . import views
from .api import console_of, read_thread
from .paths import thread_id_of
from .service import NO_WORKER, STATUSES, Console, status_for

TEMPLATES = Path(__file__).parent / "templates"
env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)  # fmt: skip
env.filters["urlpath"] = lambda text: quote(str(text), safe="")  # a thread id as one path segment
env.filters["fieldid"] = lambda text: hashlib.sha256(str(text).encode()).hexdigest()[:16]
env.filters["querystring"] = lambda params: urlencode({k: v for k, v in params.items() if v})


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    console = console_of(request)
    base = {
        "csrf": console.csrf, "read_only": console.read_only, "carries": console.carries,
        "modules": console.runner.names if console.runner is not None else [], "url": console.url,
        "no_worker": NO_WORKER, "signed_unread": console.threads.signed_unread, "path": request.url.path,
        "title": "durable",
    }  # fmt: skip
    return HTMLResponse(env.get_template(name).render({**base, **context}), status_code=status)


async def guarded_page(request: Request, name: str, work: Any, *args: Any, **kwargs: Any) -> Response:
    """Render ``name`` with what ``work`` returns; a `DurableError` becomes an error page with its status."""
    try:
        context = await run_in_threadpool(work, *args, **kwargs)
    except DurableError as exc:
        return render(
            request, "error.html", status_for(exc), error=type(exc).__name__, message=str(exc), title=type(exc).__name__
        )
    return render(request, name, **context)


def _inbox(console: Console) -> dict[str, Any]:
    now = time.time()
    pending = [views.interrupt(t, i, now) for t, i in console.interrupts(limit=500)]
    return {"interrupts": pending, "title": "Inbox"}


async def inbox(request: Request) -> Response:
    return await guarded_page(request, "inbox.html", _inbox, console_of(request))


def _threads(console: Console, query: dict[str, str]) -> dict[str, Any]:
    status = query.get("status") or None
    found, cursor = console.find(
        status=status if status in STATUSES else None, entrypoint=query.get("entrypoint") or None,
        q=query.get("q") or None, limit=50, cursor=query.get("cursor") or None,
    )  # fmt: skip
    now = time.time()
    more = None
    if cursor is not None:
        more = "?" + urlencode({**{k: v for k, v in query.items() if v and k != "cursor"}, "cursor": cursor})
    return {
        "threads": [views.summary(s, now) for s in found], "more": more, "statuses": STATUSES,
        "query": {k: query.get(k, "") for k in ("status", "entrypoint", "q")}, "title": "Threads",
        "paged": bool(query.get("cursor")),
    }  # fmt: skip


async def threads(request: Request) -> Response:
    return await guarded_page(request, "threads.html", _threads, console_of(request), dict(request.query_params))


def _thread(console: Console, thread_id: str) -> dict[str, Any]:
    view = read_thread(console, thread_id)
    keys = sorted({e["key"].split(".", 1)[0] for e in view["entries"]}, key=lambda k: (len(k), k))
    return {"t": view, "title": f"Thread {fmt.clean(thread_id)}", "fork_keys": keys}


async def thread(request: Request) -> Response:
    return await guarded_page(request, "thread.html", _thread, console_of(request), thread_id_of(request))


async def thread_live(request: Request) -> Response:
    """The header and timeline alone, which the thread page polls while the run is unfinished."""
    return await guarded_page(request, "thread_live.html", _thread, console_of(request), thread_id_of(request))


routes = [
    Route("/", inbox, methods=["GET"]),
    Route("/threads", threads, methods=["GET"]),
    Route("/threads/{thread_id:path}/live", thread_live, methods=["GET"]),
    Route("/threads/{thread_id:path}", thread, methods=["GET"]),
]
