"""Typed configs: dataclasses, overridable by ``key=value`` strings (command line, papermill).

OmegaConf checks types against the dataclass; unknown keys and bad values become InputError
messages that name the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .io import InputError

T = TypeVar("T")


def apply_overrides(cfg: T, overrides: Sequence[str] = ()) -> T:
    """Return a copy of the dataclass ``cfg`` with ``key=value`` overrides applied (nested keys: ``a.b=1``)."""
    fields = {f.name: f.type for f in dataclasses.fields(cfg)}
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r}: expected key=value, e.g. {next(iter(fields))}=...")
    base = OmegaConf.structured(cfg)
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
        out = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        allowed = ", ".join(f"{k}: {getattr(t, '__name__', t)}" for k, t in fields.items())
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"config key {key!r}: {reason}. Allowed keys: {allowed}") from None
    return out


def to_dict(cfg: Any) -> dict:
    """A plain dict of a dataclass config (for JSON records)."""
    return dataclasses.asdict(cfg)
