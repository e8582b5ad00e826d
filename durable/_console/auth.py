"""The console's gate: a token on every request, a CSRF header on cookie-carried writes, safe headers on every answer.

A request is let in with ``Authorization: Bearer TOKEN`` or with the cookie that ``/?token=TOKEN`` sets (HttpOnly,
SameSite=Strict), compared in constant time. A write (anything but GET and HEAD) that came with the cookie must also
carry ``X-CSRF-Token``, HMAC-SHA256(token, "csrf"), which the pages hold in a meta tag; a Bearer one need not (a page
of another origin cannot set that header). Only ``/static/`` and ``/?token=`` itself are open. Under ``--read-only``
every write is refused (403) after the token is checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "durable_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
     b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]  # fmt: skip

_TOKEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>durable console: token needed</title>
<link rel="stylesheet" href="/static/console.css"></head>
<body><main class="narrow"><h1>This console needs its token</h1>
<p>Open the address <code>durable ui</code> printed when it started:
<code>http://HOST:PORT/?token=&hellip;</code> (or the token in its <code>--token-file</code>).
The token is then kept in a cookie for this browser.</p></main></body></html>
"""


def csrf_token(token: str) -> str:
    """The CSRF header value for pages authenticated by ``token``'s cookie."""
    return hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _refusal(path: str, status: int, error: str, message: str) -> Response:
    if path.startswith("/api/") or status == 403:
        return JSONResponse({"error": error, "message": message, "errors": []}, status_code=status)
    return HTMLResponse(_TOKEN_PAGE, status_code=status)


class Gate:
    """ASGI middleware: the token check, the CSRF check, read-only, and the security headers."""

    def __init__(self, app: ASGIApp, *, token: str, read_only: bool) -> None:
        self.app = app
        self.token = token
        self.csrf = csrf_token(token)
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_safe(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in dict(SECURITY_HEADERS)]
                headers += SECURITY_HEADERS
                if not path.startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        refusal = None if path.startswith("/static/") else self._check(scope, path)
        if refusal is None:
            await self.app(scope, receive, send_safe)
        else:
            await refusal(scope, receive, send_safe)

    def _check(self, scope: Scope, path: str) -> Response | None:
        headers = Headers(scope=scope)
        method = scope["method"]
        if path == "/" and method in SAFE_METHODS:
            given = QueryParams(scope.get("query_string", b"").decode("latin-1")).get("token")
            if given is not None:
                return self._login(given)
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        by_cookie = False
        if scheme.lower() == "bearer" and credential:
            ok = _same(credential.strip(), self.token)
        else:
            by_cookie = True
            ok = _same(cookie_parser(headers.get("cookie", "")).get(COOKIE), self.token)
        if not ok:
            return _refusal(path, 401, "Unauthorized", "give the console's token: Authorization: Bearer TOKEN")
        if method in SAFE_METHODS:
            return None
        if by_cookie and not _same(headers.get(CSRF_HEADER), self.csrf):
            return _refusal(path, 403, "Forbidden", "a write with the cookie needs the X-CSRF-Token header")
        if self.read_only:
            return _refusal(path, 403, "ReadOnly", "this console is read-only (durable ui --read-only)")
        return None

    def _login(self, given: str) -> Response:
        if not _same(given, self.token):
            return _refusal("/", 401, "Unauthorized", "wrong token")
        # Drop the token from the address bar (and so from history) once the cookie holds it.
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        return response


def json_error(status: int, error: str, message: str, errors: list[Any] | None = None) -> JSONResponse:
    """The API's error document: ``{"error": type name, "message": ..., "errors": [...]}``."""
    body = {"error": error, "message": message, "errors": errors or []}
    return JSONResponse(json.loads(json.dumps(body, default=str)), status_code=status)
