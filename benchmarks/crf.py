"""Time the training-time dense CRF: the exact batched CRF against pydensecrf image by image.

    python benchmarks/crf.py [--batch 20] [--classes 21] [--size 41] [--repeats 5] [--device cpu|cuda]
                             [--unary prob|logprob] [--dtype float32|float64] [--workers 1] [--threads 1]
                             [--json PATH]

Defaults: the paper's shape (batch 20, 21 classes, 41 x 41 output grid), s = 12, 10 mean-field
iterations, the DSRG code's unary ``-p``. Rows: ``dsrg.method.crf.crf_train(backend="pydensecrf")`` on the CPU
(``--workers`` processes; 1 = one image after another) and ``backend="exact"`` on ``--device``, median
wall time per batch (CUDA synchronised), ratio; then the agreement of the two: max, mean and 99th
percentile over positions of ``max_c |Q_exact - Q_pydensecrf|``, and argmax agreement. The inputs are
real-looking scenes (a colour gradient, three shaded discs with sharp edges, grey-level noise; ``make_scenes``)
with probabilities whose logits favour each disc's class by 3 over N(0, 1) noise.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from grow import machine_info, median_time, print_machine, timed, write_json  # benchmarks/ is sys.path[0]

from dsrg.method.crf import crf_train


def make_scenes(b: int, c: int, size: int, margin: float = 3.0, seed: int = 0):
    """``b`` real-looking scenes, ``size`` x ``size``: a smooth colour gradient and 3 discs of one colour
    each, shaded top to bottom (sharp edges, grey-level noise 4), and probabilities whose logits favour each
    disc's class (class 0 elsewhere) by ``margin`` over N(0, 1) noise. ``tests/test_crf.py`` measures the
    two backends' agreement on these scenes too. Returns uint8 ``(b, 3, size, size)`` images and float32
    ``(b, c, size, size)`` probabilities."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    imgs, probs = [], []
    for _ in range(b):
        lab = np.zeros((size, size), np.int64)
        img = rng.uniform(0, 255, 3) + 60 * (yy[..., None] * rng.normal(size=3) + xx[..., None] * rng.normal(size=3))
        for _ in range(3):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.35)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
            lab[disc] = rng.integers(1, c) if c > 1 else 0
            img[disc] = rng.uniform(0, 255, 3) + 30 * yy[disc][:, None] * rng.normal(size=3)
        imgs.append(np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8))
        logits = rng.normal(0, 1, (c, size, size))
        np.put_along_axis(logits, lab[None], np.take_along_axis(logits, lab[None], 0) + margin, 0)
        e = np.exp(logits - logits.max(0))
        probs.append(e / e.sum(0))
    return (torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(np.stack(probs)).float())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--size", type=int, default=41, help="side of the output grid")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="device of the exact CRF (cpu, cuda)")
    ap.add_argument("--unary", default="prob", choices=["prob", "logprob"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="exact CRF's dtype")
    ap.add_argument("--workers", type=int, default=1, help="processes for pydensecrf")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1, as pydensecrf uses one core per image; 0 = torch's default)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    images, probs = make_scenes(a.batch, a.classes, a.size)
    d_images, d_probs = images.to(dev), probs.to(dev, getattr(torch, a.dtype))

    def run_lattice():
        return crf_train(probs, images, unary=a.unary, workers=a.workers, backend="pydensecrf")

    def run_exact():
        return crf_train(d_probs, d_images, unary=a.unary, backend="exact")

    t_lat = median_time(run_lattice, a.repeats)
    t_exact = median_time(run_exact, a.repeats, dev)
    q_lat = run_lattice().double()
    _, q_exact = timed(run_exact, dev)
    d = (q_exact.cpu().double() - q_lat).abs().amax(dim=1).flatten()
    agreement = {"max_abs_diff": d.max().item(), "mean_abs_diff": d.mean().item(),
                 "q99_abs_diff": d.quantile(0.99).item() if d.numel() <= 16_000_000 else float("nan"),
                 "argmax_agreement": (q_exact.cpu().argmax(1) == q_lat.argmax(1)).float().mean().item()}
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None

    info = machine_info(dev)
    print_machine(info)
    print(f"shape: batch {a.batch} x {a.classes} classes x {a.size} x {a.size}, unary {a.unary}, s = 12, "
          f"10 iterations, median of {a.repeats}")
    print("| backend | device | ms per batch | ms per image | pydensecrf / this |\n|---|---|---|---|---|")
    for name, where, t in [(f"pydensecrf ({a.workers} worker{'s' if a.workers > 1 else ''})", "cpu", t_lat),
                           (f"exact, batched ({a.dtype})", str(dev), t_exact)]:
        print(f"| {name} | {where} | {t * 1e3:.1f} | {t * 1e3 / a.batch:.2f} | {t_lat / t:.2f}x |")
    print(f"agreement (per position, max over classes): max |diff| {agreement['max_abs_diff']:.4f}, "
          f"mean {agreement['mean_abs_diff']:.2e}, 99th percentile {agreement['q99_abs_diff']:.2e}, "
          f"argmax agreement {100 * agreement['argmax_agreement']:.2f} %")
    if peak is not None:
        print(f"peak CUDA memory: {peak / 2**20:.0f} MiB")
    write_json(a.json, {"benchmark": "crf", "machine": info, "args": vars(a),
                        "seconds": {"pydensecrf": t_lat, "exact": t_exact}, "agreement": agreement,
                        "peak_cuda_bytes": peak})


if __name__ == "__main__":
    main()
