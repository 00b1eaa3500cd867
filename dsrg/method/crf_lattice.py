"""The dense CRF's ``lattice`` backend: mean-field inference with its Gaussian kernels filtered on the
permutohedral lattice (:mod:`dsrg.method.lattice`), as pydensecrf filters them, in torch on the inputs' device,
for images of any sizes at once.
"""

from __future__ import annotations

import numpy as np
import torch

from . import lattice as lat
from .crf_params import CRFParams
from .mean_field import Kernel, _mean_field_steps, _normalisation


def _features(h: int, w: int, sxy: float, device: torch.device, rgb: torch.Tensor | None = None,
              srgb: float = 1.0) -> torch.Tensor:
    """pydensecrf's kernel features of an ``h x w`` grid, row-major: ``(x, y) / sxy`` and, with ``rgb``
    (uint8 ``(h, w, 3)``), ``(r, g, b) / srgb``; float32 ``(h * w, 2 or 5)``, float32 divisions as its."""
    sx = torch.tensor(float(np.float32(sxy)), device=device)
    yy, xx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    cols = [xx.reshape(-1) / sx, yy.reshape(-1) / sx]
    if rgb is not None:
        sr = torch.tensor(float(np.float32(srgb)), device=device)
        cols += list((rgb.reshape(-1, 3).float() / sr).unbind(1))
    return torch.stack(cols, 1)


def lattice_crf(energies: list[torch.Tensor], rgbs: list[torch.Tensor], params: CRFParams) -> list[torch.Tensor]:
    """Mean-field inference on the permutohedral lattice (:mod:`dsrg.method.lattice`) for images of any
    sizes at once, as pydensecrf computes it for each (its Gaussian kernel, then its bilateral one).

    Args:
        energies: float32 unary energies ``(C, h_k, w_k)``, one per image, all on one device.
        rgbs: uint8 ``(h_k, w_k, 3)`` images on that device.
        params: pairwise parameters and scale.
    Returns:
        the marginals ``Q``, float32 ``(C, h_k, w_k)`` per image.
    """
    dev = energies[0].device
    sizes = [e.shape[1] * e.shape[2] for e in energies]
    group = torch.cat([torch.full((n,), k, dtype=torch.long, device=dev) for k, n in enumerate(sizes)])
    origin = torch.tensor([k for k, n in enumerate(sizes) if n % 4], device=dev, dtype=torch.long)  # lattice.build
    kernels = []
    for weight, sxy, srgb in ((params.gaussian_weight, params.theta_gamma / params.scale, None),
                              (params.bilateral_weight, params.theta_alpha / params.scale, params.theta_beta)):
        if weight == 0:
            continue
        features = [_features(e.shape[1], e.shape[2], sxy, dev, None if srgb is None else im, srgb or 1.0)
                    for e, im in zip(energies, rgbs)]
        grid = lat.build(torch.cat(features), group, origin)
        norm = _normalisation(lat.filter(grid, torch.ones(group.shape[0], 1, device=dev)))
        kernels.append(Kernel(lambda q, grid=grid: lat.filter(grid, q), norm, weight))
    neg_u = -torch.cat([e.reshape(e.shape[0], -1).T for e in energies]).float()     # (P, C)
    q = _mean_field_steps(neg_u, kernels, params.iterations)
    return [part.T.reshape(e.shape) for part, e in zip(q.split(sizes), energies)]
