"""Reader for any dataset root in the PASCAL VOC 2012 on-disk layout.

Layout (``<id>`` is one line of the split file)::

    <root>/JPEGImages/<id>.jpg                 RGB image
    <root>/SegmentationClass/<id>.png          label map (absent for VOC test)
    <root>/ImageSets/Segmentation/<split>.txt  one id per line (or DeepLab's "/JPEGImages/<id>.jpg ..." lines)
    <root>/class_names.txt                     optional: one class name per line, background first
    <root>/ImageLabels/<split>.txt             optional: "<id> <class> <class> ..." per image, its classes

Conventions (those of VOC and of the paper):

* a label map is ``uint8 (H, W)``: value ``c`` in ``[0, num_classes)`` is class ``c`` (0 = background),
  ``IGNORE = 255`` marks object borders and "difficult" pixels and is ignored by losses and metrics;
* VOC's ``SegmentationClass`` PNGs are palette images: the label is the palette INDEX, never the
  grayscale luminance of the palette colour;
* image-level labels are a ``bool (num_classes,)`` vector whose entry 0 (background) is always True: the
  classes of the image's line in ``ImageLabels/<split>.txt`` where the split has that file (its label maps
  are then optional), else those present in its label map.
"""

from __future__ import annotations

import collections
import difflib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import InputError, name_some, not_utf8
from ..files import as_given, atomic_path, broken_link, load_image, not_a_folder, read_rgb
from ..method import IGNORE

VOC_CLASSES: list[str] = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]


def voc_palette() -> np.ndarray:
    """The standard VOC colour map: ``uint8 (256, 3)``; row ``i`` is the RGB colour of label ``i``.

    The bits of ``i`` are dealt out in turn to R, G and B, from each channel's most significant bit
    down (index 1 = (128, 0, 0), 2 = (0, 128, 0), 255 = (224, 224, 192)).
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, rgb = index, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette[index] = rgb
    return palette


def _rgb_to_index(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Map an RGB label image ``uint8 (H, W, 3)`` to palette indices ``uint8 (H, W)``."""
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    palette = voc_palette().astype(np.int32)
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(palette_codes)
    pos = np.clip(np.searchsorted(palette_codes[order], codes), 0, 255)
    known = palette_codes[order][pos] == codes
    if not known.all():
        y, x = np.argwhere(~known)[0]
        raise InputError(f"label image {path}: colour {tuple(int(v) for v in rgb[y, x])} at (y={y}, x={x}) "
                         "is not a VOC palette colour (RGB label PNGs must use the VOC colour map)")
    return order[pos].astype(np.uint8)


def read_label_png(path: str | os.PathLike, num_classes: int) -> np.ndarray:
    """Read a label map as ``uint8 (H, W)`` of class indices, ``IGNORE`` (255) kept as is.

    Mode "P" gives the palette index, mode "L" the stored values (SBD-converted
    "SegmentationClassAug" files), mode "RGB" the VOC palette index of each colour. Any value that
    is neither ``< num_classes`` nor 255, any other mode, and a missing or corrupt file raise
    InputError naming the file.
    """
    im = load_image(path, "label image", "a readable PNG file")
    mode, data = im.mode, np.asarray(im)
    if mode in ("P", "L"):
        mask = data.astype(np.uint8)
    elif mode == "RGB":
        mask = _rgb_to_index(data, path)
    else:
        raise InputError(f"label image {path} has mode {mode!r}; expected 'P' (palette), 'L' (indices) or 'RGB' "
                         "(VOC colours)")
    bad = (mask >= num_classes) & (mask != IGNORE)
    if bad.any():
        value = int(mask[bad][0])
        grey = (" (a palette PNG saved as greyscale? its values are then the colours' brightness, not the "
                "class indices the palette image held: keep VOC's palette PNGs as they are)" if mode == "L" else "")
        raise NotAClass(f"label image {path} holds value {value}, which is not a class; "
                        f"allowed: 0..{num_classes - 1} ({num_classes} classes) or {IGNORE} (ignore){grey}", value)
    return mask


