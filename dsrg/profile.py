"""Profiles: the typed configuration of a whole pipeline run, loaded from YAML.

A profile is one YAML file in ``dsrg/profiles/`` (:func:`available_profiles`; ``dsrg run --help`` lists
them) or a path to a YAML file of the same shape. Its values are merged over the dataclass defaults below (the
paper's settings, Section 4.1 and the authors' schedule), then ``key=value`` overrides (``seg.theta_fg=0.9``)
from the command line or a papermill parameter. OmegaConf checks every key and type; :func:`validate` checks
every value and names the allowed ones.

Where the paper and the authors' code differ the paper is the default and the code an option:
``seg.lr_step=2000, seg.lr_gamma=0.1`` (paper) vs ``1000, 0.33`` (code). Where the paper's words allow two
readings, the public code's is the default and the other an option (``seeds.fg_rule``).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml
from omegaconf import DictConfig, OmegaConf

from .errors import InputError, expect_choice, not_utf8
from .method import (BACKBONES, BACKGROUND_THRESHOLD, CRF_BACKENDS, CRF_UNARIES, FG_FRACTION, FG_RULES,
                     GROW_METHODS, NORMALIZE, SALIENCY_METHODS, SEED_LOSSES, TEST_CRF_BACKENDS, THETA_BG, THETA_FG,
                     TRAIN_CRF_SCALE)
from .overrides import merge

PROFILE_DIR = Path(__file__).parent / "profiles"

#: The fields that name a file or a folder. A notebook's relative ones are taken from its ``base`` folder
#: (:func:`dsrg.reproduce.experiments.profile`), and a step's folder hashes them as written from there
#: (:func:`dsrg.run.folders.step_config`): ``data/x`` from the project and from ``notebooks/`` is one run.
PATH_KEYS = ("data.root", "cls.backbone_weights", "seg.backbone_weights", "seeds.saliency_dir",
             "seeds.authors_pickle", "seeds.authors_list")


@dataclass
class DataConfig:
    dataset: str = "voc"                  # voc (any VOC-layout root) | synthetic (written if missing) |
    #                                       synthetic_coco (written as COCO, converted to root = <folder>/COCO2014)
    root: str = "data/VOC2012"            # the VOC-layout folder (JPEGImages, ImageSets/Segmentation, labels)
    train_split: str = "train_aug"        # the images every training step and seeds / pseudo-labels read
    val_split: str = "val"                # train-cls's validation (its mAP) only; evaluate scores eval.split
    synth: list[str] = field(default_factory=list)  # with dataset=synthetic*: SynthConfig overrides, e.g. [n_train=16]
    normalize: str = "torchvision"        # torchvision (RGB, ImageNet mean/std) | caffe (BGR minus 104,117,123)
    loader_workers: int = -1              # DataLoader processes; -1: usable cores less one, up to 12


@dataclass
class Schedule:
    """Batches, optimiser and learning-rate policy of a training step (Section 4.1; reference "Schedules")."""

    batch_size: int = 20                  # images per iteration, over all processes
    iterations: int = 8000                # optimiser steps (the paper's 8000 for step 1)
    optimizer: str = "sgd"                # sgd | adam (demo option)
    lr: float = 1e-3                      # base learning rate (last layer x10, biases x2: Caffe's multipliers)
    lr_policy: str = "step"               # step (x lr_gamma every lr_step) | poly ((1 - it / iterations) ** lr_power)
    lr_step: int = 2000                   # step policy: iterations between decays
    lr_gamma: float = 0.1                 # step policy: the decay factor
    lr_power: float = 0.9                 # poly policy: the exponent (DeepLab's 0.9)
    momentum: float = 0.9                 # SGD momentum
    weight_decay: float = 5e-4            # L2 on the weights, none on the biases (Caffe's decay_mult 0)


@dataclass
class ClsConfig(Schedule):
    """The classification network that gives the CAMs (SEC's modified VGG16)."""

    lr: float = 5e-4                      # the paper's, for both networks (Section 4.1)
    width: float = 1.0                    # channels x width (1: the paper's VGG16; the demo's small nets < 1)
    batch_norm: bool = False              # demo option: vgg16_bn trunk (the paper: plain vgg16)
    dropout: float = 0.5                  # drop probability after fc6 and fc7
    backbone_weights: str = ""            # torchvision vgg16 or Caffe VGG16 (DeepLab's init) state dict; "" = random
    fc_init: str = "imagenet"             # imagenet: the file's fc6/fc7, or its classifier decimated (DeepLab) | random
    input_size: int = 321                 # side of the square training crops


@dataclass
class SeedsConfig:
    source: str = "cam"                   # cam | authors (the authors' localization_cues pickle)
    fg_rule: str = "fraction_of_max"      # fraction_of_max (public seed code) | top_fraction (a share of the pixels)
    fg_fraction: float = FG_FRACTION      # foreground seeds: CAM above this fraction of its maximum (Section 3.1: 0.2)
    saliency: str = "rbd"                 # rbd | spectral_residual | fine_grained | folder
    saliency_dir: str = ""                # with saliency=folder: one PNG per image id
    saliency_resize: bool = False         # saliency=folder: a map of another size resized (bilinear), else refused
    bg_threshold: float = BACKGROUND_THRESHOLD  # background seeds: saliency below this (Section 4.1: 0.06)
    workers: int = -1                     # saliency processes (0 or 1: in the step); -1: usable cores less 1, up to 12
    overlap: str = "gpu"                  # dsrg run: saliency begun with train-cls on: gpu | always | never
    authors_pickle: str = ""              # source=authors: the authors' localization_cues pickle
    authors_list: str = ""                # source=authors: their list of image ids, in the pickle's order


@dataclass
class SegConfig(Schedule):
    """DSRG step 1 (Section 3.2): DeepLab-ASPP trained with seeding + boundary losses and growing.

    The paper's lr policy: x0.1 every 2000 iterations; the authors' code: x0.33 every 1000."""

    backbone: str = "vgg16"               # vgg16 | resnet101
    head: str = ""                        # "": the backbone's own (the paper's) | vgg16 | resnet101 (the other's, on this trunk)
    width: float = 1.0                    # channels x width, as cls.width
    batch_norm: bool = False              # demo option (vgg16 only): vgg16_bn trunk
    freeze_bn: bool = True                # resnet101: BatchNorm frozen as DeepLab (false: train it, from random weights)
    dropout: float = 0.5                  # drop probability in each ASPP branch (after fc6 and fc7)
    init: str = "imagenet"                # imagenet (backbone_weights, or random when "") | cls (the CAM net's trunk)
    backbone_weights: str = ""            # torchvision resnet101 state dict, or a vgg16 one as cls.backbone_weights
    fc_init: str = "imagenet"             # vgg16: each ASPP branch's fc6/fc7 as cls.fc_init's | random
    input_size: int = 321                 # side of the square training crops (grid 41 x 41)
    lr: float = 5e-4                      # the paper's (Section 4.1)
    seed_loss: str = "balanced"           # balanced (Eq. 1) | sec (the baseline)
    growing: bool = True                  # region growing (Section 3.3); false: the seeds alone supervise
    theta_fg: float = THETA_FG            # .inf turns foreground growing off
    theta_bg: float = THETA_BG            # .inf turns background growing off
    crf_unary: str = "prob"               # prob (authors' code) | logprob
    crf_scale: float = TRAIN_CRF_SCALE    # the training-time CRF's s on the output grid (authors' code: 12)
    crf_backend: str = "auto"             # pydensecrf | exact | exact_bf16 | lattice | auto (exact on CUDA to 128 x 128)
    grow_method: str = "auto"             # scipy | numba | torch | triton (CUDA) | auto (triton/torch on CUDA, else numba); same result
    boundary_weight: float = 1.0          # weight of the boundary loss in Eq. (2) (the paper: 1)
    boundary_clip: bool = False           # True: clamp Q/P to [0.05, 20] as the authors' code
    record_images: int = 4                # Fig. 1: supervision maps of the first N training images each epoch
    crf_workers: int = -1                 # pydensecrf processes (seg, pseudo, eval); -1: usable cores less 1, up to 12
    cuda_graph: bool = True               # on CUDA: the exact CRF and triton growing replayed as one CUDA graph; same result

    @property
    def head_name(self) -> str:
        """Whose head the network has, by backbone name; ``head``, or the backbone's own where ``head`` is ``""``."""
        return self.head or self.backbone


@dataclass
class PseudoConfig:
    sizes: list[int] = field(default_factory=lambda: [241, 321, 401])   # square input sides, logits summed
    crf: bool = True                      # the test-time dense CRF on the summed scores (false: their argmax)
    crf_scale: float = 1.0                # the test-time CRF's s (pixel distances / s); 1 for VOC-sized images
    crf_backend: str = "auto"             # pydensecrf (CPU processes) | lattice (torch, batched) | auto (lattice on CUDA)
    restrict_to_labels: bool = False      # argmax over the image's labelled classes (authors: all classes)


@dataclass
class RetrainConfig(Schedule):
    enabled: bool = True                  # the +Retrain row: a second network trained on the pseudo labels
    init: str = "seg"                     # seg (the step-1 model, as the authors) | imagenet
    batch_size: int = 10                  # DeepLab's schedule, as the authors' retrain
    iterations: int = 20000
    lr_policy: str = "poly"
    crop_size: int = 321                  # side of the square training crops
    loss_grid: str = "output"             # output: labels subsampled to the logit grid (authors) | input: logits upsampled


@dataclass
class EvalConfig:
    split: str = "val"                    # the split evaluate scores (the mIoU), or predicts for the server
    scales: list[float] = field(default_factory=lambda: [0.75, 1.0, 1.25])   # of the image's size; logits summed
    crf: bool = True                      # the test-time dense CRF, as pseudo.crf
    crf_scale: float = 1.0                # as pseudo.crf_scale
    crf_backend: str = "auto"             # as pseudo.crf_backend
    model: str = "auto"                   # auto (retrain when enabled, else seg) | seg | retrain


@dataclass
class Profile:
    name: str = "custom"                  # the profile's name: runs/<name>, spread/<name>
    out: str = ""                         # run folder; "" = runs/<name>
    base: str = ""                        # the folder relative paths are written from ("" = here; notebooks: "..")
    seed: int = 0                         # every random draw of every step (weights, batches, crops)
    device: str = "auto"                  # auto | cpu | cuda
    amp: bool = True                      # bf16 autocast on GPUs with native bf16 (capability >= 8), else float32
    deterministic: bool = False           # CUDA: deterministic kernels only, so that a run repeats bit for bit (slower)
    ckpt_every: int = 500                 # iterations between checkpoints
    progress: bool = True                 # progress bars
    random_init: bool = False             # let a network start from random weights where no weights file is given
    data: DataConfig = field(default_factory=DataConfig)
    cls: ClsConfig = field(default_factory=ClsConfig)
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name}")


