"""The embedded default dataset: synthetic scenes written in the PASCAL VOC layout, with no download
(:func:`dsrg.data.synthetic.write_dataset`).

Every object has a body drawn from one distribution for all classes and a small striped head (``part_min`` to
``part_max`` of the body's area) whose colour and stripe direction tell the class; some classes come in pairs
(``PARTNERS``); the background is cluttered and desaturated. Why (a classifier that finds the heads, a body to
grow into) is told in the embedded dataset's chapter. Classes come in tiers of 7 (``CLASS_TIERS``), up to
``MAX_CLASSES``, named one animal per letter (``class_names(n)``). Label maps follow VOC: 255 on a band of
``border`` px along every object boundary. Image ``i`` of a split is drawn from
``np.random.default_rng([seed, split_code, i])``: the same config gives byte-identical files.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import InputError
from ..files import atomic_dir, locked, save_image, write_json, write_text
from ..overrides import apply_overrides
from .voc import IGNORE, write_label_png

GENERATOR = "dsrg.data.synthetic"
VERSION = 2  # 2: larger objects (object_min/max 0.20/0.38), heads 20-30% of the body, body_hint
# (``classes`` came later without a new version: its default, 7, draws exactly what version 2 drew.)
DEFAULT_CLASSES = 7  # foreground classes of the VOC-layout embedded dataset (SynthConfig.classes)
MAX_CLASSES = 26     # one animal name per letter
# Background + one name per foreground class, index 0..MAX_CLASSES; a dataset of n classes uses the first n.
CLASS_NAMES: list[str] = ["background", "ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay",
                          "koi", "lynx", "mole", "newt", "owl", "pig", "quail", "rat", "seal", "toad", "unau",
                          "vole", "wasp", "xerus", "yak", "zebu"]
SYNTH_CLASSES: list[str] = CLASS_NAMES[:DEFAULT_CLASSES + 1]  # the default dataset's class names
# Classes that often appear together (like person + horse in VOC): a second object is the first's partner
# with probability ``pair_prob`` (a pair counts only when the dataset has both classes).
PARTNERS: dict[str, str] = {"cat": "dog", "dog": "cat", "fox": "gnu", "gnu": "fox",
                            "jay": "owl", "owl": "jay", "koi": "seal", "seal": "koi"}
# Per tier of 7 classes (1..7, 8..14, ...): the head's hue offset from classes 1..7 (degrees, 20: halfway between
# two of their hues), its stripes' turn (degrees), crossed stripes (a check), and the head's HSV value range.
CLASS_TIERS: list[tuple[float, float, bool, tuple[float, float]]] = [
    (0.0, 0.0, False, (0.8, 0.95)),
    (20.0, 90.0, False, (0.8, 0.95)),
    (0.0, 45.0, True, (0.5, 0.65)),
    (20.0, 135.0, True, (0.5, 0.65)),
]
_BASE_HUES = [80.0, 120.0, 165.0, 205.0, 245.0, 285.0, 325.0]
_BASE_ANGLES = [0.0, 26.0, 51.0, 77.0, 103.0, 129.0, 154.0]
# Head colour (hue in degrees), stripe direction (degrees, in [0, 180)), crossed stripes and HSV value range of
# each foreground class, index 1..MAX_CLASSES (index 0, background, is None). Classes 1..7 keep the values of
# version 2 exactly. Body hues (15..45 degrees, brownish) are kept apart from every head hue (the closest,
# class 14's 345 +- 6 degrees, stays 24 degrees away).
PART_HUES: list[float | None] = [None] + [
    _BASE_HUES[(c - 1) % 7] + CLASS_TIERS[(c - 1) // 7][0] for c in range(1, MAX_CLASSES + 1)]
PART_STRIPE_ANGLES: list[float | None] = [None] + [
    (_BASE_ANGLES[(c - 1) % 7] + CLASS_TIERS[(c - 1) // 7][1]) % 180 for c in range(1, MAX_CLASSES + 1)]
PART_CROSSED: list[bool | None] = [None] + [CLASS_TIERS[(c - 1) // 7][2] for c in range(1, MAX_CLASSES + 1)]
PART_VALUES: list[tuple[float, float] | None] = [None] + [
    CLASS_TIERS[(c - 1) // 7][3] for c in range(1, MAX_CLASSES + 1)]
SPLIT_CODES = {"train": 0, "val": 1}


def class_names(classes: int = DEFAULT_CLASSES) -> list[str]:
    """Background + the names of foreground classes 1..``classes``."""
    if not (isinstance(classes, (int, np.integer)) and not isinstance(classes, bool) and 1 <= classes <= MAX_CLASSES):
        raise InputError(f"synthetic dataset: classes={classes!r} is not allowed; expected an integer in "
                         f"1..{MAX_CLASSES}")
    return CLASS_NAMES[:int(classes) + 1]


@dataclass(frozen=True)
class SynthConfig:
    """What ``write_dataset`` draws. Images are ``size x size``; sizes in px scale with ``size``."""

    n_train: int = 1000
    n_val: int = 200
    size: int = 128            # images are size x size
    seed: int = 0
    border: int = 2            # width in px of the 255 band on object borders (0: none)
    jpeg_quality: int = 90
    min_objects: int = 1
    max_objects: int = 3
    pair_prob: float = 0.7     # chance that the second object is the first one's partner class
    part_min: float = 0.20     # head area / body area is drawn uniformly in [part_min, part_max]
    part_max: float = 0.30
    object_min: float = 0.20   # an object's half-length is drawn in [object_min, object_max] x size
    object_max: float = 0.38
    body_hint: float = 0.25    # share of the class's head colour mixed into its body colour (0: bodies alike)
    clutter: float = 1.0       # amount of background clutter (0: gradient only)
    noise: float = 3.0         # std of the per-pixel Gaussian noise, in grey levels
    classes: int = DEFAULT_CLASSES  # foreground classes drawn, 1..MAX_CLASSES (COCO form: 15, see dsrg.data.coco)


def synth_config(synth: object = None) -> SynthConfig:
    """``synth`` as a SynthConfig: one, a list of its ``key=value`` overrides (``data.synth``), or None (the
    defaults)."""
    if synth is None:
        return SynthConfig()
    if isinstance(synth, SynthConfig):
        return synth
    return apply_overrides(SynthConfig(), [str(s) for s in synth], "data.synth")


def validate_config(cfg: SynthConfig) -> None:
    """Raise InputError naming the first field of ``cfg`` outside its allowed values."""
    def check(name: str, ok: bool, allowed: str) -> None:
        if not ok:
            raise InputError(f"synthetic dataset config: {name}={getattr(cfg, name)!r} is not allowed; "
                             f"expected {allowed}")

    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def is_num(v: object) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)

    check("n_train", is_int(cfg.n_train) and cfg.n_train >= 1, "an integer >= 1")
    check("n_val", is_int(cfg.n_val) and cfg.n_val >= 1, "an integer >= 1")
    check("size", is_int(cfg.size) and 32 <= cfg.size <= 1024, "an integer in 32..1024")
    check("seed", is_int(cfg.seed) and cfg.seed >= 0, "an integer >= 0")
    check("border", is_int(cfg.border) and 0 <= cfg.border <= 8, "an integer in 0..8")
    check("jpeg_quality", is_int(cfg.jpeg_quality) and 1 <= cfg.jpeg_quality <= 100, "an integer in 1..100")
    check("min_objects", is_int(cfg.min_objects) and 1 <= cfg.min_objects <= 3, "an integer in 1..3")
    check("max_objects", is_int(cfg.max_objects) and cfg.min_objects <= cfg.max_objects <= 3,
          "an integer in min_objects..3")
    check("pair_prob", is_num(cfg.pair_prob) and 0 <= cfg.pair_prob <= 1, "a number in [0, 1]")
    check("part_min", is_num(cfg.part_min) and 0.02 <= cfg.part_min <= 0.5, "a number in [0.02, 0.5]")
    check("part_max", is_num(cfg.part_max) and cfg.part_min <= cfg.part_max <= 0.5, "a number in [part_min, 0.5]")
    check("object_min", is_num(cfg.object_min) and 0.05 <= cfg.object_min <= 0.45, "a number in [0.05, 0.45]")
    check("object_max", is_num(cfg.object_max) and cfg.object_min <= cfg.object_max <= 0.45,
          "a number in [object_min, 0.45]")
    check("body_hint", is_num(cfg.body_hint) and 0 <= cfg.body_hint <= 1, "a number in [0, 1]")
    check("clutter", is_num(cfg.clutter) and 0 <= cfg.clutter <= 3, "a number in [0, 3]")
    check("noise", is_num(cfg.noise) and 0 <= cfg.noise <= 30, "a number in [0, 30]")
    check("classes", is_int(cfg.classes) and 1 <= cfg.classes <= MAX_CLASSES,
          f"an integer in 1..{MAX_CLASSES} (the number of foreground classes)")


# ----------------------------------------------------------------------------- colours and fields

def hsv(hue_deg: float, sat: float, val: float) -> np.ndarray:
    """RGB ``float32 (3,)`` in 0..255 of an HSV colour (hue in degrees)."""
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360) / 360, sat, val), dtype=np.float32) * 255


def dull_colour(rng: np.random.Generator) -> np.ndarray:
    """A desaturated colour of any hue (background material)."""
    return hsv(rng.uniform(0, 360), rng.uniform(0.02, 0.25), rng.uniform(0.3, 0.75))


def smooth_field(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field ``float32 (size, size)`` in about [-1, 1], with ``cells`` blobs per side."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), -1, 1)


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(yy, xx)``, each ``float32 (size, size)``."""
    axis = np.arange(size, dtype=np.float32)
    return np.meshgrid(axis, axis, indexing="ij")