def write_label_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a label map ``(H, W)`` with values in 0..255 as a palette PNG with the VOC colour map (atomic)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise InputError(f"label map for {path} must be a non-empty (H, W) array, got shape {mask.shape}")
    if mask.dtype != np.uint8:
        if not np.issubdtype(mask.dtype, np.integer) or mask.min() < 0 or mask.max() > 255:
            raise InputError(f"label map for {path} must hold integers in 0..255, got dtype {mask.dtype}")
        mask = mask.astype(np.uint8)
    height, width = mask.shape
    im = Image.frombytes("P", (width, height), np.ascontiguousarray(mask).tobytes())
    im.putpalette(voc_palette().tobytes())
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header; InputError if missing or unreadable."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except FileNotFoundError as exc:
        raise InputError(f"image file not found: {path}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    return height, width


def found_instead(path: Path) -> str:
    """For a file not found: ``"; found <name> ..."`` where its folder holds its name with another extension
    (``2007_000032.JPG`` for ``.jpg``, one file to Windows and macOS, another to Linux; a label map saved as
    ``.jpg``), the link that stands where the source it pointed to was moved (:func:`moved_source`), else ``""``."""
    moved = moved_source(path)
    if moved:
        return moved
    others = sorted(name for name in _names_by_stem(path.parent).get(path.stem, []) if name != path.name)
    if not others:
        return ""
    case = others[0].lower() == path.name.lower()
    return (f"; found {others[0]}: the pipeline reads <id>{path.suffix}, rename it" if case else
            f"; found {others[0]}: the pipeline reads <id>{path.suffix}"
            + (" (a label map in a JPEG is no longer exact: save the label map as PNG)"
               if path.suffix == ".png" else ""))


def moved_source(path: Path) -> str:
    """``"; <link> is a link to <target>, which is not there: ..."`` where ``path`` or a folder above it is a link
    whose target is gone (the roots ``dsrg data train-aug --out`` and ``dsrg data coco`` make link their
    source's images), else ``""``."""
    gone = broken_link(path)
    return (f"; {gone}: `dsrg data train-aug --out` and `dsrg data coco` link the images of their source rather "
            f"than copy them, so move or copy the source with the root (cp -a of a folder holding both keeps the "
            f"links), or make the root again") if gone else ""


_LISTINGS: dict[Path, tuple[int, dict[str, list[str]]]] = {}     # folder -> (its mtime, file names by stem)


def _names_by_stem(folder: Path) -> dict[str, list[str]]:
    """The file names in ``folder`` by stem, listed once while the folder is unchanged (pre-flight asks for
    each missing file of a split: one listing, not one per file); {} for a folder that is not there."""
    try:
        mtime = folder.stat().st_mtime_ns
    except OSError:
        return {}
    cached = _LISTINGS.get(folder)
    if cached is None or cached[0] != mtime:
        by_stem: dict[str, list[str]] = {}
        try:
            for entry in os.scandir(folder):
                by_stem.setdefault(os.path.splitext(entry.name)[0], []).append(entry.name)
        except OSError:                     # not a folder, or not one we may list: nothing to say
            return {}
        cached = _LISTINGS[folder] = (mtime, by_stem)
    return cached[1]


def _read_lines(path: Path, what: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()       # a byte-order mark is not text
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc, f"expected a text file of {what}, one per line") from None


def split_id(line: str) -> str:
    """The image id of a split file's line: its first column, where a path or file name such as DeepLab's
    ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png`` or ``2007_000032.jpg`` gives
    ``2007_000032`` (the folder and an image extension are dropped)."""
    first = line.split()[0].replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = first.rpartition(".")
    return stem if dot and ext.lower() in ("jpg", "jpeg", "png") else first


def split_file_ids(path: Path) -> list[str]:
    """The image ids a split file lists (:func:`split_id` of each line that is not blank); InputError for a file
    that is not UTF-8 text."""
    return [split_id(line) for line in _read_lines(path, "image ids") if line.strip()]


def root_class_names(root: str | os.PathLike) -> list[str]:
    """The class names of a VOC-layout root: its ``class_names.txt`` (one per line, background first), else
    ``VOC_CLASSES``."""
    path = Path(root) / "class_names.txt"
    if not path.exists():
        return list(VOC_CLASSES)
    if not path.is_file():
        raise InputError(f"{path} is not a file; expected a text file of class names, one per line, background first")
    names = [line.strip() for line in _read_lines(path, "class names") if line.strip()]
    if not names:
        raise InputError(f"{path} is empty; expected one class name per line, background first")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"{path} names {', '.join(repr(n) for n in twice)} more than once; expected each class "
                         f"once (label value k is the k-th name)")
    return names


