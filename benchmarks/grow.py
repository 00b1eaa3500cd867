"""Time region growing on the paper profile's shapes: batch 20, 21 classes, 41 x 41.

    python benchmarks/grow.py [--batch 20] [--classes 21] [--size 41] [--repeats 20]

Prints the median wall time of ``dsrg.growing.grow`` and of a per-image, per-class loop over
scipy.ndimage.label (the shape of the authors' code), with their ratio. Inputs are random but
shaped like training: 1-3 present foreground classes per image, sparse seeds, a peaked softmax.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import scipy.ndimage as ndi
import torch

from dsrg.growing import grow, label_map


def make_inputs(b: int, c: int, s: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(b, c, dtype=torch.bool)
    labels[:, 0] = True
    for i in range(b):
        labels[i, 1 + torch.randperm(c - 1, generator=g)[: int(torch.randint(1, 4, (1,), generator=g))]] = True
    logits = torch.nn.functional.avg_pool2d(torch.randn(b, c, s, s, generator=g), 5, 1, 2) * 12
    probs = logits.softmax(1)
    seeds = (torch.rand(b, c, s, s, generator=g) < 0.08) & labels[:, :, None, None]
    return seeds, probs, labels


def per_image_loop(seeds, probs, labels, theta_fg=0.85, theta_bg=0.99):
    """The per-image, per-class loop (scipy per image), same semantics as dsrg.growing.grow."""
    out = seeds.clone()
    for i in range(seeds.shape[0]):
        lab = label_map(seeds[i:i + 1], probs[i:i + 1], labels[i:i + 1], theta_fg, theta_bg)[0].numpy()
        s = seeds[i].numpy()
        single = s.sum(0) == 1
        for c in np.flatnonzero(labels[i].numpy()):
            comp, n = ndi.label(lab == c, structure=np.ones((3, 3)))
            hit = np.unique(comp[s[c] & (comp > 0)])
            region = np.isin(comp, hit[hit > 0])
            out[i, c] |= torch.from_numpy(region & ~(single & ~s[c]))
    return out


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--size", type=int, default=41)
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(1)
    seeds, probs, labels = make_inputs(a.batch, a.classes, a.size)
    assert torch.equal(grow(seeds, probs, labels), per_image_loop(seeds, probs, labels))
    t_ours = median_time(lambda: grow(seeds, probs, labels), a.repeats)
    t_loop = median_time(lambda: per_image_loop(seeds, probs, labels), a.repeats)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread, "
          f"torch {torch.__version__}")
    print(f"shape: batch {a.batch} x {a.classes} classes x {a.size} x {a.size}, median of {a.repeats}")
    print(f"| method | ms per batch |\n|---|---|")
    print(f"| dsrg.growing.grow (batched) | {t_ours * 1e3:.2f} |")
    print(f"| per-image loop (scipy per image, per class) | {t_loop * 1e3:.2f} |")
    print(f"ratio: {t_loop / t_ours:.1f}x")


if __name__ == "__main__":
    main()
