"""``dsrg retrain``: fully-supervised training on the pseudo labels (Section 4.1, "+Retrain" of Table 2).

DeepLab-ASPP initialised from the step-1 model (``retrain.init=seg``, as the authors) or from ImageNet
weights, random ``crop_size`` crops and mirror, cross-entropy with 255 ignored, poly lr. The loss is
taken on the logit grid against labels subsampled to it (``retrain.loss_grid=output``: the authors'
``label_shrink``, pixel 8i of a 321 crop for cell i) or on the crop against upsampled logits (``input``).
"""

from __future__ import annotations

import time
from pathlib import Path


from ..method import transforms as T
from ..data.dataset import PseudoLabelSet, open_split
from ..profile import Profile
from ..run import folders
from ..run.checkpoints import load_model
from ..run.dist import autocast
from ..run.train import fit, make_optimizer
from ..method.losses import pixel_loss
from ..run.context import begin, finish_training, setup
from ..run.networks import build_seg_net
from ..run import step_files


def run(cfg: Profile, resume: bool = False) -> Path:
    ctx = setup(cfg)
    folder, done = begin(ctx, "retrain")
    if done:
        return folder
    started = time.perf_counter()
    labels_dir = folders.require(cfg, "pseudo") / "labels"
    train = open_split(cfg.data, cfg.data.train_split)
    if cfg.retrain.init == "seg":
        model = load_model(folders.require(cfg, "seg") / step_files.MODEL,
                           build_seg_net(cfg, train.num_classes, ctx.device, "none"), ctx.device)
    else:
        model = build_seg_net(cfg, train.num_classes, ctx.device, "imagenet")
    optimizer = make_optimizer(model.param_groups(cfg.retrain.lr, cfg.retrain.weight_decay), cfg.retrain)

    def step(net, batch, it):
        _, images, labels = batch
        with autocast(ctx.device, cfg.amp):
            logits = net(T.normalize(images, cfg.data.normalize))
        return {"loss": pixel_loss(logits, labels, cfg.retrain.loss_grid)}

    resumed = fit(model, optimizer, cfg.retrain, cfg, folder,
                     PseudoLabelSet(train, labels_dir, cfg.retrain.crop_size), step, device=ctx.device,
                     world=ctx.world, desc="retrain", resume=resume)
    if not ctx.world.main:
        return folder
    finish_training(folder, started, model, train, resumed, iterations=cfg.retrain.iterations)
    return folder