# ----------------------------------------------------------------------------- background

def background(size: int, clutter: float, rng: np.random.Generator) -> np.ndarray:
    """Cluttered, desaturated background ``float32 (size, size, 3)`` in about 0..255.

    A gradient between two dull colours, low-frequency mottling, a faint grating, and
    low-contrast blobs and lines.
    """
    yy, xx = grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(angle) + yy * np.sin(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    image = dull_colour(rng) * (1 - ramp[..., None]) + dull_colour(rng) * ramp[..., None]
    image += 16 * clutter * smooth_field(size, rng.integers(3, 7), rng)[..., None]
    beta, period = rng.uniform(0, np.pi), rng.uniform(5, 16) * size / 128
    grating = np.sin(2 * np.pi * (xx * np.cos(beta) + yy * np.sin(beta)) / period + rng.uniform(0, 2 * np.pi))
    image += rng.uniform(2, 7) * clutter * grating[..., None]
    for _ in range(rng.poisson(10 * clutter)):
        image = blend(image, clutter_shape(size, rng), dull_colour(rng), rng.uniform(0.25, 0.5))
    return image


def clutter_shape(size: int, rng: np.random.Generator) -> np.ndarray:
    """``bool (size, size)``: one random filled ellipse, ellipse outline or line."""
    canvas = np.zeros((size, size), np.uint8)
    centre = tuple(int(v) for v in rng.integers(0, size, 2))
    kind = rng.integers(3)
    if kind == 2:
        end = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(canvas, centre, end, 1, int(rng.integers(1, 4)))
    else:
        axes = tuple(int(v) for v in rng.integers(3, max(4, size // 6), 2))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1,
                    -1 if kind == 0 else int(rng.integers(1, 3)))
    return canvas.astype(bool)


def blend(image: np.ndarray, where: np.ndarray, colour: np.ndarray, alpha: float) -> np.ndarray:
    """``image`` with ``colour`` mixed in at ``alpha`` on the pixels ``where`` is True."""
    image[where] = (1 - alpha) * image[where] + alpha * colour
    return image


# ----------------------------------------------------------------------------- object geometry

@dataclass
class Blob:
    """One object's geometry on the image grid, all ``(size, size)``.

    ``body`` (bool) is the whole object, ``u`` the coordinate along its long axis, ``rho`` the
    normalised radius (0 at the centre, 1 on the outline).
    """

    body: np.ndarray
    u: np.ndarray
    rho: np.ndarray


def blob(size: int, rng: np.random.Generator, extent: tuple[float, float] = (0.12, 0.28)) -> Blob:
    """A random rounded blob: a rotated ellipse whose outline wobbles with 2nd and 3rd harmonics;
    its half-length is drawn in ``extent`` (fractions of ``size``)."""
    yy, xx = grid(size)
    a = rng.uniform(*extent) * size
    b = a * rng.uniform(0.45, 0.85)
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    theta = rng.uniform(0, 2 * np.pi)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    phi = np.arctan2(v / b, u / a)
    wobble = 1 + sum(rng.uniform(0, 0.1) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3))
    rho = np.hypot(u / a, v / b) / wobble
    return Blob(body=rho <= 1, u=u, rho=rho)


def part_mask(shape: Blob, fraction: float) -> np.ndarray:
    """``bool (size, size)``: the "head", the end of the body along its long axis holding ``fraction`` of it."""
    threshold = np.quantile(shape.u[shape.body], 1 - fraction)
    return shape.body & (shape.u >= threshold)


# ----------------------------------------------------------------------------- object appearance

def body_texture(shape: Blob, rng: np.random.Generator, cls: int = 0, hint: float = 0.0) -> np.ndarray:
    """Body paint ``float32 (size, size, 3)``.

    Brownish base colour, mottled, with darker spots, shaded darker towards the outline. ``hint`` turns
    the base hue that share of the way towards class ``cls``'s head hue (the short way round): a weak cue
    that the body belongs to the class (as a cat's fur does), far weaker than the head's colour and stripes.
    """
    size = shape.body.shape[0]
    hue = rng.uniform(15, 45)
    if hint > 0:
        hue += hint * ((PART_HUES[cls] - hue + 180) % 360 - 180)
    colour = hsv(hue, rng.uniform(0.4, 0.7), rng.uniform(0.5, 0.85))
    tone = 1 + 0.15 * smooth_field(size, 10, rng)
    tone = np.where(smooth_field(size, 14, rng) > 0.5, 0.72 * tone, tone)
    return colour * (tone * shading(shape))[..., None]


def part_texture(cls: int, shape: Blob, rng: np.random.Generator) -> np.ndarray:
    """Head paint ``float32 (size, size, 3)`` of class ``cls``: its own hue, brightness and stripe pattern
    (stripes in its direction, or crossed stripes: a check)."""
    size = shape.body.shape[0]
    yy, xx = grid(size)
    colour = hsv(PART_HUES[cls] + rng.uniform(-6, 6), rng.uniform(0.75, 0.95), rng.uniform(*PART_VALUES[cls]))
    angle = np.deg2rad(PART_STRIPE_ANGLES[cls])
    period = 6.0 * size / 128
    stripes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period) > 0
    if PART_CROSSED[cls]:
        stripes ^= np.sin(2 * np.pi * (yy * np.cos(angle) - xx * np.sin(angle)) / period) > 0
    return colour * ((1 - 0.35 * stripes) * shading(shape))[..., None]


def shading(shape: Blob) -> np.ndarray:
    """``float32 (size, size)`` brightness factor: 1 at the centre, 0.7 on the outline."""
    return 1 - 0.3 * np.clip(shape.rho, 0, 1) ** 2


# ----------------------------------------------------------------------------- scene

@dataclass
class SceneObject:
    """One drawn object: its class index (1..classes), its geometry and its head mask ``bool (size, size)``."""

    cls: int
    shape: Blob
    part: np.ndarray

    @property
    def body(self) -> np.ndarray:
        """``bool (size, size)``: the whole object before occlusion by later objects."""
        return self.shape.body


def pick_classes(n: int, pair_prob: float, rng: np.random.Generator, num_classes: int = DEFAULT_CLASSES) -> list[int]:
    """``n`` class indices (1..``num_classes``, repeats allowed); the second is the first's partner
    (``PARTNERS``, when that class is among the ``num_classes``) with probability ``pair_prob``."""
    names = class_names(num_classes)
    classes = [int(rng.integers(1, len(names)))]
    while len(classes) < n:
        partner = PARTNERS.get(names[classes[0]])
        if len(classes) == 1 and partner in names and rng.random() < pair_prob:
            classes.append(names.index(partner))
        else:
            classes.append(int(rng.integers(1, len(names))))
    return [classes[i] for i in rng.permutation(n)]


def fits(body: np.ndarray, instances: np.ndarray, earlier: list[SceneObject], keep_out: list[np.ndarray]) -> bool:
    """Whether a new ``body`` drawn on top keeps clear of every earlier head (``keep_out`` zones) and
    leaves >= 60% of each earlier object's body visible."""
    for k, (obj, zone) in enumerate(zip(earlier, keep_out), start=1):
        still_visible = (instances == k) & ~body
        if (body & zone).any() or still_visible.sum() < 0.6 * obj.body.sum():
            return False
    return True


def place_objects(cfg: SynthConfig, rng: np.random.Generator) -> tuple[list[SceneObject], np.ndarray]:
    """Draw the objects of one scene, back to front; returns them and the instance map ``uint8 (H, W)``.

    An object that cannot be placed in 20 tries without hiding an earlier head (or most of an
    earlier object) is left out, so a scene has between 1 and ``max_objects`` objects.
    """
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    instances = np.zeros((cfg.size, cfg.size), np.uint8)
    objects: list[SceneObject] = []
    keep_out: list[np.ndarray] = []
    kernel = np.ones((2 * cfg.border + 3,) * 2, np.uint8)
    for cls in pick_classes(n, cfg.pair_prob, rng, cfg.classes):
        for _ in range(20):
            shape = blob(cfg.size, rng, (cfg.object_min, cfg.object_max))
            if fits(shape.body, instances, objects, keep_out):
                break
        else:
            continue
        part = part_mask(shape, rng.uniform(cfg.part_min, cfg.part_max))
        objects.append(SceneObject(cls, shape, part))
        keep_out.append(cv2.dilate(part.astype(np.uint8), kernel).astype(bool))
        instances[shape.body] = len(objects)
    return objects, instances


def border_band(instances: np.ndarray, width: int) -> np.ndarray:
    """``bool (H, W)``: pixels within a band ``width`` px wide along each boundary between instances.

    The band straddles the boundary (about width/2 px on each side); the image edge is no boundary.
    """
    if width == 0:
        return np.zeros(instances.shape, bool)
    kernel = np.ones((width + 1, width + 1), np.uint8)
    return cv2.dilate(instances, kernel) != cv2.erode(instances, kernel)


@dataclass
class Scene:
    """Everything drawn for one image: ``image uint8 (H, W, 3)``, ``mask uint8 (H, W)`` (VOC style),
    ``instances uint8 (H, W)`` (0 background, k = k-th object drawn) and the objects."""

    image: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    objects: list[SceneObject]


def render_scene(cfg: SynthConfig, split: str, index: int) -> Scene:
    """Draw image ``index`` of ``split`` ("train" or "val"); it depends only on (seed, split, index)."""
    if split not in SPLIT_CODES:
        raise InputError(f"split {split!r} is not one of {sorted(SPLIT_CODES)}")
    rng = np.random.default_rng([cfg.seed, SPLIT_CODES[split], index])
    image = background(cfg.size, cfg.clutter, rng)
    objects, instances = place_objects(cfg, rng)
    classes = np.zeros_like(instances)
    for k, obj in enumerate(objects, start=1):
        visible = instances == k
        paint = np.where(obj.part[..., None], part_texture(obj.cls, obj.shape, rng),
                         body_texture(obj.shape, rng, obj.cls, cfg.body_hint))
        image[visible] = paint[visible]
        classes[visible] = obj.cls
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    image = image + rng.normal(0, cfg.noise, image.shape).astype(np.float32)
    mask = np.where(border_band(instances, cfg.border), IGNORE, classes).astype(np.uint8)
    return Scene(np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, instances, objects)


def render_image(cfg: SynthConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``uint8 (H, W, 3)`` and mask ``uint8 (H, W)`` (255 on object borders) of one scene."""
    scene = render_scene(cfg, split, index)
    return scene.image, scene.mask


# ----------------------------------------------------------------------------- writing

def image_id(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def config_dict(cfg: SynthConfig) -> dict:
    """The config as stored in ``dataset.json`` (JSON types)."""
    return json.loads(json.dumps(asdict(cfg), default=lambda v: v.item()))  # numpy scalars -> Python


# Fields added to SynthConfig after datasets were written without them, with the value those datasets had.
LATER_FIELDS = {"classes": DEFAULT_CLASSES}


def stored_config(config: object) -> object:
    """A config read from a ``dataset.json``, with the fields it predates (``LATER_FIELDS``) at the values it was
    written with; anything but a dict is returned as is."""
    if not isinstance(config, dict):
        return config
    return {**LATER_FIELDS, **config}


def _check_existing(out: Path, cfg: SynthConfig) -> bool:
    """True if ``out`` already holds this exact dataset; InputError if it holds anything else."""
    meta_path = out / "dataset.json"
    if not meta_path.is_file():
        if (out / "JPEGImages").is_dir() or (out / "SegmentationClass").is_dir():
            raise InputError(f"{out} holds a dataset in the VOC layout, not the embedded one (no dataset.json), and "
                             f"the embedded dataset is not written over it: choose another folder for it; to read "
                             f"that dataset, a profile made for real data (voc-vgg16, voc-resnet101) or "
                             f"data.dataset=voc")
        raise InputError(f"{out} exists but is not a synthetic dataset (no dataset.json); "
                         "delete it or choose another folder")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {meta_path}: {exc}; delete {out} or choose another folder") from exc
    wanted = config_dict(cfg)
    stored = stored_config(meta.get("config"))
    if meta.get("generator") == GENERATOR and meta.get("version") == VERSION and stored == wanted:
        return True
    stored = stored if isinstance(stored, dict) else {}
    diff = [f"{k}: {stored.get(k)!r} there, {v!r} asked" for k, v in wanted.items() if stored.get(k) != v]
    if meta.get("version") != VERSION:
        diff.insert(0, f"version: {meta.get('version')!r} there, {VERSION} asked")
    raise InputError(f"{out} holds a synthetic dataset with another config ({'; '.join(diff)}); "
                     "delete it or choose another folder")


def require_written_as(out: str | os.PathLike, cfg: SynthConfig) -> None:
    """InputError if ``out`` exists and holds anything but the dataset of ``cfg`` (what :func:`write_dataset`
    would refuse); nothing is written."""
    validate_config(cfg)
    if Path(out).exists():
        _check_existing(Path(out), SynthConfig(**config_dict(cfg)))


def write_dataset(out: str | os.PathLike, cfg: SynthConfig = SynthConfig(), progress: bool = True) -> Path:
    """Write the synthetic dataset in the VOC layout into ``out`` and return ``out``.

    Writes ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png``,
    ``ImageSets/Segmentation/{train,val}.txt``, ``class_names.txt`` and ``dataset.json``
    (generator, version, config, counts). Everything goes to a temporary folder beside ``out``
    that is renamed into place at the end. If ``out`` already holds the same config, nothing is
    written; if it holds anything else, InputError.
    """
    validate_config(cfg)
    cfg = SynthConfig(**config_dict(cfg))  # plain Python numbers, exactly as stored in dataset.json
    out = Path(out)
    with locked(out.parent / f".{out.name}.lock"):  # a second writer waits, then finds it written
        if out.exists() and _check_existing(out, cfg):
            return out
        return _write(out, cfg, progress)


def _write(out: Path, cfg: SynthConfig, progress: bool) -> Path:
    names = class_names(cfg.classes)
    jobs = [(split, i) for split, n in (("train", cfg.n_train), ("val", cfg.n_val)) for i in range(n)]
    per_class = {split: [0] * len(names) for split in SPLIT_CODES}
    with atomic_dir(out) as tmp:
        (tmp / "JPEGImages").mkdir()
        (tmp / "SegmentationClass").mkdir()
        (tmp / "ImageSets" / "Segmentation").mkdir(parents=True)
        for split, i in tqdm(jobs, desc=f"writing {out.name}", unit="img", disable=not progress):
            image, mask = render_image(cfg, split, i)
            save_image(tmp / "JPEGImages" / f"{image_id(split, i)}.jpg", Image.fromarray(image),
                       quality=cfg.jpeg_quality)
            write_label_png(tmp / "SegmentationClass" / f"{image_id(split, i)}.png", mask)
            for c in np.unique(mask):
                if 0 < c < len(names):
                    per_class[split][c] += 1
        for split, n in (("train", cfg.n_train), ("val", cfg.n_val)):
            write_text(tmp / "ImageSets" / "Segmentation" / f"{split}.txt",
                       "".join(f"{image_id(split, i)}\n" for i in range(n)))
        write_text(tmp / "class_names.txt", "".join(f"{name}\n" for name in names))
        write_json(tmp / "dataset.json", {
            "generator": GENERATOR,
            "version": VERSION,
            "config": config_dict(cfg),
            "counts": {"train": cfg.n_train, "val": cfg.n_val},
            "class_names": names,
            "images_per_class": {split: dict(zip(names[1:], counts[1:])) for split, counts in per_class.items()},
        })
    return out
