"""A griffe extension for the API reference (mkdocs.yml's mkdocstrings `extensions:`; not a page).

durable's docstrings are Markdown prose, with a few reStructuredText habits that Markdown would render wrongly. They
are rewritten for the site only (the source is untouched; ``help()`` shows them as written):

- a doctest (a paragraph starting with ``>>>``) would be a nested quote: it becomes a ``pycon`` code block;
- a literal block introduced by ``::`` would be text run together: it becomes a code block, the ``::`` a colon;
- a ``:class:`Name``` role becomes ```Name```.

And `durable.entrypoint`, an instance (``entrypoint = _EntrypointFactory()``) with no docstring of its own, gets its
class's, which says how to call it.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj|py:\w+):`~?([^`]+)`")
FENCE = "```"


def markdown(text: str) -> str:
    """The docstring ``text`` with its doctests, literal blocks and roles in Markdown."""
    lines, out, i = ROLE.sub(r"`\1`", text).split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>") and (i == 0 or not lines[i - 1].strip()):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += [f"{FENCE}pycon", *textwrap.dedent("\n".join(block)).split("\n"), FENCE]
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith(FENCE):
            margin = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            k = j
            while k < len(lines) and (not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) > margin):
                k += 1
            while k > j and not lines[k - 1].strip():
                k -= 1
            if k > j:  # an indented block follows: it is the literal block
                intro = line.rstrip()[:-2].rstrip()
                literal = textwrap.dedent("\n".join(lines[j:k])).split("\n")
                out += [f"{intro}:" if intro.strip() else "", "", FENCE, *literal, FENCE]
                i = k
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DurableDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.path.split(".")[0] == "durable" and obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "durable":
            return
        api = pkg["_api"]
        instance, factory = api["entrypoint"], api["_EntrypointFactory"]
        if instance.docstring is None and factory.docstring is not None:
            instance.docstring = griffe.Docstring(
                factory.docstring.value, lineno=factory.docstring.lineno, parent=instance
            )
