"""MkDocs hooks for durable's site (mkdocs.yml's `hooks:`; not a page: `exclude_docs` leaves it out of the site).

The guides are the README's sections, each included on a page of its own, so two kinds of text in them need a link
the README cannot give:

- the README's in-page links (``[Security](#security)``) point at a section that is now on another page: they are
  pointed at that page;
- mentions of an example or of the benchmarks' README (`` `examples/approval.py` ``, `` `benchmarks/README.md` ``)
  become links to the Examples and Benchmarks pages.

Which page holds which README section is read from the pages themselves: their ``include-markdown`` directives of
the README and the ``start="## ..."`` and ``end="## ..."`` each names. A README section that no page includes is a
warning, so a new section cannot miss the site unnoticed (the strict build fails).
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

from markdown.extensions.toc import slugify
from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parent.parent
DIRECTIVE = re.compile(r"\{%\s*include-markdown\s+\"(?P<path>(?:\.\./)+README\.md)\"(?P<args>.*?)%\}", re.S)
START = re.compile(r'start="(?P<at>[^"]*)"')
END = re.compile(r'end="(?P<at>[^"]*)"')
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
ANCHOR_LINK = re.compile(r"\]\(#(?P<anchor>[^)\s]+)\)")
FILE_MENTION = re.compile(r"(?<!\[)`(?P<path>examples/(?P<name>\w+)\.py|benchmarks/README\.md)`")

NOT_A_GUIDE = {"More", "Documentation"}  # the Examples page, the nav and index.md say these
log = logging.getLogger("mkdocs.hooks.durable")

_sections: dict[str, str] = {}  # README anchor -> the page (src_uri) that includes its section


def _readme_headings() -> list[tuple[int, str]]:
    """The README's headings outside code blocks: (level, text), in order."""
    found, fenced = [], False
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            found.append((len(m.group(1)), m.group(2)))
    return found


def on_pre_build(config: Any) -> None:
    """Map each README heading to the page whose include of the README holds it."""
    _sections.clear()
    headings = _readme_headings()
    marks = [f"{'#' * level} {text}" for level, text in headings]
    docs = Path(config["docs_dir"])
    for page in sorted(docs.rglob("*.md")):
        for directive in DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            start, end = START.search(directive.group("args")), END.search(directive.group("args"))
            if (start and start.group("at") not in marks) or (end and end.group("at") not in marks):
                continue  # include-markdown itself warns that the delimiter is gone, which fails the build
            first = marks.index(start.group("at")) if start else 0
            last = marks.index(end.group("at")) if end else len(marks)
            for _, text in headings[first:last]:
                _sections.setdefault(slugify(text, "-"), page.relative_to(docs).as_posix())
    for level, text in headings:
        if level == 2 and text not in NOT_A_GUIDE and slugify(text, "-") not in _sections:
            log.warning(  # a warning fails `mkdocs build --strict`, so tests/test_docs.py
                f"the README's section {text!r} is on no page of the site: include it in a guide "
                f'(docs/guides/*.md: include-markdown "../../README.md" start="## {text}" end=...), '
                f"or add it to NOT_A_GUIDE in docs/_hooks.py"
            )


def _link(page: str, target: str) -> str:
    return posixpath.relpath(target, posixpath.dirname(page) or ".")


@event_priority(-100)  # after include-markdown has put the README's sections in
def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    here = page.file.src_uri
    out, fenced = [], False
    for line in markdown.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = ANCHOR_LINK.sub(lambda m: _anchor(m, here), line)
            line = FILE_MENTION.sub(lambda m: _mention(m, here), line)
        out.append(line)
    return "\n".join(out)


def _anchor(match: re.Match[str], here: str) -> str:
    target = _sections.get(match.group("anchor"))
    if target is None or target == here:
        return match.group(0)
    return f"]({_link(here, target)}#{match.group('anchor')})"


def _mention(match: re.Match[str], here: str) -> str:
    path, name = match.group("path"), match.group("name")
    if name is None:
        return f"[`{path}`]({_link(here, 'benchmarks.md')})"
    if not (ROOT / path).is_file() or here == "examples.md":
        return match.group(0)
    return f"[`{path}`]({_link(here, 'examples.md')}#{name.replace('_', '-')})"