DEVICES = ("auto", "cpu", "cuda")
TRAINED = ("cls", "seg", "retrain")       # the sections of the three training steps

CHOICES: dict[str, tuple] = {
    "device": DEVICES,
    "data.dataset": ("voc", "synthetic", "synthetic_coco"),
    "data.normalize": NORMALIZE,
    **{f"{section}.optimizer": ("sgd", "adam") for section in TRAINED},
    **{f"{section}.lr_policy": ("step", "poly") for section in TRAINED},
    "seeds.source": ("cam", "authors"),
    "seeds.fg_rule": FG_RULES,
    "seeds.saliency": (*SALIENCY_METHODS, "folder"),
    "seeds.overlap": ("gpu", "always", "never"),
    "seg.backbone": BACKBONES,
    "seg.head": ("", *BACKBONES),
    "seg.init": ("imagenet", "cls"),
    "seg.seed_loss": SEED_LOSSES,
    "seg.crf_unary": CRF_UNARIES,
    "seg.crf_backend": CRF_BACKENDS,
    "pseudo.crf_backend": TEST_CRF_BACKENDS, "eval.crf_backend": TEST_CRF_BACKENDS,
    "seg.grow_method": GROW_METHODS,
    "retrain.init": ("seg", "imagenet"),
    "retrain.loss_grid": ("output", "input"),
    **{f"{section}.fc_init": ("imagenet", "random") for section in ("cls", "seg")},
    "eval.model": ("auto", "seg", "retrain"),
}


