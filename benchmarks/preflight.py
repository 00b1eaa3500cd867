"""Time pre-flight's file check on a VOC-shaped tree: 12,031 ids (train_aug 10,582 + val 1,449) of 500 x 375.

    python benchmarks/preflight.py [--ids 12031] [--sample 50] [--json PATH]

Writes a VOCdevkit-shaped tree into a temporary folder (one 500 x 375 JPEG and one palette label map,
copied under every id: the check reads headers, so the content does not matter), then times what
``dsrg run`` does before its first step on it: ``dsrg.data.check.file_problems`` (every image's and
label map's header, ``--sample`` of each decoded in full) and the fingerprint that remembers a clean
check. The page cache is warm (the files were just written); a cold disk adds its seek time.
The issue's budget: under 1 minute on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from grow import machine_info, print_machine, write_json
from PIL import Image

from dsrg.data.check import file_problems
from dsrg.data.voc import VOCSegmentation, write_label_png
from dsrg.run.preflight import _fingerprint


def voc_tree(root: Path, ids: int) -> None:
    """``ids`` images and label maps under ``root`` in VOC's layout, listed in ImageSets/Segmentation/train.txt."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:375, :500]
    image = np.stack([(x * 255 // 499), (y * 255 // 374), rng.integers(0, 256, (375, 500))], -1).astype(np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(image).save(jpeg, "JPEG", quality=90)
    mask = np.zeros((375, 500), np.uint8)
    mask[100:300, 150:400] = 15
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    write_label_png(root / "template.png", mask)
    names = [f"2007_{i:06d}" for i in range(ids)]
    for name in names:
        (root / "JPEGImages" / f"{name}.jpg").write_bytes(jpeg.getvalue())
        shutil.copyfile(root / "template.png", root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", type=int, default=12031, help="images (and label maps) in the tree")
    ap.add_argument("--sample", type=int, default=50, help="files decoded in full (pre-flight's FILE_SAMPLE)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    info = machine_info()
    print_machine(info)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "VOC2012"
        t = time.perf_counter()
        voc_tree(root, args.ids)
        print(f"wrote {args.ids} images and label maps in {time.perf_counter() - t:.1f} s")
        ds = VOCSegmentation(root, "train")
        t = time.perf_counter()
        problems = file_problems(ds, args.sample, labels=True)
        check = time.perf_counter() - t
        t = time.perf_counter()
        _fingerprint(ds)
        fingerprint = time.perf_counter() - t
    if problems:
        raise SystemExit(f"the benchmark's own tree has problems: {problems[:3]}")
    print(f"file check: {check:.2f} s ({1e3 * check / args.ids:.2f} ms per id: 2 headers, "
          f"{args.sample} of each decoded); fingerprint: {fingerprint:.2f} s; budget 60 s")
    write_json(args.json, {"benchmark": "preflight", "ids": args.ids, "sample": args.sample, "check_s": check,
                           "fingerprint_s": fingerprint, "machine": info})


if __name__ == "__main__":
    main()
