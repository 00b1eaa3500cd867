"""Load pretrained backbone weights (torchvision-format state dicts) with clear errors.

``load_backbone(module, path)`` reads a file written by ``torch.save(state_dict)`` (torchvision's
``vgg16-397923af.pth`` / ``resnet101-*.pth`` format; a ``{"state_dict": ...}`` wrapper is accepted
too), loads every entry whose name the module has, and raises :class:`dsrg.io.InputError` listing
all missing keys, unexpected keys and shape mismatches at once (e.g. a ``width=0.5`` model given a
full-width checkpoint). Keys under the "head" prefixes (:data:`HEAD_PREFIXES`: torchvision's
``classifier.*`` and ``fc.*``, and our CAM net's ``fc8.*``) are neither loaded nor required, on
either side. BatchNorm ``num_batches_tracked`` buffers may be absent from the file (old
torchvision checkpoints lack them).

Converted Caffe weights (e.g. DeepLab's VGG16 ``init.caffemodel`` exported as ``{layer}.weight`` /
``{layer}.bias``) are renamed with ``keymap=CAFFE_VGG16_KEYMAP``. Note that Caffe VGG16 expects BGR
inputs in 0-255 minus the mean (104, 117, 123), torchvision RGB in 0-1 normalised by ImageNet mean/std.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..io import InputError

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


def rename_keys(state: Mapping[str, torch.Tensor], keymap: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Rename ``"{layer}.{suffix}"`` to ``"{keymap[layer]}.{suffix}"``; keys whose layer is not mapped stay."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        layer, dot, suffix = key.rpartition(".")
        new = f"{keymap[layer]}.{suffix}" if dot and layer in keymap else key
        if new in out:
            raise InputError(f"keymap: two checkpoint keys map to {new!r}")
        out[new] = value
    return out


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict (or ``{"state_dict": ...}``) with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"backbone weights file not found: {path} (expected a state dict saved with torch.save)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip / unsafe-type errors all mean "not a plain state dict"
        raise InputError(f"cannot read backbone weights {path}: {exc} "
                         "(expected a state dict of tensors saved with torch.save)") from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InputError(f"backbone weights {path}: expected a dict of name -> tensor, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"backbone weights {path}: expected tensor values under string keys; bad entries: {bad[:10]}")
    return dict(obj)


def _is_head(key: str, heads: tuple[str, ...]) -> bool:
    return key.startswith(heads)


def load_backbone(model_backbone: nn.Module, path: str | os.PathLike, keymap: Mapping[str, str] | None = None,
                  heads: tuple[str, ...] = HEAD_PREFIXES) -> list[str]:
    """Load a torchvision-format checkpoint into ``model_backbone``; return the loaded key names.

    Raises InputError (nothing is loaded) when the file is missing/unreadable or when, outside the
    ``heads`` prefixes, the module has keys the file lacks, the file has keys the module lacks, or
    shapes differ; the message lists every such key (with expected vs found shapes).
    """
    state = read_state_dict(path)
    if keymap is not None:
        state = rename_keys(state, keymap)
    found = {k: v for k, v in state.items() if not _is_head(k, heads)}
    own = {k: v for k, v in model_backbone.state_dict().items() if not _is_head(k, heads)}
    missing = sorted(k for k in own if k not in found and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in found if k not in own)
    mismatched = sorted(f"{k}: expected {tuple(own[k].shape)}, found {tuple(v.shape)}"
                        for k, v in found.items() if k in own and v.shape != own[k].shape)
    problems = [f"{title} ({len(items)}): {', '.join(items)}"
                for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("shape mismatches", mismatched)) if items]
    if problems:
        raise InputError(f"backbone weights {path} do not fit {type(model_backbone).__name__}: " + "; ".join(problems))
    model_backbone.load_state_dict(found, strict=False)
    return sorted(found)
