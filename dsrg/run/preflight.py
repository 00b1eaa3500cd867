"""Pre-flight: before a step starts, every input it will read is checked.

A typo'd split name or a missing weights file would otherwise surface only when the step that reads it
runs, hours into a paper-scale run. :func:`check_inputs` checks, for the steps about to run (complete
ones are skipped): that every network starts from a weights file unless ``random_init=true``; the data
root and each split they read (``data.train_split``, ``data.val_split``, ``eval.split``); the batch sizes
against the training split and the number of torchrun processes; the files and folders named by
``cls.backbone_weights``, ``seg.backbone_weights``, ``seeds.saliency_dir``, ``seeds.authors_pickle`` and
``seeds.authors_list``; that a weights file reads as a state dict; that every training image (and
validation image, for the classifier) has its label map; and that a saliency folder holds a map for every
training image. With ``data.dataset=synthetic`` a missing root is written by the first step, so only its
split names are checked. Every process of a torchrun launch runs the same check.
"""

from __future__ import annotations

import os
from operator import attrgetter
from pathlib import Path
from typing import Sequence

from ..data.check import unlabelled_indices
from ..data.saliency import SaliencyFolder
from ..data.synthetic import SPLIT_CODES
from ..data.voc import VOCSegmentation
from ..errors import InputError, name_some
from ..models.weights import read_state_dict
from ..profile import Profile
from . import folders
from .train import iterations_per_epoch, require_shared


def step_inputs(cfg: Profile, step: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The split keys and the ``(path key, "file" | "folder")`` inputs that ``step`` reads."""
    splits = ["eval.split"] if step == "eval" else ["data.train_split"] + (["data.val_split"] if step == "cls" else [])
    paths = []
    if step == "cls" and cfg.cls.backbone_weights:
        paths.append(("cls.backbone_weights", "file"))
    if ((step == "seg" and cfg.seg.init == "imagenet") or (step == "retrain" and cfg.retrain.init == "imagenet")) \
            and cfg.seg.backbone_weights:
        paths.append(("seg.backbone_weights", "file"))
    if step == "seeds" and cfg.seeds.source == "cam" and cfg.seeds.saliency == "folder":
        paths.append(("seeds.saliency_dir", "folder"))
    if step == "seeds" and cfg.seeds.source == "authors":
        paths += [("seeds.authors_pickle", "file"), ("seeds.authors_list", "file")]
    return splits, paths


def random_starts(cfg: Profile, steps: Sequence[str]) -> list[str]:
    """The weights keys of ``steps`` that are empty where the paper starts from ImageNet weights, so that
    the step's network would start from random weights."""
    keys = []
    if "cls" in steps and not cfg.cls.backbone_weights:
        keys.append("cls.backbone_weights")
    if ((("seg" in steps and cfg.seg.init == "imagenet") or ("retrain" in steps and cfg.retrain.init == "imagenet"))
            and not cfg.seg.backbone_weights):
        keys.append("seg.backbone_weights")
    return keys


def require_resnet_weights(cfg: Profile, init: str) -> None:
    """A ResNet-101 with frozen BatchNorm (DeepLab's) cannot start from random weights: each block's last
    BatchNorm starts at scale 0, so frozen, no residual branch could ever train."""
    s = cfg.seg
    if init == "imagenet" and s.backbone == "resnet101" and s.freeze_bn and not s.backbone_weights:
        raise InputError("seg.backbone_weights: a torchvision resnet101 state dict is needed with "
                         "seg.freeze_bn=true (frozen BatchNorm keeps pretrained statistics); to train "
                         "ResNet-101 from random weights set seg.freeze_bn=false")


def check_inputs(cfg: Profile, steps: Sequence[str]) -> None:
    """Raise InputError naming the key and the path of the first input of ``steps`` that is missing."""
    def get(key: str):
        return attrgetter(key)(cfg)

    steps = [s for s in steps if not folders.is_done(folders.step_dir(cfg, s))]
    if not steps:
        return
    empty = random_starts(cfg, steps)
    if empty and not cfg.random_init:
        nets = {"cls.backbone_weights": "vgg16", "seg.backbone_weights": cfg.seg.backbone}
        files = " and ".join(f"{key}=<torchvision {nets[key]} state dict>" for key in empty)
        raise InputError(f"{' and '.join(empty)}: no weights file, so a network would start from random weights; "
                         f"the paper starts from ImageNet: give {files}, or random_init=true to train from random "
                         f"weights on purpose")
    if "seg.backbone_weights" in empty:
        require_resnet_weights(cfg, "imagenet")
    processes = int(os.environ.get("WORLD_SIZE", 1))
    for key in [f"{step}.batch_size" for step in steps if folders.STEPS[step].trains]:
        require_shared(get(key), processes, key)
    split_keys: dict[str, None] = {}
    read: set[Path] = set()             # weights files read so far (cls and seg often share one)
    for step in steps:
        splits, paths = step_inputs(cfg, step)
        split_keys.update(dict.fromkeys(splits))
        for key, kind in paths:
            path = Path(get(key))
            if not (path.is_file() if kind == "file" else path.is_dir()):
                raise InputError(f"{key}: {kind} not found: {path}")
            if key.endswith("backbone_weights") and path.resolve() not in read:   # not a state dict: now
                try:
                    read_state_dict(path)
                except InputError as exc:
                    raise InputError(f"{key}: {exc}") from None
                read.add(path.resolve())
    root = Path(cfg.data.root)
    if cfg.data.dataset == "synthetic" and not root.exists():   # written by the first step that opens it
        for key in split_keys:
            if get(key) not in SPLIT_CODES:
                raise InputError(f"{key}: the embedded dataset (data.dataset=synthetic) has the splits "
                                 f"{sorted(SPLIT_CODES)}, got {get(key)!r}")
        return
    if not root.is_dir():
        raise InputError(f"data.root: dataset root not found: {root} (expected a folder in the PASCAL VOC layout)")
    splits = {}
    for key in split_keys:
        try:
            splits[key] = VOCSegmentation(root, get(key))
        except InputError as exc:
            raise InputError(f"{key}={get(key)}: {exc}") from None
    for key in [f"{step}.batch_size" for step in steps if folders.STEPS[step].trains]:
        iterations_per_epoch(len(splits["data.train_split"]), get(key), key, cfg.data.train_split)
    # the image-level labels of training come from the label maps, as the classifier's validation does
    labelled = ["data.train_split"] if {"cls", "seeds", "seg"} & set(steps) else []
    for key in labelled + (["data.val_split"] if "cls" in steps else []):
        _require_label_maps(key, splits[key])
    if "seeds" in steps and cfg.seeds.source == "cam" and cfg.seeds.saliency == "folder":
        train, maps = splits["data.train_split"], SaliencyFolder(cfg.seeds.saliency_dir)
        missing = [maps.path(i).name for i in train.ids if not maps.path(i).is_file()]
        if missing:
            raise InputError(f"seeds.saliency_dir: {len(missing)} of the {len(train)} training images have no "
                             f"map in {maps.folder} (e.g. {name_some(missing)}); expected one "
                             f"<image id>{maps.suffix} per image of data.train_split={cfg.data.train_split}")


def _require_label_maps(key: str, ds) -> None:
    """Every image of the split ``key`` has its label map (the image-level labels come from them)."""
    missing = unlabelled_indices(ds)
    if missing:
        raise InputError(f"{key}={ds.split}: {len(missing)} of its {len(ds)} images have no label map in "
                         f"{ds.root / ds.label_dir} ({name_some([ds.ids[i] for i in missing])}); training reads "
                         f"each image's classes from it")
