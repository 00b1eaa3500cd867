"""Seed cues (Section 3.1): foreground from CAM heatmaps, background from saliency, stacked.

The cues are multi-hot bool tensors ``(B, C, h, w)`` on the network's output grid, channel 0 =
background, a foreground channel set only for the classes present in the image.

Foreground rules (for each present class, on its CAM heatmap):

- ``fraction_of_max`` (default, the authors' public code): ``heat > fraction * max(heat)``;
- ``top_fraction`` (the paper's wording, "top 20% of the largest value", read as a rank): the pixels
  whose heat is in the top ``fraction`` of the heatmap's values (``heat >= quantile(1 - fraction)``).
  The reference notes call this rule ``top_quantile``.

Background rule (the paper): saliency normalised to [0, 1] per image, ``saliency < 0.06``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import expect_shape
from .io import InputError

FG_RULES = ("fraction_of_max", "top_fraction")


def cam_foreground_cues(cams: torch.Tensor, labels: torch.Tensor, rule: str = "fraction_of_max",
                        fraction: float = 0.2) -> torch.Tensor:
    """Foreground cues from CAM heatmaps.

    Args:
        cams: float ``(B, C, h, w)`` class activation maps (channel 0 is not used).
        labels: bool ``(B, C)`` classes present.
        rule: one of ``FG_RULES``.
        fraction: 0.2 in the paper.
    Returns:
        bool ``(B, C, h, w)``; channel 0 and absent classes all False.
    """
    expect_shape("cams", cams, (None, None, None, None))
    b, c, h, w = cams.shape
    expect_shape("labels", labels, (b, c), torch.bool)
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"fraction: expected a value in (0, 1], got {fraction!r}")
    flat = cams.detach().float().reshape(b, c, h * w)
    if rule == "fraction_of_max":
        peak = flat.amax(dim=2, keepdim=True)
        cue = (flat > fraction * peak) & (peak > 0)
    elif rule == "top_fraction":
        cut = torch.quantile(flat, 1.0 - fraction, dim=2, keepdim=True)
        cue = flat >= cut
    else:
        raise InputError(f"rule: expected one of {FG_RULES}, got {rule!r}")
    cue = cue.view(b, c, h, w) & labels.view(b, c, 1, 1)
    cue[:, 0] = False
    return cue


def normalize_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each ``(H, W)`` map of a ``(B, H, W)`` batch to [0, 1].

    A constant map carries no information; it becomes all ones (no background cue), the safe side.
    The same rule as :func:`dsrg.saliency.normalize` (NumPy, one map at image resolution); here it is
    applied again on the output grid, after resizing, so that the threshold reads a [0, 1] map there.
    """
    flat = maps.reshape(maps.shape[0], -1).float()
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp(min=1e-12), torch.ones_like(flat))
    return out.view_as(maps)


def saliency_background_cues(saliency: torch.Tensor, size: tuple[int, int] | None = None,
                             threshold: float = 0.06) -> torch.Tensor:
    """Background cues: pixels whose normalised saliency is below ``threshold`` (0.06 in the paper).

    Args:
        saliency: float ``(B, H, W)`` saliency maps (any range: normalised here per image).
        size: ``(h, w)`` of the output grid; the maps are resized bilinearly first. None = keep.
    Returns:
        bool ``(B, h, w)``.
    """
    expect_shape("saliency", saliency, (None, None, None))
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold: expected a value in [0, 1], got {threshold!r}")
    sal = saliency.float()
    if size is not None and tuple(size) != tuple(sal.shape[1:]):
        sal = F.interpolate(sal.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=True).squeeze(1)
    return normalize_per_image(sal) < threshold


def stack_cues(foreground: torch.Tensor, background: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Stack foreground ``(B, C, h, w)`` and background ``(B, h, w)`` cues into one multi-hot tensor.

    Channel 0 takes the background cue; channels of classes absent from ``labels`` are cleared.
    """
    expect_shape("foreground", foreground, (None, None, None, None), torch.bool)
    b, c, h, w = foreground.shape
    expect_shape("background", background, (b, h, w), torch.bool)
    expect_shape("labels", labels, (b, c), torch.bool)
    cues = foreground & labels.view(b, c, 1, 1)
    cues[:, 0] = background
    return cues


def make_cues(cams: torch.Tensor, saliency: torch.Tensor, labels: torch.Tensor, rule: str = "fraction_of_max",
              fraction: float = 0.2, bg_threshold: float = 0.06) -> torch.Tensor:
    """CAM foreground cues + saliency background cues on the CAM grid: bool ``(B, C, h, w)``."""
    fg = cam_foreground_cues(cams, labels, rule, fraction)
    bg = saliency_background_cues(saliency, size=tuple(cams.shape[2:]), threshold=bg_threshold)
    return stack_cues(fg, bg, labels)
