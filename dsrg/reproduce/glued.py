"""The numbers a page's text quotes, glued for the book, and that text with them filled in for other readers.

Jupyter Book fills a page's ``{glue:text}`` roles with what its code glued; an executed notebook read
anywhere else (papermill's output, JupyterLab) shows the roles as written. :func:`glue` glues as myst_nb
does and keeps the value; :func:`page_text`, run by each page's last cell (a cell the book leaves out),
shows the page's text with the values of this run in place of the roles.
"""

from __future__ import annotations

import re
from pathlib import Path

ROLE = re.compile(r"\{glue:text\}`([^`]+)`")
OTHER_ROLE = re.compile(r"\{([a-z]+(?::[a-z]+)?)\}`([^`]+)`")     # {doc}, {ref}, {py:func}, ...: links in the book

_glued: dict[str, object] = {}      # what this kernel glued, by name


def glue(name: str, value) -> None:
    """myst_nb's ``glue(name, value, display=False)``, the value also kept for :func:`page_text`."""
    from myst_nb import glue as myst_glue

    myst_glue(name, value, display=False)
    _glued[name] = value


def fill(text: str, values: dict[str, object]) -> str:
    """``text`` with each ``{glue:text}`name``` role replaced by ``str(values[name])`` (a name not in
    ``values`` becomes ``[name: not computed]``), and the book's other roles by their words: a link's text
    (``{doc}`Table 2 <table2_ablation>``` reads ``Table 2``; one without text, its target), a Python name as
    code."""
    text = ROLE.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else f"[{m.group(1)}: not computed]",
                    text)
    return OTHER_ROLE.sub(_words, text)


def _words(role: re.Match) -> str:
    """A role's words outside the book: its link text, else its target (a Python name as code)."""
    kind, content = role.group(1), " ".join(role.group(2).split())
    link = re.fullmatch(r"(.+?)\s*<([^<>]+)>", content)
    if link and kind == "ref":                          # a section, named by its label: say where it is
        return f"{link.group(1)} (the book's section {link.group(2)})"
    if link:
        return link.group(1)
    if not kind.startswith("py:"):
        return content
    return f"`{content[1:].rsplit('.', 1)[-1] if content.startswith('~') else content.lstrip('!')}`"


def page_text(source: str | Path, values: dict[str, object] | None = None):
    """The text of the MyST notebook ``source`` (relative to the working directory, where papermill's
    ``--cwd`` and Jupyter Book run a page) with the glued values filled in: its markdown cells, except
    those tagged ``remove-cell``, as one IPython ``Markdown``. ``values``: default, what :func:`glue` kept.

    Where ``source`` is not there (a copy of the page run elsewhere), the glued values as a table instead.
    """
    import jupytext
    from IPython.display import Markdown

    values = _glued if values is None else values
    heading = ("*This page's text with this run's numbers, as the book shows it (this cell is not in the "
               "book).*\n\n")
    path = Path(source)
    if not path.is_file():
        rows = "\n".join(f"| `{name}` | {str(value).replace('|', '/')} |" for name, value in values.items())
        return Markdown(f"*The numbers this page's text quotes, by name ({path} is not in {Path.cwd()}, so not "
                        f"the text itself).*\n\n| name | value |\n|---|---|\n" + rows)
    cells = [c for c in jupytext.read(path).cells
             if c.cell_type == "markdown" and "remove-cell" not in c.get("metadata", {}).get("tags", [])]
    texts = [fill(c.source, values) for c in cells]
    # a paragraph that ends with ':' introduces a code cell's output (a table, a figure), not shown here
    where = " *(in the output of the code cell that follows this paragraph in the notebook)*"
    texts = [t + where if t.rstrip().endswith(":") else t for t in texts]
    return Markdown(heading + "\n\n".join(texts))
