"""``dsrg train-seg``: DSRG step 1 (Section 3.2, Figure 2), the segmentation network trained from seeds.

Each iteration, for a batch of images warped to ``seg.input_size`` with their ORIGINAL cues:

1. forward DeepLab-ASPP, smoothed softmax ``P`` (:func:`dsrg.method.losses.smoothed_softmax`);
2. training-time dense CRF on the output grid, clipped at 1e-4 and renormalised, ``Q``
   (:func:`dsrg.method.crf.refine_for_growing`, s = ``seg.crf_scale``, 12 as the authors);
3. region growing from the original cues with ``Q`` (Eq. 3, :func:`dsrg.method.growing.grow`,
   ``theta_fg`` / ``theta_bg``; ``growing=false`` keeps the cues);
4. seeding loss on the grown cues (Eq. 1 balanced, or SEC's) + ``boundary_weight`` x boundary loss
   KL(Q || P) (Eq. 2); SGD with the Caffe lr multipliers.

Records (Section 4.5, Fig. 4 and Fig. 1), written at each epoch: ``supervision.csv`` (precision,
recall, IoU of the supervision actually used in that epoch's iterations, against the ground truth
on the grid, labelled pixels only; row 0 = the seeds) and ``fig1.npz`` (the grown supervision of the
first ``record_images`` training images, network in eval mode, after each epoch).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import numpy as np
import torch

from ..method import transforms as T
from ..data.cues import CueStore
from ..data.dataset import SeedSet, collate, open_split
from ..errors import InputError
from ..files import atomic_path, write_csv
from ..method.crf import EXACT, TRAIN_PARAMS, choose_backend, refine_for_growing, resolve_backend
from ..method.growing import grow, resolve_method
from ..method.reach import triton_works
from ..method.losses import BOUNDARY_CLIP, smoothed_softmax, total_loss
from ..method.metrics import supervision_counts, supervision_quality
from ..profile import Profile
from ..run import cuda_graphs, folders
from ..run.dist import all_reduce_sum, autocast
from ..run.train import fit, make_optimizer
from ..run.workers import auto_workers, mapper
from ..run.context import begin, finish_training, setup
from ..run.networks import build_seg_net
from ..run import step_files


def supervision(cfg: Profile, logits: torch.Tensor, images: torch.Tensor, cues: torch.Tensor,
                labels: torch.Tensor, crf_map=map) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1-3 for a batch: ``P`` (B, C, h, w), ``Q`` (CRF marginals clipped at 1e-4 and renormalised,
    for growing and the boundary loss alike), and the grown cues (bool). Steps 2 and 3 as one CUDA graph
    where ``seg.cuda_graph`` and both run on the device without the host (:func:`graphed`). ``crf_map``: how
    pydensecrf goes over the batch (:func:`dsrg.run.workers.mapper` of ``seg.crf_workers``)."""
    s = cfg.seg
    probs = smoothed_softmax(logits.float())
    work = functools.partial(refine_and_grow, s, crf_map=crf_map)
    if s.cuda_graph and graphed(s, probs):
        key = ("train-seg", repr(s))                # every setting
        q, grown = cuda_graphs.replay(work, key, probs.detach(), images, cues, labels,
                                      what="train-seg's CRF and growing")
    else:
        q, grown = work(probs.detach(), images, cues, labels)
    return probs, q, grown


def refine(s, probs: torch.Tensor, images: torch.Tensor, crf_map=map) -> torch.Tensor:
    """Step 2 with the settings of ``s`` (``cfg.seg``): ``Q``, ``(B, C, h, w)``."""
    params = dataclasses.replace(TRAIN_PARAMS, scale=s.crf_scale)
    return refine_for_growing(probs, images, unary=s.crf_unary, map_fn=crf_map, backend=s.crf_backend,
                              params=params)


