"""The console's JSON API and pages over a real journal: the token, CSRF, read-only, reads, answers and actions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _console_kit import FAIL, SCHEMA, TOKEN, Console, approval, failing, freeform, hurry, wait_for

from durable import Store, Threads
from durable._console.auth import csrf_token

Make = Callable[..., Console]


def test_every_request_needs_the_token(sqlite_store: Store, console: Make) -> None:
    """No token, a wrong one, or a wrong ?token=: 401 (JSON for the API, a page for pages); static files are open."""
    with console(sqlite_store) as c:
        api = c.client.get("/api/threads")
        assert api.status_code == 401 and api.json()["error"] == "Unauthorized"
        page = c.client.get("/threads")
        assert page.status_code == 401 and "needs its token" in page.text
        assert c.client.get("/api/threads", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.client.get("/api/threads", headers={"Cookie": "durable_console=nope"}).status_code == 401
        assert c.client.get("/?token=nope", follow_redirects=False).status_code == 401
        assert c.client.get("/static/console.js").status_code == 200
        assert c.get("/api/threads").status_code == 200


def test_the_token_in_the_address_becomes_a_cookie(sqlite_store: Store, console: Make) -> None:
    """/?token= sets an HttpOnly SameSite=Strict cookie and redirects to / without the token."""
    with console(sqlite_store) as c:
        response = c.client.get(f"/?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = c.client.get("/")
        assert page.status_code == 200 and f'content="{csrf_token(TOKEN)}"' in page.text
        assert c.client.get("/api/threads").status_code == 200  # the cookie is enough to read


def test_cookie_writes_need_the_csrf_header(sqlite_store: Store, console: Make) -> None:
    """A cookie-carried POST without X-CSRF-Token is refused; with it, or with a Bearer token, it goes through."""
    approval.using(sqlite_store).invoke("cats", thread_id="t1")
    with console(sqlite_store) as c:
        c.login()
        refused = c.client.post("/api/threads/t1/cancel")
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["message"]
        wrong = c.client.post("/api/threads/t1/cancel", headers={"X-CSRF-Token": "0" * 64})
        assert wrong.status_code == 403
        assert Threads(sqlite_store).state("t1").status == "interrupted"  # nothing happened
        done = c.client.post("/api/threads/t1/cancel", headers={"X-CSRF-Token": csrf_token(TOKEN)})
        assert done.status_code == 200 and done.json()["cancelled"] is True
        approval.using(sqlite_store).invoke("dogs", thread_id="t2")
        assert c.post("/api/threads/t2/cancel").json() == {"thread_id": "t2", "cancelled": True}


def test_security_headers(sqlite_store: Store, console: Make) -> None:
    """Every answer forbids framing, referrers and inline scripts."""
    with console(sqlite_store) as c:
        for response in (c.get("/"), c.client.get("/api/threads"), c.client.get("/static/console.css")):
            assert "default-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"


def test_read_only_refuses_writes_and_shows_no_forms(tmp_path: Path, console: Make) -> None:
    """--read-only: the journal opened read-only, every POST 403, no answer form nor action."""
    from durable import SQLiteStore
    from durable._urls import resolve_store

    with SQLiteStore(tmp_path / "journal.db") as writer:
        approval.using(writer).invoke("cats", thread_id="t1")
    store = resolve_store(f"sqlite:///{tmp_path / 'journal.db'}", read_only=True)
    try:
        with console(store, read_only=True) as c:
            for action in ("resume", "cancel", "fork"):
                response = c.post(f"/api/threads/t1/{action}", {"resume": {"2": {}}, "at": "1"})
                assert response.status_code == 403 and response.json()["error"] == "ReadOnly"
            inbox, page = c.get("/").text, c.get("/threads/t1").text
            assert "publish cats?" in inbox and 'class="answer"' not in inbox
            assert 'data-action="cancel"' not in page and 'data-action="fork"' not in page
            assert c.get("/api/threads/t1/export").status_code == 200
    finally:
        store.close()


def test_list_filters_and_pages(sqlite_store: Store, console: Make) -> None:
    """GET /api/threads filters by status, entrypoint and id text, and pages with next_cursor."""
    for n in range(5):
        approval.using(sqlite_store).invoke(f"topic {n}", thread_id=f"order-{n}")
    freeform.using(sqlite_store).invoke("hi", thread_id="chat-1")
    Threads(sqlite_store).cancel("order-4")
    with console(sqlite_store) as c:
        everything = c.get("/api/threads").json()
        assert len(everything["threads"]) == 6 and everything["next_cursor"] is None
        assert {t["thread_id"] for t in c.get("/api/threads?entrypoint=freeform").json()["threads"]} == {"chat-1"}
        assert [t["thread_id"] for t in c.get("/api/threads?status=failed").json()["threads"]] == ["order-4"]
        seen: list[str] = []
        cursor = ""
        while True:
            page = c.get(f"/api/threads?q=ORDER&limit=2&status=interrupted&cursor={cursor}").json()
            seen += [t["thread_id"] for t in page["threads"]]
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
        assert sorted(seen) == [f"order-{n}" for n in range(4)]
        assert c.get("/api/threads?status=nope").status_code == 400
        assert c.get("/api/threads?limit=abc").status_code == 400
        html = c.get("/threads?q=chat").text
        assert "chat-1" in html and "order-1" not in html


def test_a_thread_in_full(sqlite_store: Store, console: Make) -> None:
    """GET /api/threads/{id}: header, runs, journal entries with sizes, the pending interrupt with its schema."""
    approval.using(sqlite_store).invoke("cats", thread_id="t1")
    with console(sqlite_store) as c:
        data = c.get("/api/threads/t1").json()
        assert data["status"] == "interrupted" and data["entrypoint"] == "approval"
        assert [r["status"] for r in data["runs"]] == ["interrupted"]
        entries = [(e["key"], e["task"], e["status"]) for e in data["entries"]]
        assert entries == [("0", "draft", "ok"), ("1", "price", "ok")]
        assert data["entries"][0]["result"] == "A post about cats" and data["entries"][0]["size"] > 0
        (pending,) = data["interrupts"]
        assert pending["id"] == "2" and pending["value"]["question"] == "publish cats?"
        assert pending["response_schema"]["required"] == SCHEMA["required"]
        missing = c.get("/api/threads/nope")
        assert missing.status_code == 404 and missing.json()["error"] == "ThreadNotFoundError"
        assert c.get("/threads/nope").status_code == 404
        page = c.get("/threads/t1").text
        assert 'data-field="amount"' in page and 'data-type="integer"' in page and "hx-trigger" in page


def test_interrupts_and_overdue(sqlite_store: Store, console: Make) -> None:
    """GET /api/interrupts lists every pending question; ?overdue=1 only those past their deadline."""
    approval.using(sqlite_store).invoke("cats", thread_id="t1")
    with console(sqlite_store) as c:
        listed = c.get("/api/interrupts").json()["interrupts"]
        assert [(i["thread_id"], i["id"]) for i in listed] == [("t1", "2")]
        assert c.get("/api/interrupts?overdue=1").json()["interrupts"] == []
        hurry.using(sqlite_store).invoke("quick?", thread_id="t2")
        time.sleep(0.1)
        (late,) = c.get("/api/interrupts?overdue=1").json()["interrupts"]
        assert late["thread_id"] == "t2" and late["overdue"] is True and late["deadline"] < time.time()
        assert "overdue since" in c.get("/").text


def test_an_answer_is_checked_then_journaled(sqlite_store: Store, console: Make) -> None:
    """A wrong answer is 422 with its errors and nothing journaled; a right one is journaled with who gave it,
    and without MODULEs the run waits for a worker (here the application carries it on)."""
    flow = approval.using(sqlite_store)
    flow.invoke("cats", thread_id="t1")
    with console(sqlite_store) as c:
        bad = c.post("/api/threads/t1/resume", {"resume": {"2": {"approve": "yes"}}, "by": "ann"})
        assert bad.status_code == 422, bad.text
        body = bad.json()
        assert body["error"] == "AnswerRejectedError" and body["errors"]
        assert {e["interrupt"] for e in body["errors"]} == {"2"}
        assert {"interrupt", "path", "message"} <= set(body["errors"][0])
        assert [e.status for e in flow.get_state(thread_id="t1").entries] == ["ok", "ok"]
        good = c.post("/api/threads/t1/resume", {"resume": {"2": {"approve": True, "amount": 7}}, "by": "ann"})
        assert good.status_code == 200, good.text
        assert good.json()["answered"] == ["2"] and "waiting for a worker" in good.json()["message"]
        again = c.post("/api/threads/t1/resume", {"resume": {"nope": 1}})
        assert again.status_code in (409, 422)
    assert flow.invoke(None, thread_id="t1")["amount"] == 7
    with console(sqlite_store) as c:
        (answer,) = [e for e in c.get("/api/threads/t1").json()["entries"] if e["status"] == "answer"]
        assert answer["answered_by"] == "ann" and answer["answered_at"] and answer["timed_out"] is False
        assert "answered by" in c.get("/threads/t1").text


def test_with_modules_the_console_carries_answered_runs(sqlite_store: Store, console: Make) -> None:
    """With MODULEs, an answered run resumes in the console's own worker, and the page shows it completed."""
    approval.using(sqlite_store).invoke("cats", thread_id="t1")
    with console(sqlite_store, modules=[approval, freeform, failing]) as c:
        done = c.post("/api/threads/t1/resume", {"resume": {"2": {"approve": True, "amount": 3}}, "by": "bob"})
        assert done.status_code == 200 and done.json()["carried"] is True, done.text
        wait_for(lambda: c.get("/api/threads/t1").json()["status"] == "completed")
        data = c.get("/api/threads/t1").json()
        assert data["output"]["receipt"] == "shipped: A post about cats"
        assert "completed" in c.get("/threads/t1/live").text


