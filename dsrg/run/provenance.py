"""The code that made a result: the package's version, the git commit of its checkout (and whether it had
uncommitted changes), and a hash of the ``dsrg/`` source tree that needs no git (the code that makes the
numbers: ``dsrg/reproduce/``, which only reads runs and draws the book's tables and figures, left out). Each
step's ``done.json`` keeps it (:func:`dsrg.run.folders.finish`), so a table or figure can say which code made its
numbers."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from .. import __version__

PACKAGE = Path(__file__).resolve().parents[1]          # dsrg/


def source_hash() -> str:
    """12 hex digits of SHA-256 over the ``dsrg/`` source files (``.py``, ``.yaml``; not ``dsrg/reproduce/``),
    paths and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()
                       and p.relative_to(PACKAGE).parts[0] != "reproduce"):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


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


def code() -> dict:
    """``{"version", "commit" (None outside git), "uncommitted" (bool), "source": source_hash()}``."""
    commit, uncommitted = _git()
    return {"version": __version__, "commit": commit, "uncommitted": uncommitted, "source": source_hash()}


def describe(info: dict | None) -> str:
    """A :func:`code` record in words: ``dsrg 0.1.0, commit 1ea482d (with uncommitted changes)``."""
    if not info:
        return "code not recorded"
    where = f"commit {info['commit']}" if info.get("commit") else f"source {info.get('source')} (no git)"
    return f"dsrg {info.get('version')}, {where}" + (" with uncommitted changes" if info.get("uncommitted") else "")
