"""Seed cues (Section 3.1): foreground from CAM heatmaps, background from saliency, stacked into multi-hot
bool tensors ``(B, C, h, w)`` on the network's output grid (channel 0 = background; a foreground channel set
only for the classes present in the image).

Foreground, per present class: ``fraction_of_max`` (the public seed code of this line of work, the default),
``heat > 0.2 max(heat)``, or ``top_fraction`` (the paper's words read as a rank), the top 20 % of the heatmap's
values. Background: normalised saliency ``< 0.06``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError, expect_choice, expect_probability, expect_shape
from . import BACKGROUND_THRESHOLD, FG_FRACTION, FG_RULES
from .saliency import normalize_maps


def cam_foreground_cues(cams: torch.Tensor, labels: torch.Tensor, rule: str = "fraction_of_max",
                        fraction: float = FG_FRACTION) -> torch.Tensor:
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
    expect_choice("rule", rule, FG_RULES)
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"fraction: expected a value in (0, 1], got {fraction!r}")
    flat = cams.detach().float().reshape(b, c, h * w)
    if rule == "fraction_of_max":
        peak = flat.amax(dim=2, keepdim=True)
        cue = (flat > fraction * peak) & (peak > 0)
    else:                                          # top_fraction
        cut = torch.quantile(flat, 1.0 - fraction, dim=2, keepdim=True)
        cue = flat >= cut
    cue = cue.view(b, c, h, w) & labels.view(b, c, 1, 1)
    cue[:, 0] = False
    return cue


def background_cues(saliency, threshold: float = BACKGROUND_THRESHOLD):
    """The paper's background rule: normalised saliency strictly below ``threshold``. ``saliency``: a tensor
    or an array of any shape; returns bool of the same kind and shape."""
    expect_probability("threshold", threshold)
    return saliency < threshold


def saliency_background_cues(saliency: torch.Tensor, size: tuple[int, int] | None = None,
                             threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """:func:`background_cues` on the output grid: the maps resized there, then normalised there again.

    Args:
        saliency: float ``(B, H, W)`` saliency maps (any range: normalised here per image).
        size: ``(h, w)`` of the output grid; the maps are resized bilinearly first. None = keep.
    Returns:
        bool ``(B, h, w)``.
    """
    expect_shape("saliency", saliency, (None, None, None))
    expect_probability("threshold", threshold)
    sal = saliency.float()
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise InputError(f"size: expected the output grid's (h, w), each at least 1, got {tuple(size)}")
    if size is not None and tuple(size) != tuple(sal.shape[1:]):
        sal = F.interpolate(sal.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=True).squeeze(1)
    return background_cues(normalize_maps(sal), threshold)


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
              fraction: float = FG_FRACTION, bg_threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """CAM foreground cues + saliency background cues on the CAM grid: bool ``(B, C, h, w)``."""
    fg = cam_foreground_cues(cams, labels, rule, fraction)
    bg = saliency_background_cues(saliency, size=tuple(cams.shape[2:]), threshold=bg_threshold)
    return stack_cues(fg, bg, labels)
