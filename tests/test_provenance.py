"""The source hash that records carry: it follows the code that makes the numbers, not its prose."""

import pytest

from dsrg.run import provenance


@pytest.fixture
def package(monkeypatch, tmp_path):
    """A stand-in ``dsrg/`` with one module of the method, one of the book's, and a profile."""
    files = {"method/a.py": '"""Module doc."""\n\nx = 1  # one\n', "reproduce/tables.py": "x = 1\n",
             "profiles/demo.yaml": "# the demo\nseg:\n  lr: 0.01  # per step\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(provenance, "PACKAGE", tmp_path)
    return tmp_path


def test_the_source_hash_follows_the_code_that_makes_the_numbers_not_the_pages(package):
    before = provenance.source_hash()
    (package / "reproduce/tables.py").write_text("x = 2\n")
    assert provenance.source_hash() == before
    (package / "method/a.py").write_text('"""Module doc."""\n\nx = 2  # one\n')
    assert provenance.source_hash() != before


@pytest.mark.parametrize("rel, text", [
    ("method/a.py", '"""Another module doc,\nover two lines."""\n\n\nx = 1    # another comment\n'),
    ("method/a.py", '"""Module doc."""\n# a comment of its own line\nx = 1\n'),
    ("profiles/demo.yaml", "seg: {lr: 0.01}\n"),
])
def test_a_docstring_a_comment_or_a_yaml_layout_leaves_the_hash(package, rel, text):
    before = provenance.source_hash()
    (package / rel).write_text(text)
    assert provenance.source_hash() == before


def test_a_yaml_value_changes_the_hash(package):
    before = provenance.source_hash()
    (package / "profiles/demo.yaml").write_text("seg:\n  lr: 0.02\n")
    assert provenance.source_hash() != before


def test_code_only_keeps_the_code_around_a_string_statement_and_a_comment(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('def f():\n    """Dé\n    doc."""\n    return "é"; "no-op é"  # ü\n', encoding="utf-8")
    assert provenance.code_only(path) == 'def f():\n    return "é";'


def test_a_string_that_is_a_value_is_code(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('x = "kept"\nprint("kept too")\n')
    assert provenance.code_only(path) == 'x = "kept"\nprint("kept too")'


def test_a_file_that_does_not_parse_counts_whole(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def (:  # broken\n")
    assert provenance.code_only(path) == "def (:  # broken\n"


def test_the_package_s_own_files_are_read_as_python_not_counted_whole():
    for path in provenance.PACKAGE.rglob("*.py"):
        provenance._python_code_only(path.read_text(encoding="utf-8"))       # raises where one would not parse


@pytest.mark.parametrize("a, b", [('x = """a\nb"""\n', 'x = """a\n\nb"""\n'),
                                  ('x = """a\nb"""\n', 'x = """a   \nb"""\n'),
                                  ('x = f"""{1}\nb"""\n', 'x = f"""{1}\n\nb"""\n')])
def test_the_blanks_inside_a_value_s_string_are_code(package, a, b):
    (package / "method/a.py").write_text(a)
    before = provenance.source_hash()
    (package / "method/a.py").write_text(b)
    assert provenance.source_hash() != before


@pytest.mark.parametrize("a, b", [("1: a\n", "'1': a\n"), ("x: 1\n", "x: 1.0\n"), ("x: 'on'\n", "x: true\n")])
def test_a_yaml_value_of_another_type_changes_the_hash(package, a, b):
    (package / "profiles/demo.yaml").write_text(a)
    before = provenance.source_hash()
    (package / "profiles/demo.yaml").write_text(b)
    assert provenance.source_hash() != before


def test_yaml_is_read_as_the_profiles_are_by_omegaconf(package):
    (package / "profiles/demo.yaml").write_text("seg: {lr: 1e-3}\n")             # a float to OmegaConf
    before = provenance.source_hash()
    (package / "profiles/demo.yaml").write_text("seg:\n  lr: 0.001\n")
    assert provenance.source_hash() == before


def test_a_file_that_does_not_decode_counts_whole_and_a_bom_is_no_code(package):
    (package / "method/b.py").write_bytes(b"# -*- coding: latin-1 -*-\nx = '\xe9'\n")
    assert provenance.code_only(package / "method/b.py") == "# -*- coding: latin-1 -*-\nx = '\udce9'\n"
    provenance.source_hash()                                                  # no error
    (package / "method/c.py").write_bytes(b"\xef\xbb\xbfx = 1  # c\n")
    assert provenance.code_only(package / "method/c.py") == "x = 1"


def test_a_process_names_the_code_it_loaded_not_what_the_files_hold_later(package):
    provenance.loaded_source.cache_clear()
    try:
        first = provenance.code()["source"]
        (package / "method/a.py").write_text("x = 2\n")
        assert provenance.source_hash() != first
        assert provenance.code()["source"] == first
    finally:
        provenance.loaded_source.cache_clear()
