"""The embedded dataset (:mod:`dsrg.data.synthetic`) written in the layout of MS COCO 2014, for Table 3's
chapter: the same scenes, 15 object classes by default, instance annotations as RLE. :func:`embedded_coco_root`
writes it and converts it with :func:`dsrg.data.coco.convert_coco`, so the pipeline reads it as it reads real
COCO.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import InputError
from ..overrides import key_of
from ..files import atomic_dir, locked, save_image, write_json
from .coco import convert_coco
from .synthetic import (DEFAULT_CLASSES, SynthConfig, class_names, config_dict, render_scene, stored_config,
                        synth_config, validate_config)

SYNTH_SPLITS = {"train": "train2014", "val": "val2014"}
# The name this writer has always stored in its dataset.json (it lived in dsrg.data.coco): kept, so that the
# datasets it wrote stay valid.
SYNTH_COCO_GENERATOR = "dsrg.data.coco.write_synthetic_coco"
# Object classes of the embedded dataset in COCO form (``write_synthetic_coco``'s default): more than the VOC
# form's 7 (``SynthConfig.classes``), as COCO has more classes than VOC. Classes 8..14 are the generator's
# tier-1 heads (hues between the first 7, stripes turned 90 degrees), 15 its first tier-2 head (darker,
# crossed stripes); see ``dsrg.data.synthetic``.
SYNTH_COCO_CLASSES = 15


def synthetic_category_id(cls: int) -> int:
    """Category id of synthetic class ``cls`` (1..N) in the COCO form: ``2 * cls + 1``, not contiguous on purpose."""
    return 2 * cls + 1


def write_synthetic_coco(out: str | os.PathLike, cfg: Any = None, progress: bool = False,
                         classes: int | None = None) -> Path:
    """Write the embedded dataset (``dsrg.data.synthetic``: the scenes ``write_dataset`` draws for the same config,
    ``classes`` included) in the COCO layout.

    ``out/annotations/instances_{train2014,val2014}.json`` (one RLE annotation per visible object,
    categories with ids ``2 * c + 1``), ``out/{train2014,val2014}/COCO_<split>_<12-digit id>.jpg``
    (image id = index + 1) and ``out/dataset.json`` (config, counts, class names). :func:`convert_coco`
    on it gives back the synthetic label maps (``classes`` + 1 labels), except on their 255 border band
    (COCO has none). If ``out`` already holds this config nothing is written; anything else there is an
    InputError.

    ``classes`` (the number of object classes drawn) defaults to ``cfg.classes`` when ``cfg`` asks for
    another count than the VOC form's default (7), else to ``SYNTH_COCO_CLASSES`` (15): pass ``classes=7``
    for the VOC form's classes. A ``classes`` that contradicts a non-default ``cfg.classes`` is an InputError.
    """
    from pycocotools import mask as mask_utils

    cfg, meta = _coco_config(cfg, classes)
    out = Path(out)
    if _holds(out, meta):
        return out
    names = meta["class_names"]
    categories = [{"id": synthetic_category_id(c), "name": name, "supercategory": "synthetic"}
                  for c, name in enumerate(names) if c > 0]
    with atomic_dir(out) as tmp:
        ann_id = 0
        for split, n in (("train", cfg.n_train), ("val", cfg.n_val)):
            coco_split = SYNTH_SPLITS[split]
            images, annotations = [], []
            for i in tqdm(range(n), desc=f"writing {coco_split}", unit="img", disable=not progress):
                scene = render_scene(cfg, split, i)
                height, width = scene.mask.shape
                file_name = f"COCO_{coco_split}_{i + 1:012d}.jpg"
                save_image(tmp / coco_split / file_name, Image.fromarray(scene.image), quality=cfg.jpeg_quality)
                images.append({"id": i + 1, "file_name": file_name, "height": height, "width": width})
                for k, obj in enumerate(scene.objects, start=1):
                    visible = scene.instances == k
                    if not visible.any():
                        continue
                    rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
                    ann_id += 1
                    annotations.append({
                        "id": ann_id, "image_id": i + 1, "category_id": synthetic_category_id(obj.cls),
                        "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                        "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0,
                    })
            write_json(tmp / "annotations" / f"instances_{coco_split}.json",
                       {"info": {"description": "dsrg embedded dataset in COCO format"}, "licenses": [],
                        "images": images, "annotations": annotations, "categories": categories})
        write_json(tmp / "dataset.json", meta)
    return out


def _coco_config(cfg: Any, classes: int | None) -> tuple[SynthConfig, dict]:
    """The config :func:`write_synthetic_coco` draws (``classes`` resolved) and the ``dataset.json`` it writes."""
    cfg = SynthConfig() if cfg is None else cfg
    if classes is None:
        classes = SYNTH_COCO_CLASSES if cfg.classes == DEFAULT_CLASSES else cfg.classes
    elif cfg.classes not in (DEFAULT_CLASSES, classes):
        raise InputError(f"synthetic COCO dataset: classes={classes!r} contradicts the config's "
                         f"classes={cfg.classes!r}; give the class count once")
    cfg = replace(cfg, classes=classes)
    validate_config(cfg)
    cfg = SynthConfig(**config_dict(cfg))
    meta = {"generator": SYNTH_COCO_GENERATOR, "config": config_dict(cfg),
            "counts": {SYNTH_SPLITS["train"]: cfg.n_train, SYNTH_SPLITS["val"]: cfg.n_val},
            "class_names": class_names(cfg.classes)}
    return cfg, meta


def _holds(out: Path, meta: dict) -> bool:
    """Whether ``out`` holds the COCO form of ``meta`` (False: missing); InputError if it holds anything else."""
    if not out.exists():
        return False
    try:
        existing = json.loads((out / "dataset.json").read_text())
    except (OSError, ValueError):
        existing = None
    if isinstance(existing, dict):  # written before a SynthConfig field existed: that field's old value
        existing = {**existing, "config": stored_config(existing.get("config"))}
    if existing == meta:
        return True
    if not isinstance(existing, dict) or existing.get("generator") != SYNTH_COCO_GENERATOR:
        raise InputError(f"{out} holds something other than the embedded dataset in the COCO layout (no "
                         f"dataset.json of {SYNTH_COCO_GENERATOR}), which data.dataset=synthetic_coco writes there: "
                         f"real COCO? its converted root is read with data.dataset=voc (profile coco-vgg16); "
                         f"else give data.root a <folder>/COCO2014 whose <folder> holds no coco/")
    stored = existing.get("config")
    diff = ([f"{k}: {stored.get(k)!r} there, {v!r} asked" for k, v in meta["config"].items() if stored.get(k) != v]
            if isinstance(stored, dict) else [])
    raise InputError(f"{out} exists and does not hold the synthetic COCO dataset of this config"
                     f"{' (' + '; '.join(diff) + ')' if diff else ''}; delete it (and the COCO2014 converted from "
                     f"it beside it) or choose another folder")


def coco_converted(root: str | os.PathLike, synth: Any = None) -> bool:
    """Whether ``root`` (``<folder>/COCO2014``) holds both splits of the embedded set of ``synth`` converted
    (:func:`embedded_coco_root`'s test: a split file, written last, and its count in ``dataset.json``); False
    for a conversion that was interrupted, which the first step finishes."""
    counts = _coco_config(synth_config(synth), None)[1]["counts"]
    return all(_split_converted(Path(root), split, n) for split, n in counts.items())


def _split_converted(out: Path, split: str, n: int) -> bool:
    """Whether ``split`` of ``n`` images is converted into ``out``: its split file (written last) and its count
    in ``out/dataset.json``."""
    try:
        counts = json.loads((out / "dataset.json").read_text()).get("counts", {})
    except (OSError, ValueError, AttributeError):
        return False
    return (out / "ImageSets" / "Segmentation" / f"{split}.txt").is_file() and counts.get(split) == n


def require_coco_written_as(root: str | os.PathLike, synth: Any = None) -> None:
    """InputError if the COCO form beside the converted ``root`` (``<folder>/coco`` for ``<folder>/COCO2014``)
    exists and holds another config than ``synth`` (a profile's ``data.synth``): what
    :func:`embedded_coco_root` would refuse; nothing is written."""
    _holds(Path(root).parent / "coco", _coco_config(synth_config(synth), _classes_given(synth))[1])


def _classes_given(synth: Any) -> int | None:
    """The class count that a list of overrides sets (``classes=7``, the VOC form's default, means 7 here too);
    None where it sets none, or ``synth`` is a config."""
    if isinstance(synth, (list, tuple)) and any(key_of(str(o)) == "classes" for o in synth):
        return synth_config(synth).classes
    return None


def embedded_coco_root(root: str | os.PathLike, synth: Any = None, classes: int | None = None,
                       progress: bool = False) -> Path:
    """The embedded dataset as COCO, converted to the VOC layout the pipeline reads; returns the converted root.

    Writes the COCO form (:func:`write_synthetic_coco`) to ``root/coco`` when missing, then converts both
    splits (``train2014``, ``val2014``; :func:`convert_coco`) into ``root/COCO2014`` when not converted yet,
    and returns ``root/COCO2014``: what the pipeline reads for ``data.dataset=synthetic_coco`` (the
    ``demo-coco`` and ``smoke-coco`` profiles; :func:`dsrg.data.dataset.open_split` calls this), as it would
    read real COCO converted.

    ``synth``: a ``SynthConfig``, or a list of its ``key=value`` overrides (a profile's ``data.synth``),
    None for the defaults (the demo's 1000 / 200 images of 128 px). ``classes``: as in
    :func:`write_synthetic_coco` (default ``SYNTH_COCO_CLASSES`` = 15). Idempotent: the COCO form is
    kept when it holds this config (another config there is an InputError), and a split counts as
    converted when its ``ImageSets/Segmentation/<split>.txt`` exists (written last) and ``dataset.json``
    records its image count; an interrupted conversion resumes. A list of overrides that sets ``classes``
    (``classes=7``, the VOC form's default) sets it here too.
    """
    classes = _classes_given(synth) if classes is None else classes
    synth = synth_config(synth)
    root = Path(root)
    out = root / "COCO2014"
    with locked(root / ".embedded-coco.lock"):  # a second caller waits, then finds it written
        coco = write_synthetic_coco(root / "coco", synth, progress=progress, classes=classes)
        counts = json.loads((coco / "dataset.json").read_text())["counts"]
        for split in SYNTH_SPLITS.values():
            if not _split_converted(out, split, counts[split]):
                convert_coco(coco, split, out, progress=progress)
    return out
