"""Deep seeded region growing, DSRG(S, H) of Section 3.3 (Eq. 3), batched; no gradient flows through it.

From the ORIGINAL seeds and the CRF-refined probabilities (:func:`dsrg.method.crf.refine_for_growing`, step 1
of the authors' recipe), per image: :func:`label_map` gives each pixel the class growing may assign (the
argmax over the present classes where it clears its threshold, else its seed class; steps 2 and 3), then every
present class adds the 8-connected components of its label that hold one of its seeds, except pixels that are a
seed of exactly one other class (step 4). Seeds are never removed. The thresholds compare with a strict ``>``,
each side with its own: the book's fidelity chapter says why.

``method`` of :func:`grow` picks how the components are found, with identical results: ``scipy``, ``torch`` or
``triton`` (:mod:`dsrg.method.reach`), ``numba`` (a compiled CPU sweep that is :func:`label_map` and step 4 in
one pass, the rule's compiled twin), or ``auto`` (triton on CUDA where it compiles and passes its check there,
else torch; numba on the CPU, else scipy).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import InputError, expect_choice, expect_probability, expect_shape
from . import GROW_METHODS as METHODS
from . import THETA_BG, THETA_FG
from .reach import TRITON_MAX_SIDE, reach_scipy, reach_torch, reach_triton, triton_works

UNLABELLED = -1


def label_map(seeds: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
              theta_fg: float = THETA_FG, theta_bg: float = THETA_BG) -> torch.Tensor:
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
    masked = torch.where(present, probs, -1.0)          # a Python scalar: no copy from the host on CUDA
    pmax, k = masked.max(dim=1)
    grow_fg = (k > 0) & (pmax > theta_fg)
    grow_bg = (k == 0) & (pmax > theta_bg)
    return torch.where(grow_fg | grow_bg, k, lab)


def grow(seeds: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
         theta_fg: float = THETA_FG, theta_bg: float = THETA_BG, method: str = "auto") -> torch.Tensor:
    """One region-growing step DSRG(S, H) (Section 3.3, Eq. 3) for a batch.

    Args:
        seeds: bool ``(B, C, H, W)``, the ORIGINAL seed cues (multi-hot; channel 0 = background).
        probs: float ``(B, C, H, W)``, class probabilities (already CRF-refined if the caller refines).
        labels: bool ``(B, C)``, classes present in each image; column 0 (background) must be True
            (checked where ``labels`` is on the CPU).
        theta_fg: threshold shared by the foreground classes (``inf`` switches foreground growth off).
        theta_bg: background threshold (``inf`` switches background growth off).
        method: ``"auto"``, ``"scipy"``, ``"numba"``, ``"torch"`` or ``"triton"`` (module docstring); the result
            does not depend on it. ``scipy`` and ``numba`` run on the CPU and return to ``seeds``' device.
    Returns:
        bool ``(B, C, H, W)`` on ``seeds``' device: ``seeds`` OR the grown pixels.
    """
    expect_shape("seeds", seeds, (None, None, None, None), torch.bool)
    b, c, h, w = seeds.shape
    expect_shape("probs", probs, (b, c, h, w))
    if not probs.is_floating_point():
        raise InputError(f"probs: expected a floating-point tensor of probabilities, got {probs.dtype}")
    expect_shape("labels", labels, (b, c), torch.bool)
    if b and not labels.is_cuda and not bool(labels[:, 0].all()):      # on CUDA: no read back (a host sync)
        raise InputError("labels: column 0 (background) must be True for every image")
    expect_probability("theta_fg", theta_fg, allow_inf=True)
    expect_probability("theta_bg", theta_bg, allow_inf=True)
    method = resolve_method(method, seeds.device, max(h, w))
    device = seeds.device

    with torch.no_grad():
        if method == "numba":
            return _grow_numba(seeds, probs.detach(), labels, theta_fg, theta_bg)
        on = torch.device("cpu") if method == "scipy" else seeds.device
        seeds, labels = seeds.to(on), labels.to(on)
        lab = label_map(seeds, probs.detach().to(on), labels, theta_fg, theta_bg)          # (B, H, W)
        if method == "triton":
            if on.type == "cuda" and not triton_works(on):
                raise InputError(f"method='triton' failed its check on {on} (stderr says why); method='torch' "
                                 f"gives the same result")
            return grow_every_plane(seeds, lab, labels, reach_triton)
        if method == "torch" and on.type == "cuda":
            return grow_every_plane(seeds, lab, labels)
        img, cls = torch.nonzero(labels, as_tuple=True)          # the (image, class) planes that can grow
        candidate = lab[img] == cls.view(-1, 1, 1)                                           # (P, H, W)
        plane_seeds = seeds[img, cls]                                                        # (P, H, W)
        if method == "torch":
            reached = reach_torch(candidate, plane_seeds)
        else:
            reached = torch.from_numpy(reach_scipy(candidate.numpy(), plane_seeds.numpy()))
        owned_by_other = (seeds.sum(dim=1) == 1)[img] & ~plane_seeds    # a seed of exactly one other class
        grown = seeds.clone()
        grown[img, cls] = plane_seeds | (reached & ~owned_by_other)
    return grown.to(device)


def grow_every_plane(seeds: torch.Tensor, lab: torch.Tensor, labels: torch.Tensor, reach=reach_torch) -> torch.Tensor:
    """Step 4 of :func:`grow` by ``reach`` (:func:`~dsrg.method.reach.reach_torch`, or
    :func:`~dsrg.method.reach.reach_triton`) on every (image, class) plane, an absent class's plane empty: more
    planes than the present classes', found without the device sync that selecting those takes (what
    :func:`grow` runs on CUDA).

    Args:
        seeds: bool ``(B, C, H, W)`` original cues; lab: int64 ``(B, H, W)`` of :func:`label_map`;
        labels: bool ``(B, C)``.
    Returns:
        bool ``(B, C, H, W)``: ``seeds`` OR the grown pixels.
    """
    b, c, h, w = seeds.shape
    candidate = (lab.unsqueeze(1) == torch.arange(c, device=lab.device).view(1, c, 1, 1)) & labels.reshape(b, c, 1, 1)
    reached = reach(candidate.view(b * c, h, w), seeds.reshape(b * c, h, w)).view(b, c, h, w)
    owned_by_other = (seeds.sum(dim=1, keepdim=True) == 1) & ~seeds    # a seed of exactly one other class
    return seeds | (reached & ~owned_by_other)


def resolve_method(method: str, device: torch.device, side: int | None = None) -> str:
    """The method that ``method`` (one of ``METHODS``) runs as for tensors on ``device``, planes of at most
    ``side`` pixels a side: ``auto`` is ``triton`` on CUDA where :func:`~dsrg.method.reach.triton_works` there
    and the planes fit (:data:`~dsrg.method.reach.TRITON_MAX_SIDE`; ``side`` None: not known to fit), else
    ``torch``; ``numba`` on the CPU where numba imports, else ``scipy``."""
    expect_choice("method", method, METHODS)
    if method != "auto":
        return method
    device = torch.device(device)
    if device.type == "cuda":
        fits = side is not None and side <= TRITON_MAX_SIDE
        return "triton" if fits and triton_works(device) else "torch"
    return "numba" if _numba_kernel() is not None else "scipy"


def _grow_numba(seeds: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
                theta_fg: float, theta_bg: float) -> torch.Tensor:
    """:func:`grow` through the compiled CPU sweep (shapes as there)."""
    kernel = _numba_kernel()
    if kernel is None:
        raise InputError("method='numba' needs the numba package (pip install numba); "
                         "method='scipy' gives the same result without it")
    b, c, h, w = seeds.shape
    seeds_np = np.ascontiguousarray(seeds.cpu().numpy()).reshape(b, c, h * w)
    probs_np = probs.cpu().numpy()
    # Thresholds rounded to the probabilities' precision, as torch and NumPy compare a tensor with a Python
    # float; half precision is then widened to float32, exactly.
    thresholds = [probs_np.dtype.type(t) for t in (theta_fg, theta_bg)]
    if probs_np.dtype != np.float64:
        probs_np = probs_np.astype(np.float32, copy=False)
        thresholds = [np.float32(t) for t in thresholds]
    probs_np = np.ascontiguousarray(probs_np).reshape(b, c, h * w)
    grown = seeds_np.copy()
    kernel(seeds_np, probs_np, np.ascontiguousarray(labels.cpu().numpy()), *thresholds, h, w, grown)
    return torch.from_numpy(grown.reshape(b, c, h, w)).to(seeds.device)


@functools.cache
def _numba_kernel():
    """The compiled sweep of ``method="numba"``, or None where numba cannot be imported: the COMPILED TWIN of
    :func:`label_map` and step 4 of :func:`grow` (a change to the rule there must be made here too;
    ``tests/test_growing.py`` compares the methods on random inputs).

    ``kernel(seeds, probs, labels, theta_fg, theta_bg, h, w, out)``: ``seeds`` bool ``(B, C, H*W)``,
    ``probs`` float ``(B, C, H*W)``, ``labels`` bool ``(B, C)``, ``out`` a copy of ``seeds`` that the
    grown pixels are written into. Per image:

    - one pass over the C seed planes: the highest seeded class and the number of seeds of each pixel;
    - one pass over the present planes: the first maximum ``k`` and its probability (ties to the lower
      class, as ``torch.max``); the label is ``k`` where it clears its threshold, else the seed label;
    - a flood fill from every pixel that is a seed of its own label, through 8-neighbours of equal label
      (on a grid padded by one unlabelled pixel): exactly the pixels of components that hold a seed of
      their class;
    - each reached pixel joins its label's seeds unless it is a seed of exactly one other class.
    """
    try:
        from numba import njit
    except ImportError:
        return None

    @njit(cache=True, nogil=True)
    def kernel(seeds, probs, labels, theta_fg, theta_bg, h, w, out):  # pragma: no cover (compiled)
        b_, c_, n = seeds.shape
        wp = w + 2                                 # labels and reached live on a grid padded by one pixel,
        lab = np.full((h + 2) * wp, -2, np.int32)  # whose border (-2) equals no label: no bounds checks
        reached = np.zeros((h + 2) * wp, np.bool_)
        neighbours = np.array([-wp - 1, -wp, -wp + 1, -1, 1, wp - 1, wp, wp + 1], np.int32)
        seed_label = np.empty(n, np.int32)
        nseed = np.empty(n, np.int32)
        best = np.empty(n, probs.dtype)
        k = np.empty(n, np.int32)
        stack = np.empty(n, np.int32)
        for b in range(b_):
            seed_label[:] = UNLABELLED
            nseed[:] = 0
            best[:] = -1.0
            k[:] = 0
            for c in range(c_):
                s = seeds[b, c]
                for p in range(n):                 # branch-free, so LLVM vectorises it
                    v = s[p]
                    nseed[p] += v
                    seed_label[p] = c if v else seed_label[p]
                if labels[b, c]:
                    q = probs[b, c]
                    for p in range(n):
                        better = q[p] > best[p]
                        best[p] = q[p] if better else best[p]
                        k[p] = c if better else k[p]
            top = 0
            for y in range(h):
                for x in range(w):
                    p = y * w + x
                    kp = k[p]
                    grows = (kp > 0 and best[p] > theta_fg) or (kp == 0 and best[p] > theta_bg)
                    label = kp if grows else seed_label[p]
                    at = (y + 1) * wp + x + 1
                    lab[at] = label
                    reached[at] = label >= 0 and seeds[b, label, p]
                    if reached[at]:
                        stack[top] = at
                        top += 1
            while top > 0:                         # flood fill through 8-neighbours of equal label
                top -= 1
                at = stack[top]
                for d in neighbours:
                    nb = at + d
                    if lab[nb] == lab[at] and not reached[nb]:
                        reached[nb] = True
                        stack[top] = nb
                        top += 1
            for y in range(h):
                for x in range(w):
                    at = (y + 1) * wp + x + 1
                    p = y * w + x
                    if reached[at] and (nseed[p] != 1 or seeds[b, lab[at], p]):
                        out[b, lab[at], p] = True

    return kernel


