"""Typed configs: dataclasses, overridable by ``key=value`` strings (command line, papermill).

OmegaConf checks types against the dataclass; unknown keys and bad values become InputError
messages that name the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .io import InputError, first_line

T = TypeVar("T")


def merge(schema, layers: Sequence, overrides: Sequence[str], example: str, explain) -> Any:
    """``schema`` (a dataclass or instance) merged with ``layers`` (dicts / OmegaConf configs) and then
    ``key=value`` ``overrides``, as a dataclass instance. Any failure is an InputError:
    ``explain(key, reason)`` words it; ``example`` shows the ``key=value`` form."""
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r}: expected key=value, e.g. {example}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), *layers, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        reason = first_line(exc) or type(exc).__name__
        raise InputError(explain(key, reason)) from None


def apply_overrides(cfg: T, overrides: Sequence[str] = ()) -> T:
    """Return a copy of the dataclass ``cfg`` with ``key=value`` overrides applied (nested keys: ``a.b=1``)."""
    fields = {f.name: f.type for f in dataclasses.fields(cfg)}
    allowed = ", ".join(f"{k}: {getattr(t, '__name__', t)}" for k, t in fields.items())
    return merge(cfg, [], overrides, f"{next(iter(fields))}=...",
                 lambda key, reason: f"config key {key!r}: {reason}. Allowed keys: {allowed}")


def to_dict(cfg: Any) -> dict:
    """A plain dict of a dataclass config (for JSON records)."""
    return dataclasses.asdict(cfg)
