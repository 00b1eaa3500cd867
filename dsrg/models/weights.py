"""Pretrained backbone weights (torchvision-format state dicts) put into our networks.

``load_backbone(module, state)`` loads every entry of ``state`` whose name the module has, and raises
:class:`dsrg.errors.InputError` listing all missing keys, unexpected keys and shape mismatches at once (e.g. a
``width=0.5`` model given a full-width state dict). Keys under the "head" prefixes (:data:`HEAD_PREFIXES`:
torchvision's ``classifier.*`` and ``fc.*``, and our CAM net's ``fc8.*``) are neither loaded nor required, on
either side. BatchNorm ``num_batches_tracked`` buffers may be absent (old torchvision checkpoints lack them).

``decimate_vgg16_fc(state)`` turns torchvision's fully-connected ``classifier.0`` / ``classifier.3`` (fc6
4096 x 512 x 7 x 7, fc7 4096 x 4096) into DeepLab's reduced 1024-channel ``fc6`` (3x3) / ``fc7`` (1x1)
convolutions, and ``load_vgg16_fc(modules, state)`` copies them into the ``fc6`` / ``fc7`` of a CAM net or of
every ASPP branch: the paper's "all initialized by the VGG-16 pretrained on ImageNet" (the authors start both
nets from DeepLab's ``vgg16_20M`` init, which is this reduction).

Converted Caffe weights (e.g. DeepLab's VGG16 ``init.caffemodel`` exported as ``{layer}.weight`` /
``{layer}.bias``: :func:`is_caffe_vgg16`) are renamed with ``keymap=CAFFE_VGG16_KEYMAP``; their ``fc6`` / ``fc7``
are already DeepLab's reduced ones (:func:`vgg16_fc`). Caffe VGG16 expects BGR inputs in 0-255 minus the mean
(104, 117, 123), torchvision RGB in 0-1 normalised by ImageNet mean/std. Reading a weights file, and saying
which profile setting a misfit calls for, is :mod:`dsrg.run.networks`'.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..errors import InputError

#: Prefixes of classification heads that a backbone never takes from a checkpoint.
HEAD_PREFIXES: tuple[str, ...] = ("classifier.", "fc.", "fc8.")

#: Caffe VGG16 layer name -> our (torchvision) module name. Convolutions sit at the torchvision
#: ``features`` indices; ``fc6`` / ``fc7`` (DeepLab's converted 1024-channel 3x3 / 1x1 convolutions)
#: map onto :class:`dsrg.models.cam.CAMNet`'s ``fc6`` / ``fc7``.
CAFFE_VGG16_KEYMAP: dict[str, str] = {
    "conv1_1": "features.0", "conv1_2": "features.2",
    "conv2_1": "features.5", "conv2_2": "features.7",
    "conv3_1": "features.10", "conv3_2": "features.12", "conv3_3": "features.14",
    "conv4_1": "features.17", "conv4_2": "features.19", "conv4_3": "features.21",
    "conv5_1": "features.24", "conv5_2": "features.26", "conv5_3": "features.28",
    "fc6": "fc6", "fc7": "fc7",
}


def is_caffe_vgg16(keys) -> bool:
    """Whether a state dict's ``keys`` are a Caffe VGG16's layer names (``conv1_1.weight`` ... ``conv5_3.bias``)."""
    keys = set(keys)
    return all(f"{layer}.{p}" in keys for layer in CAFFE_VGG16_KEYMAP if layer.startswith("conv")
               for p in ("weight", "bias"))


def renamed(key: str, keymap: Mapping[str, str]) -> str:
    """``"{layer}.{suffix}"`` as ``"{keymap[layer]}.{suffix}"``; a key whose layer is not mapped stays."""
    layer, dot, suffix = key.rpartition(".")
    return f"{keymap[layer]}.{suffix}" if dot and layer in keymap else key


def rename_keys(state: Mapping[str, torch.Tensor], keymap: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """``state`` with each key :func:`renamed` by ``keymap``."""
    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    for key, value in state.items():
        new = renamed(key, keymap)
        if new in out:
            raise InputError(f"two keys, {source[new]} and {key}, name the same entry {new!r}")
        out[new], source[new] = value, key
    return out


#: The step of DeepLab-LargeFOV's decimation of the fc filters, every 4th of 4096 (and of fc7's inputs).
FC_CHANNEL_STEP = 4
#: The step between the fc6 kernel taps kept, 0, 3 and 6 of 7, which at output stride 8 lie 12 px apart.
FC6_TAP_STEP = 3


def decimate_vgg16_fc(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DeepLab's reduced ``fc6`` / ``fc7`` from a torchvision vgg16 state dict's classifier.

    Returns ``{"fc6.weight": (1024, 512, 3, 3), "fc6.bias": (1024,), "fc7.weight": (1024, 1024, 1, 1),
    "fc7.bias": (1024,)}``: ``fc6.weight[o, i, y, x] = W6[4o, i, 3y, 3x]`` with ``W6`` = ``classifier.0.weight``
    viewed as (4096, 512, 7, 7); ``fc7.weight[o, i] = W7[4o, 4i]``; biases every 4th entry.
    Raises InputError naming the keys when ``state`` has no such classifier.
    """
    keys = ("classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias")
    shapes = {k: tuple(state[k].shape) if k in state else None for k in keys}
    n = shapes["classifier.0.weight"][0] if shapes["classifier.0.weight"] else 0
    fits = (n and n % FC_CHANNEL_STEP == 0 and len(shapes["classifier.0.weight"]) == 2
            and shapes["classifier.0.weight"][1] % 49 == 0 and shapes["classifier.0.bias"] == (n,)
            and shapes["classifier.3.weight"] == (n, n) and shapes["classifier.3.bias"] == (n,))
    if not fits:
        found = ", ".join(f"{k} {shapes[k] or 'missing'}" for k in keys)
        raise InputError(f"DeepLab's fc6/fc7 are torchvision vgg16's classifier (classifier.0 (4096, 25088), "
                         f"classifier.3 (4096, 4096)) reduced, but the state dict has {found}")
    c, t = FC_CHANNEL_STEP, FC6_TAP_STEP
    w6 = state["classifier.0.weight"].view(n, -1, 7, 7)[::c, :, ::t, ::t]
    w7 = state["classifier.3.weight"][::c, ::c]
    return {"fc6.weight": w6.contiguous(), "fc6.bias": state["classifier.0.bias"][::c].clone(),
            "fc7.weight": w7.contiguous()[:, :, None, None], "fc7.bias": state["classifier.3.bias"][::c].clone()}


