"""A page's text with its glued numbers filled in, for readers of an executed notebook outside the book."""

from __future__ import annotations

from dsrg.reproduce import glued

PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page

Ours: {glue:text}`ours` mIoU, the paper's {glue:text}`paper`. Per class:

```{code-cell} ipython3
x = "{glue:text}`ours` in code stays out"
```

+++ {"tags": ["remove-cell"]}

A note the book leaves out.

+++

Left to fill: {glue:text}`later`.
"""


def test_fill_puts_each_value_in_place_of_its_role_and_names_the_missing_ones():
    text = "a {glue:text}`x`, b {glue:text}`y`, a again {glue:text}`x`"
    assert glued.fill(text, {"x": 1.5}) == "a 1.5, b [y: not computed], a again 1.5"


def test_fill_writes_the_books_links_as_their_words():
    text = ("see {doc}`Table 2 <table2_ablation>`, {doc}`fig4_supervision`, {ref}`how we test\n<fidelity-test>` "
            "and {py:func}`dsrg.method.growing.grow` ({py:mod}`~dsrg.method.lattice`)")
    assert glued.fill(text, {}) == ("see Table 2, fig4_supervision, how we test (the book's section fidelity-test) "
                                    "and `dsrg.method.growing.grow` (`lattice`)")


def test_page_text_is_the_markdown_of_the_page_with_the_values_and_without_code_or_removed_cells(tmp_path,
                                                                                                 monkeypatch):
    (tmp_path / "page.md").write_text(PAGE)
    monkeypatch.chdir(tmp_path)
    text = glued.page_text("page.md", {"ours": "57.1", "paper": 57.6}).data
    assert "Ours: 57.1 mIoU, the paper's 57.6. Per class: *(in the output of the code cell that follows this paragraph in the notebook)*" \
        in text                                           # a table the code cell shows: said where it is
    assert "# A page" in text and "Left to fill: [later: not computed]." in text
    assert "in code stays out" not in text and "A note the book leaves out" not in text
    assert "{glue:text}" not in text


def test_page_text_of_a_page_not_at_hand_lists_the_values_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = glued.page_text("gone.md", {"ours": "57.1", "note": "a | b"}).data
    assert "| `ours` | 57.1 |" in text and "| `note` | a / b |" in text and "gone.md" in text


def test_glue_keeps_what_it_glues_for_the_page_text(monkeypatch):
    monkeypatch.setattr(glued, "_glued", {})
    glued.glue("t_value", 3)
    assert glued._glued == {"t_value": 3}
    assert "is 3." in glued.fill("is {glue:text}`t_value`.", glued._glued)
