"""Thread ids in URLs: an id may hold "/", which a client sends as %2F and the ASGI server decodes before routing.

Decoded, ``/api/threads/a%2Fexport`` would reach the export of thread ``a``, and ``/threads/b%2Flive`` the live view
of ``b``. `EncodedSlashes` routes on the raw path instead, with each %2F kept as a NUL (which no thread id may hold,
see `durable._ids`), so an id stays one segment; `thread_id_of` turns the NULs back into slashes.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

_SLASH = re.compile("%2f", re.IGNORECASE)


class EncodedSlashes:
    """ASGI middleware: route on the raw path, each encoded slash held as a NUL."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw:
            text = raw.decode("latin-1").split("?", 1)[0]
            if _SLASH.search(text):
                scope = dict(scope, path=unquote(_SLASH.sub("%00", text)))
        await self.app(scope, receive, send)


def thread_id_of(request: Request) -> str:
    """The thread id a route was given."""
    return str(request.path_params["thread_id"]).replace("\x00", "/")
