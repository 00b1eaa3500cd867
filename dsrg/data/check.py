"""``dsrg data check``: validate a dataset root before hours of training.

For a root in the PASCAL VOC layout (the real VOC 2012, a root converted from COCO, or the embedded
dataset): every split file found, its image count against the expected count (VOC 2012's published
counts, train_aug's 10,582 included, or the root's own ``dataset.json``), whether every image of it has
a label map (a split where none has one is a test split, like VOC 2012 test: reported, not a problem;
one where only some have one is a problem), and a sample of its files opened and checked (images
readable, label maps readable, of known classes and of their image's size).

For a COCO 2014 root (``--dataset coco``): the layout, each split's image count against 82,783
(train2014) / 40,504 (val2014) both in the folder and in its annotation file, the annotation file's
validity and categories, every listed image file present, and a sample of images opened fully and
their label maps decoded. One line per problem.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError, name_some, plural
from ..files import as_given, not_a_folder
from .sbd import TRAIN_AUG, TRAIN_AUG_COUNT
from .voc import VOC_CLASSES, NotAClass, VOCSegmentation, classes_said, found_instead, moved_source

VOC_ID = re.compile(r"20\d\d_\d{6}")     # PASCAL VOC's image ids, e.g. 2007_000032


def voc_images(ds: VOCSegmentation) -> bool:
    """Whether the split ``ds`` holds PASCAL VOC's images, by the ids of its first 50."""
    return any(VOC_ID.fullmatch(image_id) for image_id in ds.ids[:50])

# Image counts of PASCAL VOC 2012's segmentation splits (Section 4.1 of the paper); train_aug = VOC train
# + SBD train + SBD val - VOC val (dsrg.data.sbd.make_train_aug).
VOC2012_COUNTS = {"train": 1464, "val": 1449, "trainval": 2913, "test": 1456, TRAIN_AUG: TRAIN_AUG_COUNT}


def expected_counts(root: Path, class_names: list[str]) -> dict[str, int]:
    """The split sizes a root should have: its ``dataset.json`` counts, else VOC 2012's for VOC classes."""
    info = root / "dataset.json"
    if info.is_file():
        return {k: int(v) for k, v in json.loads(info.read_text()).get("counts", {}).items()}
    return dict(VOC2012_COUNTS) if class_names == VOC_CLASSES else {}


