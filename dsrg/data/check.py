"""``dsrg data check``: validate a dataset root before hours of training.

For a root in the PASCAL VOC layout (the real VOC 2012 or the embedded dataset): every split file found,
its image count against the expected count (VOC 2012's published counts, or the embedded dataset's own
``dataset.json``), and a sample of its files opened and checked (images readable, label maps readable,
of known classes and of their image's size). One line per problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dsrg.data.voc import VOC_CLASSES, VOCSegmentation
from dsrg.io import InputError

# Image counts of PASCAL VOC 2012's segmentation splits (Section 4.1 of the paper).
VOC2012_COUNTS = {"train": 1464, "val": 1449, "trainval": 2913, "test": 1456}


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
    sets = root / "ImageSets" / "Segmentation"
    if not sets.is_dir():
        raise InputError(f"{root}: no ImageSets/Segmentation folder (expected the PASCAL VOC layout)")
    splits = sorted(p.stem for p in sets.glob("*.txt"))
    if not splits:
        raise InputError(f"{sets}: no split files (expected train.txt, val.txt, ...)")
    report, problems = [], []
    expected = None
    for split in splits:
        try:
            ds = VOCSegmentation(root, split)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if expected is None:
            expected = expected_counts(root, ds.class_names)
        n = len(ds)
        want = expected.get(split)
        if want is not None and want != n:
            problems.append(f"split '{split}' lists {n} images; expected {want}")
        idx = None if sample is None or sample >= n else np.linspace(0, n - 1, sample).round().astype(int).tolist()
        found = ds.check(idx)
        problems += found
        opened = n if idx is None else len(set(idx))
        report.append(f"split '{split}': {n} images" + (f" (expected {want})" if want is not None else "")
                      + f", {opened} opened, {len(found)} problems"
                      + ("" if ds.has_masks else ", no SegmentationClass masks"))
    return report, problems
