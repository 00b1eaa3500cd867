"""MS COCO 2014 as a semantic segmentation dataset in the PASCAL VOC layout (81 classes).

COCO layout read (``annotations_trainval2014.zip``, ``train2014.zip``, ``val2014.zip`` unpacked in one folder)::

    <coco_root>/annotations/instances_{train2014,val2014}.json
    <coco_root>/{train2014,val2014}/COCO_{split}_<12-digit image id>.jpg

:func:`convert_coco` turns one split into a VOC-layout root once (``JPEGImages`` links, ``SegmentationClass``
PNGs, ``ImageSets/Segmentation/<split>.txt``, ``class_names.txt``), which
:class:`dsrg.data.voc.VOCSegmentation` and the whole pipeline then read like VOC.

Semantic labels from instance annotations (:func:`coco_label_map`):

* class ids: COCO's (``COCO_ID_TO_LABEL``, names ``COCO_CLASSES``: its 80 categories, ids 1..90 with 10
  gaps, to 1..80, 0 = background) for a file whose categories are all COCO's, all 80 or some of them; the
  categories of any other file, sorted by id, map to 1..K;
* crowd regions (``iscrowd=1``) are 255 (ignore), as in the usual semantic conversion;
* non-crowd instances are painted over them in order of decreasing area (ties: file order), so where
  instances overlap the SMALLER one wins (a cup on a dining table stays a cup), and a crowd pixel
  covered by a non-crowd instance takes that instance's class.

COCO has no 255 band along object borders (VOC has one); all pixels of a converted label map are classes
except the crowd regions.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import InputError, name_some, plural
from ..files import link_or_copy, read_json, write_json, write_text
from .voc import IGNORE, image_size, root_class_names, split_path, write_label_png

# COCO's 80 object categories in the standard order (sorted by category id), background first.
COCO_CLASSES: list[str] = [
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]
# The category id of each of those 80 classes: 1..90 without the 10 ids COCO left unused.
COCO_CATEGORY_IDS: list[int] = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
COCO_ID_TO_LABEL: dict[int, int] = {cat_id: label for label, cat_id in enumerate(COCO_CATEGORY_IDS, start=1)}
# Images per split of COCO 2014 (the 2014 zips; every image is listed in the instances file).
COCO2014_COUNTS = {"train2014": 82783, "val2014": 40504}
COCO2014_SPLITS = ("train2014", "val2014")


def annotation_file(coco_root: str | os.PathLike, split: str) -> Path:
    return Path(coco_root) / "annotations" / f"instances_{split}.json"


# ----------------------------------------------------------------------------- annotations

def load_coco(path: str | os.PathLike) -> Any:
    """Read and validate a COCO instances file; returns a ``pycocotools.coco.COCO`` index.

    InputError naming the file for: a missing file, invalid JSON, a missing or empty ``images``,
    ``annotations`` or ``categories`` list, duplicate ids, an annotation whose ``category_id`` is not
    among the categories or whose ``image_id`` is not among the images, or one without ``segmentation``.
    """
    from pycocotools.coco import COCO

    path = Path(path)
    if not path.is_file():
        raise InputError(f"COCO annotation file not found: {path} (expected <coco_root>/annotations/"
                         "instances_<split>.json, from annotations_trainval2014.zip)")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read COCO annotation file {path}: {exc} (expected valid JSON)") from exc
    if not isinstance(data, dict):
        raise InputError(f"COCO annotation file {path} holds a {type(data).__name__}; expected a JSON object "
                         "with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(f"COCO annotation file {path} has no '{key}' list (expected an instances_*.json file)")
        if not data[key]:
            raise InputError(f"COCO annotation file {path} lists no {key} (\"{key}\": []); expected an "
                             "instances_*.json file with segmentations")
    try:
        image_ids = {img["id"] for img in data["images"]}
        for img in data["images"]:
            if not (isinstance(img["file_name"], str) and int(img["height"]) > 0 and int(img["width"]) > 0):
                raise InputError(f"COCO annotation file {path}: image {img['id']!r} has no usable file_name, "
                                 "height and width")
        cat_ids = {cat["id"] for cat in data["categories"]}
        for ann in data["annotations"]:
            where = f"annotation {ann.get('id')!r} (image {ann.get('image_id')!r})"
            if ann["category_id"] not in cat_ids:
                raise InputError(f"COCO annotation file {path}: {where} has category_id {ann['category_id']!r}, "
                                 f"which is not among the file's {len(cat_ids)} categories "
                                 f"(ids {min(cat_ids)}..{max(cat_ids)})")
            if ann["image_id"] not in image_ids:
                raise InputError(f"COCO annotation file {path}: {where} refers to an image not in 'images'")
            if "segmentation" not in ann:
                raise InputError(f"COCO annotation file {path}: {where} has no 'segmentation'")
    except InputError:
        raise                                       # (a ValueError too) said above, once
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"COCO annotation file {path}: an entry lacks the field {exc} or has a bad value "
                         "(expected COCO instances format)") from exc
    if len(image_ids) != len(data["images"]):
        raise InputError(f"COCO annotation file {path} lists an image id twice")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    if len(coco.anns) != len(data["annotations"]):
        raise InputError(f"COCO annotation file {path} lists an annotation id twice")
    return coco


def category_mapping(coco: Any) -> tuple[list[str], dict[int, int]]:
    """``(class_names, id_to_label)``: background + the categories' names sorted by id, and category id -> 1..K.

    For COCO 2014 this gives ``COCO_CLASSES`` and ``COCO_ID_TO_LABEL``, and so does a file that lists some of
    COCO's categories only (each with its COCO id and name): its label maps keep COCO's 81 labels.
    """
    cats = sorted(coco.cats.values(), key=lambda c: c["id"])
    if cats and all(_is_cocos(c) for c in cats):
        return list(COCO_CLASSES), dict(COCO_ID_TO_LABEL)
    names = ["background"] + [str(c.get("name", f"category {c['id']}")).strip() for c in cats]
    if len(set(names)) != len(names) or not all(names):
        raise InputError("COCO categories must have distinct, non-empty names")
    if len(names) > IGNORE:
        raise InputError(f"{len(cats)} COCO categories; at most {IGNORE - 1} fit a uint8 label map")
    return names, {c["id"]: label for label, c in enumerate(cats, start=1)}


def _is_cocos(category: dict) -> bool:
    """Whether a category entry is one of COCO's 80: its id and its name both COCO's."""
    label = COCO_ID_TO_LABEL.get(category.get("id"))
    return label is not None and COCO_CLASSES[label] == str(category.get("name", "")).strip()


def annotation_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """``bool (height, width)``: the pixels of one annotation (polygons, RLE or uncompressed RLE)."""
    from pycocotools import mask as mask_utils

    segm = ann["segmentation"]
    where = f"annotation {ann.get('id')!r} (image {ann.get('image_id')!r})"
    try:
        if isinstance(segm, list):
            polygons = [p for p in segm if len(p) >= 6]  # a polygon needs 3 points
            if not polygons:
                return np.zeros((height, width), bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):
            rle = mask_utils.frPyObjects(segm, height, width)
        elif isinstance(segm, dict):
            rle = segm
        else:
            raise InputError(f"{where}: segmentation is a {type(segm).__name__}; expected polygons or RLE")
        if list(rle["size"]) != [height, width]:
            raise InputError(f"{where}: RLE size {list(rle['size'])} differs from its image's "
                             f"[height, width] = [{height}, {width}]")
        with warnings.catch_warnings():  # pycocotools 2.0.11 under numpy 2 warns on every decode
            warnings.filterwarnings("ignore", message=r".*__array__ implementation", category=DeprecationWarning)
            return mask_utils.decode(rle).astype(bool)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{where}: cannot decode its segmentation: {exc!r}") from exc


def coco_label_map(coco: Any, image_id: int, id_to_label: dict[int, int] | None = None) -> np.ndarray:
    """The semantic label map of one image: ``uint8 (H, W)``; 0 background, 1..K classes, 255 crowd.

    ``id_to_label`` defaults to :func:`category_mapping`'s. Overlaps: crowd regions are painted first
    (255), then the non-crowd instances by decreasing area (ties in file order), so the smallest
    instance on a pixel gives its class. An annotation of a category outside ``id_to_label`` raises.
    """
    if id_to_label is None:
        id_to_label = category_mapping(coco)[1]
    if image_id not in coco.imgs:
        raise InputError(f"image id {image_id!r} is not in the COCO annotations")
    info = coco.imgs[image_id]
    height, width = int(info["height"]), int(info["width"])
    label = np.zeros((height, width), np.uint8)
    things = []
    for ann in coco.imgToAnns.get(image_id, []):
        if ann["category_id"] not in id_to_label:
            raise InputError(f"annotation {ann.get('id')!r} (image {image_id!r}) has unknown category id "
                             f"{ann['category_id']!r}")
        mask = annotation_mask(ann, height, width)
        if ann.get("iscrowd", 0):
            label[mask] = IGNORE
        else:
            things.append((mask, id_to_label[ann["category_id"]]))
    for mask, cls in sorted(things, key=lambda t: -int(t[0].sum())):  # stable: ties keep file order
        label[mask] = cls
    return label


def image_labels(coco: Any, image_id: int, id_to_label: dict[int, int] | None = None,
                 include_crowd: bool = False) -> np.ndarray:
    """Image-level labels from the instance annotations: ``bool (K + 1,)`` (81 for COCO), background always True.

    Crowd annotations count only with ``include_crowd``: by default a class present only as a crowd
    region is absent, matching the label map (crowd = 255 = ignore), from which the pipeline derives
    an image's labels.
    """
    if id_to_label is None:
        id_to_label = category_mapping(coco)[1]
    labels = np.zeros(len(id_to_label) + 1, bool)
    labels[0] = True
    for ann in coco.imgToAnns.get(image_id, []):
        if include_crowd or not ann.get("iscrowd", 0):
            if ann["category_id"] not in id_to_label:
                raise InputError(f"annotation {ann.get('id')!r} (image {image_id!r}) has unknown category id "
                                 f"{ann['category_id']!r}")
            labels[id_to_label[ann["category_id"]]] = True
    return labels


# ----------------------------------------------------------------------------- conversion

def _merge_dataset_json(out: Path, split: str, count: int, names: list[str]) -> None:
    path = out / "dataset.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.setdefault("generator", "dsrg.data.coco.convert_coco")
    meta["class_names"] = names
    meta.setdefault("counts", {})[split] = count
    write_json(path, meta)


def _source(path: Path) -> dict:
    """What a converted split records of its annotation file: its name and a digest of its bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return {"annotations": path.name, "sha256": digest.hexdigest()[:16]}