def check_voc_root(root: str | os.PathLike, sample: int | None = 50) -> tuple[list[str], list[str]]:
    """Check a VOC-layout root.

    Args:
        sample: files opened per split, evenly spaced; None opens every file.
    Returns:
        ``(report, problems)``: one line per split checked, and one line per problem.
    """
    root = Path(root)
    _check_sample(sample)
    if not root.is_dir():
        raise InputError(f"dataset root {not_a_folder(root)}: {as_given(root)} (expected a folder in the PASCAL VOC "
                         f"layout)")
    sets = root / "ImageSets" / "Segmentation"
    if not sets.is_dir():
        raise InputError(f"{root}: no ImageSets/Segmentation folder (expected the PASCAL VOC layout)"
                         f"{_layout_hint(root)}")
    splits = sorted(p.stem for p in sets.glob("*.txt"))
    if not splits:
        raise InputError(f"{sets}: no split files (expected train.txt, val.txt, ...)")
    report, problems = [], []
    expected, voc_ids = None, False
    beyond: list[int] = []                  # label values beyond the classes, one per label map that holds one
    for split in splits:
        before = len(problems)
        try:
            ds = VOCSegmentation(root, split)
        except InputError as exc:
            problems.append(str(exc))
            report.append(f"split '{split}': not readable, 1 problem")
            continue
        if expected is None:
            expected = expected_counts(root, ds.class_names)
        n = len(ds)
        voc_ids = voc_ids or voc_images(ds)
        count_note, wrong = _count(f"split '{split}'", split, n, expected.get(split), "VOC 2012",
                                   own=(root / "dataset.json").is_file())
        problems += wrong
        unlabelled = unlabelled_indices(ds)
        test_split = len(unlabelled) == n and (ds.has_masks or split.startswith("test"))
        tagged = ds.image_labels is not None           # image-level labels of their own: no label maps needed
        if not ds.has_masks and not test_split and not tagged:
            problems.append(f"split '{split}': label folder {root / ds.label_dir} not found (training needs the "
                            f"label maps for the image-level labels, or ImageLabels/{split}.txt, evaluation needs "
                            f"them for the scores){moved_source(root / ds.label_dir)}")
        elif 0 < len(unlabelled) < n:
            problems.append(f"split '{split}': {len(unlabelled)} of {n} images have no label map in "
                            f"{root / ds.label_dir} ({name_some([ds.ids[i] for i in unlabelled])}); expected "
                            f"one for every image (a split to train on or score) or for none (a test split)")
        idx = _sample_indices(n, sample)
        # label maps that are missing are counted once above, not once per sampled id
        missing = set(unlabelled)
        found = ds.problems([i for i in idx if i not in missing])
        problems += [str(problem) for problem in found]
        beyond += [problem.value for problem in found if isinstance(problem, NotAClass)]
        problems += _image_problems(ds, [i for i in idx if i in missing])
        report.append(f"split '{split}': {plural(n, 'image')}" + count_note
                      + f", {len(idx)} opened, {plural(len(problems) - before, 'problem')}"
                      + ("" if ds.label_dir == "SegmentationClass" else f", labels from {ds.label_dir}")
                      + (f", image-level labels from ImageLabels/{split}.txt" if tagged
                         else ", image-level labels from its label maps" if ds.has_masks and not unlabelled else "")
                      + (f" (which also lists {plural(len(ds.unlisted_labels), 'id')} of no image of the split, e.g. "
                         f"{name_some(ds.unlisted_labels, 2)})" if tagged and ds.unlisted_labels else "")
                      + (", no label maps (training only: evaluation needs them)" if tagged and not ds.has_masks
                         else f", no label maps (a test split: `dsrg evaluate --profile P eval.split={split}` writes "
                         f"predictions{' for the evaluation server' if voc_images(ds) else ''})" if test_split
                         else "" if ds.has_masks else f", no {ds.label_dir} masks"))
    tags = root / "ImageLabels"
    for stem in sorted(p.stem for p in tags.glob("*.txt")) if tags.is_dir() else ():
        if stem not in splits:
            problems.append(f"{tags / (stem + '.txt')} names no split (the splits: {', '.join(splits)}); expected "
                            f"ImageLabels/<split>.txt for a split of ImageSets/Segmentation")
    try:
        report.append(f"classes: {classes_said(root)}" + _values_beyond(beyond))
    except InputError as exc:
        problems.append(str(exc))
    if expected == VOC2012_COUNTS and voc_ids and TRAIN_AUG not in splits:
        report.append(f"no train_aug split (the paper trains on train_aug, {TRAIN_AUG_COUNT} images): make it with "
                      "dsrg data train-aug --voc-root DIR --sbd-root DIR")
    return report, list(dict.fromkeys(problems))      # a root's file that every split reads: said once


def _count(subject: str, split: str, n: int, want: int | None, reference: str, own: bool) -> tuple[str, list[str]]:
    """The report's note on a split of ``n`` images where ``want`` were expected, and its problems: with ``own``,
    ``want`` is the root's own record (the embedded set) and another count is a problem; else it is
    ``reference``'s count (VOC 2012's, COCO 2014's), and another is a note (a subset, or another dataset)."""
    if want is None:
        return "", []
    source = "its dataset.json" if own else f"{reference}'s {split}"
    if n == want:
        return f" (expected {want}: {source})", []
    if own:
        return f" (expected {want}: {source})", [f"{subject} lists {plural(n, 'image')}; expected {want} ({source})"]
    return f" ({reference}'s {split} has {want}: a subset or another dataset?)", []


def unlabelled_indices(ds: VOCSegmentation) -> list[int]:
    """The indices of the ids of ``ds`` without a label map file (all of them when the label folder is missing)."""
    if not ds.has_masks:
        return list(range(len(ds)))
    return [i for i in range(len(ds)) if not ds.mask_path(i).is_file()]