#: The endings a profile file of one's own has (a YAML file); any other --profile is a bundled profile's name.
PROFILE_SUFFIXES = (".yaml", ".yml")


def is_profile_file(name: str | Path) -> bool:
    """Whether ``name`` is written as a profile file (``.yaml`` / ``.yml``), not a bundled profile's name."""
    return Path(name).suffix in PROFILE_SUFFIXES


def available_profiles() -> list[str]:
    """The names of the bundled profiles (``dsrg/profiles/*.yaml``), sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _profile_path(name: str) -> Path:
    path = PROFILE_DIR / f"{name}.yaml"
    if path.is_file():
        return path
    path = Path(name)
    if is_profile_file(path) and path.is_file():
        return path
    names = available_profiles()                        # for the messages below
    bundled = ", ".join(names)
    if path.exists() and (is_profile_file(path) or "/" in name):      # a path, to something else
        from .files import not_a_file      # (numpy and PIL with it: not for every command's start)

        raise InputError(f"profile {name!r} {not_a_file(path)}: expected the path of a YAML file or a bundled "
                         f"profile ({bundled})")
    if is_profile_file(path):
        where = f" in {Path.cwd()}" if not path.is_absolute() else ""
        raise InputError(f"profile file {name} not found: no such file{where}; expected the path of a YAML profile, "
                         f"or a bundled profile ({bundled})")
    close = difflib.get_close_matches(name, names, 1)
    raise InputError(f"profile {name!r} not found{f' (did you mean {close[0]!r}?)' if close else ''}: expected a "
                     f"bundled profile ({bundled}) or the path of a YAML file")


def _read_yaml(path: Path):
    """The profile file as an OmegaConf mapping; bad YAML or encoding is an InputError naming file, line, column."""
    try:
        layer = OmegaConf.load(path)
    except yaml.MarkedYAMLError as exc:
        def at(mark) -> str:
            return f"line {mark.line + 1}, column {mark.column + 1}"

        mark = exc.problem_mark or exc.context_mark
        where = f", {at(mark)}" if mark is not None else ""
        context = f" ({exc.context} at {at(exc.context_mark)})" if exc.context and exc.context_mark else ""
        raise InputError(f"profile {path}{where}: {exc.problem or exc.context}{context}; expected YAML "
                         f"mappings of section: {{key: value}}, each key once") from None
    except yaml.YAMLError as exc:
        raise InputError(f"profile {path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc, "expected a UTF-8 YAML file", prefix="profile ") from None
    if not isinstance(layer, DictConfig):
        raise InputError(f"profile {path}: expected a YAML mapping of sections (data:, cls:, seg:, ...), "
                         "got a list")
    if not layer:
        raise InputError(f"profile {path} is empty; expected YAML mappings of section: {{key: value}} (a profile "
                         f"that keeps every default of the paper is --profile voc-vgg16)")
    return layer


def load_profile(name: str = "demo", overrides: Sequence[str] = ()) -> Profile:
    """The profile ``name`` (a bundled name or a YAML path) with ``key=value`` overrides applied, validated."""
    if not (PROFILE_DIR / f"{name}.yaml").is_file() and Path(name).is_file() \
            and not is_profile_file(name):
        raise InputError(f"profile file {name}: expected a name ending in .yaml or .yml (a YAML profile)")
    path = _profile_path(name)
    def hint() -> str:                              # asked only on an error: the file is merged again only then
        if overrides and ((PROFILE_DIR / f"{name}.yaml").is_file() or _loads(path)):
            return f"(profile {name!r}; every key and its value before the overrides: dsrg run --profile {name} " \
                   "--dry-run)"
        return (f"(profile {name!r}, which does not load as written; the keys a profile takes, with the demo's "
                "values: dsrg run --profile demo --dry-run)")

    cfg: Profile = merge(Profile, [_read_yaml(path)], overrides, "seg.iterations=100",
                         lambda key, reason: f"{key}: {reason} {hint()}")
    try:
        validate(cfg)
    except InputError as exc:
        raise InputError(f"{exc} {hint()}") from None
    return cfg


def _loads(path: Path) -> bool:
    """Whether the profile file ``path`` loads on its own, without overrides (its dry run can list the keys)."""
    try:
        validate(merge(Profile, [_read_yaml(path)], [], "", lambda key, reason: reason))
        return True
    except InputError:
        return False


def _get(cfg: Profile, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


#: Bounds beyond any run's needs, so that a typing slip is refused, not met by hours of work or memory run out.
MAX_ITERATIONS, MAX_SIDE = 10_000_000, 2048


def validate(cfg: Profile) -> None:
    """Raise InputError naming the first key whose value is not allowed."""
    for key, allowed in CHOICES.items():
        expect_choice(key, _get(cfg, key), allowed)

    def need(key: str, ok: bool, what: str) -> None:
        if not ok:
            got = _get(cfg, key)
            raise InputError(f"{key}: expected {what}, got {str(got).lower() if isinstance(got, bool) else repr(got)}")

    need("base", not cfg.base or Path(cfg.base).is_dir(),
         "the folder that relative paths are written from, e.g. '..' from notebooks/, or '' for here (a profile "
         "does not inherit another: copy its file, or give overrides)")
    need("name", cfg.name not in ("", ".", "..") and "/" not in cfg.name and "\\" not in cfg.name,
         "a name for runs/<name> (not a path; out=... puts a run in any folder)")
    for sec in TRAINED:
        need(f"{sec}.batch_size", _get(cfg, f"{sec}.batch_size") >= 1, "an integer >= 1")
        need(f"{sec}.iterations", 0 <= _get(cfg, f"{sec}.iterations") <= MAX_ITERATIONS,
             f"an integer from 0 to {MAX_ITERATIONS:,} (voc-vgg16: at most 20,000)")
        need(f"{sec}.lr", 0 < _get(cfg, f"{sec}.lr") < math.inf, "a finite learning rate > 0")
        need(f"{sec}.lr_step", _get(cfg, f"{sec}.lr_step") >= 1, "an integer >= 1")
        need(f"{sec}.lr_gamma", 0 < _get(cfg, f"{sec}.lr_gamma") < math.inf, "a finite factor > 0")
        need(f"{sec}.lr_power", 0 < _get(cfg, f"{sec}.lr_power") < math.inf, "a finite power > 0")
        need(f"{sec}.momentum", 0 <= _get(cfg, f"{sec}.momentum") < 1, "a value in [0, 1)")
        need(f"{sec}.weight_decay", _get(cfg, f"{sec}.weight_decay") >= 0, "a value >= 0")
    for sec in ("cls", "seg"):
        need(f"{sec}.width", _get(cfg, f"{sec}.width") > 0, "a channel scale > 0")
        need(f"{sec}.input_size", 16 <= _get(cfg, f"{sec}.input_size") <= MAX_SIDE,
             f"an input side from 16 to {MAX_SIDE} px (the paper's 321)")
        need(f"{sec}.dropout", 0 <= _get(cfg, f"{sec}.dropout") < 1, "a value in [0, 1)")
    need("retrain.crop_size", 16 <= cfg.retrain.crop_size <= MAX_SIDE, f"a crop side from 16 to {MAX_SIDE} px "
                                                                        f"(the paper's 321)")
    need("seeds.fg_fraction", 0 < cfg.seeds.fg_fraction <= 1, "a value in (0, 1]")
    need("seeds.bg_threshold", 0 <= cfg.seeds.bg_threshold <= 1, "a value in [0, 1]")
    for key in ("seg.theta_fg", "seg.theta_bg"):
        v = _get(cfg, key)
        need(key, (0 <= v <= 1) or v == math.inf, "a probability in [0, 1], or .inf to turn that side off")
    need("seg.record_images", cfg.seg.record_images >= 0, "an integer >= 0")
    need("seg.boundary_weight", 0 <= cfg.seg.boundary_weight < math.inf, "a finite weight >= 0")
    auto = "-1 (one per usable core less one, up to 12)"                  # dsrg.run.workers.auto_workers
    need("seg.crf_workers", cfg.seg.crf_workers >= -1, f"a number of processes >= 0, or {auto}")
    need("seeds.workers", cfg.seeds.workers >= -1, f"a number of processes >= 0, or {auto}")
    need("data.loader_workers", cfg.data.loader_workers >= -1,
         f"a number of DataLoader processes >= 0, or {auto}")
    need("ckpt_every", cfg.ckpt_every >= 1, "an integer >= 1")
    need("seed", 0 <= cfg.seed < 2 ** 31, "an integer in [0, 2^31)")
    need("pseudo.sizes", len(cfg.pseudo.sizes) > 0 and all(16 <= s <= MAX_SIDE for s in cfg.pseudo.sizes),
         f"a non-empty list of input sides from 16 to {MAX_SIDE} px (the paper's [241, 321, 401])")
    for key in ("seg.crf_scale", "pseudo.crf_scale", "eval.crf_scale"):
        need(key, _get(cfg, key) > 0, "a scale > 0")
    need("eval.model", not (cfg.eval.model == "retrain" and not cfg.retrain.enabled),
         "seg or auto where retrain.enabled=false (no retrained model to evaluate)")
    need("eval.scales", len(cfg.eval.scales) > 0 and all(0 < s <= 8 for s in cfg.eval.scales),
         "a non-empty list of scales of the image size in (0, 8]")
    if cfg.seeds.saliency == "folder" and cfg.seeds.source == "cam":
        need("seeds.saliency_dir", bool(cfg.seeds.saliency_dir), "a folder of saliency PNGs with seeds.saliency=folder")
    need("seeds.saliency_dir", cfg.seeds.saliency == "folder" or not cfg.seeds.saliency_dir,
         f"no value with seeds.saliency={cfg.seeds.saliency} (it would be ignored); add seeds.saliency=folder "
         f"to read the maps from it")
    need("seeds.saliency_resize", cfg.seeds.saliency == "folder" or not cfg.seeds.saliency_resize,
         f"false with seeds.saliency={cfg.seeds.saliency} (only maps read from a folder are resized)")
    if cfg.seeds.source == "authors":
        need("seeds.authors_pickle", bool(cfg.seeds.authors_pickle), "the path of localization_cues*.pickle")
        need("seeds.authors_list", bool(cfg.seeds.authors_list), "the path of the image list (id key per line)")
    for key in ("seeds.authors_pickle", "seeds.authors_list"):
        need(key, cfg.seeds.source == "authors" or not _get(cfg, key),
             f"no value with seeds.source={cfg.seeds.source} (it would be ignored); add seeds.source=authors "
             f"to train on the authors' cues")
    if cfg.seg.init == "cls":
        need("seg.backbone", cfg.seg.backbone == "vgg16", "vgg16 with seg.init=cls (the CAM net is a VGG16)")
        need("seg.width", cfg.seg.width == cfg.cls.width, f"cls.width ({cfg.cls.width}) with seg.init=cls")
        need("seg.batch_norm", cfg.seg.batch_norm == cfg.cls.batch_norm,
             f"{str(cfg.cls.batch_norm).lower()} (as cls.batch_norm) with seg.init=cls")
    need("seg.backbone_weights", cfg.seg.init == "imagenet" or cfg.retrain.init == "imagenet"
         or not cfg.seg.backbone_weights,
         "no value with seg.init=cls and retrain.init=seg (it would be ignored: train-seg starts from the CAM net's "
         "trunk, retrain from train-seg's model); add seg.init=imagenet to start train-seg from it")
    if cfg.seg.batch_norm:
        need("seg.backbone", cfg.seg.backbone == "vgg16", "vgg16 with seg.batch_norm=true")


def section_dict(cfg: Profile, *names: str) -> dict:
    """The named sections (or top-level fields) as plain data, for hashing and records."""
    out = {}
    for name in names:
        value = _get(cfg, name)
        out[name] = OmegaConf.to_container(OmegaConf.structured(value)) if hasattr(value, "__dataclass_fields__") \
            else value
    return out