def test_resume_a_failed_run(sqlite_store: Store, console: Make) -> None:
    """Resume (no "resume" in the body) needs MODULEs (409 without); with them it runs the rest (202)."""
    FAIL.set()
    with pytest.raises(RuntimeError):
        failing.using(sqlite_store).invoke("cats", thread_id="t1")
    FAIL.clear()
    with console(sqlite_store) as c:
        refused = c.post("/api/threads/t1/resume", {})
        assert refused.status_code == 409 and "durable ui MODULE" in refused.json()["message"]
    approval.using(sqlite_store).invoke("dogs", thread_id="t2")
    with console(sqlite_store, modules=[approval, failing]) as c:
        assert c.post("/api/threads/t2/resume", {}).status_code == 409  # paused: answer it instead
        assert c.post("/api/threads/t1/resume").status_code == 202
        wait_for(lambda: c.get("/api/threads/t1").json()["status"] == "completed")
        assert c.get("/api/threads/t1").json()["output"] == "shipped: A post about cats"
        assert c.post("/api/threads/t1/resume", {}).status_code == 409  # completed: nothing to resume


def test_cancel_fork_and_export(sqlite_store: Store, console: Make) -> None:
    """Cancel an unfinished run; fork at a key with an override; export the bundle as a download."""
    flow = approval.using(sqlite_store)
    flow.invoke("cats", thread_id="t1")
    with console(sqlite_store) as c:
        body = {"at": "1", "overrides": {"0": "An edited post"}, "new_thread_id": "t1b"}
        forked = c.post("/api/threads/t1/fork", body)
        assert forked.status_code == 201 and forked.json()["thread_id"] == "t1b", forked.text
        assert c.post("/api/threads/t1/fork", {"at": "9", "overrides": {"7": 1}}).status_code == 400
        assert c.post("/api/threads/t1/fork", {}).status_code == 400
        assert c.post("/api/threads/t1/fork", {"at": "1", "new_thread_id": "t1b"}).status_code == 409
        exported = c.get("/api/threads/t1/export")
        assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
        assert exported.json()["thread_id"] == "t1"
        assert c.post("/api/threads/t1/cancel").json()["cancelled"] is True
        assert c.post("/api/threads/t1/cancel").json()["cancelled"] is False
        assert c.get("/api/threads/t1").json()["status"] == "failed"
        assert c.post("/api/threads/nope/cancel").status_code == 404
        assert c.post("/api/threads/t1/fork", "not an object").status_code == 400
    assert flow.invoke(None, thread_id="t1b").interrupts[0].value["draft"] == "An edited post"