def _require_same_source(out: Path, split: str, source: dict, path: Path) -> None:
    """InputError where ``out`` holds ``split`` converted, or begun, from another annotation file than ``path``
    (converting on would keep the other file's images and label maps); then record ``source`` for it."""
    info = out / "dataset.json"
    meta = read_json(info, "the converted root's record") if info.is_file() else {}
    before = meta.get("sources", {}).get(split) if isinstance(meta, dict) else None
    if before is not None and before != source:
        raise InputError(f"{out} holds split {split} converted from another {before.get('annotations')} than {path} "
                         f"(or one changed since); convert into another folder, or delete {out} to convert anew")
    if before is None and isinstance(meta, dict):
        meta.setdefault("sources", {})[split] = source
        write_json(info, meta)


def convert_coco(coco_root: str | os.PathLike, split: str, out_root: str | os.PathLike,
                 progress: bool = True) -> Path:
    """Convert one COCO split into a VOC-layout root ``out_root`` (created or completed); returns it.

    Writes ``JPEGImages/<stem>.jpg`` (a symlink to the COCO image, a copy where links fail),
    ``SegmentationClass/<stem>.png`` (:func:`coco_label_map`), ``ImageSets/Segmentation/<split>.txt``
    (every image of the annotation file, also those without annotations: all background),
    ``class_names.txt`` and ``dataset.json`` (counts per converted split), each file atomically; the
    split file is written last. ``<stem>`` is the COCO file name without extension
    (``COCO_train2014_000000000009``). Images whose label map exists already are skipped, so an
    interrupted conversion resumes. About 10 ms per image on one core (train2014: 15 min).

    InputError for a missing or bad annotation file (see :func:`load_coco`), image files missing from
    ``<coco_root>/<split>/`` (named), an image whose size differs from its annotation entry, and an
    ``out_root`` whose ``class_names.txt`` lists other classes.
    """
    coco_root, out = Path(coco_root), Path(out_root)
    if not split or "/" in split or "\\" in split or split.startswith("."):
        raise InputError(f"COCO split name {split!r} is not a plain name like train2014 or val2014")
    coco = load_coco(annotation_file(coco_root, split))
    names, id_to_label = category_mapping(coco)
    foreign = [f"{c.get('name')} ({c.get('id')})" for c in coco.cats.values() if not _is_cocos(c)]
    if names != COCO_CLASSES and len(foreign) < len(coco.cats):      # COCO's categories, and others
        print(f"note: {annotation_file(coco_root, split)}: {len(foreign)} of its {len(coco.cats)} categories are "
              f"not COCO's ({name_some(foreign)}): converted as a dataset of its own {len(names)} classes, not "
              f"COCO's 81", file=sys.stderr, flush=True)
    elif names == COCO_CLASSES and len(coco.cats) < len(COCO_CLASSES) - 1:
        print(f"note: {annotation_file(coco_root, split)} lists {len(coco.cats)} of COCO's 80 categories: its label "
              f"maps keep COCO's 81 labels", file=sys.stderr, flush=True)
    names_file = out / "class_names.txt"
    if names_file.is_file():
        have = root_class_names(out)
        if have != names:
            raise InputError(f"{names_file} lists {plural(len(have), 'other class')} than "
                             f"{annotation_file(coco_root, split)} ({len(names)}); convert into another folder")
    image_dir = coco_root / split
    images = sorted(coco.imgs.values(), key=lambda img: img["id"])
    missing = [img["file_name"] for img in images if not (image_dir / img["file_name"]).is_file()]
    if missing:
        more = f", ... ({len(missing) - 5} more)" if len(missing) > 5 else ""
        other = sorted({s for s in COCO2014_SPLITS if s != split and all(f"_{s}_" in name for name in missing)})
        hint = (f" (it lists {other[0]} images: the annotations of another split given as {split}'s?)"
                if other and len(missing) == len(images) else "")
        raise InputError(f"{len(missing)} of the {len(images)} images listed in {annotation_file(coco_root, split)} "
                         f"are missing from {image_dir}: {', '.join(missing[:5])}{more}{hint}")
    stems = [Path(img["file_name"]).stem for img in images]
    if len(set(stems)) != len(stems):
        raise InputError(f"{annotation_file(coco_root, split)} lists two images with the same file name stem")
    for sub in ("JPEGImages", "SegmentationClass"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _require_same_source(out, split, _source(annotation_file(coco_root, split)), annotation_file(coco_root, split))
    if not names_file.is_file():
        write_text(names_file, "".join(f"{name}\n" for name in names))
    for img, stem in tqdm(list(zip(images, stems)), desc=f"converting COCO {split}", unit="img",
                          disable=not progress):
        src = image_dir / img["file_name"]
        jpg = out / "JPEGImages" / f"{stem}.jpg"
        if not jpg.exists():  # missing, or a link left broken by a moved COCO root
            link_or_copy(src, jpg)
        png = out / "SegmentationClass" / f"{stem}.png"
        if png.is_file():
            continue
        hw = image_size(src)
        if hw != (int(img["height"]), int(img["width"])):
            raise InputError(f"COCO image {src} is {hw[0]}x{hw[1]} (HxW) but its annotation entry says "
                             f"{img['height']}x{img['width']}")
        write_label_png(png, coco_label_map(coco, img["id"], id_to_label))
    write_text(split_path(out, split), "".join(f"{s}\n" for s in stems))
    _merge_dataset_json(out, split, len(stems), names)
    return out
