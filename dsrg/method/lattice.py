"""Gaussian filtering on the permutohedral lattice (Adams, Baek, Davis 2010), as pydensecrf computes it.

``filter(values)`` approximates ``out_i = sum_j exp(-|f_i - f_j|^2 / 2) values_j`` (self included) for
per-pixel features ``f`` (``(P, d)``) in ``O(P d^2)``: splat each pixel onto the ``d + 1`` vertices of its
enclosing simplex, blur along the ``d + 1`` lattice axes with ``[1/2, 1, 1/2]``, slice back, times
``1 / (1 + 2^-d)``. The geometry (elevation, rounding, ranks, barycentric weights, neighbours) follows
pydensecrf's x86 build step by step, in float32, so that both build the same lattice; the three stages are
sparse matrices (splat ``(M, P)``, one blur ``(M, M)`` per axis, slice ``(P, M)``), applied by sparse
matrix products on any device. The pixels of several images form one lattice: ``group`` (``(P,)``) keeps
each image's vertices its own.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import torch

from ..errors import InputError

_INT63 = 1 << 62


class Lattice(NamedTuple):
    vertex: torch.Tensor      # (P, d + 1) int64: each pixel's enclosing vertices, rows of the vertex table
    weight: torch.Tensor      # (P, d + 1) float32: their barycentric weights
    neighbour: torch.Tensor   # (d + 1, 2, M) int64: each vertex's two neighbours per axis; M where there is none
    vertices: int             # M
    alpha: float              # 1 / (1 + 2^-d): the slice's correction of the blur's total weight
    splat: torch.Tensor       # (M, P) sparse CSR: the barycentric weights
    blur: tuple               # d + 1 sparse CSR (M, M): 1 on the diagonal, 1/2 to each existing neighbour
    slice: torch.Tensor       # (P, M) sparse CSR: the barycentric weights times alpha


def _csr(counts: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The sparse CSR matrix whose row ``i`` holds the next ``counts[i]`` of ``cols`` / ``values`` (each row's
    columns increasing and distinct, as torch and cuSPARSE take CSR; not checked here, a test does)."""
    crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)       # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, cols, values, shape, check_invariants=False)


def _elevate(f: torch.Tensor) -> torch.Tensor:
    """``(P, d)`` features -> ``(P, d + 1)`` points on the plane ``sum = 0``, scaled to the lattice spacing."""
    p, d = f.shape
    inv_std = float(np.float32(math.sqrt(2.0 / 3.0) * (d + 1)))
    scale = [float(np.float32(inv_std / math.sqrt((i + 2) * (i + 1)))) for i in range(d)]
    out = f.new_empty(p, d + 1)
    sm = f.new_zeros(p)
    for j in range(d, 0, -1):
        cf = f[:, j - 1] * scale[j - 1]
        out[:, j] = sm - j * cf
        sm = sm + cf
    out[:, 0] = sm
    return out


