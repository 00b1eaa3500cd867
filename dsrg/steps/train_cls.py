"""``dsrg train-cls``: the multi-label classification network whose CAMs give the foreground seeds.

Image-level labels only (from the annotation, never its pixels). Loss: binary cross-entropy over the
foreground classes (SEC's classifier, Section 3.1 of the paper). Output: ``model.pt``, ``log.jsonl``,
and in ``done.json`` the mean average precision and exact-match accuracy on the validation split.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..method import transforms as T
from ..data.dataset import ClassificationSet, open_split
from ..profile import Profile
from ..run.clock import Clock
from ..run.dist import autocast
from ..run.train import fit, make_optimizer
from ..method.metrics import average_precision
from ..run.context import begin, finish_training, setup
from ..run.networks import build_cls_net


def classification_scores(model, ds, size: int, device, normalize: str, amp: bool, batch: int = 32,
                          tick: Callable[[int], None] | None = None):
    """Logits ``(N, K)`` and targets ``(N, K)`` of a split (no augmentation); ``tick(n)`` after each batch of
    ``n`` images (a :class:`~dsrg.run.clock.Clock`'s)."""
    items = ClassificationSet(ds, size)
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for start in range(0, len(items), batch):
            chunk = [items[i] for i in range(start, min(start + batch, len(items)))]
            x = torch.stack([c[1] for c in chunk]).to(device)
            with autocast(device, amp):
                logits.append(model(T.normalize(x, normalize)).float().cpu())
            targets.append(torch.stack([c[2][1:] for c in chunk]))
            if tick is not None:
                tick(len(chunk))
    return torch.cat(logits).numpy(), torch.cat(targets).numpy()


def run(cfg: Profile, resume: bool = False) -> Path:
    ctx = setup(cfg)
    folder, done = begin(ctx, "cls")
    if done:
        return folder
    started = time.perf_counter()
    train = open_split(cfg.data, cfg.data.train_split, progress=cfg.progress)
    model = build_cls_net(cfg, train.num_classes).to(ctx.device)
    optimizer = make_optimizer(model.param_groups(cfg.cls.lr, cfg.cls.weight_decay), cfg.cls)
    normalize = cfg.data.normalize

    def step(net, batch, it):
        _, images, labels = batch
        with autocast(ctx.device, cfg.amp):
            logits = net(T.normalize(images, normalize))
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels[:, 1:].float())
        return {"loss": loss}

    resumed = fit(model, optimizer, cfg.cls, cfg, folder, ClassificationSet(train, cfg.cls.input_size), step,
                     device=ctx.device, world=ctx.world, desc="train-cls", resume=resume)
    if not ctx.world.main:
        return folder
    val = open_split(cfg.data, cfg.data.val_split)
    clock = Clock()
    scores, targets = classification_scores(model, val, cfg.cls.input_size, ctx.device, normalize, cfg.amp,
                                            tick=clock.tick)
    summary = {"val_map": average_precision(scores, targets),
               "val_exact_match": float(((scores > 0) == targets.astype(bool)).all(1).mean()),
               "iterations": cfg.cls.iterations, "timed": clock.timed()}
    finish_training(folder, started, model, train, resumed, **summary)
    return folder
