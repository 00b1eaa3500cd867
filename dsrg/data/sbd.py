"""PASCAL VOC 2012 + SBD: the ``train_aug`` split (10,582 images) the paper trains on.

SBD (Hariharan et al., "Semantic contours from inverse detectors", ICCV 2011) ships
``benchmark.tgz``, which unpacks to ``benchmark_RELEASE/dataset``::

    <sbd>/cls/<id>.mat     MATLAB struct GTcls: Segmentation (uint8 HxW, 0 background, 1..20),
                           Boundaries (20 sparse boundary maps), CategoriesPresent
    <sbd>/img/<id>.jpg     the image (every one is a VOC 2011 image, so also in VOC2012/JPEGImages)
    <sbd>/train.txt        8,498 ids
    <sbd>/val.txt          2,857 ids

``train_aug`` = (VOC 2012 seg train | SBD train | SBD val) - VOC 2012 seg val: 10,582 ids with the
full data. :func:`make_train_aug` computes it from the data's own list files (nothing is downloaded),
writes ``<root>/ImageSets/Segmentation/train_aug.txt`` and fills ``<root>/SegmentationClassAug/``
with one palette PNG per ``train_aug`` id: VOC's own label map where VOC has one (it carries the 255
border band), else SBD's map converted (SBD has no border band). ``VOCSegmentation(root, "train_aug")``
then reads its labels from that folder.
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import InputError, name_some, plural
from ..files import atomic_path, link_or_copy, not_a_folder, write_text
from .voc import image_size, root_class_names, write_label_png

AUG_DIR = "SegmentationClassAug"
TRAIN_AUG = "train_aug"
TRAIN_AUG_COUNT = 10582
SBD_NUM_CLASSES = 21


def read_sbd_label(path: str | os.PathLike) -> np.ndarray:
    """Read an SBD class label file ``cls/<id>.mat``: its ``GTcls.Segmentation``, ``uint8 (H, W)``, values 0..20.

    Any integer dtype is accepted (SBD's is uint8) and returned as uint8; a missing or unreadable file,
    a file without the struct ``GTcls`` or its field ``Segmentation``, a map that is not a non-empty 2-D
    integer array, and a value above 20 (255 included: SBD has no ignore band) raise InputError naming
    the file.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"SBD label file not found: {path} (expected benchmark_RELEASE/dataset/cls/<id>.mat)")
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except (MatReadError, OSError, ValueError, TypeError, IndexError, KeyError, NotImplementedError,
            zlib.error) as exc:
        # scipy raises several types for a damaged or foreign file (IndexError for a short one)
        raise InputError(f"cannot read SBD label file {path}: {exc} (expected a MATLAB .mat file)") from exc
    if "GTcls" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise InputError(f"SBD label file {path} has no variable 'GTcls' (found: {', '.join(found) or 'none'}); "
                         "expected an SBD cls/<id>.mat file")
    seg = getattr(mat["GTcls"], "Segmentation", None)
    if seg is None:
        raise InputError(f"SBD label file {path}: GTcls has no field 'Segmentation' "
                         "(expected the struct of SBD's cls/<id>.mat files)")
    seg = np.asarray(seg)
    if not np.issubdtype(seg.dtype, np.integer):
        raise InputError(f"SBD label file {path}: GTcls.Segmentation has dtype {seg.dtype}; "
                         "expected an integer class map (uint8)")
    if seg.ndim != 2 or seg.size == 0:
        raise InputError(f"SBD label file {path}: GTcls.Segmentation has shape {seg.shape}; "
                         "expected a non-empty (H, W) class map")
    if seg.min() < 0 or seg.max() >= SBD_NUM_CLASSES:
        value = int(seg.max() if seg.max() >= SBD_NUM_CLASSES else seg.min())
        raise InputError(f"SBD label file {path}: GTcls.Segmentation holds value {value}; "
                         f"expected classes 0..{SBD_NUM_CLASSES - 1}")
    return seg.astype(np.uint8)


def find_sbd_root(path: str | os.PathLike) -> Path:
    """The folder holding SBD's ``cls/`` and list files: ``path`` itself, or its ``dataset`` or
    ``benchmark_RELEASE/dataset`` subfolder (where ``benchmark.tgz`` unpacks)."""
    path = Path(path)
    for candidate in (path, path / "dataset", path / "benchmark_RELEASE" / "dataset"):
        if (candidate / "cls").is_dir():
            return candidate
    if not path.is_dir():
        raise InputError(f"SBD root {not_a_folder(path)}: {path} "
                         "(expected benchmark_RELEASE/dataset from benchmark.tgz)")
    inner = next((c for c in (path / "benchmark_RELEASE" / "dataset", path / "dataset") if c.is_dir()), path)
    raise InputError(f"{inner} has no cls folder (expected the SBD layout benchmark_RELEASE/dataset/cls/<id>.mat)")