def _simplex(elevated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The enclosing simplex: its remainder-0 vertex ``(P, d + 1)``, each coordinate's rank ``(P, d + 1)``
    and the barycentric weights ``(P, d + 1)``."""
    p, d1 = elevated.shape
    d = d1 - 1
    down = float(np.float32(1.0) / np.float32(d1))
    v = torch.round(elevated * down)                   # nearest, ties to even (SSE rounding)
    rem0 = v * d1
    total = v.sum(1, keepdim=True)
    residual = elevated - rem0
    # rank[i]: how many coordinates lie above i, ties broken by position (j < i counts on equality)
    above = residual.unsqueeze(1) > residual.unsqueeze(2)           # [p, i, j]: residual_j > residual_i
    level = residual.unsqueeze(1) >= residual.unsqueeze(2)
    later = torch.ones(d1, d1, dtype=torch.bool, device=elevated.device).triu(1)
    rank = (above & later).sum(2) + (level & later.T).sum(2)
    rank = rank.to(elevated.dtype) + total
    wrap = (rank < 0).to(rank.dtype) * d1 - (rank >= d1).to(rank.dtype) * d1
    rank, rem0 = rank + wrap, rem0 + wrap
    rank = rank.long()
    v = (elevated - rem0) * down
    bary = elevated.new_zeros(p, d + 2)
    bary.scatter_add_(1, d - rank, v)
    bary.scatter_add_(1, d - rank + 1, -v)
    bary[:, 0] += 1 + bary[:, d + 1]
    return rem0.long(), rank, bary[:, :d1]


def _packer(keys: torch.Tensor, groups: int, margin: int):
    """A function packing ``(..., d)`` integer keys and a group id into one int64, order-preserving; keys up
    to ``margin`` outside the range of ``keys`` still pack (a neighbour that may not exist)."""
    lo = keys.reshape(-1, keys.shape[-1]).amin(0) - margin
    extent = (keys.reshape(-1, keys.shape[-1]).amax(0) + margin - lo + 1).tolist()
    radix, total = [], 1
    for e in extent:
        radix.append(total)
        total *= int(e)
    if total * groups >= _INT63:
        raise InputError(f"lattice: the features span {extent} lattice cells per axis over {groups} image(s), "
                         f"too many to index; filter fewer images at once or use coarser features")
    radix_t = torch.tensor(radix, dtype=torch.long, device=keys.device)

    def pack(k: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        return ((k - lo) * radix_t).sum(-1) + group * total

    def unpack(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rest = packed % total
        digits = [(rest // r) % e for r, e in zip(radix, extent)]
        return torch.stack(digits, -1) + lo, packed // total

    return pack, unpack


def build(features: torch.Tensor, group: torch.Tensor | None = None, origin: torch.Tensor | None = None) -> Lattice:
    """The lattice of ``features`` float ``(P, d)`` (already divided by the kernel's standard deviations),
    pixels of image ``group[i]`` (int64 ``(P,)``, default all one image) kept apart from the others'.
    ``origin`` (int64, group ids): those images' lattices also hold the vertices around the origin, as
    pydensecrf's does for an image whose pixel count is not a multiple of 4 (its x86 build pads the last
    block of 4 pixels with zero features; nothing is splatted there, but the blur passes through them)."""
    if features.dim() != 2 or features.shape[1] < 1:
        raise InputError(f"features: expected (pixels, d) with d >= 1, got {tuple(features.shape)}")
    f = features.float()
    p, d = f.shape
    d1 = d + 1
    dev = f.device
    group = torch.zeros(p, dtype=torch.long, device=dev) if group is None else group.to(dev, torch.long)
    if origin is not None and origin.numel():
        f = torch.cat([f, f.new_zeros(origin.numel(), d)])
        group = torch.cat([group, origin.to(dev, torch.long)])
    rem0, rank, bary = _simplex(_elevate(f))
    # vertex r of the simplex: rem0 + canonical[r][rank], canonical[r][k] = r for k <= d - r, else r - (d + 1)
    r = torch.arange(d1, device=dev).view(1, d1, 1)
    rk = rank[:, None, :d]
    keys = rem0[:, None, :d] + torch.where(rk <= d - r, r, r - d1)                  # (P, d + 1, d)
    pack, unpack = _packer(keys, int(group.max()) + 1 if group.numel() else 1, d1)
    # one sort gives the vertex table, each (pixel, vertex) pair's vertex, and the splat's row order (stable:
    # within a vertex, its pixels in increasing order, as a CSR row's columns must be)
    packed, order = torch.sort(pack(keys, group[:, None]).reshape(-1), stable=True)
    first = torch.ones_like(packed, dtype=torch.bool)
    first[1:] = packed[1:] != packed[:-1]
    table = packed[first]
    m = table.numel()
    sorted_vertex = first.cumsum(0) - 1
    vertex = torch.empty_like(sorted_vertex)
    vertex[order] = sorted_vertex
    vertex = vertex.view(-1, d1)[:p]
    bary = bary[:p]
    vkeys, vgroup = unpack(table)
    neighbour = torch.empty(d1, 2, m, dtype=torch.long, device=dev)
    for j in range(d1):
        for side, step in enumerate((-1, 1)):
            nk = vkeys + step
            if j < d:
                nk[:, j] -= step * d1        # the neighbour along axis j: every other coordinate -/+1, this one +/-d
            wanted = pack(nk, vgroup)
            at = torch.searchsorted(table, wanted).clamp_(max=max(m - 1, 0))
            neighbour[j, side] = torch.where(table[at] == wanted, at, m)
    alpha = float(np.float32(1.0) / (np.float32(1.0) + np.float32(2.0) ** -d))
    weights = bary.reshape(-1)
    pixel = order // d1
    real = pixel < p                                                    # not an origin point
    splat = _csr(torch.bincount(sorted_vertex[real], minlength=m), pixel[real], weights[order[real]], (m, p))
    cols, at = vertex.sort(1)                                           # each row's columns in order
    slice_ = _csr(torch.full((p,), d1, device=dev), cols.reshape(-1), (bary * alpha).gather(1, at).reshape(-1),
                  (p, m))
    own = torch.arange(m, device=dev)
    blur = []
    for j in range(d1):
        cols, at = torch.stack([own, neighbour[j, 0], neighbour[j, 1]], 1).sort(1)  # (M, 3); M: none there
        vals = torch.tensor([1.0, 0.5, 0.5], device=dev).expand(m, 3).gather(1, at)
        there = cols < m
        blur.append(_csr(there.sum(1), cols[there], vals[there], (m, m)))
    return Lattice(vertex, bary, neighbour, m, alpha, splat, tuple(blur), slice_)


def filter(lattice: Lattice, values: torch.Tensor) -> torch.Tensor:   # noqa: A001 (the paper's word)
    """Gaussian-filter ``values`` ``(P, C)`` over the lattice's pixels: splat, blur, slice. ``(P, C)`` out."""
    grid = lattice.splat @ values
    for blur in lattice.blur:
        grid = blur @ grid
    return lattice.slice @ grid
