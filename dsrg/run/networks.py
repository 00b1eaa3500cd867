"""The networks of a profile: the CAM classifier (``cls``) and DeepLab-ASPP (``seg``, ``retrain``), built and
started from the profile's weights files (torchvision state dicts, or a Caffe VGG16's). A file that does not fit
is said in the profile's terms: the key that names it and the setting that would make it fit
(:func:`weights_misfit`, which pre-flight asks of every weights file before a step runs)."""

from __future__ import annotations

import os
from operator import attrgetter
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import InputError, name_some
from ..files import read_torch
from ..models.cam import CAMNet
from ..models.deeplab import DeepLabASPP
from ..models.weights import (CAFFE_VGG16_KEYMAP, FC_KEYS, HEAD_PREFIXES, architecture, check_backbone,
                              check_vgg16_fc, has_full_fc, is_caffe_vgg16)
from ..models.weights import renamed as renamed_key
from ..profile import Profile
from . import folders, step_files
from .checkpoints import load_model


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A weights file's state dict (or the ``state_dict`` inside a ``{"state_dict": ...}``), read as data only
    (:func:`dsrg.files.read_torch`); InputError for a missing file or one of another kind."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"backbone weights file not found: {path} (expected a state dict saved with torch.save)")
    obj = read_torch(path, "a torchvision state dict, such as vgg16-397923af.pth")
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InputError(f"backbone weights {path}: expected a dict of name -> tensor, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"backbone weights {path}: expected tensor values under string keys; bad entries: {bad[:10]}")
    return dict(obj)


def require_resnet_weights(cfg: Profile, init: str) -> None:
    """A ResNet-101 with frozen BatchNorm (DeepLab's) cannot start from random weights: each block's last
    BatchNorm starts at scale 0, so frozen, no residual branch could ever train."""
    s = cfg.seg
    if init == "imagenet" and s.backbone == "resnet101" and s.freeze_bn and not s.backbone_weights:
        raise InputError("seg.backbone_weights: a torchvision resnet101 state dict is needed with "
                         "seg.freeze_bn=true (frozen BatchNorm keeps pretrained statistics); to train "
                         "ResNet-101 from random weights set seg.freeze_bn=false")


def _cls_net(cfg: Profile, num_classes: int) -> CAMNet:
    return CAMNet(num_classes - 1, cfg.cls.width, cfg.cls.dropout, cfg.cls.batch_norm)


def _seg_net(cfg: Profile, num_classes: int) -> DeepLabASPP:
    s = cfg.seg
    return DeepLabASPP(s.backbone, num_classes, s.width, freeze_bn=s.freeze_bn, dropout=s.dropout,
                       batch_norm=s.batch_norm, head=s.head_name)


def build_cls_net(cfg: Profile, num_classes: int, backbone_weights: bool = True) -> CAMNet:
    """The CAM classifier over the ``num_classes - 1`` foreground classes; ``cls.backbone_weights`` are
    loaded unless ``backbone_weights`` is False (a trained model is about to be read into it), with
    DeepLab's fc6/fc7 from the file (:func:`~dsrg.models.weights.vgg16_fc`) when ``cls.fc_init=imagenet``."""
    net = _cls_net(cfg, num_classes)
    if backbone_weights and cfg.cls.backbone_weights:
        _start(cfg, "cls.backbone_weights", net, read_weights(cfg.cls.backbone_weights))
    return net


def build_seg_net(cfg: Profile, num_classes: int, device: torch.device, init: str = "imagenet") -> DeepLabASPP:
    """DeepLab-ASPP of the profile; ``init``: ``imagenet`` (``seg.backbone_weights`` if given), ``cls``
    (the trained CAM net's trunk, the demo's stand-in for ImageNet weights) or ``none`` (random weights,
    for a trained model to be read into). With ImageNet VGG16 weights and ``seg.fc_init=imagenet`` every
    ASPP branch's fc6/fc7 start from the file's, reduced as DeepLab's init model."""
    require_resnet_weights(cfg, init)
    net = _seg_net(cfg, num_classes)
    if init == "imagenet" and cfg.seg.backbone_weights:
        _start(cfg, "seg.backbone_weights", net, read_weights(cfg.seg.backbone_weights))
    elif init == "cls":
        cls_net = load_model(folders.require(cfg, "cls") / step_files.MODEL, build_cls_net(cfg, num_classes, False),
                             device)
        net.backbone.features.load_state_dict(cls_net.features.state_dict())
    return net.to(device)


def weights_misfit(cfg: Profile, key: str, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Why the weights file of ``key`` (``cls.backbone_weights`` or ``seg.backbone_weights``, read as ``state``)
    does not fit the network it will start, as the step will load it (the network built on the meta device: no
    memory, no weights); [] when it fits."""
    with torch.device("meta"):
        net = _cls_net(cfg, 2) if key == "cls.backbone_weights" else _seg_net(cfg, 2)
    return _fit(cfg, key, net, state)[0]


def how_read(cfg: Profile, key: str, state: Mapping[str, torch.Tensor]) -> str:
    """How the weights file of ``key``, read as ``state`` and fitting its network, starts it, in words."""
    caffe, section = _is_caffe(cfg, key, state), key.split(".")[0]
    kind = "a Caffe VGG16's (layers conv1_1 ... conv5_3)" if caffe else f"a torchvision {architecture(state)}'s"
    own_cam = not caffe and getattr(state.get("fc8.weight"), "ndim", None) == 2     # train-cls's linear classifier
    if own_cam:
        kind += " with its fc6/fc7 (a dsrg CAM net's, as train-cls saves it)"
    elif not caffe and any(k in state for k in FC_KEYS) and cfg.data.normalize != "caffe":
        kind += " with Caffe's fc6/fc7 (a Caffe init renamed? it would want data.normalize=caffe)"
    if section == "seg" and cfg.seg.head_name != cfg.seg.backbone:
        fc = f", {cfg.seg.head_name}'s head at random (seg.head={cfg.seg.head_name})"   # no VGG16 fc6/fc7 fits it
    elif not _vgg_fc(cfg, key):
        fc = ""
    elif getattr(cfg, section).fc_init != "imagenet":
        fc = f", fc6/fc7 at random ({section}.fc_init=random)"
    else:
        whose = "of the CAM net" if section == "cls" else "of every ASPP branch"
        fc = (f", and fc6/fc7 {whose} decimated from its full fc6/fc7 (DeepLab's reduction)" if has_full_fc(state)
              else f", and fc6/fc7 {whose} as the file has them (DeepLab's reduced ones)"
              if any(k in state for k in FC_KEYS) else
              f", and fc6/fc7 {whose} decimated from its classifier (DeepLab's reduction)")
    return f"{attrgetter(key)(cfg)}, {kind}: the trunk{fc}"


def _start(cfg: Profile, key: str, net: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Start ``net`` from the weights file of ``key``, read as ``state``: its trunk, and the fc6/fc7 of the CAM
    net or of every VGG ASPP branch where ``fc_init=imagenet``. A Caffe VGG16's file (DeepLab's init) is read by
    its layer names. An InputError says each misfit (:func:`_fit`)."""
    problems, loads = _fit(cfg, key, net, state)
    if problems:
        raise InputError("; ".join(problems))
    for module, entries in loads:
        module.load_state_dict(entries, strict=False)


def _parts(cfg: Profile, key: str, net: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """The trunk a weights file starts, and the modules whose fc6/fc7 it starts (``fc_init=imagenet``)."""
    if key.startswith("cls."):
        trunk = nn.Module()
        trunk.features = net.features
        return trunk, [net] if cfg.cls.fc_init == "imagenet" else []
    return net.backbone, list(net.aspp) if _vgg_fc(cfg, key) and cfg.seg.fc_init == "imagenet" else []


def _vgg_trunk(cfg: Profile, key: str) -> bool:
    """Whether the network the weights file of ``key`` starts has a VGG trunk (the CAM net always has)."""
    return key.startswith("cls.") or cfg.seg.backbone == "vgg16"


def _vgg_fc(cfg: Profile, key: str) -> bool:
    """Whether that network has fc6/fc7 that a VGG16 file can start: a VGG trunk under VGG16's head."""
    return _vgg_trunk(cfg, key) and (key.startswith("cls.") or cfg.seg.head_name == "vgg16")


def _is_caffe(cfg: Profile, key: str, state: Mapping[str, torch.Tensor]) -> bool:
    return _vgg_trunk(cfg, key) and is_caffe_vgg16(state)


def _heads(cfg: Profile, key: str, caffe: bool, state: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """The prefixes of ``state`` that are not the trunk's: with a VGG trunk, a Caffe file's fc6/fc7 and
    classifier too (renamed or not)."""
    fc = caffe or _vgg_trunk(cfg, key) and any(k in state for k in FC_KEYS)
    return (*HEAD_PREFIXES, "fc6.", "fc7.", "fc8") if fc else HEAD_PREFIXES


def _fit(cfg: Profile, key: str, net: nn.Module, state: Mapping[str, torch.Tensor]
         ) -> tuple[list[str], list[tuple[nn.Module, dict[str, torch.Tensor]]]]:
    """Each reason why the weights file of ``key``, read as ``state``, does not start ``net`` (which may live on
    the meta device), naming the key, the file and the setting that would make it fit: a Caffe file's inputs and
    layout, the trunk, then fc6/fc7 (where the trunk fits, or a Caffe file has none); and, where it fits, each
    module with the entries it loads (the trunk's renamed from a Caffe file's, fc6/fc7 reduced)."""
    section, path = key.split(".")[0], attrgetter(key)(cfg)
    trunk, fc_modules = _parts(cfg, key, net)
    caffe, problems, loads = _is_caffe(cfg, key, state), [], []
    if caffe and cfg.data.normalize != "caffe":
        problems.append(f"{key}: backbone weights {path} are a Caffe VGG16's (layers conv1_1 ... conv5_3), which "
                        f"expects Caffe's inputs (BGR in 0..255 minus the mean 104, 117, 123); set "
                        f"data.normalize=caffe")
    own = trunk.state_dict()
    settings = _caffe_layout(cfg, section, own, state) if caffe else []
    if settings:
        problems.append(f"{key}: backbone weights {path} are a Caffe VGG16's without BatchNorm at width "
                        f"{state['conv1_1.weight'].shape[0] / 64:g}, and the network's trunk is a "
                        f"{architecture(own)} at width {own['features.0.weight'].shape[0] / 64:g}: set "
                        f"{' '.join(settings)}")
    else:
        try:
            loads.append((trunk, check_backbone(trunk, state, CAFFE_VGG16_KEYMAP if caffe else None,
                                                _heads(cfg, key, caffe, state))))
        except InputError as exc:
            problems.append(f"{key}: backbone weights {path} do not fit the network's trunk"
                            f"{_misfit_hint(section, state, own)}: {exc}")
    if fc_modules and caffe and not any(k in state for k in FC_KEYS):
        problems.append(f"{key}: backbone weights {path}: this Caffe VGG16 file has no fc6/fc7 (DeepLab's init has "
                        f"them, reduced to 1024 channels); set {section}.fc_init=random to start fc6/fc7 at random")
    elif fc_modules and loads:
        try:
            fc = check_vgg16_fc(fc_modules, state)
            loads += [(module, fc) for module in fc_modules]
        except InputError as exc:
            problems.append(f"{key}: backbone weights {path}: {exc}; set {section}.fc_init=random to start fc6/fc7 "
                            "at random")
    return problems, loads if not problems else []


def _caffe_layout(cfg: Profile, section: str, own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
                  ) -> list[str]:
    """The settings that give a VGG trunk (``own``, its state dict) the layout of a Caffe VGG16's file: no BatchNorm
    and the file's width (both networks' where ``seg.init=cls``, which needs them equal); [] where it has it."""
    sections = ("cls", "seg") if cfg.seg.init == "cls" else (section,)
    settings = [f"{s}.batch_norm=false" for s in sections if architecture(own) == "vgg16_bn"]
    width = state["conv1_1.weight"].shape[0] / 64
    if own["features.0.weight"].shape[0] != state["conv1_1.weight"].shape[0]:
        settings += [f"{s}.width={width:g}" for s in sections]
    return settings


def _misfit_hint(section: str, found: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> str:
    """Why a file may not fit a trunk, in words: another network, another layout, or another width."""
    theirs, ours = architecture(found), architecture(own)
    if is_caffe_vgg16(found):
        if ours != "vgg16":
            return (f" (a Caffe VGG16's file, conv1_1 ... conv5_3, and this trunk is a {ours}: give "
                    f"seg.backbone=vgg16, or a torchvision {ours} file)")
        renamed = {renamed_key(k, CAFFE_VGG16_KEYMAP): v for k, v in found.items()}
        if len(renamed) < len(found):
            return " (two of its keys name the same entry once Caffe's layer names are read as the trunk's)"
        if all(renamed[k].shape == v.shape for k, v in own.items() if k in renamed):
            return " (a Caffe VGG16's file with entries of layers this trunk does not have)"
        return (" (a Caffe VGG16's layer names, but shapes that no VGG16 at its conv1_1's width has: a file cut or "
                "changed?)")
    if theirs is None and any(k.startswith(("conv1_", "conv5_", "fc6", "fc7")) for k in found):
        return (" (its keys are Caffe's layer names, but not a VGG16's conv1_1 ... conv5_3 each with its weight "
                "and bias: the trunk reads those, or torchvision's names, features.<n> and classifier.<n>)")
    if theirs is None:
        return (f" (its keys are neither a torchvision VGG's nor a ResNet's, e.g. {name_some(sorted(found), 3)}: "
                f"the trunk reads a torchvision state dict)")
    if ours and theirs != ours:
        choose = f"{section}.batch_norm chooses the layout" if "vgg" in theirs and "vgg" in ours else \
            "give the weights of this backbone, or choose the file's with seg.backbone" if section == "seg" else \
            f"the classifier is always a VGG16: give {section}.backbone_weights a torchvision {ours} file"
        return f" (the file looks like a torchvision {theirs} state dict, and this trunk is a {ours}: {choose})"
    shared = [k for k in own if k in found]
    if shared and all(found[k].shape == own[k].shape for k in shared):
        if all(k in found for k in own if not k.endswith("num_batches_tracked")):
            return f" (a torchvision {theirs} state dict with entries of layers this trunk does not have)"
        return f" (a torchvision {theirs} state dict without some of its entries: a file cut short, or a part of one?)"
    return (f" (a network of another width or BatchNorm layout than the file's: torchvision's vgg16 and "
            f"resnet101 files fit {section}.width=1 and {section}.batch_norm=false)")