def file_problems(ds: VOCSegmentation, sample: int | None = 50, labels: bool = True) -> list[str]:
    """What a step reading the split ``ds`` would trip over, before it starts: every file's header read (an image
    missing or not a JPEG/PNG; with ``labels``, a label map missing, not a PNG, of a mode other than palette, grey
    or RGB, or of another size than its image) and a sample of ``sample`` of them decoded in full (a truncated
    JPEG, a label value that is no class), evenly spaced (None: all). One line per problem, each naming the id."""
    problems, bad = [], set()
    labelled = labels and ds.has_masks
    for i, image_id in enumerate(ds.ids):
        image, label = ds.image_path(i), ds.mask_path(i)
        found = _header(image)
        if isinstance(found, str):
            problems.append(f"image of id '{image_id}' (split '{ds.split}'): {found}")
            bad.add(i)
        elif found[0] not in ("JPEG", "PNG"):
            problems.append(f"image of id '{image_id}': {image} is a {found[0]} file; expected a JPEG or PNG")
            bad.add(i)
        elif min(found[1]) < 2:                   # the seeds' saliency needs a neighbour on each axis
            problems.append(f"image of id '{image_id}': {image} is {found[1][0]}x{found[1][1]} (HxW); expected at "
                            f"least 2x2 pixels")
            bad.add(i)
        if not labelled:
            continue
        lab = _header(label)
        if isinstance(lab, str):
            problems.append(f"label map of id '{image_id}' (split '{ds.split}'): {lab}")
            bad.add(i)
        elif lab[0] != "PNG" or lab[2] not in ("P", "L", "RGB"):
            problems.append(f"label map of id '{image_id}': {label} is a {lab[0]} of mode {lab[2]!r}; expected a "
                            f"PNG of mode 'P' (palette), 'L' (class indices) or 'RGB' (VOC colours)")
            bad.add(i)
        elif not isinstance(found, str) and lab[1] != found[1]:
            problems.append(f"id '{image_id}': label map {label} is {lab[1][0]}x{lab[1][1]} (HxW) but its image is "
                            f"{found[1][0]}x{found[1][1]}")
            bad.add(i)
    reads = (ds.image, ds.mask) if labelled else (ds.image,)
    for i in _sample_indices(len(ds), sample):
        for read in reads if i not in bad else ():
            try:
                read(i)
            except InputError as exc:
                problems.append(str(exc))
    return problems


def _layout_hint(root: Path) -> str:
    """Why a folder without split files may have none: the VOC root is a folder below it, or a conversion into it
    stopped before it wrote them."""
    inside = sorted(str(p.parent.parent.relative_to(root)) for p in root.glob("*/ImageSets/Segmentation")) + \
        sorted(str(p.parent.parent.relative_to(root)) for p in root.glob("*/*/ImageSets/Segmentation"))
    if inside:
        return f"; it holds {name_some(inside)}: --root is the folder with ImageSets, e.g. {root / inside[0]}"
    if (root / "annotations").is_dir() and any((root / s).is_dir() for s in ("train2014", "val2014")):
        return ("; it holds annotations/ and COCO 2014's image folders: check a COCO root with --dataset coco, and "
                f"`dsrg data coco --root {root} --out <folder>` converts it into the VOC layout a run reads")
    if (root / "JPEGImages").is_dir():
        return ("; it holds JPEGImages: a `dsrg data coco` or `dsrg data train-aug --out` that stopped before it "
                "wrote its split files? the same command again finishes it")
    return ""


def _header(path: Path) -> tuple[str, tuple[int, int], str] | str:
    """``(format, (H, W), mode)`` from an image file's header, or the problem in words."""
    if not path.is_file():
        return f"not found: {path}{found_instead(path)}"
    try:
        with Image.open(path) as im:
            return im.format or "?", (im.height, im.width), im.mode
    except (OSError, SyntaxError, ValueError) as exc:
        return f"cannot read {path}: {exc}"


def _image_problems(ds: VOCSegmentation, indices: list[int]) -> list[str]:
    """One line per image of ``indices`` that is missing or not readable."""
    problems = []
    for i in indices:
        try:
            ds.image(i)
        except InputError as exc:
            problems.append(str(exc))
    return problems


def _check_sample(sample: int | None) -> None:
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 0):
        raise InputError(f"sample (--sample): expected a number of files to open per split >= 0, got {sample!r}")


def _values_beyond(values: list[int]) -> str:
    """For the classes' line: how many label maps opened hold values beyond the classes (``values``, one each),
    and the largest (a class_names.txt that lists too few reads as one problem per file otherwise)."""
    if not values:
        return ""
    return (f"; {len(values)} of the label maps opened hold values beyond them (up to at least {max(values)}): "
            f"does the list name every class?")


def _sample_indices(n: int, sample: int | None) -> list[int]:
    if sample is None or sample >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, sample).round().astype(int).tolist()))


