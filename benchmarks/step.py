"""Time one full DSRG training step (Section 3.2, Figure 2) and split it into its parts.

    python benchmarks/step.py [--model vgg16|resnet101] [--batch 20] [--size 321] [--width 1.0]
                              [--device cpu|cuda] [--crf exact|pydensecrf|auto] [--grow scipy|numba|torch|triton|auto]
                              [--repeats 5] [--no-amp] [--no-graph] [--threads 0] [--json PATH]

The step is ``dsrg.steps.train_seg``'s, with the paper's settings (``SegConfig``'s defaults) and its
functions: forward DeepLab-ASPP on the normalised images (bf16 autocast on CUDA unless ``--no-amp``),
smoothed softmax ``P``; ``Q``, the training-time CRF on the output grid clipped and renormalised
(``refine``); region growing from the cues with ``Q`` (``grow_cues``); the balanced seeding loss (Eq. 1) +
the boundary loss KL(Q || P) (Eq. 2, ``loss_terms``); backward and an SGD update with the Caffe lr
multipliers. The weights are random (speed does not depend on them); images are random scenes and
the cues sparse random seeds of 1-3 present classes on the output grid.

Rows (median over ``--repeats`` steps after one warm-up step, CUDA synchronised between parts):
forward + backward (forward, backward and optimizer step), CRF, growing, losses; on CUDA, where training
would (``seg.cuda_graph``, :func:`dsrg.steps.train_seg.graphed`), the CRF and growing replayed as one CUDA
graph too, which the total then counts in place of the two; total; images per second. Peak memory:
``torch.cuda.max_memory_allocated`` on CUDA, the process's peak resident set size (``getrusage``) on the CPU.
At paper scale: ``--batch 20 --size 321 --width 1`` (41 x 41 grid); a short CPU run: ``--batch 2 --size 161
--width 0.25``.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys

import torch
from grow import machine_info, print_machine, timed, write_json  # benchmarks/ is sys.path[0]

from dsrg.method import transforms as T
from dsrg.method.crf import choose_backend
from dsrg.method.growing import METHODS, resolve_method
from dsrg.method.losses import smoothed_softmax
from dsrg.models import DeepLabASPP
from dsrg.profile import SegConfig
from dsrg.run import cuda_graphs
from dsrg.run.dist import autocast, channels_last
from dsrg.run.workers import mapper
from dsrg.steps.train_seg import graphed, grow_cues, loss_terms, refine, refine_and_grow


def make_batch(b: int, c: int, size: int, grid: int, seed: int = 0):
    """uint8 images ``(b, 3, size, size)`` (blocks of flat colour), bool cues ``(b, c, grid, grid)``,
    bool labels ``(b, c)`` (background + 1-3 classes)."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (b, 3, 6, 6), generator=g, dtype=torch.uint8)
    images = torch.nn.functional.interpolate(blocks.float(), size=(size, size), mode="nearest").to(torch.uint8)
    labels = torch.zeros(b, c, dtype=torch.bool)
    labels[:, 0] = True
    for i in range(b):
        labels[i, 1 + torch.randperm(c - 1, generator=g)[: int(torch.randint(1, 4, (1,), generator=g))]] = True
    cues = (torch.rand(b, c, grid, grid, generator=g) < 0.05) & labels[:, :, None, None]
    return images, cues, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg16", choices=["vgg16", "resnet101"])
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--size", type=int, default=321, help="input side (321 at paper scale)")
    ap.add_argument("--width", type=float, default=1.0, help="channel factor of the network")
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--crf", default="auto", choices=["exact", "exact_bf16", "pydensecrf", "auto"],
                    help="CRF backend")
    ap.add_argument("--crf-workers", type=int, default=1, help="processes for pydensecrf")
    ap.add_argument("--unary", default="prob", choices=["prob", "logprob"])
    ap.add_argument("--grow", default="auto", choices=METHODS, help="growing method")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    ap.add_argument("--no-graph", action="store_true", help="no CUDA graph of the CRF and growing")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args()
    with contextlib.ExitStack() as exits:
        measure(a, exits)