#: The entries of DeepLab's reduced fc6 / fc7.
FC_KEYS = ("fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias")


def has_full_fc(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state``'s ``fc6.weight`` is VGG16's full one (a Caffe VGG16 converted, e.g. ILSVRC's
    ``VGG_ILSVRC_16_layers``: (4096, 25088), or (4096, 512, 7, 7) as a convolution), not DeepLab's reduced one."""
    w6 = state.get("fc6.weight")
    return w6 is not None and (w6.dim() == 2 or w6.dim() == 4 and tuple(w6.shape[-2:]) == (7, 7))


def vgg16_fc(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DeepLab's reduced ``fc6`` / ``fc7``: those of a state dict that holds them already (a Caffe init renamed,
    e.g. ``vgg16_20M``), else :func:`decimate_vgg16_fc` of its classifier, or of its full ``fc6`` / ``fc7``
    (:func:`has_full_fc`)."""
    if any(k in state for k in FC_KEYS):
        missing = [k for k in FC_KEYS if k not in state]
        if missing:
            raise InputError(f"the state dict has fc6/fc7 but not all of them: {', '.join(missing)} missing")
        if has_full_fc(state):
            try:
                return decimate_vgg16_fc({f"classifier.{i}.{p}": state[f"{fc}.{p}"].flatten(1) if p == "weight"
                                          else state[f"{fc}.{p}"] for i, fc in ((0, "fc6"), (3, "fc7"))
                                          for p in ("weight", "bias")})
            except InputError:
                found = ", ".join(f"{k} {tuple(state[k].shape)}" for k in FC_KEYS)
                raise InputError(f"VGG16's full fc6/fc7 are fc6 (4096, 25088) or (4096, 512, 7, 7) and fc7 "
                                 f"(4096, 4096), each with its bias, but the state dict has {found}") from None
        return {k: state[k] for k in FC_KEYS}
    return decimate_vgg16_fc(state)


def check_vgg16_fc(modules: list[nn.Module], state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`vgg16_fc` of ``state``, checked against the ``fc6`` / ``fc7`` of each module (which may live on the
    meta device); InputError when they are not full width (``width=1``)."""
    fc = vgg16_fc(state)
    for module in modules:
        own = {k: v for k, v in module.state_dict().items() if k in fc}
        bad = [f"{k}: expected {tuple(v.shape)}, found {tuple(fc[k].shape)}" for k, v in own.items()
               if v.shape != fc[k].shape]
        if bad or len(own) != len(fc):
            raise InputError(f"the reduced fc6/fc7 do not fit {type(module).__name__} "
                             f"({', '.join(bad) or 'no fc6/fc7'}); full-width networks (width=1) take them")
    return fc


def load_vgg16_fc(modules: list[nn.Module], state: Mapping[str, torch.Tensor]) -> None:
    """Copy :func:`vgg16_fc` of ``state`` into the ``fc6`` / ``fc7`` of each module (a CAM net, or
    each VGG ASPP branch); nothing is copied where they do not fit (:func:`check_vgg16_fc` says why)."""
    fc = check_vgg16_fc(modules, state)
    for module in modules:
        module.load_state_dict(fc, strict=False)


def _is_head(key: str, heads: tuple[str, ...]) -> bool:
    return key.startswith(heads)


def architecture(keys) -> str | None:
    """The torchvision network a state dict's ``keys`` are of (``vgg16``, ``vgg16_bn``, ``resnet50``,
    ``resnet101``, ...), or None when they look like neither a VGG nor a ResNet."""
    keys = set(keys)
    if "layer1.0.conv1.weight" in keys:
        blocks = sum(1 for k in keys if k.startswith("layer3.") and k.endswith(".conv1.weight"))
        bottleneck = "layer1.0.conv3.weight" in keys
        depth = {(True, 6): 50, (True, 23): 101, (True, 36): 152, (False, 2): 18, (False, 6): 34}.get(
            (bottleneck, blocks))
        return f"resnet{depth}" if depth else "resnet"
    if "features.0.weight" in keys:
        return "vgg16_bn" if "features.1.running_mean" in keys else "vgg16"
    return None


def check_backbone(model_backbone: nn.Module, state: Mapping[str, torch.Tensor],
                   keymap: Mapping[str, str] | None = None, heads: tuple[str, ...] = HEAD_PREFIXES
                   ) -> dict[str, torch.Tensor]:
    """The entries of ``state`` that :func:`load_backbone` would load into ``model_backbone`` (which may live
    on the meta device: nothing is loaded), ``state``'s keys :func:`renamed` by ``keymap``. Raises InputError
    when, outside the ``heads`` prefixes, the module has keys ``state`` lacks, ``state`` has keys the module
    lacks, or shapes differ; the message lists every such key (under the file's names, with expected vs found
    shapes)."""
    back = {ours: theirs for theirs, ours in (keymap or {}).items()}
    if keymap is not None:
        state = rename_keys(state, keymap)
    found = {k: v for k, v in state.items() if not _is_head(k, heads)}
    own = {k: v for k, v in model_backbone.state_dict().items() if not _is_head(k, heads)}
    missing = sorted(renamed(k, back) for k in own if k not in found and not k.endswith("num_batches_tracked"))
    unexpected = sorted(renamed(k, back) for k in found if k not in own)
    mismatched = sorted(f"{renamed(k, back)}: expected {tuple(own[k].shape)}, found {tuple(v.shape)}"
                        for k, v in found.items() if k in own and v.shape != own[k].shape)
    problems = [f"{title} ({len(items)}): {', '.join(items[:8])}{f', and {len(items) - 8} more' * (len(items) > 8)}"
                for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("shape mismatches", mismatched)) if items]
    if problems:
        raise InputError("; ".join(problems))
    return found


def load_backbone(model_backbone: nn.Module, state: Mapping[str, torch.Tensor],
                  keymap: Mapping[str, str] | None = None, heads: tuple[str, ...] = HEAD_PREFIXES) -> list[str]:
    """Load a torchvision-format state dict into ``model_backbone``; return the loaded key names. Nothing is
    loaded when it does not fit (:func:`check_backbone` says why)."""
    found = check_backbone(model_backbone, state, keymap, heads)
    model_backbone.load_state_dict(found, strict=False)
    return sorted(found)