def grow_cues(s, cues: torch.Tensor, q: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Step 3 with the settings of ``s``: the cues grown with ``Q`` (the cues themselves where ``growing=false``)."""
    return grow(cues, q, labels, s.theta_fg, s.theta_bg, s.grow_method) if s.growing else cues


def refine_and_grow(s, probs: torch.Tensor, images: torch.Tensor, cues: torch.Tensor,
                    labels: torch.Tensor, crf_map=map) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2 and 3 with the settings of ``s`` (``cfg.seg``): ``Q`` and the grown cues."""
    q = refine(s, probs, images, crf_map)
    return q, grow_cues(s, cues, q, labels)


def loss_terms(s, probs: torch.Tensor, q: torch.Tensor, grown: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 4 with the settings of ``s``: Eq. (2), as :func:`dsrg.method.losses.total_loss` returns it."""
    return total_loss(probs, q, grown, s.seed_loss, s.boundary_weight, BOUNDARY_CLIP if s.boundary_clip else None)


def graphed(s, probs: torch.Tensor) -> bool:
    """Whether the CRF and growing of ``s`` (``cfg.seg``) on ``probs`` run on its CUDA device without reading
    anything back, so that they can be captured as one CUDA graph: the exact CRF, and growing off or triton."""
    side = max(probs.shape[-2:])
    return (probs.is_cuda and resolve_backend(s.crf_backend, probs) in EXACT     # the kernel's check: not captured
            and (not s.growing or (resolve_method(s.grow_method, probs.device, side) == "triton"
                                   and triton_works(probs.device))))


def losses(cfg: Profile, logits: torch.Tensor, images: torch.Tensor, cues: torch.Tensor,
           labels: torch.Tensor, crf_map=map) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Eq. (2) for a batch with the profile's settings (:func:`dsrg.method.losses.total_loss`) on the cues
    grown by :func:`supervision`.

    Args as :func:`supervision`. Returns the step's log entries (``loss``, which carries the gradient,
    ``seed_loss``, ``boundary_loss``, ``grown_fraction``: the share of pixels with a label after growing)
    and the grown cues, bool ``(B, C, h, w)``.
    """
    probs, q, grown = supervision(cfg, logits, images, cues, labels, crf_map)
    loss, seed, bound = loss_terms(cfg.seg, probs, q, grown)
    return {"loss": loss, "seed_loss": seed, "boundary_loss": bound,
            "grown_fraction": grown.any(1).float().mean()}, grown


class Records:
    """Per-epoch supervision quality (Fig. 4) and supervision maps of fixed images (Fig. 1)."""

    def __init__(self, cfg: Profile, folder: Path, dataset: SeedSet, ctx, seeds_quality: dict | None, crf_map=map):
        self.cfg, self.folder, self.dataset, self.ctx, self.crf_map = cfg, folder, dataset, ctx, crf_map
        # summed on the device where the step runs (no copy back, which would stall it every iteration)
        self.counts = torch.zeros(4, dataset.ds.num_classes, dtype=torch.int64, device=ctx.device)
        undefined = float("nan")        # done.json writes an undefined measure as null
        self.rows = [] if seeds_quality is None else \
            [{"epoch": 0, **{k: undefined if v is None else v for k, v in seeds_quality.items()}}]
        k = min(cfg.seg.record_images, len(dataset))
        self.fixed = collate([dataset[i] for i in range(k)]) if k else None
        self.maps: list[np.ndarray] = []
        if self.fixed is not None:
            self.maps.append(self.fixed[2].numpy())      # epoch 0: the seeds

    def add(self, grown: torch.Tensor, gt: torch.Tensor) -> None:
        self.counts += supervision_counts(grown, gt)

    def epoch_end(self, model, epoch: int) -> None:
        counts = all_reduce_sum(self.counts, self.ctx.world).to("cpu", copy=True)
        self.counts.zero_()
        if not self.ctx.world.main:
            return
        if int(counts[2].sum()) > 0:
            self.rows.append({"epoch": epoch, **supervision_quality(counts)})
            write_csv(self.folder / step_files.SUPERVISION, self.rows)
        if self.fixed is not None:
            _, images, cues, labels, _ = [t.to(self.ctx.device) for t in self.fixed]
            was = model.training
            model.eval()
            with torch.no_grad(), autocast(self.ctx.device, self.cfg.amp):
                logits = model(T.normalize(images, self.cfg.data.normalize))
            model.train(was)
            self.maps.append(supervision(self.cfg, logits, images, cues, labels, self.crf_map)[2].cpu().numpy())
            ids = [self.dataset.ds.ids[int(i)] for i in self.fixed[0]]
            with atomic_path(self.folder / step_files.FIG1) as tmp:
                np.savez_compressed(tmp, ids=np.array(ids), supervision=np.stack(self.maps),
                                    epochs=np.arange(len(self.maps)))

    def state_dict(self) -> dict:
        """Called by every process: the epoch's counts so far are summed over the processes."""
        return {"counts": all_reduce_sum(self.counts, self.ctx.world).to("cpu", copy=True), "rows": list(self.rows),
                "maps": list(self.maps)}

    def load_state_dict(self, state: dict) -> None:
        """The saved counts (already summed) go to the main process; the others start the epoch at zero."""
        counts = state["counts"].to(self.ctx.device, copy=True)
        if counts.shape[0] == 3:        # a checkpoint from before the 4th row: its labels stand for the pixels
            counts = torch.cat([counts, counts[1:2]])
        self.counts = counts if self.ctx.world.main else torch.zeros_like(counts)
        self.rows, self.maps = list(state["rows"]), list(state["maps"])


def run(cfg: Profile, resume: bool = False) -> Path:
    ctx = setup(cfg)
    folder, done = begin(ctx, "seg")
    if done:
        return folder
    started = time.perf_counter()
    seeds_dir = folders.require(cfg, "seeds")
    store = CueStore.load(seeds_dir / step_files.CUES)
    train = open_split(cfg.data, cfg.data.train_split)
    model = build_seg_net(cfg, train.num_classes, ctx.device, cfg.seg.init)
    grid = (model.output_size(cfg.seg.input_size),) * 2
    if store.grid != grid:
        raise InputError(f"the seed cues are on a {store.grid[0]}x{store.grid[1]} grid but seg.input_size="
                         f"{cfg.seg.input_size} gives a {grid[0]}x{grid[1]} output; use the input size the cues "
                         f"were made for")
    if store.num_classes != train.num_classes:
        raise InputError(f"the seed cues have {store.num_classes} classes, the dataset {train.num_classes}")
    dataset = SeedSet(train, cfg.seg.input_size, store)
    optimizer = make_optimizer(model.param_groups(cfg.seg.lr, cfg.seg.weight_decay), cfg.seg)
    # pydensecrf's processes, one pool for the whole step (where the CRF runs pydensecrf at all)
    pydensecrf = choose_backend(cfg.seg.crf_backend, grid[0] * grid[1], ctx.device.type == "cuda") == "pydensecrf"
    crf_processes = mapper(auto_workers(cfg.seg.crf_workers) if pydensecrf else 1, preload=["dsrg.method.crf"])
    try:
        with crf_processes as crf_map:
            records = Records(cfg, folder, dataset, ctx, folders.done_info(seeds_dir).get("quality"), crf_map)

            def step(net, batch, it):
                _, images, cues, labels, gt = batch
                with autocast(ctx.device, cfg.amp):
                    logits = net(T.normalize(images, cfg.data.normalize))
                out, grown = losses(cfg, logits, images, cues, labels, crf_map)
                records.add(grown, gt)
                return out

            resumed = fit(model, optimizer, cfg.seg, cfg, folder, dataset, step, device=ctx.device,
                             world=ctx.world, desc="train-seg", resume=resume, records=records)
    finally:
        cuda_graphs.forget()                  # the memory of the step's CUDA graphs, if any
    if not ctx.world.main:
        return folder
    last = records.rows[-1] if records.rows and records.rows[-1]["epoch"] > 0 else None   # no epoch ended: none
    finish_training(folder, started, model, train, resumed, iterations=cfg.seg.iterations,
                    supervision_last_epoch=last)
    return folder
