"""The Triton kernel of :func:`dsrg.method.reach.reach_triton` (imported only when that runs: importing
triton takes a while, and ``TRITON_INTERPRET=1`` is read as the kernel is defined).

``reach_kernel[(P,)](cand, seeds, padded, out, H, W, BH=, BW=)``: ``cand``, ``seeds`` uint8 ``(P, H, W)`` of 0/1;
``padded`` uint8 ``(P, H + 2, W + 2)`` of zeros, the programs' scratch (each round stores its reached set in the
interior and reads the 3 x 3 neighbourhood back; the zero border keeps reads inside the plane); ``out`` uint8
``(P, H, W)``; ``BH``, ``BW`` powers of two ``>= H, W``. Program ``p`` grows plane ``p`` to its fixed point.
"""

import triton
import triton.language as tl


@triton.jit
def _max(a, b):  # pragma: no cover (compiled)
    return tl.maximum(a, b)


@triton.jit
def _min(a, b):  # pragma: no cover (compiled)
    return tl.minimum(a, b)


@triton.jit
def _fill(reached, cand, at, axis: tl.constexpr, far: tl.constexpr):  # pragma: no cover (compiled)
    # Every candidate pixel of a run along ``axis`` that holds a reached pixel: the nearest reached or
    # non-candidate pixel before it (or after it) is a reached one. ``at``: the positions along the axis; each
    # such pixel is coded by its position and its kind (odd before, even after: reached), so that one running
    # maximum (minimum) finds the nearest and says its kind. Only max and min scans, whose result does not
    # depend on the order in which a scan combines.
    is_reached, is_wall = reached != 0, cand == 0
    # none before: -2, even whichever sign convention % follows
    before = tl.associative_scan(tl.where(is_reached, 2 * at + 1, tl.where(is_wall, 2 * at, -2)), axis, _max)
    after = tl.associative_scan(tl.where(is_reached, 2 * at, tl.where(is_wall, 2 * at + 1, far)), axis, _min,
                                reverse=True)
    through = ((before % 2) == 1) | (((after % 2) == 0) & (after < far))
    return (through & (cand != 0)).to(tl.uint8)


@triton.jit
def reach_kernel(cand_ptr, seed_ptr, padded_ptr, out_ptr, h, w, BH: tl.constexpr, BW: tl.constexpr):  # pragma: no cover
    plane = tl.program_id(0).to(tl.int64)
    ys = tl.arange(0, BH)[:, None]
    xs = tl.arange(0, BW)[None, :]
    along_rows = xs + 0 * ys                       # each pixel's position along its row, and its column
    along_cols = ys + 0 * xs
    inside = (ys < h) & (xs < w)
    at = plane * h * w + ys * w + xs
    cand = tl.load(cand_ptr + at, mask=inside, other=0)
    reached = tl.load(seed_ptr + at, mask=inside, other=0) & cand
    wp = w + 2
    pad = padded_ptr + plane * (h + 2) * wp
    more = tl.sum(reached.to(tl.int32)) > 0
    while more:
        reached = _fill(reached, cand, along_rows, 1, 2 * (BH + BW))   # along rows, then along columns
        reached = _fill(reached, cand, along_cols, 0, 2 * (BH + BW))
        tl.store(pad + (ys + 1) * wp + xs + 1, reached, mask=inside)
        tl.debug_barrier()                                          # the whole plane stored before reads
        grown = reached
        for dy in tl.static_range(3):
            for dx in tl.static_range(3):
                grown = grown | tl.load(pad + (ys + dy) * wp + xs + dx, mask=inside, other=0)
        grown = grown & cand
        more = tl.sum((grown != reached).to(tl.int32)) > 0
        tl.debug_barrier()                                          # every read done before the next store
        reached = grown
    tl.store(out_ptr + at, reached, mask=inside)