def measure(a, exits: contextlib.ExitStack) -> None:
    dev = torch.device(a.device)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    model = channels_last(DeepLabASPP(a.model, a.classes, a.width).to(dev)).train()  # as dsrg.run.train.fit
    optimizer = torch.optim.SGD(model.param_groups(5e-4, 5e-4), lr=5e-4, momentum=0.9)
    grid = model.output_size(a.size)
    images, cues, labels = (t.to(dev) for t in make_batch(a.batch, a.classes, a.size, grid))
    amp = not a.no_amp
    crf_backend = choose_backend(a.crf, grid * grid, dev.type == "cuda")
    grow_method = resolve_method(a.grow, dev, grid)
    seg = SegConfig(crf_backend=crf_backend, grow_method=grow_method, crf_unary=a.unary, crf_workers=a.crf_workers)
    # pydensecrf's processes, started once for every step as train-seg starts them
    crf_map = exits.enter_context(mapper(a.crf_workers if crf_backend == "pydensecrf" else 1, ["dsrg.method.crf"]))
    graph = not a.no_graph and graphed(seg, torch.empty(1, 1, grid, grid, device=dev))

    def one_step() -> dict:
        times = {}
        def forward():
            with autocast(dev, amp):
                logits = model(T.normalize(images, "torchvision"))
            return smoothed_softmax(logits.float())
        times["forward"], probs = timed(forward, dev)
        times["crf"], q = timed(lambda: refine(seg, probs.detach(), images, crf_map), dev)
        times["growing"], grown = timed(lambda: grow_cues(seg, cues, q, labels), dev)
        if graph:                                    # as train_seg.supervision replays them
            times["graph"], (q_graph, grown_graph) = timed(
                lambda: cuda_graphs.replay(lambda *x: refine_and_grow(seg, *x), ("step-benchmark", repr(seg)),
                                      probs.detach(), images, cues, labels, what="the benchmark's CRF and growing"),
                dev)
            assert torch.equal(q_graph, q) and torch.equal(grown_graph, grown)
        times["losses"], (loss, _, _) = timed(lambda: loss_terms(seg, probs, q, grown), dev)

        def backward():
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        times["backward"], _ = timed(backward, dev)
        return times

    one_step()                                       # warm-up (cuDNN autotuning, allocator, pools)
    if graph and not cuda_graphs.captured():         # the work could not be captured (stderr said why)
        graph = False
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    runs = [one_step() for _ in range(a.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    # with the graph, a step is what training runs: the graph in place of the CRF and growing op by op
    total = statistics.median(sum(r.values()) - (r["crf"] + r["growing"] if graph else 0) for r in runs)
    rows = [("forward + backward (incl. optimizer step)", med["forward"] + med["backward"]),
            (f"CRF ({crf_backend}, {grid} x {grid}){', op by op' if graph else ''}", med["crf"]),
            (f"growing ({grow_method}){', op by op' if graph else ''}", med["growing"]),
            *([("CRF + growing as one CUDA graph", med["graph"])] if graph else []),
            ("losses (Eq. 1 + Eq. 2)", med["losses"]),
            ("total", total)]
    if dev.type == "cuda":
        peak, peak_what = torch.cuda.max_memory_allocated(dev), "torch.cuda.max_memory_allocated"
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak, peak_what = rss * (1 if sys.platform == "darwin" else 1024), "peak RSS of the process"

    info = machine_info(dev)
    print_machine(info)
    print(f"step: {a.model} width {a.width}, batch {a.batch} x {a.size} x {a.size} -> {grid} x {grid} grid, "
          f"{a.classes} classes, {dev}{', bf16 autocast' if amp and dev.type == 'cuda' else ''}, "
          f"median of {a.repeats}")
    print("| part | ms per step | share |\n|---|---|---|")
    for name, t in rows:
        share = "not in the total" if name.endswith("op by op") else f"{100 * t / total:.0f} %"
        print(f"| {name} | {t * 1e3:.1f} | {share} |")
    print(f"images per second: {a.batch / total:.2f}")
    print(f"peak memory ({peak_what}): {peak / 2**20:.0f} MiB")
    write_json(a.json, {"benchmark": "step", "machine": info, "args": vars(a), "grid": grid,
                        "crf_backend": crf_backend, "grow_method": grow_method, "graph": graph,
                        "seconds": {**med, "total": total}, "images_per_second": a.batch / total,
                        "peak_memory_bytes": peak, "peak_memory_kind": peak_what})


if __name__ == "__main__":
    main()
