"""key=value overrides of typed configs: applied, type-checked, and bad ones named."""

from dataclasses import dataclass

import pytest

from dsrg.config import apply_overrides
from dsrg.io import InputError


@dataclass
class Example:
    n_train: int = 10
    theta_fg: float = 0.85
    name: str = "demo"


def test_overrides_are_applied_with_their_types():
    cfg = apply_overrides(Example(), ["n_train=3", "theta_fg=inf", "name=voc"])
    assert cfg == Example(n_train=3, theta_fg=float("inf"), name="voc")
    assert apply_overrides(Example(), []) == Example()


def test_an_unknown_key_is_named_with_the_allowed_keys():
    with pytest.raises(InputError, match=r"'n_trian'.*Allowed keys: n_train: int, theta_fg: float"):
        apply_overrides(Example(), ["n_trian=3"])


def test_a_value_of_the_wrong_type_is_named():
    with pytest.raises(InputError, match="n_train"):
        apply_overrides(Example(), ["n_train=many"])


def test_an_override_without_equals_sign_is_rejected():
    with pytest.raises(InputError, match="expected key=value"):
        apply_overrides(Example(), ["n_train"])
