"""The web console tests' kit: workflows that ask a person, a console app over a store, polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from durable import JsonSerializer, Store, Threads, entrypoint, interrupt, task

TOKEN = "test-token-0123456789abcdef"
SCHEMA = {
    "title": "Decision",
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve", "description": "publish the draft as it is"},
        "amount": {"type": "integer", "title": "Budget", "minimum": 0, "maximum": 1000},
        "level": {"enum": ["low", "high"], "title": "Priority", "default": "low"},
        "note": {"type": "string", "title": "Note", "default": ""},
    },
    "required": ["approve", "amount"],
}
FAIL = threading.Event()  # set: the `ship` task raises (a failed run to resume)


@task
def draft(topic: str) -> str:
    return f"A post about {topic}"


@task
def price(topic: str) -> int:
    return 10 * len(topic)


@task
def ship(text: str) -> str:
    if FAIL.is_set():
        raise RuntimeError("the printer is out of paper")
    return f"shipped: {text}"


@entrypoint(name="approval", serializer=JsonSerializer())
def approval(topic: str) -> dict[str, Any]:
    text = draft(topic).result()
    cost = price(topic).result()
    decision = interrupt({"question": f"publish {topic}?", "draft": text, "cost": cost}, response_schema=SCHEMA)
    if not decision["approve"]:
        return {"status": "rejected"}
    return {"status": "published", "receipt": ship(text).result(), "amount": decision["amount"]}


@entrypoint(name="freeform", serializer=JsonSerializer())
def freeform(question: Any) -> Any:
    return {"answer": interrupt(question)}


@entrypoint(name="hurry", serializer=JsonSerializer())
def hurry(question: str) -> Any:
    return interrupt(question, timeout=0.05, default="nobody answered")


@entrypoint(name="failing", serializer=JsonSerializer())
def failing(topic: str) -> str:
    return ship(draft(topic).result()).result()


class Console:
    """A console app over a store, with a client that sends the token as a Bearer header."""

    def __init__(self, store: Store, **options: Any) -> None:
        from durable._console.app import build_app
        from durable._console.runner import Runner
        from durable._console.service import Console as State

        modules = options.pop("modules", None)
        runner = Runner(modules, store, poll_interval=0.1) if modules else None
        self.store = store
        self.state = State(Threads(store), TOKEN, runner=runner, **options)
        self.app = build_app(self.state)
        self.client = TestClient(self.app)
        self.auth = {"Authorization": f"Bearer {TOKEN}"}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def post(self, url: str, body: Any = None, **kw: Any) -> Any:
        return self.client.post(url, json=body, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def login(self) -> None:
        """The browser's way in: /?token= sets the cookie."""
        response = self.client.get(f"/?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303, response.text

    def __enter__(self) -> Console:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.__exit__(*exc)


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """``check()``'s first truthy value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.05)
