"""Losses of DSRG step 1 (Section 3.2): seeding losses (Eq. 1 and SEC's), the boundary loss, and their sum,
Eq. (2); and the retraining's per-pixel cross-entropy (:func:`pixel_loss`, Section 4.1).

All take batched tensors ``(B, C, H, W)`` on any device and are safe on empty seed sets (an image with no
seed of a kind contributes 0 for that term); the losses return a scalar averaged over the batch (the boundary
loss over its pixels too), :func:`smoothed_softmax` the ``(B, C, H, W)`` probabilities they start from. Seeds
are constants: the grown cues carry no gradient (growing is not differentiable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import expect_choice, expect_shape
from . import IGNORE, SEED_LOSSES
from . import transforms as T

SMOOTH_EPS = 1e-4
BOUNDARY_CLIP = (0.05, 20.0)     # the authors' code clamps Q / P of the boundary loss to this range


def smoothed_softmax(logits: torch.Tensor, eps: float = SMOOTH_EPS) -> torch.Tensor:
    """The authors' smoothed softmax: ``p = softmax(logits) + eps``, renormalised over classes (dim 1).

    It bounds ``-log p`` by about ``-log(eps)`` so seed pixels the network gets badly wrong do not blow up.
    ``(B, C, H, W)`` in and out.
    """
    expect_shape("logits", logits, (None, None, None, None))
    p = logits.softmax(dim=1) + eps
    return p / p.sum(dim=1, keepdim=True)


def _seed_terms(probs: torch.Tensor, cues: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    expect_shape("probs", probs, (None, None, None, None))
    expect_shape("cues", cues, tuple(probs.shape))
    w = cues.to(probs.dtype).detach()
    nll = -torch.log(probs) * w                      # (B, C, H, W), zero off the seeds
    return nll, w


def balanced_seed_loss(probs: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
    """Balanced seeding loss, Eq. (1).

    Per image: the mean of ``-log H[u, c]`` over all foreground seed entries (every foreground class
    pooled, normalised by ``sum_{c in C} |S_c|``) plus the mean over background seed pixels
    (normalised by ``|S_0|``); then the mean over the batch.

    Args:
        probs: float ``(B, C, H, W)`` class probabilities (use :func:`smoothed_softmax`).
        cues: bool ``(B, C, H, W)`` seed cues (multi-hot), channel 0 = background.
    Returns:
        scalar tensor.
    """
    nll, w = _seed_terms(probs, cues)
    bg = nll[:, 0].sum(dim=(1, 2)) / w[:, 0].sum(dim=(1, 2)).clamp(min=1)
    fg = nll[:, 1:].sum(dim=(1, 2, 3)) / w[:, 1:].sum(dim=(1, 2, 3)).clamp(min=1)
    return (bg + fg).mean()


def sec_seed_loss(probs: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
    """SEC's seeding loss (Kolesnikov & Lampert, ECCV 2016): the ablation baseline of Table 2.

    Per image, one mean of ``-log H[u, c]`` over all seed entries, background and foreground pooled;
    then the mean over the batch. Shapes as :func:`balanced_seed_loss`.
    """
    nll, w = _seed_terms(probs, cues)
    return (nll.sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp(min=1)).mean()


def boundary_loss(probs: torch.Tensor, crf_probs: torch.Tensor,
                  ratio_clip: tuple[float, float] | None = None) -> torch.Tensor:
    """Constrain-to-boundary loss of SEC, used by Eq. (2): mean over batch and pixels of KL(Q || P).

    ``KL(Q || P)[u] = sum_c Q[u, c] * log(Q[u, c] / P[u, c])`` where ``P`` is the network's (smoothed)
    output and ``Q`` its dense-CRF refinement (:func:`dsrg.method.crf.refine_for_growing`). ``Q`` is a constant (it is
    detached: SEC's later fix; the gradient flows into ``P`` only).

    Args:
        probs: float ``(B, C, H, W)``, P.
        crf_probs: float ``(B, C, H, W)``, Q.
        ratio_clip: ``None`` (default: SEC's definition, which the paper cites) or ``(lo, hi)`` to
            clamp ``Q / P`` as the DSRG code does with ``(0.05, 20)``.
    Returns:
        scalar tensor.
    """
    expect_shape("probs", probs, (None, None, None, None))
    expect_shape("crf_probs", crf_probs, tuple(probs.shape))
    q = crf_probs.detach().to(probs.dtype)
    ratio = q / probs
    if ratio_clip is not None:
        ratio = ratio.clamp(*ratio_clip)
    kl = torch.xlogy(q, ratio).sum(dim=1)              # (B, H, W); a class with Q = 0 adds 0
    return kl.mean()


def total_loss(probs: torch.Tensor, crf_probs: torch.Tensor, seeds: torch.Tensor, seed_loss: str = "balanced",
               boundary_weight: float = 1.0, ratio_clip: tuple[float, float] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (2): the seeding loss (``"balanced"``, Eq. 1, or ``"sec"``) on ``seeds`` plus ``boundary_weight``
    times the boundary loss of ``probs`` against ``crf_probs`` (``ratio_clip`` as :func:`boundary_loss`).

    Args:
        probs: float ``(B, C, H, W)``, P (:func:`smoothed_softmax`).
        crf_probs: float ``(B, C, H, W)``, Q.
        seeds: bool ``(B, C, H, W)``, the supervision (the grown seeds in DSRG).
    Returns:
        ``(loss, seeding loss, boundary loss)``, scalar tensors; only ``loss`` keeps the graph.
    """
    expect_choice("seed_loss", seed_loss, SEED_LOSSES)
    seed = (balanced_seed_loss if seed_loss == "balanced" else sec_seed_loss)(probs, seeds)
    bound = boundary_loss(probs, crf_probs, ratio_clip)
    return seed + boundary_weight * bound, seed.detach(), bound.detach()


def pixel_loss(logits: torch.Tensor, labels: torch.Tensor, loss_grid: str = "output") -> torch.Tensor:
    """Cross-entropy of logits ``(B, C, h, w)`` against label maps ``(B, H, W)`` (255 ignored), on the
    logit grid against the labels subsampled to it (``"output"``, the authors' ``label_shrink``) or on
    the label grid against bilinearly upsampled logits (``"input"``)."""
    if loss_grid == "output":
        return F.cross_entropy(logits.float(), T.subsample_labels(labels, logits.shape[2:]), ignore_index=IGNORE)
    up = F.interpolate(logits.float(), size=labels.shape[1:], mode="bilinear", align_corners=True)
    return F.cross_entropy(up, labels, ignore_index=IGNORE)
