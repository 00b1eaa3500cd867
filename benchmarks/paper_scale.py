"""A paper-scale run, projected: each step of a paper profile on a slice of a VOC-shaped set, timed, and the
full schedule's wall time projected from it.

    python benchmarks/paper_scale.py [--profile voc-vgg16] [--device cpu|cuda] [--slice 20] [--iterations 3]
                                     [--data data/paper-scale] [--pool 1000] [--json PATH] [key=value ...]

1. The set: VOC's id counts (train_aug 10,582, val 1,449) and image sizes (about 500 x 375, see
   :data:`VOC_SIZES`), written once into ``--data`` and reused. ``--pool`` distinct scenes of the embedded
   generator are drawn at those sizes in parallel (one process per core) and every id is a hard link to one
   of them, so the set costs the pool's time and space. Its ``dataset.json`` says what writing it cost.
2. The slice: the profile with ``random_init=true`` (no ImageNet weights needed), each training step for
   ``--iterations`` iterations at the profile's batch and input sizes, each inference step on the first
   ``--slice`` training images (seeds, pseudo-labels) and validation images (evaluate, and the validation
   that ends train-cls). Each step runs in a
   process of its own, so that its peak memory is its own.
3. Per step: seconds per iteration or per image, the start-up left out (a training step's first
   iteration; an inference step's first quarter of images: worker processes starting, CUDA's first
   kernels, a pool filling up) and what it took beyond that rate counted once; the share of each iteration
   spent waiting for its batch; on CUDA the share the GPU stood idle (CUDA events around the step's work,
   against wall time); peak memory (resident on the CPU, allocated on CUDA); and the projected wall time of
   the full schedule: the step's setup and warm-up plus the per-iteration (per-image) time times the
   profile's iterations (the split's images). Then the projected total.
4. The loader: images per second that one process turns into each training step's items, and so how many
   loader processes a GPU's rate asks for; and the seeds step's saliency in one process and in one per core.
5. ``dsrg run``'s ``seeds.overlap``: the seeds step once more with its saliency begun early (the early pool
   timed alone, then the step, left its CAMs), and from it an estimate of the seeds step and of the total when
   train-cls leaves the pool the cores it does not use.

``--profile voc-resnet101`` adds ``seg.freeze_bn=false`` (the frozen-BN rule refuses random weights).
Extra ``key=value`` overrides go to the profile (e.g. ``data.loader_workers=8``); the slice's own settings (its
data, iterations, run folder) win over them, and the projection takes the schedule from them.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from grow import machine_info, print_machine, write_json  # benchmarks/ is sys.path[0]
from PIL import Image

from dsrg.data.synthetic import SynthConfig, render_scene
from dsrg.data.voc import write_label_png
from dsrg.errors import InputError
from dsrg.files import atomic_dir, write_text
from dsrg.run.workers import die_with_parent
from dsrg.steps.dry_run import PROJECTED

GENERATOR = "dsrg benchmarks/paper_scale.py VOC-shaped set"
TRAIN_IDS, VAL_IDS = 10_582, 1_449           # VOC 2012 train_aug (with SBD) and val
#: (height, width) of VOC images and how often each comes up, rounded from VOC 2012's JPEGImages: most are
#: 500 wide and 333-375 high, about a quarter are portrait.
VOC_SIZES = {(375, 500): 0.45, (333, 500): 0.17, (500, 375): 0.15, (500, 333): 0.07, (366, 500): 0.06,
             (281, 500): 0.05, (500, 500): 0.05}
TRAINING = ("cls", "seg", "retrain")
#: images per second of one DSRG step of VGG16 (batch 20 x 321, bf16, exact CRF): 40.4 ms on one H200, measured
#: with benchmarks/step.py on 2026-12-04 (main at 6687757, torch 2.11 + CUDA 13), before `make gpu-check` kept
#: records; a `step` record of CUDA in benchmarks/results/ replaces it in the book.
GPU_RATE = 495
GPU_RATE_SOURCE = ("one H200 (torch 2.11, CUDA 13), benchmarks/step.py run by hand at main 6687757 on 2026-12-04, "
                   "copied from the developers' notes: no JSON record was kept (make gpu-check keeps one)")
STEPS = ("cls", "seeds", "seg", "pseudo", "retrain", "eval")


# ----------------------------------------------------------------------------- the VOC-shaped set

def pool_size(index: int, seed: int) -> tuple[int, int]:
    """The (height, width) of pool image ``index``, drawn from :data:`VOC_SIZES`."""
    sizes = list(VOC_SIZES)
    weights = np.array(list(VOC_SIZES.values()))
    k = np.random.default_rng([seed, 7, index]).choice(len(sizes), p=weights / weights.sum())
    return sizes[k]


def _write_pool_image(job: tuple[Path, int, int]) -> None:
    """Pool image ``index``: a scene of the embedded generator drawn on a square, cut to a VOC size."""
    folder, index, seed = job
    h, w = pool_size(index, seed)
    scene = render_scene(SynthConfig(size=max(h, w), seed=seed), "train", index)
    top, left = (max(h, w) - h) // 2, (max(h, w) - w) // 2
    Image.fromarray(scene.image[top:top + h, left:left + w]).save(folder / f"{index}.jpg", quality=90)
    write_label_png(folder / f"{index}.png", scene.mask[top:top + h, left:left + w])


def voc_shaped_set(root: str | os.PathLike, pool: int = 1000, train: int = TRAIN_IDS, val: int = VAL_IDS,
                   seed: int = 0, processes: int | None = None) -> Path:
    """Write (or find) a VOC-layout root with ``train`` ids in ``train_aug`` and ``val`` in ``val``, each a
    hard link to one of ``pool`` distinct images; return it. The root is written beside itself and renamed
    into place, so a killed write leaves nothing; one holding another set is refused."""
    root = Path(root)
    config = {"pool": pool, "train_aug": train, "val": val, "seed": seed}
    meta = root / "dataset.json"
    if root.exists():
        try:
            found = json.loads(meta.read_text())
        except (OSError, ValueError):
            found = {}
        if found.get("generator") == GENERATOR and found.get("config") == config:
            return root
        raise InputError(f"{root} holds something other than the VOC-shaped set asked for ({config}); delete it "
                         f"or give another --data folder")
    started = time.perf_counter()
    with atomic_dir(root) as tmp:
        pool_dir = tmp / "pool"
        pool_dir.mkdir()
        with multiprocessing.get_context("fork").Pool(processes or os.cpu_count(), die_with_parent,
                                                      (os.getpid(),)) as workers:
            workers.map(_write_pool_image, [(pool_dir, i, seed) for i in range(pool)], chunksize=8)
        pooled = time.perf_counter() - started
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        ids = {"train_aug": [f"2008_{i:06d}" for i in range(train)], "val": [f"2007_{i:06d}" for i in range(val)]}
        for k, image_id in enumerate(ids["train_aug"] + ids["val"]):
            os.link(pool_dir / f"{k % pool}.jpg", tmp / "JPEGImages" / f"{image_id}.jpg")
            os.link(pool_dir / f"{k % pool}.png", tmp / "SegmentationClass" / f"{image_id}.png")
        for split, names in ids.items():
            write_text(tmp / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{n}\n" for n in names))
        write_text(tmp / "dataset.json", json.dumps({
            "generator": GENERATOR, "config": config, "processes": processes or os.cpu_count(),
            "pool_s": round(pooled, 1), "write_s": round(time.perf_counter() - started, 1)}, indent=1) + "\n")
    return root


def write_slice(root: Path, split: str, n: int) -> str:
    """A split of the first ``n`` ids of ``split`` (``<split>_first<n>``); its name."""
    name = f"{split}_first{n}"
    ids = (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()[:n]
    write_text(root / "ImageSets" / "Segmentation" / f"{name}.txt", "".join(f"{i}\n" for i in ids))
    return name


# ----------------------------------------------------------------------------- measures and projection

def training_measures(log: list[dict], wall_s: float, timed: dict | None = None, warmup: int = 1) -> dict:
    """What one training step's slice says: seconds per iteration (the first ``warmup`` left out, when there
    are more; ``warmup_s``: what they took beyond that rate, paid once by the full schedule too), the shares
    of wall time spent waiting for data and, where logged, with the GPU idle; the seconds per image of what it
    then ran over a split (``timed``: train-cls scores the validation split); its setup (the wall time outside
    both)."""
    rows = log[warmup:] if len(log) > warmup else log
    seconds = sum(r["s"] for r in rows)
    out = {"iterations": len(log), "per_iteration_s": seconds / len(rows),
           "data_wait": sum(r.get("wait", 0.0) for r in rows) / seconds}
    first = log[:len(log) - len(rows)]
    out["warmup_s"] = sum(r["s"] for r in first) - len(first) * out["per_iteration_s"]
    if all("gpu" in r for r in rows):
        out["gpu_idle"] = max(0.0, 1.0 - sum(r["gpu"] for r in rows) / seconds)
    outside = wall_s - sum(r["s"] for r in log)
    if timed is not None:
        images = image_rate(timed)
        out.update(images=images["images"], per_image_s=images["per_image_s"],
                   warmup_s=out["warmup_s"] + images["warmup_s"])
        outside -= timed["s"]
    out["setup_s"] = max(0.0, outside)
    return out


def image_rate(timed: dict) -> dict:
    """Seconds per image of a step's images (``done.json``'s ``timed``): over the images after the first
    quarter where it was recorded (``start``: worker processes starting, CUDA's first kernels, a pool filling
    up), what that quarter took beyond the rate in ``warmup_s`` (less than nothing where it went faster);
    else over all of them."""
    n, s, start = timed["images"], timed["s"], timed.get("start")
    if start is None or start["images"] >= n or s <= start["s"]:
        return {"images": n, "per_image_s": s / max(1, n), "warmup_s": 0.0}
    rate = (s - start["s"]) / (n - start["images"])
    return {"images": n, "per_image_s": rate, "warmup_s": start["s"] - start["images"] * rate}


def inference_measures(timed: dict, wall_s: float) -> dict:
    """What one inference step's slice says: seconds per image (:func:`image_rate`), its warm-up, and its setup
    (the wall time outside the images)."""
    return {**image_rate(timed), "setup_s": max(0.0, wall_s - timed["s"])}


def project(measures: dict, iterations: int = 0, images: int = 0) -> float:
    """Projected wall seconds of a step: its setup and warm-up, plus ``iterations`` times its seconds per
    iteration, plus ``images`` times its seconds per image (each where the step has them)."""
    return (measures["setup_s"] + measures.get("warmup_s", 0.0) + iterations * measures.get("per_iteration_s", 0.0)
            + images * measures.get("per_image_s", 0.0))


# ----------------------------------------------------------------------------- running the slice

def slice_overrides(args, root: Path) -> list[str]:
    train = write_slice(root, "train_aug", args.slice)
    val = write_slice(root, "val", args.slice)
    extra = ["seg.freeze_bn=false"] if args.profile == "voc-resnet101" else []
    k = args.iterations
    # the user's overrides first: a schedule of theirs (seg.iterations=12000) is projected, not run in the slice
    return [*args.overrides, f"data.root={root}", f"data.train_split={train}", f"data.val_split={val}",
            f"eval.split={val}", "random_init=true",
            f"out={args.out}", f"device={args.device}", "progress=false", "ckpt_every=1000000",
            f"cls.iterations={k}", f"seg.iterations={k}", f"retrain.iterations={k}", *extra]


def run_one(profile: str, step: str, overrides: list[str]) -> None:
    """Run one step in this process and print its peak memory as JSON on the last line of stdout (``seeds-early``:
    :func:`seeds_early`, with the pool's timing too)."""
    import torch

    from dsrg.profile import load_profile
    from dsrg.steps import pipeline

    cfg = load_profile(profile, overrides)
    if cfg.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    extra = seeds_early(cfg) if step == "seeds-early" else {}
    if step != "seeds-early":
        pipeline.MODULES[step].run(cfg)
    peak = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if cfg.device == "cuda":
        peak["cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps({**peak, **extra}))


def seeds_early(cfg) -> dict:
    """The seeds step as ``dsrg run`` runs it with ``seeds.overlap`` (its saliency begun while train-cls trains),
    in two measures: the early pool (lowest priority, ``seeds.workers`` processes) over the slice alone, one
    image to a job, timed as the images come done (the pool's throughput: in the order they were asked for, a
    slow image would hold the count back), and then the step itself, which is left the CAMs. Its folder is
    beside the slice's (``<out>-early``), with the slice's classifier linked in. Returns
    ``{"saliency": timed, "workers", "folder": the step's}``."""
    from concurrent.futures import as_completed

    from dsrg.data.dataset import open_split
    from dsrg.run import folders
    from dsrg.run.clock import Clock
    from dsrg.steps import seeds
    from dsrg.run.workers import auto_workers

    cls = folders.step_dir(cfg, "cls")
    cfg.out = f"{cfg.out}-early"
    shutil.rmtree(cfg.out, ignore_errors=True)
    Path(cfg.out).mkdir(parents=True)
    (Path(cfg.out) / cls.name).symlink_to(cls.resolve())
    ds = open_split(cfg.data, cfg.data.train_split)
    workers = max(1, auto_workers(cfg.seeds.workers))
    clock = Clock()
    early = seeds.EarlyBackgrounds(ds, range(len(ds)), cfg.seeds, seeds.cam_grid(cfg), workers, chunk=1)
    try:
        for future in as_completed({future for future, _ in early.parts.values()}):
            future.result()                  # a failed image fails the measure: it does not count as done
            clock.tick()
        saliency = clock.timed()
        folder = seeds.run(cfg, early=early)
    finally:
        early.close()
    return {"saliency": saliency, "workers": workers, "folder": str(folder)}


def measure(args, overrides: list[str], result: dict | None = None, each=lambda result: None) -> dict:
    """Run each step of the slice in a process of its own; ``{step: measures}`` with projections, filled into
    ``result`` as each step ends (so that a run stopped midway keeps them), ``each(result)`` called then."""
    from dsrg.profile import load_profile
    from dsrg.run import folders
    from dsrg.run.train import read_log

    full = load_profile(args.profile, args.overrides)       # the schedule the slice stands for
    cfg = load_profile(args.profile, overrides)
    images = {"seeds": TRAIN_IDS, "pseudo": TRAIN_IDS, "eval": VAL_IDS}      # the set's splits (cls: its val)
    result = {} if result is None else result
    for step in planned(args):
        proc = subprocess.run([sys.executable, __file__, "--one", step, "--profile", args.profile, *overrides],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            raise SystemExit(f"paper_scale: step {step} failed (exit {proc.returncode}); its output is above")
        folder = folders.step_dir(cfg, step)
        done = folders.done_info(folder)
        if step in TRAINING:
            m = training_measures(read_log(folder), done["wall_s"], done.get("timed"))
            m["full"] = {"iterations": getattr(full, step).iterations, **({"images": VAL_IDS} if "timed" in done
                                                                         else {})}
        else:
            m = inference_measures(done["timed"], done["wall_s"])
            m["full"] = {"images": images[step]}
        m["wall_s"] = done["wall_s"]
        m["peak"] = json.loads(proc.stdout.strip().splitlines()[-1])
        m["projected_s"] = project(m, **m["full"])
        result[step] = m
        print(f"  {step}: {done['wall_s']:.1f} s on the slice, projected {m['projected_s'] / 60:.1f} min",
              flush=True)
        each(result)
    return result


def planned(args) -> list[str]:
    """The steps :func:`measure` runs for the profile."""
    from dsrg.profile import load_profile

    return [step for step in STEPS if step != "retrain" or load_profile(args.profile, args.overrides).retrain.enabled]


def measure_seeds_early(args, overrides: list[str]) -> dict:
    """The seeds step with its saliency begun early (:func:`seeds_early`), in a process of its own, after
    :func:`measure`: the early pool's rate and the step's own (the CAMs), each projected to the split."""
    from dsrg.run import folders

    proc = subprocess.run([sys.executable, __file__, "--one", "seeds-early", "--profile", args.profile, *overrides],
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"paper_scale: the seeds step with early saliency failed (exit {proc.returncode})")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    done = folders.done_info(Path(out["folder"]))
    cams = inference_measures(done["timed"], done["wall_s"])
    pool = image_rate(out["saliency"])
    return {"workers": out["workers"], "saliency": {**pool, "projected_s": pool["warmup_s"] + TRAIN_IDS *
                                                     pool["per_image_s"]},
            "cams": {**cams, "projected_s": project(cams, images=TRAIN_IDS)}}


def overlap_estimate(result: dict, early: dict, cores: int, loader: dict[str, float], device: str,
                     batch_size: int) -> dict:
    """The seeds step's projected time when its saliency begins with train-cls (``seeds.overlap``), an estimate
    from the measures. On CUDA, train-cls leaves the early pool the cores that its own process and its loader
    processes do not take: one for itself, and as many as its batches of ``batch_size`` images at its rate ask
    of loader processes at one process's rate (``loader``). The pool's time beyond what train-cls hides is the
    step's, or its CAMs' (on the GPU) where those take longer. On the CPU the overlap is not used (training and
    CAMs take every core): the seeds step as measured."""
    plain = sum(m["projected_s"] for m in result.values())
    if device != "cuda":
        return {"cores_left_to_saliency": 0.0, "hidden_s": 0.0, "seeds_projected_s": result["seeds"]["projected_s"],
                "projected_total_s": plain}
    cls, sal, cams = result["cls"], early["saliency"], early["cams"]
    taken = 1 + batch_size / cls["per_iteration_s"] / loader["cls"]
    share = min(1.0, max(0.0, cores - taken) / early["workers"])
    hidden = min(sal["projected_s"], share * cls["projected_s"])
    seeds = cams["setup_s"] + cams["warmup_s"] + max(TRAIN_IDS * cams["per_image_s"], sal["projected_s"] - hidden)
    return {"cores_left_to_saliency": share * early["workers"], "hidden_s": hidden, "seeds_projected_s": seeds,
            "projected_total_s": plain - result["seeds"]["projected_s"] + seeds}


def loader_rates(root: Path, split: str, images: int = 60) -> dict[str, float]:
    """Images per second that one process turns into training items (read, decode, resize or crop, flip),
    for each training step's dataset at the paper's sizes; the seeding step's cues are random ones."""
    import torch

    from dsrg.data.cues import CueStore
    from dsrg.data.dataset import ClassificationSet, PseudoLabelSet, SeedSet
    from dsrg.data.voc import VOCSegmentation

    ds = VOCSegmentation(root, split)
    n = min(images, len(ds))
    rng = np.random.default_rng(0)
    cues = CueStore.from_dense({ds.ids[i]: (rng.random((21, 41, 41)) < 0.05, ds.labels(i)) for i in range(n)})
    sets = {"cls": ClassificationSet(ds, 321), "seg": SeedSet(ds, 321, cues),
            "retrain": PseudoLabelSet(ds, root / "SegmentationClass", 321)}
    import cv2

    rates, threads, cv_threads = {}, torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)                 # as in a loader process (dsrg.run.train._loader_worker)
    cv2.setNumThreads(0)
    try:
        for step, dataset in sets.items():
            dataset[(0, 1)]                  # warm: imports, first allocation
            start = time.perf_counter()
            for i in range(n):
                dataset[(i, i + 1)]
            rates[step] = n / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    return rates


def saliency_rates(root: Path, split: str, images: int = 60) -> dict[str, float]:
    """Images per second of the seeds step's saliency (``rbd``) in one process (over a quarter of ``images``)
    and in a pool of one process per core (:func:`dsrg.steps.seeds._with_backgrounds`, as the step runs it, over
    ``images``), each rated after its first quarter (:func:`image_rate`: imports, the pool starting)."""
    from dsrg.data.voc import VOCSegmentation
    from dsrg.profile import SeedsConfig
    from dsrg.run.clock import Clock
    from dsrg.steps.seeds import _with_backgrounds
    from dsrg.run.workers import usable_cores

    cores = usable_cores()
    rates = {}
    for workers, n in ((0, max(4, images // 4)), (cores, images)):
        ds = VOCSegmentation(root, write_slice(root, split, n))
        clock = Clock()
        for _ in _with_backgrounds(ds, SeedsConfig(saliency="rbd"), (41, 41), workers):
            clock.tick()
        per_image = image_rate(clock.timed())["per_image_s"]
        rates[f"{workers} workers" if workers else "one process"] = 1 / max(per_image, 1e-9)
    return rates


def table(result: dict, steps: list[str] | None = None) -> str:
    """The measures as a plain-text table, with the projected total (of the steps measured, where some of
    ``steps`` are not)."""
    lines = [f"{'step':8} {'s/it':>8} {'s/img':>7} {'data wait':>9} {'GPU idle':>8} {'peak MiB':>9} "
             f"{'full schedule':>22} {'projected':>10}"]
    for step, m in result.items():
        per_it = f"{m['per_iteration_s']:.3f}" if "per_iteration_s" in m else "-"
        per_img = f"{m['per_image_s']:.3f}" if "per_image_s" in m else "-"
        wait = f"{100 * m['data_wait']:.1f} %" if "data_wait" in m else "-"
        idle = f"{100 * m['gpu_idle']:.0f} %" if "gpu_idle" in m else "-"
        peak = m["peak"].get("cuda_mib", m["peak"]["rss_mib"])
        full = " + ".join(f"{n:,} {'it' if k == 'iterations' else 'img'}" for k, n in m["full"].items())
        lines.append(f"{step:8} {per_it:>8} {per_img:>7} {wait:>9} {idle:>8} {peak:>9.0f} {full:>22} "
                     f"{m['projected_s'] / 60:>6.1f} min")
    total = sum(m["projected_s"] for m in result.values())
    missing = [step for step in (steps or []) if step not in result]
    lines.append(f"projected total: {total / 60:.1f} min ({total / 3600:.2f} h)" if not missing else
                 f"projected total of the {len(result)} steps measured: {total / 60:.1f} min ({total / 3600:.2f} h); "
                 f"not measured: {', '.join(missing)}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        step, profile, overrides = sys.argv[2], sys.argv[4], sys.argv[5:]
        return run_one(profile, step, overrides)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="voc-vgg16", choices=PROJECTED)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--slice", type=int, default=20, help="images of each inference step (at least the batch size)")
    ap.add_argument("--iterations", type=int, default=3, help="iterations of each training step")
    ap.add_argument("--data", default="data/paper-scale", help="the VOC-shaped set (written once, then reused)")
    ap.add_argument("--pool", type=int, default=1000, help="distinct images the set's ids link to")
    ap.add_argument("--out", default="runs/paper-scale", help="run folder of the slice (emptied first)")
    ap.add_argument("--saliency-images", type=int, default=60,
                    help="images of the saliency rate measure in a pool (one process: a quarter of them)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("overrides", nargs="*", help="key=value for the profile")
    args = ap.parse_args()
    from dsrg.profile import load_profile
    load_profile(args.profile, args.overrides)              # a bad key=value fails now, not after the set
    info = machine_info()
    print_machine(info)
    t = time.perf_counter()
    root = voc_shaped_set(args.data, args.pool)
    made = json.loads((root / "dataset.json").read_text())
    print(f"VOC-shaped set: {root} ({time.perf_counter() - t:.1f} s now; written once in {made['write_s']} s "
          f"with {made['processes']} processes, {made['config']['pool']} distinct images)")
    shutil.rmtree(args.out, ignore_errors=True)
    overrides = slice_overrides(args, root)
    if args.device == "cuda":
        import torch
        info["gpu"] = torch.cuda.get_device_name(0)
    steps, result = planned(args), {}
    # written after each step and each further measure: a run stopped by a time limit keeps what it measured
    record = {"benchmark": "paper_scale", "profile": args.profile, "device": args.device, "slice": args.slice,
              "iterations": args.iterations, "overrides": args.overrides, "set": made, "steps": result,
              "machine": info}

    def keep(result: dict) -> None:
        record["projected_total_s"] = sum(m["projected_s"] for m in result.values())
        record["not_measured"] = [step for step in steps if step not in result]     # [] once all are
        write_json(args.json, record)

    try:
        measure(args, overrides, result, keep)
    except KeyboardInterrupt:                                # Ctrl-C or SIGTERM: what it measured, and its total
        if result:
            print(table(result, steps))
        raise SystemExit(f"paper_scale: stopped after {len(result)} of {len(steps)} steps"
                         + (f"; the record so far: {args.json}" if args.json and result else "")) from None
    print(table(result))
    rates = record["loader_images_per_s"] = loader_rates(root, "train_aug")
    print("one loader process: " + ", ".join(f"{step} {rate:.0f} img/s" for step, rate in rates.items())
          + f"; {GPU_RATE} img/s (the H200's VGG16 step) needs "
          + ", ".join(f"{math.ceil(GPU_RATE / rate)} ({step})" for step, rate in rates.items()) + " processes")
    saliency = record["saliency_images_per_s"] = saliency_rates(root, "train_aug", args.saliency_images)
    print("seeds' saliency (rbd): " + ", ".join(f"{k} {v:.2f} img/s" for k, v in saliency.items()))
    write_json(args.json, record)
    from dsrg.run.workers import usable_cores

    early = record["seeds_early"] = measure_seeds_early(args, overrides)
    overlap = record["overlap"] = overlap_estimate(result, early, usable_cores(), rates, args.device,
                                                   load_profile(args.profile, args.overrides).cls.batch_size)
    print(f"seeds with its saliency begun early ({early['workers']} lowest-priority processes): saliency "
          f"{early['saliency']['projected_s'] / 60:.1f} min alone, CAMs {early['cams']['projected_s'] / 60:.1f} min; "
          f"train-cls leaves it {overlap['cores_left_to_saliency']:.1f} cores (an estimate), hiding "
          f"{overlap['hidden_s'] / 60:.1f} min: seeds {overlap['seeds_projected_s'] / 60:.1f} min, projected total "
          f"{overlap['projected_total_s'] / 60:.1f} min")
    write_json(args.json, record)


if __name__ == "__main__":
    one = sys.argv[1:2] == ["--one"]                         # a step's own process: its parent says where it stood
    if not one:
        signal.signal(signal.SIGTERM, signal.default_int_handler)     # SIGTERM stops it as Ctrl-C does
    try:
        main()
    except InputError as e:                                  # a bad argument: its message, not a traceback
        raise SystemExit(f"paper_scale: {e}") from None
    except KeyboardInterrupt:                                # between the steps' measures: the record written so far
        raise SystemExit(130 if one else "paper_scale: stopped (a --json record keeps what was measured)") from None