def find_voc_root(path: str | os.PathLike) -> Path:
    """The VOC 2012 root: ``path`` itself when it holds ``JPEGImages``, else ``path/VOCdevkit/VOC2012`` or
    ``path/VOC2012`` (where the VOC tar unpacks)."""
    path = Path(path)
    for candidate in (path, path / "VOCdevkit" / "VOC2012", path / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    if not path.is_dir():
        raise InputError(f"VOC root {not_a_folder(path)}: {path} "
                         "(expected VOCdevkit/VOC2012 from VOCtrainval_11-May-2012.tar)")
    raise InputError(f"{path} has no JPEGImages folder (expected the VOC 2012 layout VOCdevkit/VOC2012)")


def read_ids(path: Path, what: str) -> list[str]:
    """The ids of a list file, one per line (first column); InputError if it is missing or empty."""
    if not path.is_file():
        raise InputError(f"{what} list file not found: {path}")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise InputError(f"{what} list file {path} lists no ids")
    return ids


def train_aug_ids(voc_root: str | os.PathLike, sbd_root: str | os.PathLike) -> list[str]:
    """Sorted ids of ``train_aug`` = (VOC seg train | SBD train | SBD val) - VOC seg val."""
    voc, sbd = find_voc_root(voc_root), find_sbd_root(sbd_root)
    sets = voc / "ImageSets" / "Segmentation"
    voc_train = read_ids(sets / "train.txt", "VOC segmentation train")
    voc_val = read_ids(sets / "val.txt", "VOC segmentation val")
    sbd_ids = read_ids(sbd / "train.txt", "SBD train") + read_ids(sbd / "val.txt", "SBD val")
    return sorted(set(voc_train).union(sbd_ids) - set(voc_val))


def _prepare_out_root(voc: Path, out: Path) -> None:
    """Make ``out`` a VOC-layout root beside ``voc``: links to its JPEGImages and SegmentationClass
    (copies where links are not possible) and copies of its split files."""
    for name in ("JPEGImages", "SegmentationClass"):
        target = out / name
        if target.exists():
            continue
        out.mkdir(parents=True, exist_ok=True)
        link_or_copy(voc / name, target)
    for split_file in sorted((voc / "ImageSets" / "Segmentation").glob("*.txt")):
        if split_file.name != f"{TRAIN_AUG}.txt":
            write_text(out / "ImageSets" / "Segmentation" / split_file.name, split_file.read_text())
    if (voc / "class_names.txt").is_file():
        write_text(out / "class_names.txt", (voc / "class_names.txt").read_text(encoding="utf-8-sig"))


def make_train_aug(voc_root: str | os.PathLike, sbd_root: str | os.PathLike,
                   out_root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Build the ``train_aug`` split of VOC 2012 + SBD; returns the VOC-layout root that holds it.

    Args:
        voc_root: the VOC 2012 root (``VOCdevkit/VOC2012``, or a folder holding it).
        sbd_root: SBD's ``benchmark_RELEASE/dataset`` (or ``benchmark_RELEASE``, or the folder holding it).
        out_root: where to write; default ``voc_root`` itself. Another folder becomes a VOC-layout
            root of its own (links to VOC's ``JPEGImages`` and ``SegmentationClass``, copies of its split files).
    Writes ``<out>/SegmentationClassAug/<id>.png`` (VOC palette PNG) for every ``train_aug`` id (VOC's own
    label map copied where VOC has one, else SBD's ``GTcls.Segmentation``), then
    ``<out>/ImageSets/Segmentation/train_aug.txt``, each file atomically. Labels already present in
    ``SegmentationClassAug`` are kept, so a second run (or one after an interruption) only finishes the job.
    An SBD id without its image in VOC's ``JPEGImages``, a missing or bad ``.mat`` file and an SBD map
    whose size differs from its image raise InputError naming the ids.
    """
    voc, sbd = find_voc_root(voc_root), find_sbd_root(sbd_root)
    names = root_class_names(voc)
    if len(names) != SBD_NUM_CLASSES:
        raise InputError(f"{voc / 'class_names.txt'} lists {plural(len(names), 'class')}, but SBD's label maps hold "
                         f"PASCAL VOC's {SBD_NUM_CLASSES} (background and 20 objects): train_aug needs a root of VOC's "
                         "classes")
    ids = train_aug_ids(voc, sbd)
    missing = [i for i in ids if not (voc / "JPEGImages" / f"{i}.jpg").is_file()]
    if missing:
        raise InputError(f"{len(missing)} train_aug images are missing from {voc / 'JPEGImages'}: "
                         f"{name_some(missing, limit=10)} (SBD's images are VOC 2011 images; is {voc} a complete "
                         "VOC 2012 trainval?)")
    out = voc if out_root is None else Path(out_root)
    if out.resolve() != voc.resolve():
        _prepare_out_root(voc, out)
    aug = out / AUG_DIR
    aug.mkdir(parents=True, exist_ok=True)
    problems = []                     # every label that cannot be made, said at once at the end
    for image_id in tqdm(ids, desc="train_aug labels", unit="img", disable=not progress):
        dst = aug / f"{image_id}.png"
        if dst.is_file():
            continue
        voc_label = voc / "SegmentationClass" / f"{image_id}.png"
        if voc_label.is_file():
            with atomic_path(dst) as tmp:
                shutil.copyfile(voc_label, tmp)
            continue
        try:
            label = read_sbd_label(sbd / "cls" / f"{image_id}.mat")
        except InputError as exc:
            problems.append(f"train_aug id '{image_id}' has no VOC label map, and its SBD label cannot be read: {exc}")
            continue
        image_hw = image_size(voc / "JPEGImages" / f"{image_id}.jpg")
        if label.shape != image_hw:
            problems.append(f"train_aug id '{image_id}': SBD label map is {label.shape[0]}x{label.shape[1]} (HxW) "
                            f"but its VOC image is {image_hw[0]}x{image_hw[1]}")
            continue
        write_label_png(dst, label)
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{len(problems)} train_aug labels cannot be made (the others are written: the same command "
                         f"makes only what is missing):\n  - " + "\n  - ".join(problems[:20])
                         + (f"\n  - and {len(problems) - 20} more" if len(problems) > 20 else ""))
    write_text(out / "ImageSets" / "Segmentation" / f"{TRAIN_AUG}.txt", "".join(f"{i}\n" for i in ids))
    return out
