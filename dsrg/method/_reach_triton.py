"""The Triton kernel of :func:`dsrg.method.growing.reach_triton` (imported only when that runs: importing
triton takes a while, and ``TRITON_INTERPRET=1`` is read as the kernel is defined).

``reach_kernel[(P,)](cand, seeds, padded, out, H, W, BH=, BW=)``: ``cand``, ``seeds`` uint8 ``(P, H, W)`` of 0/1;
``padded`` uint8 ``(P, H + 2, W + 2)`` of zeros, the programs' scratch (each round stores its reached set in the
interior and reads the 3 x 3 neighbourhood back; the zero border keeps reads inside the plane); ``out`` uint8
``(P, H, W)``; ``BH``, ``BW`` powers of two ``>= H, W``. Program ``p`` grows plane ``p`` to its fixed point.
"""

import triton
import triton.language as tl


@triton.jit
def _then(a1, c1, a2, c2):  # pragma: no cover (compiled)
    # a step "x -> a | (c & x)" after another: reached if reached here, or passed on through a candidate
    return a2 | (c2 & a1), c2 & c1


@triton.jit
def _fill(reached, cand, axis: tl.constexpr):  # pragma: no cover (compiled)
    # every candidate pixel of a run (along axis) that holds a reached pixel: a prefix scan each way
    forward, _ = tl.associative_scan((reached, cand), axis, _then)
    back, _ = tl.associative_scan((forward, cand), axis, _then, reverse=True)
    return back


@triton.jit
def reach_kernel(cand_ptr, seed_ptr, padded_ptr, out_ptr, h, w, BH: tl.constexpr, BW: tl.constexpr):  # pragma: no cover
    plane = tl.program_id(0).to(tl.int64)
    ys = tl.arange(0, BH)[:, None]
    xs = tl.arange(0, BW)[None, :]
    inside = (ys < h) & (xs < w)
    at = plane * h * w + ys * w + xs
    cand = tl.load(cand_ptr + at, mask=inside, other=0)
    reached = tl.load(seed_ptr + at, mask=inside, other=0) & cand
    wp = w + 2
    pad = padded_ptr + plane * (h + 2) * wp
    more = tl.sum(reached.to(tl.int32)) > 0
    while more:
        reached = _fill(_fill(reached, cand, 1), cand, 0)          # along rows, then along columns
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
