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

Three ways to run it (``method`` of :func:`grow`), with identical results (``tests/test_growing.py``
compares them on random inputs):

- ``"scipy"``: one ``scipy.ndimage.label`` over the stacked planes on the CPU (the tensors go to the CPU
  and the result comes back to the input's device);
- ``"numba"``: one compiled sweep over the batch on the CPU (``_numba_kernel``): per image, the label
  map in two passes over the planes, then a flood fill from the seeds through equal labels (an explicit
  stack, 8 neighbours). It reads every plane once and labels no component that no seed touches, which
  makes it the fastest CPU path (``benchmarks/grow.py``). It needs ``numba`` (a dependency; compiled on
  first use, about 1.5 s, then cached on disk);
- ``"torch"``: geodesic dilation on the tensors' device: ``reached = seeds & candidate``, then
  ``reached = maxpool3x3(reached) & candidate`` until nothing changes (8-connectivity; every plane is
  its own image of the pooling, so nothing crosses between planes). Reached is monotone, so a round of
  ``check_every`` dilations that changes nothing means a fixed point: the check (one device sync) runs
  once per round. The number of dilations is the longest geodesic distance from a seed inside its
  component (about the grid side for compact regions).
- ``"auto"``: ``"torch"`` for CUDA tensors; otherwise ``"numba"``, or ``"scipy"`` where numba cannot be
  imported.

No gradient flows through growing.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from .checks import expect_probability, expect_shape
from .io import InputError

# Connect the 8 spatial neighbours only: never across images or classes of the stacked array.
_EIGHT_CONNECTED_PLANES = np.zeros((3, 3, 3), dtype=bool)
_EIGHT_CONNECTED_PLANES[1] = True

UNLABELLED = -1
METHODS = ("auto", "scipy", "numba", "torch")
CHECK_EVERY = 8


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


def reach_scipy(candidate: np.ndarray, plane_seeds: np.ndarray) -> np.ndarray:
    """The pixels of ``candidate`` 8-connected (within their plane) to a pixel of ``plane_seeds & candidate``.

    Args:
        candidate, plane_seeds: bool ``(P, H, W)`` NumPy arrays, one plane per (image, class).
    Returns:
        bool ``(P, H, W)``.
    """
    components, n = ndi.label(candidate, structure=_EIGHT_CONNECTED_PLANES)
    touched = np.zeros(n + 1, dtype=bool)
    touched[components[plane_seeds & candidate]] = True
    touched[0] = False
    return touched[components]


def reach_torch(candidate: torch.Tensor, plane_seeds: torch.Tensor, check_every: int = CHECK_EVERY) -> torch.Tensor:
    """:func:`reach_scipy` by geodesic dilation on the tensors' device (module docstring).

    Args:
        candidate, plane_seeds: bool ``(P, H, W)`` tensors on one device.
        check_every: dilations between two convergence checks (each check is one device sync).
    Returns:
        bool ``(P, H, W)`` on that device.
    """
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise InputError(f"check_every: expected a positive integer, got {check_every!r}")
    if candidate.numel() == 0:
        return candidate.clone()
    # max_pool2d has no bool kernel: half on CUDA (exact for 0/1), float32 on the CPU.
    dtype = torch.float16 if candidate.is_cuda else torch.float32
    mask = candidate.unsqueeze(1).to(dtype)                                  # (P, 1, H, W)
    reached = (plane_seeds & candidate).unsqueeze(1).to(dtype)
    while True:
        before = reached
        for _ in range(check_every):
            reached = F.max_pool2d(reached, 3, stride=1, padding=1).mul_(mask)
        if torch.equal(reached, before):
            return reached.squeeze(1).bool()


def grow(seeds: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
         theta_fg: float = 0.85, theta_bg: float = 0.99, method: str = "auto") -> torch.Tensor:
    """One region-growing step DSRG(S, H) (Section 3.3, Eq. 3) for a batch.

    Args:
        seeds: bool ``(B, C, H, W)``, the ORIGINAL seed cues (multi-hot; channel 0 = background).
        probs: float ``(B, C, H, W)``, class probabilities (already CRF-refined if the caller refines).
        labels: bool ``(B, C)``, classes present in each image; column 0 (background) must be True.
        theta_fg: threshold shared by the foreground classes (``inf`` switches foreground growth off).
        theta_bg: background threshold (``inf`` switches background growth off).
        method: ``"auto"``, ``"scipy"``, ``"numba"`` or ``"torch"`` (module docstring); the result does not
            depend on it.
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
    method = resolve_method(method, seeds.device)

    with torch.no_grad():
        if method == "torch":
            return _grow_torch(seeds, probs.detach().to(seeds.device), labels.to(seeds.device), theta_fg, theta_bg)
        if method == "numba":
            return _grow_numba(seeds, probs.detach(), labels, theta_fg, theta_bg)
        seeds_np = seeds.cpu().numpy()
        # Only the (image, class) planes of present classes can grow: label just those.
        img, cls = np.nonzero(labels.cpu().numpy())
        lab = _label_map_planes(seeds_np, probs.detach().cpu().numpy(), img, cls, theta_fg, theta_bg)
        candidate = lab[img] == cls[:, None, None]                    # (P, H, W)
        plane_seeds = seeds_np[img, cls]                              # (P, H, W)
        reached = reach_scipy(candidate, plane_seeds)

        # A pixel that is a seed of exactly one other class is never added.
        single = np.count_nonzero(seeds_np, axis=1) == 1             # (B, H, W)
        owned_by_other = single[img] & ~plane_seeds
        grown = seeds_np.copy()
        grown[img, cls] |= reached & ~owned_by_other
    return torch.from_numpy(grown).to(seeds.device)


def _label_map_planes(seeds: np.ndarray, probs: np.ndarray, img: np.ndarray, cls: np.ndarray,
                      theta_fg: float, theta_bg: float) -> np.ndarray:
    """:func:`label_map` in NumPy over the present planes only (the CPU path of :func:`grow`).

    ``img``, ``cls``: the present (image, class) pairs as ``np.nonzero(labels)`` gives them: each image's
    planes contiguous, classes ascending, background first (every image has it). An image holds a few of
    the C classes, so the argmax runs over its K present planes, packed into ``(B, K, H*W)``, instead of
    C; ties go to the lowest class index, as ``torch.max`` does. Returns int64 ``(B, H, W)``.
    """
    b, c, h, w = seeds.shape
    lab = np.full((b, h, w), UNLABELLED, dtype=np.int64)
    for k in range(c):                  # seed label: the highest seeded class index, -1 where no seed
        lab[seeds[:, k]] = k
    if len(img) == 0:                   # an empty batch
        return lab
    starts = np.flatnonzero(np.r_[True, img[1:] != img[:-1]])        # first plane of each image
    slot = np.arange(len(img)) - starts[img]                          # the plane's place in its image
    packed = np.full((b, int(slot.max()) + 1, h * w), -1.0, dtype=probs.dtype)
    packed[img, slot] = probs[img, cls].reshape(len(img), h * w)
    classes = np.zeros((b, packed.shape[1]), dtype=np.int64)
    classes[img, slot] = cls
    best = packed.argmax(axis=1)                                      # (B, H*W), first maximum
    pmax = np.take_along_axis(packed, best[:, None], axis=1)[:, 0].reshape(b, h, w)
    k = np.take_along_axis(classes, best, axis=1).reshape(b, h, w)
    grow = ((k > 0) & (pmax > theta_fg)) | ((k == 0) & (pmax > theta_bg))
    return np.where(grow, k, lab)


def _grow_torch(seeds: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor,
                theta_fg: float, theta_bg: float) -> torch.Tensor:
    """:func:`grow` with every step on ``seeds``' device (shapes as there)."""
    lab = label_map(seeds, probs, labels, theta_fg, theta_bg)                 # (B, H, W)
    img, cls = torch.nonzero(labels, as_tuple=True)
    candidate = lab[img] == cls.view(-1, 1, 1)                               # (P, H, W)
    plane_seeds = seeds[img, cls]                                            # (P, H, W)
    reached = reach_torch(candidate, plane_seeds)
    single = seeds.sum(dim=1) == 1                                           # (B, H, W)
    owned_by_other = single[img] & ~plane_seeds
    grown = seeds.clone()
    grown[img, cls] = plane_seeds | (reached & ~owned_by_other)
    return grown


def resolve_method(method: str, device: torch.device) -> str:
    """The method that ``method`` (one of ``METHODS``) runs as for tensors on ``device``."""
    if method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, got {method!r}")
    if method != "auto":
        return method
    if torch.device(device).type == "cuda":
        return "torch"
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
    """The compiled sweep of ``method="numba"``, or None where numba cannot be imported.

    ``kernel(seeds, probs, labels, theta_fg, theta_bg, h, w, out)``: ``seeds`` bool ``(B, C, H*W)``,
    ``probs`` float ``(B, C, H*W)``, ``labels`` bool ``(B, C)``, ``out`` a copy of ``seeds`` that the
    grown pixels are written into. Steps 2 to 4 of the module docstring, per image:

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
