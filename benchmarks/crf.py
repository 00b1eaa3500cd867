"""Time the dense CRF: at training time the exact batched CRF against pydensecrf image by image; at test
time (``--test-time``) the lattice CRF in torch against pydensecrf.

    python benchmarks/crf.py [--batch 20] [--classes 21] [--size 41] [--repeats 5] [--device cpu|cuda]
                             [--unary prob|logprob] [--dtype float32|float64] [--workers 1] [--threads 1]
                             [--json PATH]
    python benchmarks/crf.py --test-time [--images 12] [--batch 12] [--height 375] [--width 500] [--classes 21]
                             [--repeats 3] [--device cpu|cuda] [--workers 1] [--threads 1] [--json PATH]

Defaults: the paper's shape (batch 20, 21 classes, 41 x 41 output grid), s = 12, 10 mean-field
iterations, the DSRG code's unary ``-p``. Rows: ``dsrg.method.crf.crf_train(backend="pydensecrf")`` on the CPU
(``--workers`` processes; 1 = one image after another), ``backend="exact"`` and ``"exact_bf16"`` on ``--device``, median
wall time per batch (CUDA synchronised), ratio, and the share of the exact CRF's time that builds its kernels
(``crf_kernels``; the rest is the mean field), and on CUDA its time captured as one CUDA graph (the launch
overhead, by difference); then the agreement of the two: max, mean and 99th
percentile over positions of ``max_c |Q_exact - Q_pydensecrf|``, and argmax agreement (for ``exact_bf16``: mean
and argmax agreement, and its mean difference to ``exact``; on CUDA its graph's time too). The inputs are
real-looking scenes (a colour gradient, three shaded discs with sharp edges, grey-level noise; ``make_scenes``)
with probabilities whose logits favour each disc's class by 3 over N(0, 1) noise.

``--test-time``: the pipeline's test-time CRF (s = 1, unary ``-log max(p, 1e-5)``, 10 iterations) on
``--images`` photographs shipped with scikit-image (:mod:`dsrg.data.photos`) at ``--height`` x ``--width``
(VOC's typical 375 x 500), with smooth random 21-class probabilities (``make_photos``). Rows, per image:
pydensecrf on one core (the time of one image, median over the images), pydensecrf in ``--workers``
processes (if > 1; the batch's wall time / images), the lattice on ``--device`` one image at a time, and the
lattice over ``--batch`` images at once (as ``predict`` runs it); each with its throughput against one
pydensecrf core. Agreement of the lattice with pydensecrf per image: argmax agreement (median, minimum)
and mean |Q difference|.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
import torch.nn.functional as F
from grow import machine_info, median_time, print_machine, timed, write_json  # benchmarks/ is sys.path[0]

from dsrg.data.photos import photographs
from dsrg.method.crf import (TRAIN_PARAMS, CRFParams, _dense_crf_exact, _resize_images, crf_test_energy, crf_train,
                             pydensecrf_one)
from dsrg.method.crf_exact import crf_kernels
from dsrg.method.crf_lattice import lattice_crf
from dsrg.run.workers import mapper, process_pool



def graph_time(fn, repeats: int, device: torch.device) -> float | str | None:
    """Median seconds of ``fn()`` captured once as a CUDA graph and replayed (its kernels launched as one), so
    that the launch overhead of running it op by op shows by difference; the reason where it cannot be
    captured; None off CUDA."""
    if device.type != "cuda":
        return None
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):                        # warm-up off the default stream, as capture asks
            for _ in range(3):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return median_time(graph.replay, repeats, device)
    except Exception as exc:  # noqa: BLE001 (a host sync or a host copy inside: say which)
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


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


def make_photos(n: int, h: int, w: int, classes: int = 21, seed: int = 0):
    """``n`` photographs at ``h`` x ``w`` (:func:`dsrg.data.photos.photographs`) with smooth random
    probabilities: logits N(0, 3^2) on a 16x coarser grid, upsampled bilinearly (blobs with soft borders, as
    a network's). Returns uint8 ``(h, w, 3)`` NumPy images and float32 ``(classes, h, w)`` probabilities."""
    g = torch.Generator().manual_seed(seed)
    images, probs = [], []
    for _, image in photographs(n, h, w):
        images.append(image)
        coarse = torch.randn(1, classes, max(2, h // 16), max(2, w // 16), generator=g) * 3
        probs.append(F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)[0].softmax(0))
    return images, probs


def _pydensecrf(job):
    energy, image = job
    return pydensecrf_one(energy, image, CRFParams())


def test_time(a) -> None:
    dev = torch.device(a.device)
    images, probs = make_photos(a.images, a.height, a.width, a.classes)
    energies = [crf_test_energy(p) for p in probs]
    jobs = [(e.numpy(), im) for e, im in zip(energies, images)]
    d_energies = [e.to(dev) for e in energies]
    d_rgbs = [torch.from_numpy(im).to(dev) for im in images]
    batch = min(a.batch, a.images)

    def lattice(k0: int, k1: int):
        return lattice_crf(d_energies[k0:k1], d_rgbs[k0:k1], CRFParams())

    one_core, reference = [], []
    for job in jobs:
        t, q = timed(lambda: _pydensecrf(job), torch.device("cpu"))
        one_core.append(t)
        reference.append(q)
    per_image = {"pydensecrf, 1 core": statistics.median(one_core)}
    if a.workers > 1:
        with process_pool(a.workers, preload=[__name__]) as pool:
            list(pool.map(_pydensecrf, jobs[:a.workers]))                      # workers started and warm
            t, _ = timed(lambda: list(pool.map(_pydensecrf, jobs)), torch.device("cpu"))
        per_image[f"pydensecrf, {a.workers} processes"] = t / a.images
    lattice(0, 1)                                                               # warm-up (CUDA kernels)
    per_image[f"lattice, {dev.type}, 1 image at a time"] = median_time(
        lambda: [lattice(k, k + 1) for k in range(a.images)], a.repeats, dev) / a.images
    per_image[f"lattice, {dev.type}, {batch} images at once"] = median_time(
        lambda: [lattice(k, k + batch) for k in range(0, a.images, batch)], a.repeats, dev) / a.images
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    ours = [q.cpu() for k in range(0, a.images, batch) for q in lattice(k, k + batch)]
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    agree = [(q.argmax(0).numpy() == r.argmax(0)).mean() for q, r in zip(ours, reference)]
    diff = [np.abs(q.numpy() - r).mean() for q, r in zip(ours, reference)]
    agreement = {"argmax_agreement_median": float(np.median(agree)), "argmax_agreement_min": float(np.min(agree)),
                 "mean_abs_diff": float(np.mean(diff)),
                 "max_abs_diff": float(max(np.abs(q.numpy() - r).max() for q, r in zip(ours, reference)))}

    info = machine_info(dev)
    print_machine(info)
    print(f"test-time CRF: {a.images} photographs of {a.height} x {a.width}, {a.classes} classes, s = 1, "
          f"10 iterations, unary -log p; lattice timings median of {a.repeats}")
    base = per_image["pydensecrf, 1 core"]
    print("| backend | ms per image | images/s | x one pydensecrf core |\n|---|---|---|---|")
    for name, t in per_image.items():
        print(f"| {name} | {t * 1e3:.1f} | {1 / t:.1f} | {base / t:.1f}x |")
    print(f"agreement with pydensecrf: argmax equal on {100 * agreement['argmax_agreement_median']:.3f} % of the "
          f"pixels (median over images; minimum {100 * agreement['argmax_agreement_min']:.3f} %), mean |Q diff| "
          f"{agreement['mean_abs_diff']:.1e}, max {agreement['max_abs_diff']:.1e}")
    if peak is not None:
        print(f"peak CUDA memory: {peak / 2**20:.0f} MiB")
    write_json(a.json, {"benchmark": "crf-test-time", "machine": info, "args": vars(a),
                        "seconds_per_image": per_image, "agreement": agreement, "peak_cuda_bytes": peak})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test-time", action="store_true", help="time the test-time CRF (lattice vs pydensecrf)")
    ap.add_argument("--images", type=int, default=12, help="--test-time: photographs")
    ap.add_argument("--height", type=int, default=375, help="--test-time: image height")
    ap.add_argument("--width", type=int, default=500, help="--test-time: image width")
    ap.add_argument("--batch", type=int, default=None,
                    help="images per batch (training time: 20; test time: all --images at once)")
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
    if a.test_time:
        a.batch = a.images if a.batch is None else a.batch
        return test_time(a)
    a.batch = 20 if a.batch is None else a.batch
    images, probs = make_scenes(a.batch, a.classes, a.size)
    d_images, d_probs = images.to(dev), probs.to(dev, getattr(torch, a.dtype))

    def run_lattice(pool_map=map):
        return crf_train(probs, images, unary=a.unary, map_fn=pool_map, backend="pydensecrf")

    def run_exact(backend: str = "exact"):
        return crf_train(d_probs, d_images, unary=a.unary, backend=backend)

    with mapper(a.workers, preload=["dsrg.method.crf"]) as pool_map:     # started once, as train-seg starts it
        t_lat = median_time(lambda: run_lattice(pool_map), a.repeats)
    t_exact = median_time(run_exact, a.repeats, dev)
    t_bf16 = median_time(lambda: run_exact("exact_bf16"), a.repeats, dev)
    rgb = _resize_images(d_images, (a.size, a.size))
    t_kernels = median_time(lambda: crf_kernels(rgb, TRAIN_PARAMS, getattr(torch, a.dtype)), a.repeats, dev)
    q_lat = run_lattice().double()
    _, q_exact = timed(run_exact, dev)
    d = (q_exact.cpu().double() - q_lat).abs().amax(dim=1).flatten()
    agreement = {"max_abs_diff": d.max().item(), "mean_abs_diff": d.mean().item(),
                 "q99_abs_diff": d.quantile(0.99).item() if d.numel() <= 16_000_000 else float("nan"),
                 "argmax_agreement": (q_exact.cpu().argmax(1) == q_lat.argmax(1)).float().mean().item()}
    q_bf16 = run_exact("exact_bf16").cpu().double()
    agreement_bf16 = {"mean_abs_diff": (q_bf16 - q_lat).abs().amax(dim=1).mean().item(),
                      "argmax_agreement": (q_bf16.argmax(1) == q_lat.argmax(1)).float().mean().item(),
                      "mean_abs_diff_to_exact": (q_bf16 - q_exact.cpu().double()).abs().amax(dim=1).mean().item()}
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    # last: its warm-up and capture do not count in the peak, and a failed capture cannot touch the rows above;
    # against _dense_crf_exact op by op (crf_train adds its input checks, which hold host syncs)
    bare = lambda: _dense_crf_exact(d_probs, d_images, TRAIN_PARAMS, a.unary)  # noqa: E731
    t_bare = median_time(bare, a.repeats, dev) if dev.type == "cuda" else None
    t_graph = graph_time(bare, a.repeats, dev)
    t_graph_bf16 = graph_time(lambda: _dense_crf_exact(d_probs, d_images, TRAIN_PARAMS, a.unary, torch.bfloat16),
                              a.repeats, dev)

    info = machine_info(dev)
    print_machine(info)
    print(f"shape: batch {a.batch} x {a.classes} classes x {a.size} x {a.size}, unary {a.unary}, s = 12, "
          f"10 iterations, median of {a.repeats}")
    print("| backend | device | ms per batch | ms per image | pydensecrf / this |\n|---|---|---|---|---|")
    for name, where, t in [(f"pydensecrf ({a.workers} worker{'s' if a.workers > 1 else ''})", "cpu", t_lat),
                           (f"exact, batched ({a.dtype})", str(dev), t_exact),
                           ("exact_bf16, batched (appearance kernel in bfloat16)", str(dev), t_bf16)]:
        print(f"| {name} | {where} | {t * 1e3:.1f} | {t * 1e3 / a.batch:.2f} | {t_lat / t:.2f}x |")
    print(f"of the exact CRF's time, building its kernels (crf_kernels): {t_kernels * 1e3:.1f} ms "
          f"({100 * t_kernels / t_exact:.0f} %); the rest is the mean field and the unary")
    print(f"agreement (per position, max over classes): max |diff| {agreement['max_abs_diff']:.4f}, "
          f"mean {agreement['mean_abs_diff']:.2e}, 99th percentile {agreement['q99_abs_diff']:.2e}, "
          f"argmax agreement {100 * agreement['argmax_agreement']:.2f} %")
    print(f"exact_bf16 against pydensecrf: mean |diff| {agreement_bf16['mean_abs_diff']:.2e}, argmax agreement "
          f"{100 * agreement_bf16['argmax_agreement']:.2f} %; against exact: mean |diff| "
          f"{agreement_bf16['mean_abs_diff_to_exact']:.2e}")
    if isinstance(t_graph, float):
        print(f"the exact CRF captured as one CUDA graph: {t_graph * 1e3:.2f} ms (launching its kernels one by "
              f"one costs {(t_bare - t_graph) * 1e3:.2f} ms of the {t_bare * 1e3:.2f} without crf_train's checks)")
    elif t_graph is not None:
        print(f"the exact CRF could not be captured as a CUDA graph: {t_graph}")
    if isinstance(t_graph_bf16, float):
        print(f"exact_bf16 captured as one CUDA graph: {t_graph_bf16 * 1e3:.2f} ms")
    if peak is not None:
        print(f"peak CUDA memory: {peak / 2**20:.0f} MiB")
    seconds = {"pydensecrf": t_lat, "exact": t_exact, "exact_kernels": t_kernels, "exact_bf16": t_bf16}
    if isinstance(t_graph, float):
        seconds.update(exact_graph=t_graph, exact_unchecked=t_bare)
    if isinstance(t_graph_bf16, float):
        seconds.update(exact_bf16_graph=t_graph_bf16)
    write_json(a.json, {"benchmark": "crf", "machine": info, "args": vars(a), "seconds": seconds,
                        **({"exact_graph_error": t_graph} if isinstance(t_graph, str) else {}),
                        "agreement": agreement, "agreement_bf16": agreement_bf16,
                        "peak_cuda_bytes": peak})


if __name__ == "__main__":
    main()
