"""The code that made a result: the package's version, the git commit of its checkout (and whether it had
uncommitted changes), and a hash of the ``dsrg/`` source tree that needs no git (the code that makes the
numbers: ``dsrg/reproduce/``, which only reads runs and draws the book's tables and figures, left out; so are
docstrings, comments and a YAML file's layout, which change no number). Each
step's ``done.json`` keeps it (:func:`dsrg.run.folders.finish`), so a table or figure can say which code made its
numbers."""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import re
import subprocess
import tokenize
from pathlib import Path

from omegaconf import OmegaConf

from .. import __version__

PACKAGE = Path(__file__).resolve().parents[1]          # dsrg/


def source_hash() -> str:
    """12 hex digits of SHA-256 over the ``dsrg/`` source files (``.py``, ``.yaml``; not ``dsrg/reproduce/``),
    their paths and what :func:`code_only` keeps of each."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()
                       and p.relative_to(PACKAGE).parts[0] != "reproduce"):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0"
                      + code_only(path).encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()[:12]


def code_only(path: Path) -> str:
    """What of a source file can change a number, as text.

    Of Python, the source less its comments and its string statements (docstrings), less trailing blanks and
    blank lines outside strings; of YAML, the values OmegaConf reads from it, with their types, keys sorted. A
    file that does not parse (or decode) counts whole."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix == ".yaml":
            return _canonical(OmegaConf.to_container(OmegaConf.load(path)))
        return _python_code_only(text)
    except Exception:                   # whatever the file holds, its hash is taken: as bytes where it cannot parse
        return path.read_bytes().decode("utf-8", "surrogateescape")


def _canonical(value) -> str:
    """A YAML file's values as one text: every key and value with its type, a mapping's keys sorted."""
    if isinstance(value, dict):
        items = sorted((type(k).__name__, repr(k), _canonical(v)) for k, v in value.items())
        return "{" + ", ".join(f"{kind} {key}: {v}" for kind, key, v in items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_canonical(v) for v in value) + "]"
    return f"{type(value).__name__} {value!r}"


def _python_code_only(text: str) -> str:
    """``text`` with comments and string statements blanked out (positions from ``tokenize`` and ``ast``, which
    say the same in every Python since 3.8), then trailing blanks and blank lines dropped, but for the lines that
    end inside a string (a value's: its blanks are its own)."""
    lines = re.split(r"\r\n|\r|\n", text)                           # the line ends Python counts, no others
    spans = [(t.start, (t.start[0], len(lines[t.start[0] - 1]))) for t in
             tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]

    def column(row: int, byte_offset: int) -> int:                  # ast counts UTF-8 bytes, tokenize characters
        return len(lines[row - 1].encode()[:byte_offset].decode())

    tree = ast.parse(text)
    statements = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
                  and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}
    verbatim = set()                                                # rows ending inside a value's string
    for node in ast.walk(tree):
        if id(node) in statements:
            spans.append(((node.lineno, column(node.lineno, node.col_offset)),
                          (node.end_lineno, column(node.end_lineno, node.end_col_offset))))
        elif isinstance(node, (ast.Constant, ast.JoinedStr)) and isinstance(getattr(node, "value", ""), (str, bytes)):
            verbatim.update(range(node.lineno, node.end_lineno))
    for (row, col), (end_row, end_col) in spans:
        for r in range(row, end_row + 1):
            line = lines[r - 1]
            start, end = (col if r == row else 0), (end_col if r == end_row else len(line))
            lines[r - 1] = line[:start] + " " * (end - start) + line[end:]
    return "\n".join(line if r in verbatim else kept for r, line in enumerate(lines, 1)
                     if r in verbatim or (kept := line.rstrip()))


@functools.lru_cache(maxsize=1)
def _git() -> tuple[str | None, bool]:
    """(short commit, uncommitted changes in dsrg/) of the checkout holding the package; (None, False)
    outside a git checkout."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--short=10", "HEAD")
        if head.returncode != 0:
            return None, False
        changed = git("status", "--porcelain", "--untracked-files=normal", "--", ".")
        return head.stdout.strip(), bool(changed.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False


@functools.lru_cache(maxsize=1)
def loaded_source() -> str:
    """The source hash (:func:`source_hash`) as this process first took it.

    A step takes it, and the git commit, as it starts (:func:`dsrg.run.folders.start`), so that its result names
    the code it ran, not what the files hold when it ends."""
    return source_hash()


def code() -> dict:
    """``{"version", "commit" (None outside git), "uncommitted" (bool), "source": loaded_source()}``, the commit
    and the hash as this process first took them."""
    commit, uncommitted = _git()
    return {"version": __version__, "commit": commit, "uncommitted": uncommitted, "source": loaded_source()}


def describe(info: dict | None) -> str:
    """A :func:`code` record in words: ``dsrg 0.1.0, commit 1ea482d (with uncommitted changes)``."""
    if not info:
        return "code not recorded"
    where = f"commit {info['commit']}" if info.get("commit") else f"source {info.get('source')} (no git)"
    return f"dsrg {info.get('version')}, {where}" + (" with uncommitted changes" if info.get("uncommitted") else "")
