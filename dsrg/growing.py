"""Deep seeded region growing, DSRG(S, H) of Section 3.3 (Eq. 3), batched.

Semantics are those of the authors' public code (steps 2 to 4 of "Region growing, exactly as the
public code does it" in ``shared/reference/official-implementation.md``); step 1, the CRF refinement
of the network's probabilities, is :func:`dsrg.crf.refine_for_growing` and is the caller's job.

For every image, starting from the ORIGINAL seed cues:

2. restrict the probabilities to the classes present in the image (background always present) and
   take, per pixel, the argmax class ``k`` and its probability ``pmax``;
3. build a label map: the seed class of each seeded pixel (the highest class index where a pixel holds
   several), then overwrite with ``k`` where ``k`` is a foreground class and ``pmax > theta_fg``, or
   ``k`` is background and ``pmax > theta_bg`` (strict ``>``; the paper's Eq. 3 writes ``>=``);
4. for each present class ``c``: the 8-connected components of pixels labelled ``c`` that contain an
   original seed of ``c`` are added to ``c``'s seeds, except pixels that are already a seed of exactly
   one other class. Seeds are never removed.

The code visits the classes in order, and lets earlier classes' growth be seen by later classes'
"other class" test. That order cannot change the result: a component of class ``c`` holds only
pixels labelled ``c``, and class ``d``'s growth only adds ``d``-labelled pixels, so on ``c``'s
pixels the seeds seen by ``c`` are always the original ones. We therefore label the components of
every (image, present class) plane in one ``scipy.ndimage.label`` call, with no Python loop over
images, classes or pixels; ``tests/test_growing.py`` checks this against a literal per-class sequential
reference.

Deviation, named: the public code nests the background test inside the foreground one, so there
background needs ``pmax > max(theta_bg, theta_fg)``. Here each side uses its own threshold, which is
what the paper's one-sided variants (Section 4.4, ``theta_fg = inf``: grow background only) mean;
for ``theta_bg >= theta_fg`` the two agree.

Growing is bookkeeping on bool/argmax data: it runs on the CPU through SciPy and returns the result
on the input's device. No gradient flows through it.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import torch

from .checks import expect_probability, expect_shape
from .io import InputError

# Connect the 8 spatial neighbours only: never across images or classes of the stacked array.
_EIGHT_CONNECTED_PLANES = np.zeros((3, 3, 3), dtype=bool)
_EIGHT_CONNECTED_PLANES[1] = True

UNLABELLED = -1


def label_map(seeds: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
              theta_fg: float = 0.85, theta_bg: float = 0.99) -> torch.Tensor:
    """Steps 2 and 3: the per-pixel class that region growing may assign.

    Args:
        seeds: bool ``(B, C, H, W)`` original cues, channel 0 = background.
        probs: float ``(B, C, H, W)`` class probabilities.
        labels: bool ``(B, C)`` classes present in each image.
    Returns:
        int64 ``(B, H, W)``: a class index, or ``UNLABELLED`` (-1).
    """
    c = seeds.shape[1]
    class_index = torch.arange(c, device=seeds.device).view(1, c, 1, 1)
    # Seed label: the highest seeded class index; -1 where no seed.
    lab = torch.where(seeds, class_index, UNLABELLED).amax(dim=1)
    # Argmax over the present classes only.
    present = labels.view(labels.shape[0], c, 1, 1)
    masked = torch.where(present, probs, torch.tensor(-1.0, dtype=probs.dtype, device=probs.device))
    pmax, k = masked.max(dim=1)
    grow_fg = (k > 0) & (pmax > theta_fg)
    grow_bg = (k == 0) & (pmax > theta_bg)
    return torch.where(grow_fg | grow_bg, k, lab)


def grow(seeds: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
         theta_fg: float = 0.85, theta_bg: float = 0.99) -> torch.Tensor:
    """One region-growing step DSRG(S, H) (Section 3.3, Eq. 3) for a batch.

    Args:
        seeds: bool ``(B, C, H, W)``, the ORIGINAL seed cues (multi-hot; channel 0 = background).
        probs: float ``(B, C, H, W)``, class probabilities (already CRF-refined if the caller refines).
        labels: bool ``(B, C)``, classes present in each image; column 0 (background) must be True.
        theta_fg: threshold shared by the foreground classes (``inf`` switches foreground growth off).
        theta_bg: background threshold (``inf`` switches background growth off).
    Returns:
        bool ``(B, C, H, W)`` on ``seeds``' device: ``seeds`` OR the grown pixels.
    """
    expect_shape("seeds", seeds, (None, None, None, None), torch.bool)
    b, c, h, w = seeds.shape
    expect_shape("probs", probs, (b, c, h, w))
    if not probs.is_floating_point():
        raise InputError(f"probs: expected a floating-point tensor of probabilities, got {probs.dtype}")
    expect_shape("labels", labels, (b, c), torch.bool)
    if b and not bool(labels[:, 0].all()):
        raise InputError("labels: column 0 (background) must be True for every image")
    expect_probability("theta_fg", theta_fg, allow_inf=True)
    expect_probability("theta_bg", theta_bg, allow_inf=True)

    with torch.no_grad():
        lab = label_map(seeds, probs.detach(), labels, theta_fg, theta_bg).cpu().numpy()
        seeds_np = seeds.cpu().numpy()
        # Only the (image, class) planes of present classes can grow: label just those.
        img, cls = np.nonzero(labels.cpu().numpy())
        candidate = lab[img] == cls[:, None, None]                    # (P, H, W)
        plane_seeds = seeds_np[img, cls]                              # (P, H, W)
        components, n = ndi.label(candidate, structure=_EIGHT_CONNECTED_PLANES)
        touched = np.zeros(n + 1, dtype=bool)
        touched[components[plane_seeds & candidate]] = True
        touched[0] = False
        reached = touched[components]

        # A pixel that is a seed of exactly one other class is never added.
        single = seeds_np.sum(axis=1) == 1                            # (B, H, W)
        owned_by_other = single[img] & ~plane_seeds
        grown = seeds_np.copy()
        grown[img, cls] |= reached & ~owned_by_other
    return torch.from_numpy(grown).to(seeds.device)