def split_path(root: str | os.PathLike, split: str) -> Path:
    """Where a split's list of image ids is: ``<root>/ImageSets/Segmentation/<split>.txt``."""
    return Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"


def image_labels_path(root: str | os.PathLike, split: str) -> Path:
    """Where a split's image-level labels of their own are: ``<root>/ImageLabels/<split>.txt``."""
    return Path(root) / "ImageLabels" / f"{split}.txt"


def classes_said(root: str | os.PathLike) -> str:
    """The classes of a VOC-layout root in words, for the command line: how many, where from, the first few."""
    names, path = root_class_names(root), Path(root) / "class_names.txt"
    if not path.is_file():
        return (f"{len(names)}, PASCAL VOC 2012's (no class_names.txt in {root}; for classes of your own, list "
                f"them there, one per line, background first)")
    shown = ", ".join(names[:6]) + (f", ... ({len(names) - 6} more)" if len(names) > 6 else "")
    return f"{len(names)}, from {path}: {shown}"


class NotAClass(InputError):
    """A label map holding ``value``, which is neither a class nor 255."""

    def __init__(self, message: str, value: int) -> None:
        super().__init__(message)
        self.value = value

    def __reduce__(self):
        return type(self), (str(self), self.value)


class VOCSegmentation:
    """The images, label maps and image-level labels of one split of a VOC-layout root.

    ``ds[i]`` is ``dict(id=str, image=uint8 (H, W, 3) RGB, mask=uint8 (H, W) or None,
    labels=bool (num_classes,))``; ``labels[c]`` is True for each class in the mask (255 ignored)
    and ``labels[0]`` (background) is always True. ``labels`` come from ``ImageLabels/<split>.txt`` where
    that file exists (``image_labels``; the split's label maps, read for the scores and measures, are then
    optional: all of them or none), else from the label map. ``mask`` is None, and asking for labels from
    it raises, when the root has no label folder (VOC test). Class names come from
    ``class_names``, else ``<root>/class_names.txt``, else ``VOC_CLASSES``.

    Label maps are read from ``<root>/<label_dir>/<id>.png``; ``label_dir`` defaults to
    ``SegmentationClassAug`` for split ``train_aug`` when that folder exists (VOC 2012 + SBD, see
    :func:`dsrg.data.sbd.make_train_aug`), else ``SegmentationClass``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", class_names: Sequence[str] | None = None,
                 label_dir: str | None = None):
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise InputError(f"dataset root {not_a_folder(self.root)}: {as_given(self.root)} "
                             "(expected a folder in the PASCAL VOC layout)")
        if not (self.root / "JPEGImages").is_dir():
            inside = sorted(p.name for p in self.root.iterdir() if (p / "JPEGImages").is_dir())
            hint = f"; it holds {name_some(inside)}: data.root is the folder with JPEGImages, e.g. " \
                   f"{self.root / inside[0]}" if inside else ""
            if not inside and any(self.root.glob("annotations/instances_*.json")):
                hint = (f"; it is a COCO root, which the pipeline reads converted: dsrg data coco --root "
                        f"{self.root} --out <folder> (then data.root=<folder>)")
            hint = moved_source(self.root / "JPEGImages") or hint
            raise InputError(f"{self.root} has no JPEGImages folder (expected <root>/JPEGImages/<id>.jpg){hint}")
        self.ids = self._read_split()
        self.class_names = list(root_class_names(self.root) if class_names is None else class_names)
        if not 2 <= len(self.class_names) <= IGNORE:
            raise InputError(f"need between 2 and {IGNORE} class names (background first), "
                             f"got {len(self.class_names)}")
        self.num_classes = len(self.class_names)
        if label_dir is None:
            aug = "SegmentationClassAug"
            label_dir = aug if split == "train_aug" and (self.root / aug).is_dir() else "SegmentationClass"
        self.label_dir = label_dir
        self.has_masks = (self.root / self.label_dir).is_dir()
        self.image_labels = self._read_image_labels()
        if self.image_labels is not None and self.has_masks:    # its label maps only measure: all of them, or none
            present = sum(self.mask_path(i).is_file() for i in range(len(self.ids)))
            if 0 < present < len(self.ids):
                raise InputError(f"split '{self.split}' of {self.root} has image-level labels (ImageLabels/"
                                 f"{self.split}.txt) and label maps in {self.root / self.label_dir} for {present} "
                                 f"of its {len(self.ids)} images; expected a label map for every image (they are "
                                 f"read to score and measure) or for none")
            self.has_masks = present > 0

    def _read_image_labels(self) -> dict[str, np.ndarray] | None:
        """``{id: labels}`` from ``ImageLabels/<split>.txt``: each line an id and its classes (names, a space
        in one written ``_``, or indices; 0, the background, is always set), one line per image of the split;
        None without the file. Ids the split does not list are kept apart (``unlisted_labels``)."""
        path = image_labels_path(self.root, self.split)
        self.unlisted_labels: list[str] = []
        if not path.exists():
            return None
        if not path.is_file():
            raise InputError(f"{path} is not a file; expected the split's image-level labels, '<id> <class> ...' "
                             f"per line")
        index = {name.replace(" ", "_"): c for c, name in enumerate(self.class_names)}
        out, line_of = {}, {}
        for n, line in enumerate(_read_lines(path, "image ids and their classes"), 1):
            words = line.split()
            if not words:
                continue
            labels = np.zeros(self.num_classes, dtype=bool)
            labels[0] = True
            for word in words[1:]:
                c = int(word) if word.isascii() and word.isdigit() else index.get(word)
                if c is None or not 0 <= c < self.num_classes:
                    close = difflib.get_close_matches(word, list(index), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise InputError(f"{path}, line {n}: {word!r} is not one of the {self.num_classes} classes; "
                                     f"{hint}expected a class name ({name_some(list(index), 12)}; a space written "
                                     f"_) or an index 0..{self.num_classes - 1}")
                labels[c] = True
            image_id = split_id(words[0])
            if image_id in out and not np.array_equal(out[image_id], labels):
                raise InputError(f"{path}, lines {line_of[image_id]} and {n}: id '{image_id}' is given two different "
                                 f"sets of classes; expected one line per image")
            out[image_id], line_of[image_id] = labels, n
        listed = set(self.ids)
        self.unlisted_labels = [image_id for image_id in out if image_id not in listed]
        missing = [image_id for image_id in self.ids if image_id not in out]
        if missing:
            raise InputError(f"{path} gives no classes for {len(missing)} of the {len(self.ids)} images of split "
                             f"'{self.split}' (e.g. {name_some(missing)}); expected a line '<id> <class> ...' for "
                             f"each (an image of background alone: its id only)")
        return out

    def _read_split(self) -> list[str]:
        split_file = split_path(self.root, self.split)
        sets = split_file.parent
        if not split_file.is_file():
            found = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
            have = f"splits found: {', '.join(found)}" if found else f"no split files in {sets}"
            made = ("; train_aug (VOC 2012 + SBD, the paper's 10,582 training images) is made by: dsrg data "
                    "train-aug --voc-root <VOC2012> --sbd-root <SBD>" if self.split == "train_aug" else "")
            raise InputError(f"split file not found: {split_file} ({have}){made}")
        ids = split_file_ids(split_file)
        if not ids:
            raise InputError(f"split file {split_file} lists no image ids (expected one id per line)")
        return ids

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.root / "JPEGImages" / f"{self.ids[i]}.jpg"

    def mask_path(self, i: int) -> Path:
        return self.root / self.label_dir / f"{self.ids[i]}.png"

    def image(self, i: int) -> np.ndarray:
        """The RGB image of item ``i``: ``uint8 (H, W, 3)``."""
        path = self.image_path(i)
        if not path.is_file():
            raise InputError(f"image of id '{self.ids[i]}' (split '{self.split}') not found: {path}"
                             f"{found_instead(path)}")
        try:
            return read_rgb(path)
        except InputError as exc:
            raise InputError(f"image of id '{self.ids[i]}': {exc}") from exc

    def mask(self, i: int) -> np.ndarray | None:
        """The label map of item ``i``: ``uint8 (H, W)``, checked against its image's size; None without masks."""
        if not self.has_masks:
            return None
        path = self.mask_path(i)
        if not path.is_file():
            raise InputError(f"label map of id '{self.ids[i]}' (split '{self.split}') not found: {path}"
                             f"{found_instead(path)}")
        try:
            mask = read_label_png(path, self.num_classes)
        except NotAClass as exc:
            raise NotAClass(f"label map of id '{self.ids[i]}': {exc}", exc.value) from exc
        except InputError as exc:
            raise InputError(f"label map of id '{self.ids[i]}': {exc}") from exc
        try:
            image_hw = image_size(self.image_path(i))
        except InputError:          # a missing or unreadable image is its own problem (image())
            image_hw = None
        if image_hw is not None and mask.shape != image_hw:
            raise InputError(f"id '{self.ids[i]}': label map {path} is {mask.shape[0]}x{mask.shape[1]} (HxW) "
                             f"but its image is {image_hw[0]}x{image_hw[1]}")
        return mask

    def labels(self, i: int) -> np.ndarray:
        """Image-level labels of item ``i``: ``bool (num_classes,)``, background (0) always True."""
        labels = self._labels(i, None if self.image_labels is not None else self.mask(i))
        if labels is None:
            raise InputError(f"{self.root} has no {self.label_dir} folder, so image-level labels of "
                             f"id '{self.ids[i]}' cannot be derived (nor from ImageLabels/{self.split}.txt, "
                             f"which is not there)")
        return labels

    def _labels(self, i: int, mask: np.ndarray | None) -> np.ndarray | None:
        """Item ``i``'s labels from ``ImageLabels/<split>.txt``, else from its ``mask`` (None without one)."""
        if self.image_labels is not None:
            return self.image_labels[self.ids[i]].copy()
        return None if mask is None else labels_from_mask(mask, self.num_classes)

    def __getitem__(self, i: int) -> dict:
        image, mask = self.image(i), self.mask(i)
        return dict(id=self.ids[i], image=image, mask=mask, labels=self._labels(i, mask))

    def listed_twice(self) -> list[str]:
        """The ids that the split file lists more than once, each once."""
        return [image_id for image_id, n in collections.Counter(self.ids).items() if n > 1]

    def check(self, indices: Sequence[int] | None = None) -> list[str]:
        """Open the listed files (all, or those of ``indices``); return one human-readable line per problem
        (empty list: all good). Ids listed twice are always reported."""
        return [str(problem) for problem in self.problems(indices)]

    def problems(self, indices: Sequence[int] | None = None) -> list[InputError]:
        """:meth:`check`'s problems as errors (:class:`NotAClass` for a label value beyond the classes)."""
        found = [InputError(f"id '{image_id}' is listed twice in split '{self.split}'")
                 for image_id in self.listed_twice()]
        for i in range(len(self.ids)) if indices is None else indices:
            for read in (self.image, self.mask):
                try:
                    read(i)
                except InputError as exc:
                    found.append(exc)
        return found


def labels_from_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """``bool (num_classes,)``: True for each class present in ``mask`` (255 ignored) and for background."""
    values = np.unique(mask)
    labels = np.zeros(num_classes, dtype=bool)
    labels[values[values < num_classes]] = True
    labels[0] = True
    return labels
