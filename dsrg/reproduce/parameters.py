"""A page's parameters (its papermill cell): the profile overrides they make, and each checked, with one message
naming the parameter where it is not what the page takes."""

from __future__ import annotations

import ast
import difflib
import shlex
import sys
from typing import Sequence

import yaml

from ..errors import InputError
from ..overrides import given_twice

PAPERMILL_CELL = "# Parameters\n"   # how papermill's Python translator starts the cell it injects


def notebook_overrides(data_root: str | None = None, out: str | None = None, device: str | None = None,
                       seed: int | None = None, iterations: int | None = None,
                       extra: Sequence[str] = ()) -> list[str]:
    """The ``key=value`` overrides of a notebook's parameters cell (None keeps the profile's value), and
    ``progress=false``. A papermill parameter the page does not have is refused first
    (:func:`refuse_unknown_parameters`).

    ``iterations`` sets ``seg.iterations`` (DSRG step 1, the step every table is about); any other field
    goes in ``extra`` (e.g. ``["retrain.iterations=1000", "eval.crf=false"]``).
    """
    refuse_unknown_parameters()
    if isinstance(extra, str):                  # papermill -p overrides "a=1 b=2": words, as a shell splits them
        extra = shlex.split(extra)
    if not isinstance(extra, (list, tuple)) or not all(isinstance(x, str) for x in extra):
        raise InputError(f"overrides: expected key=value strings, e.g. ['retrain.iterations=1000'] (papermill: "
                         f"-y 'overrides: [retrain.iterations=1000]'), got {extra!r}")
    out_list = [f"{k}={v}" for k, v in (("data.root", data_root), ("out", out), ("device", device),
                                          ("seed", seed), ("seg.iterations", iterations)) if v is not None]
    settings = ["progress=false", *out_list, *extra]     # no progress bars in a rendered page
    for note in given_twice(settings):                   # e.g. -p seed 1 and seed=2 among the overrides
        print(f"note: {note}", file=sys.stderr)
    return settings


def bound_names(source: str, assigned_only: bool = False) -> set[str]:
    """The names a cell's Python ``source`` binds (assignments, imports, definitions; ``assigned_only``: its
    assignments); none if it does not parse (a magic)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    if assigned_only:
        return names
    names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    return names | {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def refuse_unknown_parameters(history: Sequence[str] | None = None) -> None:
    """An InputError for a papermill parameter that no cell before papermill's (``# Parameters``) sets: a
    typo such as ``-p profil smoke``, which papermill only warns about and the page would run without.

    ``history``: the kernel's inputs in order (IPython's ``In``, read where IPython runs this); nothing to
    check without a papermill cell. The parameters named in the message are those the cell before papermill's
    assigns (the page's parameters cell)."""
    if history is None:
        shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
        history = shell.user_ns.get("In", []) if shell is not None else []
    injected = [i for i, text in enumerate(history) if text.startswith(PAPERMILL_CELL)]
    if not injected:
        return
    at = injected[-1]
    unknown = sorted(name for name in bound_names(history[at]) - set().union(*(bound_names(t) for t in history[:at]))
                     if not name.startswith("PAPERMILL_"))    # --inject-paths: papermill's own, for any page
    if unknown:
        parameters = sorted(bound_names(history[at - 1], assigned_only=True)) if at else []
        hints = [f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, parameters, 1))
                 else repr(name) for name in unknown]
        raise InputError(f"papermill parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: not a parameter "
                         f"of this page (papermill only warns); its parameters: {', '.join(parameters) or 'none'}")


def whole_number(name: str, value, minimum: int = 0, none: bool = False) -> int | None:
    """A notebook parameter that counts something: ``value`` itself, or an InputError naming ``name`` (None
    allowed where ``none``)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name}: expected a whole number >= {minimum}{' or None' if none else ''}, got {value!r}")
    return value


def flag(name: str, value) -> bool:
    """A notebook parameter that switches something: ``value`` itself, or an InputError naming ``name``."""
    if not isinstance(value, bool):
        raise InputError(f"{name}: expected True or False, got {value!r}")
    return value


def numbers(name: str, value) -> list[float]:
    """A notebook parameter that lists values: a list of numbers (one number: a list of it; a string: read as
    YAML, which papermill's ``-p theta_b "[0.99, 0.95]"`` passes), or an InputError naming ``name``."""
    given = value
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
        # YAML 1.1 reads 1e-3 as text
        value = [_float(v) for v in value] if isinstance(value, list) else _float(value)
    values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)) or not values or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InputError(f"{name}: expected a list of at least one number, e.g. [0.99, 0.95], got {given!r}")
    return [float(v) for v in values]


def _float(v):
    """``v`` as a float where it is text that Python reads as one ("1e-3", "inf"); else as it is."""
    try:
        return float(v) if isinstance(v, str) else v
    except ValueError:
        return v
