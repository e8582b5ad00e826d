"""``durable ui`` from the command line: the extra, the import boundary, a real server on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from durable._console.forms import form_fields

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.subprocess
def test_without_the_extra_one_line_and_exit_2() -> None:
    """No Starlette: one line naming the extra, exit status 2, no traceback."""
    done = _python("import sys; sys.modules['starlette'] = None\nfrom durable._cli import main\nsys.exit(main(['ui']))")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "pip install 'durable-exec[ui]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.subprocess
def test_importing_durable_leaves_the_console_out() -> None:
    """`import durable` imports neither Starlette nor the console."""
    done = _python("import sys, durable; print(sorted(m for m in sys.modules if 'starlette' in m or '_console' in m))")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.subprocess
def test_a_real_server_on_port_zero(tmp_path: Path) -> None:
    """--port 0 prints the port it got; the token file's token opens the API; Ctrl-C stops it cleanly."""
    (tmp_path / "token").write_text("a-token-from-a-file-0123456789\n")
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable", "ui", "--url", url, "--port", "0", "--token-file", str(tmp_path / "token")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "open http" in line:
                break
        address = lines[-1].split("open ", 1)[1].split("?", 1)[0]
        assert not address.endswith(":0/") and address.startswith("http://127.0.0.1:"), lines
        request = urllib.request.Request(address + "api/threads", headers={"Authorization": "Bearer nope"})
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("a wrong token was let in")
        except urllib.error.HTTPError as refused:
            assert refused.code == 401
        request = urllib.request.Request(
            address + "api/threads", headers={"Authorization": "Bearer a-token-from-a-file-0123456789"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response) == {"threads": [], "next_cursor": None}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.subprocess
def test_a_bad_token_file_is_refused(tmp_path: Path) -> None:
    """A token file that is missing or too short: exit 1 with the reason, before anything listens."""
    (tmp_path / "short").write_text("abc\n")
    for path in (tmp_path / "short", tmp_path / "missing"):
        done = subprocess.run(
            [sys.executable, "-m", "durable", "ui", "--url", "memory://", "--port", "0", "--token-file", str(path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1 and "token file" in done.stderr, done.stderr


def test_forms_from_simple_schemas() -> None:
    """An object of scalars, enums and optional fields gets one input each; anything else a JSON editor."""
    pydantic_like = {
        "$defs": {"Level": {"enum": ["low", "high"], "title": "Level", "type": "string"}},
        "properties": {
            "approve": {"title": "Approve", "type": "boolean"},
            "level": {"$ref": "#/$defs/Level", "default": "low"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Note"},
            "count": {"type": "integer", "minimum": 1, "description": "how many"},
        },
        "required": ["approve", "count"],
        "title": "Decision",
        "type": "object",
    }
    fields = form_fields(pydantic_like)
    assert fields is not None
    by_name = {f["name"]: f for f in fields}
    assert [f["name"] for f in fields] == ["approve", "level", "note", "count"]
    assert by_name["approve"]["type"] == "boolean" and by_name["approve"]["required"]
    assert by_name["level"]["type"] == "enum" and by_name["level"]["default_json"] == '"low"'
    assert by_name["note"]["type"] == "string" and not by_name["note"]["required"]
    assert by_name["count"]["type"] == "integer" and by_name["count"]["minimum"] == 1
    assert by_name["count"]["description"] == "how many"
    for complex_schema in (
        None,
        {"type": "string"},
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
        {"type": "object", "properties": {"a": {"type": "object"}}},
        {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
        {"type": "object", "properties": {"a": {"$ref": "https://example.com/schema"}}},
    ):
        assert form_fields(complex_schema) is None, complex_schema