def check_coco_split(root: Path, split: str, want: int | None, names: list[str] | None,
                     sample: int | None, own_counts: bool = False) -> tuple[str, list[str]]:
    """Check one COCO split: ``(report line, problems)``; see :func:`check_coco_root`. ``own_counts``: ``want``
    is the root's own record (the embedded set), so another count is a problem; COCO 2014's is a note."""
    from ..files import read_rgb
    from .coco import annotation_file, category_mapping, coco_label_map, load_coco

    problems: list[str] = []
    image_dir = root / split
    if not image_dir.is_dir():
        problems.append(f"split '{split}': image folder {image_dir} not found (from {split}.zip)")
        files = None
    else:
        files = {p.name for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    try:
        coco = load_coco(annotation_file(root, split))
    except InputError as exc:
        problems.append(f"split '{split}': {exc}")
        return f"split '{split}': annotations not usable" + (
            "" if files is None else f", {len(files)} image files"), problems
    images = sorted(coco.imgs.values(), key=lambda img: img["id"])
    count_note, wrong = _count(f"split '{split}': {annotation_file(root, split)}", split, len(images), want,
                               "COCO 2014", own=own_counts)
    problems += wrong
    class_names, id_to_label = category_mapping(coco)
    if names is not None and class_names != names:
        problems.append(f"split '{split}': the categories of {annotation_file(root, split)} "
                        f"({len(class_names) - 1}) are not the expected {len(names) - 1}")
    if files is not None:
        missing = [img["file_name"] for img in images if img["file_name"] not in files]
        if missing:
            problems.append(f"split '{split}': {plural(len(missing), 'image')} of the annotations not found "
                            f"in {image_dir}: {name_some(missing)}")
    opened = 0
    if files is not None:
        for i in _sample_indices(len(images), sample):
            img = images[i]
            path = image_dir / img["file_name"]
            if img["file_name"] not in files:
                continue
            opened += 1
            try:
                hw = read_rgb(path).shape[:2]
                if hw != (img["height"], img["width"]):
                    raise InputError(f"COCO image {path} is {hw[0]}x{hw[1]} (HxW) but its annotation entry "
                                     f"says {img['height']}x{img['width']}")
                coco_label_map(coco, img["id"], id_to_label)
            except InputError as exc:
                problems.append(f"split '{split}': {exc}")
    extra = [] if files is None else sorted(files - {img["file_name"] for img in images})
    report = (f"split '{split}': {plural(len(images), 'image')}" + count_note
              + (f" ({len(extra)} more files in {image_dir}, not listed)" if extra else "")
              + f", {len(coco.anns)} annotations, {len(coco.cats)} categories, {opened} opened, "
              f"{plural(len(problems), 'problem')}")
    return report, problems


def check_coco_root(root: str | os.PathLike, sample: int | None = 50) -> tuple[list[str], list[str]]:
    """Check a COCO 2014 root (``annotations/instances_<split>.json``, ``<split>/`` image folders).

    Splits checked: train2014 and val2014, against COCO 2014's 80 categories, their counts noted (a subset is
    no problem); a root with a ``dataset.json`` (the embedded dataset in COCO form) is checked against its own
    counts and class names instead. A split that is absent is a problem.

    Args:
        sample: images opened (fully decoded) and label maps decoded per split, evenly spaced; None: all.
    Returns:
        ``(report, problems)``: one line per split, and one line per problem.
    """
    from .coco import COCO2014_COUNTS, COCO_CLASSES

    root = Path(root)
    _check_sample(sample)
    if not root.is_dir():
        raise InputError(f"COCO root {not_a_folder(root)}: {root} (expected the COCO 2014 layout: "
                         "annotations/, train2014/, val2014/)")
    if not (root / "annotations").is_dir():
        hint = (" (it holds ImageSets/Segmentation: a VOC-layout root, converted or one's own; check it with "
                "--dataset voc)"
                if (root / "ImageSets" / "Segmentation").is_dir() else "")
        raise InputError(f"{root}: no annotations folder (expected the COCO 2014 layout: "
                         f"annotations/instances_train2014.json, train2014/, val2014/){hint}")
    counts: dict[str, int] = dict(COCO2014_COUNTS)
    names: list[str] | None = list(COCO_CLASSES)
    info = root / "dataset.json"
    if info.is_file():
        try:
            meta = json.loads(info.read_text())
            counts = {str(k): int(v) for k, v in meta["counts"].items()}
            names = meta.get("class_names")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"cannot read {info}: {exc!r} (expected JSON with the counts per split)") from exc
    report, problems = [], []
    for split in sorted(counts):
        line, found = check_coco_split(root, split, counts.get(split), names, sample, info.is_file())
        report.append(line)
        problems += found
    return report, problems
