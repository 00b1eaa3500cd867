"""The datasets the pipeline steps read, opened from a profile's ``data`` section.

``open_split(data_cfg, split)`` gives a :class:`dsrg.data.voc.VOCSegmentation`; with
``dataset: synthetic`` (or ``synthetic_coco``) the embedded dataset is written to ``root`` first when it is
missing.
The torch datasets below return uint8 images (normalisation happens on the device, see
:func:`dsrg.method.transforms.normalize`); batches are built by :func:`collate`. Training items are
asked for by ``(index, aug_seed)``: the random flip or crop of that item is drawn from ``aug_seed``
alone, so a resumed run sees exactly the batches an uninterrupted one would (``aug_seed=None``: no
augmentation).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..method import transforms as T
from .synthetic import synth_config, write_dataset
from .coco import COCO_CLASSES
from .synthetic_coco import coco_converted, embedded_coco_root
from .voc import VOCSegmentation, read_label_png, root_class_names


def open_split(data, split: str, progress: bool = False) -> VOCSegmentation:
    """The split ``split`` of ``data``, a profile's data section (:class:`dsrg.profile.DataConfig`); an
    embedded dataset (``synthetic``, ``synthetic_coco``) is written first if missing."""
    if data.dataset in EMBEDDED:
        # writes the dataset when missing; an existing root must hold this exact config (else InputError)
        problem = embedded_root_problem(data.root, data.dataset)
        if problem:
            raise InputError(f"data.root: {problem}")
        if not embedded_written(data) and os.environ.get("RANK", "0") == "0":
            print(f"[dsrg] writing the embedded dataset{EMBEDDED[data.dataset]} into {data.root} (data.dataset="
                  f"{data.dataset}; a dataset of your own there is read with data.dataset=voc)", file=sys.stderr,
                  flush=True)
        if data.dataset == "synthetic":
            write_dataset(data.root, synth_config(data.synth), progress=progress)
        else:
            embedded_coco_root(Path(data.root).parent, data.synth, progress=progress)
    return VOCSegmentation(data.root, split)


#: The embedded datasets (``data.dataset``), written where missing, and how the message names their form.
EMBEDDED = {"synthetic": "", "synthetic_coco": " in the COCO layout (converted as real COCO is)"}


def embedded_written(data) -> bool:
    """Whether the embedded dataset of ``data`` (a profile's data section) is all written at ``data.root``
    (``synthetic`` is written whole or not at all; a ``synthetic_coco`` conversion may have been cut short)."""
    if data.dataset == "synthetic_coco":
        return coco_converted(data.root, data.synth)
    return Path(data.root).exists()


def embedded_root_problem(root: str | os.PathLike, dataset: str = "synthetic") -> str | None:
    """Why the embedded ``dataset`` (:data:`EMBEDDED`, written where missing) must not be written into
    ``root``: a missing folder named like a real dataset's (``VOC2012``, ``coco``, ...), which is a real-data
    path given to an embedded-data profile; for ``synthetic_coco``, a root not named ``COCO2014`` (the
    conversion's folder) or one that holds files without the COCO form beside it (real COCO converted, or the
    form deleted); else None."""
    root = Path(root)
    if dataset == "synthetic_coco" and root.name != "COCO2014":
        return (f"{root}: the embedded dataset in the COCO layout (data.dataset=synthetic_coco) is converted into "
                f"<folder>/COCO2014, its COCO form written beside it in <folder>/coco; expected a data.root "
                f"named COCO2014, e.g. {root / 'COCO2014'}")
    if dataset == "synthetic_coco" and root.is_dir() and any(root.iterdir()) and not (root.parent / "coco").exists():
        if root_class_names(root) == COCO_CLASSES:
            return (f"{root} holds COCO converted, which this profile does not write (it converts its own set from "
                    f"{root.parent / 'coco'}): read real COCO with data.dataset=voc (profile coco-vgg16)")
        return (f"{root} was converted from a COCO form that is no longer beside it ({root.parent / 'coco'}): "
                f"delete {root} too, and the first step writes both again")
    if root.exists() or dataset != "synthetic" or not root.name.lower().startswith(("voc", "coco")):
        return None
    return (f"{root} does not exist, and this profile would write the embedded dataset there "
            f"(data.dataset=synthetic); for real data use a profile made for it (voc-vgg16, voc-resnet101, "
            f"coco-vgg16), or name another folder")


def _rng(aug_seed: int | None) -> np.random.Generator | None:
    return None if aug_seed is None else np.random.default_rng(aug_seed)


def _key(key) -> tuple[int, int | None]:
    return (key, None) if isinstance(key, (int, np.integer)) else (int(key[0]), key[1])


class ClassificationSet(Dataset):
    """Items ``(index, image uint8 (3, S, S) warped to S = size, labels bool (C,))``; random mirror."""

    def __init__(self, ds: VOCSegmentation, size: int) -> None:
        self.ds, self.size = ds, size

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        i, aug = _key(key)
        image = T.resize_image(self.ds.image(i), self.size)
        rng = _rng(aug)
        if rng is not None and rng.random() < 0.5:
            image = image[:, ::-1]
        return i, T.to_chw(image), torch.from_numpy(self.ds.labels(i))


class SeedSet(Dataset):
    """DSRG step 1 items: ``(index, image uint8 (3, S, S), cues bool (C, h, w), labels bool (C,),
    gt int64 (h, w))``; ``gt`` (for the Fig. 4 records) is the label map resized to the cue grid by
    nearest neighbour, all ``IGNORE`` when the split has no label maps. The random mirror flips the
    image, the cues and ``gt`` together (the authors' step 1)."""

    def __init__(self, ds: VOCSegmentation, size: int, cues) -> None:
        self.ds, self.size, self.cues = ds, size, cues

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        i, aug = _key(key)
        image = T.resize_image(self.ds.image(i), self.size)
        cues, labels = self.cues.get(self.ds.ids[i])
        h, w = cues.shape[1:]
        mask = self.ds.mask(i) if self.ds.has_masks else None
        gt = T.resize_label(mask, (h, w)) if mask is not None else np.full((h, w), T.IGNORE, np.uint8)
        rng = _rng(aug)
        if rng is not None and rng.random() < 0.5:
            image, cues, gt = image[:, ::-1], cues[:, :, ::-1], gt[:, ::-1]
        return (i, T.to_chw(image), torch.from_numpy(np.ascontiguousarray(cues)), torch.from_numpy(labels),
                torch.from_numpy(np.ascontiguousarray(gt).astype(np.int64)))


class PseudoLabelSet(Dataset):
    """Retraining items ``(index, image uint8 (3, c, c), label int64 (c, c))``, ``c = crop``: DeepLab's
    random crop (:func:`dsrg.method.transforms.random_crop`: the image padded with the mean colour, the label with
    IGNORE, where the image is smaller) and mirror of the image and its
    pseudo label (``label_dir/<id>.png``)."""

    def __init__(self, ds: VOCSegmentation, label_dir: Path, crop: int) -> None:
        self.ds, self.label_dir, self.crop = ds, Path(label_dir), crop

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        i, aug = _key(key)
        image = self.ds.image(i)
        path = self.label_dir / f"{self.ds.ids[i]}.png"
        label = read_label_png(path, self.ds.num_classes)
        if label.shape != image.shape[:2]:
            raise InputError(f"pseudo label {path} is {label.shape[0]}x{label.shape[1]}, "
                             f"its image {image.shape[0]}x{image.shape[1]}")
        image, label = T.random_crop(image, label, self.crop, _rng(aug) or np.random.default_rng(0))
        return i, T.to_chw(image), torch.from_numpy(label.astype(np.int64))


def collate(items):
    """Stack same-sized items field by field (index becomes a LongTensor)."""
    fields = list(zip(*items))
    return [torch.tensor(fields[0])] + [torch.stack(f) for f in fields[1:]]
