"""The documentation site builds with no warning, covers the public API and the examples, and its code runs.

``mkdocs build --strict`` is what CI checks the site with: a broken link, a README section a guide includes that is
gone, a docstring mkdocstrings cannot render, each is a warning, so a failure here. Without mkdocs installed (no
``docs`` extra) the build is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import durable

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUNS = re.compile(r"<!-- runs -->\n```python\n(.*?)\n```", re.S)


def mkdocs_available() -> bool:
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed under CI=true: install the docs extra (pip install -e '.[dev]')")
        return False
    return True


@pytest.mark.subprocess
def test_the_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds; any warning fails it, and the build's output is the failure message."""
    if not mkdocs_available():
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' (or '.[dev]') to build the docs")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's end-of-life banner: not a warning, only noise
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file()
    reference = (site / "reference" / "durable" / "index.html").read_text(encoding="utf-8")
    for name in ("durable.Entrypoint.ainvoke", "durable.Entrypoint.using", "durable.task"):
        assert f'id="{name}"' in reference, f"{name} is missing from the rendered API reference"
    for page in ("guides/security", "testing", "async", "examples", "benchmarks", "reference/testing"):
        assert (site / page / "index.html").is_file(), f"{page} was not built"


def test_every_public_name_is_in_the_reference() -> None:
    """Each name of ``durable.__all__`` has its ``::: durable.NAME`` entry (the stores and errors on their pages)."""
    reference = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: durable\.(?:stores\.)?(\w+)$", reference, re.M))
    errors = {name for name in durable.__all__ if name.endswith(("Error", "Warning"))}
    missing = sorted(set(durable.__all__) - documented - errors)
    assert not missing, f"add these to docs/reference/durable.md (or stores.md): {missing}"
    assert "::: durable.errors" in reference


def test_every_example_is_on_the_examples_page() -> None:
    """examples.md has a section, a line and the source of every file in examples/ (and of no file that is gone)."""
    page = (DOCS / "examples.md").read_text(encoding="utf-8")
    on_page = set(re.findall(r'include "\.\./examples/(\w+\.py)"', page))
    in_dir = {p.name for p in (ROOT / "examples").glob("*.py")}
    assert on_page == in_dir, f"examples.md lists {sorted(on_page ^ in_dir)} wrongly: one section per example"
    for name in in_dir:
        assert f"{{#{name[:-3].replace('_', '-')}}}" in page, f"examples.md has no heading for {name}"


@pytest.mark.parametrize("page", ["testing.md", "async.md"])
@pytest.mark.subprocess
def test_the_pages_code_runs(page: str, tmp_path: Path) -> None:
    """The blocks marked ``<!-- runs -->`` run in order, in one fresh process, then every ``test_*`` they define."""
    blocks = RUNS.findall((DOCS / page).read_text(encoding="utf-8"))
    assert blocks, f"{page} has no block marked <!-- runs -->"
    script = "\n\n".join(blocks) + textwrap.dedent(
        """

        for _name, _fn in list(globals().items()):
            if _name.startswith("test_") and callable(_fn):
                _fn()
                print("passed", _name)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_URL", "DURABLE_SECRET")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout
    assert not list(tmp_path.glob("*.db")), "a page's code opened a journal file it says it does not"
