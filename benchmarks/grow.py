"""Time region growing on the paper profile's shapes: batch 20, 21 classes, 41 x 41.

    python benchmarks/grow.py [--batch 20] [--classes 21] [--size 41] [--repeats 50] [--device cpu|cuda]
                              [--json PATH]

Prints the median wall time of ``dsrg.method.growing.grow`` with its methods (``method="scipy"``: one
scipy.ndimage.label on the CPU; ``method="numba"``: one compiled sweep over the batch on the CPU;
``method="torch"``: geodesic dilation on ``--device``; on CUDA ``method="triton"``: one kernel, where it passes
its check there) and of a per-image, per-class loop over scipy.ndimage.label (the shape of the authors' code),
with ratios to the loop. Every method is first checked to give the loop's result exactly. Inputs are random but shaped like
training: 1-3 present foreground classes per image, sparse seeds, a peaked softmax.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch

import dsrg.files
from dsrg.method.growing import grow, label_map, resolve_method
from dsrg.method.reach import triton_works


def machine_info(device: torch.device | None = None) -> dict:
    """CPU model, cores, torch version and threads, and the GPU's name when ``device`` is CUDA."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version()}
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def print_machine(info: dict) -> None:
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ""
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
          f"({info['torch_threads']} threads){gpu}")


def write_json(path: str | None, record: dict) -> None:
    """Write ``record`` to ``path`` (if given) atomically, creating its folder."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        dsrg.files.write_json(path, record)
        print(f"wrote {path}")


def timed(fn, device: torch.device):
    """Wall time of ``fn()`` (synchronising CUDA around it) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t, out


def median_time(fn, repeats: int, device: torch.device = torch.device("cpu")) -> float:
    fn()
    return statistics.median(timed(fn, device)[0] for _ in range(repeats))


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
    """The per-image, per-class loop (scipy per image), same semantics as dsrg.method.growing.grow."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--size", type=int, default=41)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--device", default="cpu", help="device of the torch path (cpu, cuda)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(1)
    seeds, probs, labels = make_inputs(a.batch, a.classes, a.size)
    d_seeds, d_probs, d_labels = seeds.to(dev), probs.to(dev), labels.to(dev)
    reference = per_image_loop(seeds, probs, labels)
    assert torch.equal(grow(seeds, probs, labels, method="scipy"), reference)
    assert torch.equal(grow(seeds, probs, labels, method="numba"), reference)
    assert torch.equal(grow(d_seeds, d_probs, d_labels, method="torch").cpu(), reference)
    rows = [  # (key, description, device, seconds)
        ("scipy", "dsrg.method.growing.grow, method=scipy (one ndimage.label)", "cpu",
         median_time(lambda: grow(seeds, probs, labels, method="scipy"), a.repeats)),
        ("numba", "dsrg.method.growing.grow, method=numba (compiled sweep)", "cpu",
         median_time(lambda: grow(seeds, probs, labels, method="numba"), a.repeats)),
        ("torch", "dsrg.method.growing.grow, method=torch (geodesic dilation)", str(dev),
         median_time(lambda: grow(d_seeds, d_probs, d_labels, method="torch"), a.repeats, dev)),
        ("loop", "per-image loop (scipy per image, per class)", "cpu",
         median_time(lambda: per_image_loop(seeds, probs, labels), a.repeats)),
    ]
    triton = dev.type == "cuda" and triton_works(dev)         # where it does not, stderr has said why
    if triton:
        assert torch.equal(grow(d_seeds, d_probs, d_labels, method="triton").cpu(), reference)
        rows.insert(3, ("triton", "dsrg.method.growing.grow, method=triton (one kernel)", str(dev),
                        median_time(lambda: grow(d_seeds, d_probs, d_labels, method="triton"), a.repeats, dev)))
    loop = rows[-1][3]
    cpu_default = resolve_method("auto", torch.device("cpu"))
    info = machine_info(dev)
    print_machine(info)
    print(f"shape: batch {a.batch} x {a.classes} classes x {a.size} x {a.size}, median of {a.repeats}; "
          f"the CPU default (method=auto) is {cpu_default}")
    print("| method | device | ms per batch | loop / this |\n|---|---|---|---|")
    for _, name, where, t in rows:
        print(f"| {name} | {where} | {t * 1e3:.2f} | {loop / t:.1f}x |")
    write_json(a.json, {"benchmark": "grow", "machine": info, "args": vars(a), "cpu_default": cpu_default,
                        "device_default": resolve_method("auto", dev, a.size),
                        "rows": [{"key": k, "method": n, "device": d, "seconds": t} for k, n, d, t in rows]})


if __name__ == "__main__":
    main()
