"""The console's JSON API under ``/api/`` (the routes are listed in the package docstring)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import _cli_format as fmt
from ..errors import AnswerRejectedError, DurableError
from . import views
from .auth import json_error
from .paths import thread_id_of
from .service import Console, status_for

Handler = Callable[[Request], Awaitable[Response]]
MAX_BODY = 1 << 20  # bytes of JSON a request may send
MAX_BY = 200  # characters of "answered by"


class BadRequest(Exception):
    """A request the API cannot read: a 400."""


def console_of(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def guarded(handler: Handler) -> Handler:
    """The handler, with a `DurableError` or a bad body answered as the API's error document."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except AnswerRejectedError as exc:
            return json_error(422, type(exc).__name__, str(exc), list(exc.errors))
        except DurableError as exc:
            return json_error(status_for(exc), type(exc).__name__, str(exc))
        except BadRequest as exc:
            return json_error(400, "BadRequest", str(exc))

    return run


async def body_of(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest(f"the body is {len(raw)} bytes; the limit is {MAX_BODY}")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _limit(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    if not re.fullmatch(r"\d{1,4}", text):
        raise BadRequest(f"limit={text!r}: a number from 1 to 500")
    return int(text)


@guarded
async def list_threads(request: Request) -> Response:
    q = request.query_params
    found, cursor = await run_in_threadpool(
        console_of(request).find, status=q.get("status") or None, entrypoint=q.get("entrypoint") or None,
        q=q.get("q") or None, limit=_limit(q.get("limit"), 50), cursor=q.get("cursor") or None,
    )  # fmt: skip
    return JSONResponse({"threads": [fmt.summary_json(s) for s in found], "next_cursor": cursor})


def read_thread(console: Console, thread_id: str) -> dict[str, Any]:
    """`views.state` of the thread's latest run, with its runs."""
    st = console.threads.state(thread_id)
    return views.state(st, console.threads.runs(thread_id))


@guarded
async def get_thread(request: Request) -> Response:
    view = await run_in_threadpool(read_thread, console_of(request), thread_id_of(request))
    return JSONResponse(views.state_json(view))


@guarded
async def list_interrupts(request: Request) -> Response:
    overdue = request.query_params.get("overdue", "") in ("1", "true", "yes")
    pending = await run_in_threadpool(console_of(request).interrupts, overdue=overdue)
    shown = [views.for_json(views.interrupt(t, i), views.INTERRUPT_FIELDS) for t, i in pending]
    return JSONResponse({"interrupts": shown})


@guarded
async def resume(request: Request) -> Response:
    console, thread_id, body = console_of(request), thread_id_of(request), await body_of(request)
    if "resume" not in body:
        return JSONResponse(await run_in_threadpool(console.resume, thread_id), status_code=202)
    by = body.get("by")
    if by is not None and (not isinstance(by, str) or len(by) > MAX_BY):
        raise BadRequest(f'"by" must be a string of at most {MAX_BY} characters')
    done = await run_in_threadpool(console.answer, thread_id, body["resume"], by.strip() or None if by else None)
    return JSONResponse(done)


@guarded
async def cancel(request: Request) -> Response:
    thread_id = thread_id_of(request)
    cancelled = await run_in_threadpool(console_of(request).threads.cancel, thread_id)
    return JSONResponse({"thread_id": thread_id, "cancelled": cancelled})


@guarded
async def fork(request: Request) -> Response:
    thread_id, body = thread_id_of(request), await body_of(request)
    at = body.get("at")
    if not isinstance(at, str | int) or isinstance(at, bool) or at == "":
        raise BadRequest('"at": the key to fork at (the first key run again), such as "3"')
    overrides = body.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise BadRequest('"overrides": an object of key: value')
    new_id = body.get("new_thread_id") or None
    if new_id is not None and not isinstance(new_id, str):
        raise BadRequest('"new_thread_id": a string')
    made = await run_in_threadpool(
        lambda: console_of(request).threads.fork(thread_id, at=at, new_thread_id=new_id, overrides=overrides)
    )
    return JSONResponse({"thread_id": made, "forked_from": thread_id, "at": str(at)}, status_code=201)


@guarded
async def export(request: Request) -> Response:
    thread_id = thread_id_of(request)
    bundle = await run_in_threadpool(console_of(request).threads.export, thread_id)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", thread_id)[:100] or "thread"
    return Response(
        json.dumps(bundle, indent=2) + "\n",
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{name}.json"'},
    )


@guarded
async def not_found(request: Request) -> Response:
    return json_error(404, "NotFound", f"no API route {request.method} {request.url.path}")


routes = [
    Route("/api/threads", list_threads, methods=["GET"]),
    Route("/api/interrupts", list_interrupts, methods=["GET"]),
    Route("/api/threads/{thread_id:path}/resume", resume, methods=["POST"]),
    Route("/api/threads/{thread_id:path}/cancel", cancel, methods=["POST"]),
    Route("/api/threads/{thread_id:path}/fork", fork, methods=["POST"]),
    Route("/api/threads/{thread_id:path}/export", export, methods=["GET"]),
    Route("/api/threads/{thread_id:path}", get_thread, methods=["GET"]),
    Route("/api/{rest:path}", not_found, methods=["GET", "POST"]),
]
