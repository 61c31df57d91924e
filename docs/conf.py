"""Sphinx configuration: the guide (Markdown through MyST) and the API reference (autodoc).

Build with warnings as errors, as CI does: ``python -m sphinx -W --keep-going -b html docs
docs/_build/html``.
"""

from __future__ import annotations

import inspect
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

import mls
import mls.errors

project = "mls"
author = "the mls developers"
copyright = "the mls developers"
release = mls.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"mls {release}"


def _literal_blocks(lines: list[str]) -> None:
    """Make two docstring habits of this code base valid reStructuredText, in place.

    RFC ``struct { ... }`` definitions follow a ``::`` line without the indentation a literal
    block needs (they are indented like the code they document), and a few module docstrings
    use Markdown fences. Both become indented literal blocks.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "```":
            close = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
            if close is not None:
                out += ["::", ""] + ["    " + x for x in lines[i + 1 : close]] + [""]
                i = close + 1
                continue
        out.append(line)
        i += 1
        if line.endswith("::") and i + 1 < len(lines) and lines[i] == "":
            if lines[i + 1] and not lines[i + 1].startswith(" "):
                out.append("")
                i += 1
                while i < len(lines) and lines[i] != "":
                    out.append("    " + lines[i])
                    i += 1
    lines[:] = out


def _process_docstring(
    app: Any, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    _literal_blocks(lines)


def error_tree() -> str:
    """The class tree of :mod:`mls.errors`, one class a line, indented by depth."""
    classes = [  # in definition order, the order of the module's sections
        c
        for c in vars(mls.errors).values()
        if inspect.isclass(c) and issubclass(c, mls.errors.MLSError)
    ]
    lines: list[str] = []

    def walk(cls: type, depth: int) -> None:
        others = [b.__name__ for b in cls.__bases__[1:]]
        also = f"  (also {', '.join(others)})" if others else ""
        lines.append("    " * depth + cls.__name__ + also)
        for sub in (c for c in classes if c.__bases__[0] is cls):
            walk(sub, depth + 1)

    walk(mls.errors.MLSError, 0)
    return "\n".join(lines)


class ErrorTree(Directive):
    """``error-tree``: the current exception hierarchy, so the guide never lists a stale one."""

    def run(self) -> list[nodes.Node]:
        text = error_tree()
        return [nodes.literal_block(text, text)]


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _process_docstring)
    app.add_directive("error-tree", ErrorTree)
