"""Step 4 of region growing (Eq. 3) finds, in each (image, class) plane, the pixels of the class's candidate
region 8-connected to one of its seeds. Here are the ways it is found, with identical results: ``scipy``
(``ndimage.label`` on the CPU), ``torch`` (geodesic dilation on the tensors' device) and ``triton`` (one kernel
on CUDA that grows every plane to its fixed point without the host). Planes are bool ``(P, H, W)``.
"""

from __future__ import annotations

import contextlib
import functools
import sys

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from ..errors import InputError, expect_positive_int, first_line

# Connect the 8 spatial neighbours only: never across images or classes of the stacked array.
_EIGHT_CONNECTED_PLANES = np.zeros((3, 3, 3), dtype=bool)
_EIGHT_CONNECTED_PLANES[1] = True

CHECK_EVERY = 8
#: The longest side of a plane that :func:`reach_triton` grows in one program (larger planes: ``torch``).
TRITON_MAX_SIDE = 128


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
    """:func:`reach_scipy` by geodesic dilation on the tensors' device: ``reached = seeds & candidate``, then
    ``reached = maxpool3x3(reached) & candidate`` until nothing changes (each plane is its own image of the
    pooling, so nothing crosses between planes). Reached only grows, so ``check_every`` dilations that change
    nothing mean a fixed point: one check (one device sync) per round.

    Args:
        candidate, plane_seeds: bool ``(P, H, W)`` tensors on one device.
        check_every: dilations between two convergence checks (each check is one device sync).
    Returns:
        bool ``(P, H, W)`` on that device.
    """
    expect_positive_int("check_every", check_every)
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


def reach_triton(candidate: torch.Tensor, plane_seeds: torch.Tensor) -> torch.Tensor:
    """:func:`reach_scipy` in one kernel launch on CUDA, with no host sync: each plane is one Triton program
    that grows ``seeds & candidate`` to its fixed point. A round fills along the rows, then the columns,
    the runs of candidate pixels that hold a reached one (running maxima and minima of positions), then
    dilates once by 3 x 3 inside the candidate (the diagonal steps); rounds repeat until one adds nothing.
    Every round adds only pixels connected to what was reached, and a round that adds nothing leaves no
    8-neighbour in the candidate unreached: exactly the components that hold a seed. CPU tensors run in
    Triton's interpreter (``TRITON_INTERPRET=1``, the tests).

    Args:
        candidate, plane_seeds: bool ``(P, H, W)`` on one CUDA device, ``H, W <=`` :data:`TRITON_MAX_SIDE`.
    Returns:
        bool ``(P, H, W)`` on that device.
    """
    kernel = _triton_kernel()
    p, h, w = candidate.shape
    if kernel is None:
        raise InputError("method='triton' needs the triton package (it comes with torch's CUDA wheels for Linux); "
                         "method='torch' gives the same result without it")
    if not candidate.is_cuda and not _interpreted(kernel):
        raise InputError(f"method='triton' runs on CUDA tensors, got tensors on {candidate.device}; "
                         f"method='numba' or 'scipy' gives the same result on the CPU")
    if max(h, w) > TRITON_MAX_SIDE:
        raise InputError(f"method='triton' grows planes of at most {TRITON_MAX_SIDE} x {TRITON_MAX_SIDE} pixels, "
                         f"got {h} x {w}; method='torch' gives the same result")
    if candidate.numel() == 0:
        return candidate.clone()
    cand = candidate.contiguous().view(torch.uint8)
    seeds = plane_seeds.contiguous().view(torch.uint8)
    padded = torch.zeros(p, h + 2, w + 2, dtype=torch.uint8, device=candidate.device)   # border: never reached
    out = torch.empty(p, h, w, dtype=torch.uint8, device=candidate.device)
    bh, bw = _power_of_two(h), _power_of_two(w)
    warps = 4 if bh * bw <= 1024 else 8 if bh * bw <= 4096 else 16      # fewer values per thread to hold
    with torch.cuda.device(candidate.device) if candidate.is_cuda else contextlib.nullcontext():
        kernel[(p,)](cand, seeds, padded, out, h, w, BH=bh, BW=bw, num_warps=warps)   # on the tensors' GPU
    return out.view(torch.bool)


def _power_of_two(n: int) -> int:
    """The least power of two ``>= n`` (Triton's block sides)."""
    return 1 << max(0, n - 1).bit_length()


@functools.cache
def triton_works(device: torch.device) -> bool:
    """Whether :func:`reach_triton` compiles on CUDA ``device`` and finds there what :func:`reach_torch` finds
    on a check of planes with long, winding and diagonal paths, at the paper's grid and at the largest block;
    asked once per device. Where it does not, it says why on stderr, ``auto`` growing runs ``torch`` (same
    result, more kernel launches) and ``triton`` is refused."""
    why = "triton cannot be imported" if _triton_kernel() is None else None
    try:
        for n in (41, TRITON_MAX_SIDE - 7) if why is None else ():
            candidate, seeds = _check_planes(device, n)
            if not torch.equal(reach_triton(candidate, seeds), reach_torch(candidate, seeds)):
                why = f"it grew other regions than method='torch' on the {n} x {n} check planes"
                break
    except Exception as exc:  # noqa: BLE001 (a compiler or driver error of any kind: fall back, said)
        why = f"{type(exc).__name__}: {first_line(exc)}"
    if why is None:
        return True
    print(f"[dsrg] region growing on {device}: the Triton kernel is not used ({why}); "
          f"growing runs method='torch' (same result)", file=sys.stderr, flush=True)
    return False


def _check_planes(device: torch.device, n: int = 41) -> tuple[torch.Tensor, torch.Tensor]:
    """Planes whose regions only a correct fixed point finds: a spiral corridor seeded at its outer end, a
    staircase joined only at corners, random blobs, an empty plane. Bool ``(4, n, n)`` each."""
    spiral = np.zeros((n, n), bool)
    top, left, bottom, right = 0, 0, n - 1, n - 1
    while top <= bottom and left <= right:           # a corridor one pixel wide, a wall between its turns
        spiral[top, left:right + 1] = True
        spiral[top:bottom + 1, right] = True
        spiral[bottom, left:right + 1] = True
        spiral[top + 2:bottom + 1, left] = True
        if top + 2 <= bottom:
            spiral[top + 2, left:left + 2] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    stairs = np.eye(n, dtype=bool) | np.eye(n, k=2, dtype=bool)
    rng = np.random.default_rng(0)
    blobs = ndi.binary_opening(rng.random((n, n)) < 0.6)
    candidate = np.stack([spiral, stairs, blobs, np.zeros((n, n), bool)])
    seeds = np.zeros_like(candidate)
    seeds[0, 0, 0] = seeds[1, 0, 0] = True
    seeds[2] = rng.random((n, n)) < 0.01
    return torch.from_numpy(candidate).to(device), torch.from_numpy(seeds).to(device)


def _interpreted(kernel) -> bool:
    """Whether ``kernel`` runs in Triton's interpreter (on CPU tensors), as with ``TRITON_INTERPRET=1``."""
    return type(kernel).__name__ == "InterpretedFunction"


@functools.cache
def _triton_kernel():
    """The kernel of :func:`reach_triton` (:mod:`dsrg.method._reach_triton`), or None where triton cannot be
    imported. Triton's interpreter version, which runs on CPU tensors, where ``TRITON_INTERPRET=1`` when it is
    first asked for."""
    try:
        from ._reach_triton import reach_kernel
    except ImportError:
        return None
    return reach_kernel
