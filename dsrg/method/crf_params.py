"""The dense CRF's parameters at a scale ``s``, as its backends take them (:mod:`dsrg.method.crf`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CRFParams:
    """Pairwise parameters at scale ``s`` (Section 4.1: "the default values from the Koltun public
    implementation"; the values and the scale ``s`` are those of the authors' code)."""

    scale: float = 1.0
    iterations: int = 10
    bilateral_weight: float = 10.0
    theta_alpha: float = 80.0
    theta_beta: float = 13.0
    gaussian_weight: float = 3.0
    theta_gamma: float = 3.0
