"""Shape and value checks that give errors naming the argument and what was expected."""

from __future__ import annotations

from typing import Sequence

import torch

from .io import InputError


def expect_shape(name: str, t: torch.Tensor, shape: Sequence[int | None], dtype: torch.dtype | None = None) -> None:
    """Raise InputError unless ``t`` has ``len(shape)`` dims matching ``shape`` (None = any size)."""
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if t.dim() != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape)):
        raise InputError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    if dtype is not None and t.dtype != dtype:
        raise InputError(f"{name}: expected dtype {dtype}, got {t.dtype}")


def expect_probability(name: str, value: float, allow_inf: bool = False) -> None:
    """A threshold in [0, 1], or +inf where ``allow_inf`` (``inf`` switches that side off)."""
    ok = 0.0 <= value <= 1.0 or (allow_inf and value == float("inf"))
    if not ok:
        extra = " or inf" if allow_inf else ""
        raise InputError(f"{name}: expected a value in [0, 1]{extra}, got {value!r}")


def expect_positive_int(name: str, value: object) -> None:
    """Raise InputError unless ``value`` is an int >= 1 (a bool is not accepted)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}: expected a positive integer, got {value!r}")
