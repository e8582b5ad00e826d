"""The console in a real browser: chromium driven by Playwright, against ``python -m durable ui`` on a free port.

Skipped without Playwright or chromium, except under CI=true, where they must be there. Screenshots go to
``docs/console-*.png`` only with DURABLE_SCREENSHOTS=1 (the README's pictures), else to the test's directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _console_kit import SCHEMA

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DURABLE_CHROMIUM", "/usr/bin/chromium")
TOKEN = "browser-test-token-0123456789"

FLOWS = """
from durable import JsonSerializer, entrypoint, interrupt, task

SCHEMA = __SCHEMA__


@task
def draft(topic):
    return f"A post about {topic}"


@task
def price(topic):
    return 10 * len(topic)


@task
def publish(text, amount):
    return {"url": "https://example.com/p/1", "text": text, "budget": amount}


@entrypoint(name="approval", serializer=JsonSerializer())
def approval(topic):
    text = draft(topic).result()
    cost = price(topic).result()
    decision = interrupt(
        {"question": f"Publish the post about {topic}?", "draft": text, "cost": cost},
        response_schema=SCHEMA, timeout=2 * 86400, default={"approve": False, "amount": 0},
    )
    if not decision["approve"]:
        return {"status": "rejected"}
    return {"status": "published", **publish(text, decision["amount"]).result()}
""".replace("__SCHEMA__", repr(SCHEMA))


def _need(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(what)


@dataclass
class Served:
    base: str
    url: str
    flow: Any  # the entrypoint, bound to the journal the console serves

    def start(self, thread_id: str, topic: str) -> None:
        self.flow.invoke(topic, thread_id=thread_id)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A ``durable ui`` process carrying the approval workflow over a SQLite file."""
    from durable import SQLiteStore

    name = f"console_flows_{uuid.uuid4().hex[:8]}"
    module_path = tmp_path / f"{name}.py"
    module_path.write_text(FLOWS)
    spec = importlib.util.spec_from_file_location(name, module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "token").write_text(TOKEN)
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    store = SQLiteStore(tmp_path / "journal.db")
    argv = [sys.executable, "-m", "durable", "ui", name, "--url", url, "--port", "0", "--token-file", "token"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if "open http" in line:
                break
        else:
            errors = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"durable ui did not start: {''.join(lines)}{errors}")
        base = lines[-1].split("open ", 1)[1].split("?", 1)[0].rstrip("/")
        yield Served(base, url, module.approval.using(store))
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        store.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("Playwright is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _need(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _shot(page: Any, name: str, tmp_path: Path) -> None:
    where = ROOT / "docs" if os.environ.get("DURABLE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=str(where / name), full_page=True)


def _page(browser: Any, served: Served) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{served.base}/?token={TOKEN}")
    assert page.url == f"{served.base}/", "the token should leave the address bar"
    page.errors = errors  # the CSP reports here, among others
    return page


def test_answer_from_the_inbox_and_watch_the_run_finish(browser: Any, served: Served, tmp_path: Path) -> None:
    """Fill the schema's form in the inbox, answer, and the thread page shows the run completed."""
    from playwright.sync_api import expect

    served.start("post-cats", "cats")
    served.start("post-dogs", "dogs")
    page = _page(browser, served)
    card = page.locator("article.interrupt", has=page.locator("a", has_text="post-cats"))
    expect(card.locator("pre.question")).to_contain_text("Publish the post about cats?")
    expect(card.locator(".deadline")).to_contain_text("answer by")
    card.locator('[data-field="approve"]').check()
    card.locator('[data-field="amount"]').fill("250")
    card.locator('[data-field="level"]').select_option("high")
    card.locator("input.by").fill("Ann")
    _shot(page, "console-inbox.png", tmp_path)
    card.get_by_role("button", name="Answer").click()
    expect(card.locator(".outcome")).to_have_text("answered — resuming")

    page.goto(f"{served.base}/threads/post-cats")
    expect(page.locator("#live .facts .status")).to_have_text("completed", timeout=20_000)
    expect(page.locator("pre.output")).to_contain_text('"budget": 250')
    expect(page.locator(".entry.answer .answered")).to_contain_text("answered by Ann")
    _shot(page, "console-thread.png", tmp_path)
    page.goto(f"{served.base}/")
    expect(page.locator("article.interrupt")).to_have_count(1)  # only the dogs' question is left
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_a_wrong_answer_shows_the_errors(browser: Any, served: Served) -> None:
    """An answer missing a required field is refused, and the form says which field and why."""
    from playwright.sync_api import expect

    served.start("post-owls", "owls")
    page = _page(browser, served)
    card = page.locator("article.interrupt").first
    card.locator('[data-field="approve"]').check()
    card.get_by_role("button", name="Answer").click()
    expect(card.locator(".errors li")).not_to_have_count(0)
    expect(card.locator(".errors")).to_contain_text("amount")
    expect(card.locator('[data-field="amount"]')).to_have_attribute("aria-invalid", "true")
    card.locator('[data-field="amount"]').fill("5")
    card.get_by_role("button", name="Answer").click()
    expect(card.locator(".outcome")).to_have_text("answered — resuming")


def test_cancel_and_fork_from_a_thread_page(browser: Any, served: Served) -> None:
    """Fork a paused thread at a key with an override, resume the fork; cancel the original."""
    from playwright.sync_api import expect

    served.start("post-bees", "bees")
    page = _page(browser, served)
    page.goto(f"{served.base}/threads/post-bees")
    fork = page.locator("form.fork")
    fork.locator('[name="at"]').select_option("1")
    fork.locator('[name="new_thread_id"]').fill("post-bees-2")
    fork.get_by_role("button", name="+ override a copied result").click()
    fork.locator('[data-override="key"]').select_option("0")
    fork.locator('[data-override="value"]').fill('"An edited post about bees"')
    fork.get_by_role("button", name="Fork").click()
    page.wait_for_url(f"{served.base}/threads/post-bees-2")
    expect(page.locator("#live .facts .status")).to_have_text("failed")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#live .facts .status")).to_have_text("interrupted", timeout=20_000)
    expect(page.locator("article.interrupt pre.question")).to_contain_text("An edited post about bees")

    page.goto(f"{served.base}/threads/post-bees")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel the run").click()
    expect(page.locator("#live .facts .status")).to_have_text("cancelled", timeout=20_000)  # its phase (stored: failed)
    expect(page.locator(".problem")).to_contain_text("Cancel")


def test_without_the_token_nothing_is_shown(browser: Any, served: Served) -> None:
    """A browser without the token gets the "give the token" page, and the API 401."""
    served.start("post-ants", "ants")
    page = browser.new_context().new_page()
    response = page.goto(f"{served.base}/threads/post-ants")
    assert response is not None and response.status == 401
    assert "needs its token" in page.content() and "ants" not in page.content()
    api = page.goto(f"{served.base}/api/interrupts")
    assert api is not None and api.status == 401