def test_values_are_escaped(sqlite_store: Store, console: Make) -> None:
    """A question holding markup is shown as text on every page, never as markup."""
    evil = {"question": "<script>alert('x')</script>", "link": '"><img src=x onerror=alert(1)>'}
    freeform.using(sqlite_store).invoke(evil, thread_id="<b>t</b>")
    with console(sqlite_store) as c:
        pages = [c.get("/").text, c.get("/threads").text, c.get("/threads/%3Cb%3Et%3C%2Fb%3E").text]
        for html in pages:
            assert "<script>alert" not in html and "<img src=x" not in html and "<b>t</b>" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in pages[0]
        assert "&lt;b&gt;t&lt;/b&gt;" in pages[2]


def test_a_json_answer_to_a_question_without_schema(sqlite_store: Store, console: Make) -> None:
    """No schema: a JSON editor, and any JSON answer; the id map names the question."""
    flow = freeform.using(sqlite_store)
    flow.invoke("how many?", thread_id="f1")
    with console(sqlite_store) as c:
        assert 'data-type="json"' in c.get("/").text
        assert c.post("/api/threads/f1/resume", {"resume": {"0": [1, 2]}}).status_code == 200
        broken = c.client.post("/api/threads/f1/resume", content=b"{", headers=c.auth)
        assert broken.status_code == 400 and broken.json()["error"] == "BadRequest"
    assert flow.invoke(None, thread_id="f1") == {"answer": [1, 2]}


