"""The console's Starlette application: pages, API, static files, the gate, and the runner's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from . import api, pages
from .auth import Gate
from .paths import EncodedSlashes
from .service import Console

STATIC = Path(__file__).parent / "static"


def build_app(console: Console) -> Starlette:
    """The console over ``console``'s journal. Its runner (if any) starts and stops with the application."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if console.runner is not None:
            console.runner.start()
        try:
            yield
        finally:
            if console.runner is not None:
                await run_in_threadpool(console.runner.stop)  # runs in flight finish first

    app = Starlette(
        routes=[*api.routes, *pages.routes, Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[
            Middleware(EncodedSlashes),
            Middleware(Gate, token=console.token, read_only=console.read_only),
        ],
        lifespan=lifespan,
    )
    app.state.console = console
    return app