@pytest.mark.parametrize("kind", ["memory", "postgres"])
def test_other_journals(kind: str, new_store: Callable[..., Store], console: Make) -> None:
    """The console reads and answers a memory journal and a Postgres one as it does SQLite."""
    store = new_store(kind)
    try:
        flow = approval.using(store)
        flow.invoke("cats", thread_id="t1")
        with console(store) as c:
            assert [t["thread_id"] for t in c.get("/api/threads").json()["threads"]] == ["t1"]
            assert c.get("/api/interrupts").json()["interrupts"][0]["id"] == "2"
            assert "publish cats?" in c.get("/").text
            ok = c.post("/api/threads/t1/resume", {"resume": {"2": {"approve": False, "amount": 0}}, "by": "cy"})
            assert ok.status_code == 200, ok.text
        assert flow.invoke(None, thread_id="t1") == {"status": "rejected"}
    finally:
        store.close()


def test_api_errors_are_json(sqlite_store: Store, console: Make) -> None:
    """An unknown API route is a JSON 404 with the error document's keys."""
    with console(sqlite_store) as c:
        response = c.get("/api/nothing")
        assert response.status_code == 404 and set(response.json()) == {"error", "message", "errors"}


def test_bundle_is_the_export_format(sqlite_store: Store, console: Make) -> None:
    """The export route gives what `Threads.export` gives."""
    approval.using(sqlite_store).invoke("cats", thread_id="t1")
    with console(sqlite_store) as c:
        exported: Any = json.loads(c.get("/api/threads/t1/export").text)
    expected = json.loads(json.dumps(Threads(sqlite_store).export("t1")))
    assert {**exported, "exported_at": 0} == {**expected, "exported_at": 0}


def test_thread_ids_holding_slashes_reach_their_own_thread(sqlite_store: Store, console: Make) -> None:
    """An id sent as one %2F-encoded segment is that thread, even when it ends like a route ("/export", "/live");
    an id sent with plain slashes still works."""
    for thread_id in ("a", "a/export", "b", "b/live", "user/42"):
        freeform.using(sqlite_store).invoke(f"question of {thread_id}", thread_id=thread_id)
    with console(sqlite_store) as c:
        assert c.get("/api/threads/a%2Fexport").json()["thread_id"] == "a/export"
        assert c.get("/api/threads/a%2Fexport/export").json()["thread_id"] == "a/export"
        assert c.get("/api/threads/a/export").json()["thread_id"] == "a"  # unencoded: the export of "a"
        assert "question of b/live" in c.get("/threads/b%2Flive").text
        assert 'hx-get="/threads/b%2Flive/live"' in c.get("/threads/b%2Flive/live").text  # b/live's live view
        assert c.get("/api/threads/user/42").json()["thread_id"] == "user/42"
