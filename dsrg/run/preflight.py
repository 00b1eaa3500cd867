"""Pre-flight: before a step starts, every input it will read is checked.

A typo'd split name or a missing weights file would otherwise surface only when the step that reads it
runs, hours into a paper-scale run. :func:`check_inputs` checks, for the steps about to run (complete
ones are skipped): that every network starts from a weights file unless ``random_init=true``; the data
root and each split they read (``data.train_split``, ``data.val_split``, ``eval.split``); the batch sizes
against the training split and the number of torchrun processes; the files and folders named by
``cls.backbone_weights``, ``seg.backbone_weights``, ``seeds.saliency_dir``, ``seeds.authors_pickle`` and
``seeds.authors_list``; that a weights file reads as a state dict; that every training image (and
validation image, for the classifier) has its label map; that a saliency folder holds a map of its
image's size for every training image; and that the authors' cue pickle reads, on the segmentation
network's output grid, with cues for every training image. With an embedded dataset
(``data.dataset=synthetic`` or ``synthetic_coco``) a missing root is written by the first step, so only its
split names are checked, and an existing one must hold the dataset of ``data.synth``. The run folder
(``out``) must be a folder that can be created and written. Every process of a torchrun launch runs the same
check.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from operator import attrgetter
from pathlib import Path
from typing import Sequence

from ..data.check import VOC2012_COUNTS, file_problems, unlabelled_indices, voc_images
from ..data.cues import read_authors_cues
from ..data.dataset import EMBEDDED, embedded_root_problem, embedded_written
from ..data.saliency import SaliencyFolder
from ..data.synthetic import SPLIT_CODES, require_written_as, synth_config
from ..data.synthetic_coco import SYNTH_SPLITS, require_coco_written_as
from ..data.voc import VOCSegmentation, found_instead, image_labels_path, image_size
from ..errors import InputError, name_some, plural
from ..files import as_given, made_folders, not_a_file, not_a_folder, write_text
from ..models.cam import CAMNet
from ..models.deeplab import output_size
from ..profile import Profile
from . import folders, split_lists
from .dist import resolve_device
from .networks import how_read, read_weights, require_resnet_weights, weights_misfit
from .train import iterations_per_epoch, require_shared


def step_inputs(cfg: Profile, step: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The split keys and the ``(path key, "file" | "folder")`` inputs that ``step`` reads."""
    splits = split_lists.keys(step)
    paths = []
    if step == "cls" and cfg.cls.backbone_weights:
        paths.append(("cls.backbone_weights", "file"))
    if ((step == "seg" and cfg.seg.init == "imagenet") or (step == "retrain" and cfg.retrain.init == "imagenet")) \
            and cfg.seg.backbone_weights:
        paths.append(("seg.backbone_weights", "file"))
    if step == "seeds" and cfg.seeds.source == "cam" and cfg.seeds.saliency == "folder":
        paths.append(("seeds.saliency_dir", "folder"))
    if step == "seeds" and cfg.seeds.source == "authors":
        paths += [("seeds.authors_pickle", "file"), ("seeds.authors_list", "file")]
    return splits, paths


def random_starts(cfg: Profile, steps: Sequence[str]) -> list[str]:
    """The weights keys of ``steps`` that are empty where the paper starts from ImageNet weights, so that
    the step's network would start from random weights."""
    keys = []
    if "cls" in steps and not cfg.cls.backbone_weights:
        keys.append("cls.backbone_weights")
    if ((("seg" in steps and cfg.seg.init == "imagenet") or ("retrain" in steps and cfg.retrain.init == "imagenet"))
            and not cfg.seg.backbone_weights):
        keys.append("seg.backbone_weights")
    return keys


class _Problems(list):
    """The problems found so far: each is a line of the one InputError that :func:`_raise` makes of them."""

    def collect(self, check, *args) -> None:
        """Run ``check(*args)``; its InputError joins the problems."""
        try:
            check(*args)
        except InputError as exc:
            self.append(str(exc))


def check_inputs(cfg: Profile, steps: Sequence[str], remember: bool = True, resume: bool = False,
                 read: list[str] | None = None) -> None:
    """Raise one InputError listing every problem with the inputs of ``steps`` (each names its key and path).

    The files of a split are checked once: a clean check is remembered in ``<run>/.checked/`` under a
    fingerprint of the split's files (names, sizes, times), unless ``remember`` is False (``--dry-run``).
    ``read``, where given, is appended how each weights file that fits is read (:func:`~dsrg.run.networks.how_read`)."""
    split_lists.refuse_changed(cfg, steps, resume)
    steps = [s for s in steps if not folders.is_done(folders.step_dir(cfg, s))]
    if not steps:
        return
    problems = _Problems()
    trained = [f"{step}.batch_size" for step in steps if folders.STEPS[step].trains]
    _check_settings(cfg, steps, trained, problems)
    split_keys = _check_paths(cfg, steps, problems, read)
    if cfg.data.dataset in EMBEDDED and not _check_embedded(cfg, split_keys, problems):
        _raise(problems)
        return
    root = Path(cfg.data.root)
    if not root.is_dir():
        problems.append(f"data.root: dataset root {not_a_folder(root)}: {as_given(root)}; expected a folder in the "
                        "PASCAL VOC layout, given as data.root=<folder> (`dsrg data download` and `dsrg data "
                        "train-aug` make VOC 2012's, `dsrg data coco` converts COCO's; README, Real data at paper "
                        "scale)")
        _raise(problems)
    splits = _open_splits(cfg, split_keys, problems)
    train = splits.get("data.train_split")
    _warn_shared_images(train, splits.get("eval.split"))
    _note_voc_classes(train)
    _note_voc_subsets(splits)
    for key in trained if train is not None else ():
        problems.collect(iterations_per_epoch, len(train), attrgetter(key)(cfg), key, cfg.data.train_split)
    if train is not None:
        problems.collect(split_lists.require_cover, cfg, steps, "seg", "seeds", train)
        problems.collect(split_lists.require_cover, cfg, steps, "retrain", "pseudo", train)
    checked = _check_files(cfg, steps, splits, problems)
    if train is not None and "seeds" in steps:
        checked.update(_check_seed_inputs(cfg, train, problems))
    _raise(problems)
    for marker in checked if remember else ():     # all clean: the same files are not checked again
        if not marker.is_file():    # a record only: where a racing command's failed first step removes its folder
            with contextlib.suppress(FileNotFoundError):      # as it is written, the files are checked again next time
                write_text(marker, f"{cfg.data.root}: pre-flight found no problem (every header read; {FILE_SAMPLE} "
                                   f"files of each split decoded)\n")


def _check_settings(cfg: Profile, steps: list[str], trained: list[str], problems: _Problems) -> None:
    """The settings of ``steps`` that no file decides: weights files given (or ``random_init``), the run folder,
    Triton's growing on CUDA, the cues' grid against the segmentation network's output, the batch sizes
    (``trained``) against the number of torchrun processes."""
    empty = random_starts(cfg, steps)
    if empty and not cfg.random_init:
        nets = {"cls.backbone_weights": "vgg16", "seg.backbone_weights": cfg.seg.backbone}
        files = " and ".join(f"{key}=<torchvision {nets[key]} state dict>" for key in empty)
        problems.append(f"{' and '.join(empty)}: no weights file, so a network would start from random weights; "
                        f"the paper starts from ImageNet: give {files}, or random_init=true to train from random "
                        f"weights on purpose")
    elif "seg.backbone_weights" in empty:
        problems.collect(require_resnet_weights, cfg, "imagenet")
    problems.collect(_require_run_folder, cfg.run_dir)
    if "seg" in steps:
        problems.collect(_require_cuda_for_triton, cfg)
        cues, grid = CAMNet.output_size(cfg.cls.input_size), output_size(cfg.seg.input_size, cfg.seg.backbone)
        if cfg.seeds.source == "cam" and cues != grid:    # (the authors' cues: checked with their file, later)
            problems.append(f"seg.input_size={cfg.seg.input_size} gives a {grid}x{grid} output but the seed cues are "
                            f"on the CAMs' {cues}x{cues} grid (cls.input_size={cfg.cls.input_size}); expected a "
                            f"seg.input_size whose output is {cues}x{cues} too (with VGG16, cls.input_size itself)")
    processes = int(os.environ.get("WORLD_SIZE", 1))
    for key in trained:
        problems.collect(require_shared, attrgetter(key)(cfg), processes, key)


def _check_paths(cfg: Profile, steps: list[str], problems: _Problems, read: list[str] | None = None) -> list[str]:
    """The files and folders that ``steps`` read (:func:`step_inputs`), each weights file read and held against
    its network (how it is read appended to ``read``); returns the keys of the splits they read, in order."""
    split_keys: dict[str, None] = {}
    weights: dict[str, Path] = {}
    for step in steps:
        splits, paths = step_inputs(cfg, step)
        split_keys.update(dict.fromkeys(splits))
        for key, kind in paths:
            path = Path(attrgetter(key)(cfg))
            if not (path.is_file() if kind == "file" else path.is_dir()):
                why = not_a_file(path) if kind == "file" else not_a_folder(path)
                problems.append(f"{key}: {kind} not found: {path}" if not path.exists() else f"{key}: {path} {why}")
            elif key.endswith("backbone_weights"):
                weights[key] = path
    states: dict[Path, dict | InputError] = {}    # each weights file read once (cls and seg often share one)
    said: dict[tuple[Path, str], int] = {}          # a file's misfit said for one key, and where: said once
    for key, path in weights.items():
        if path.resolve() not in states:
            try:
                states[path.resolve()] = read_weights(path)
            except InputError as exc:
                states[path.resolve()] = exc
        state = states[path.resolve()]
        misfits = [f"{key}: {state}"] if isinstance(state, InputError) else weights_misfit(cfg, key, state)
        for misfit in misfits:
            why = (path.resolve(), misfit.removeprefix(f"{key}: "))
            if why in said:
                keys, _, rest = problems[said[why]].partition(": ")
                problems[said[why]] = f"{keys} and {key}: {rest}"
            else:
                said[why] = len(problems)
                problems.append(misfit)
        if read is not None and not misfits:
            read.append(f"{key}: {how_read(cfg, key, state)}")
    return list(split_keys)


def _check_embedded(cfg: Profile, split_keys: list[str], problems: _Problems) -> bool:
    """An embedded dataset's root (``data.dataset=synthetic`` or ``synthetic_coco``): the dataset of
    ``data.synth`` if written, else (the first step writes it) the split names alone. True where it is written,
    so that its files are checked as a VOC root's are."""
    root = Path(cfg.data.root)
    if cfg.data.dataset == "synthetic":
        problems.collect(require_written_as, root, synth_config(cfg.data.synth))
    else:
        problems.collect(require_coco_written_as, root, cfg.data.synth)
    misnamed = embedded_root_problem(root, cfg.data.dataset)      # a real dataset's path, missing; not COCO2014
    if misnamed:                    # its files are not the embedded set's: nothing more to say of them
        problems.append(f"data.root: {misnamed}")
        return False
    if embedded_written(cfg.data):
        return True
    names = sorted(SPLIT_CODES) if cfg.data.dataset == "synthetic" else sorted(SYNTH_SPLITS.values())
    for key in split_keys:
        if attrgetter(key)(cfg) not in names:
            problems.append(f"{key}: the embedded dataset (data.dataset={cfg.data.dataset}) has the splits "
                            f"{names}, got {attrgetter(key)(cfg)!r}")
    return False


def _open_splits(cfg: Profile, split_keys: list[str], problems: _Problems) -> dict[str, VOCSegmentation]:
    """The splits of ``split_keys`` that open (split key -> split), each image listed once."""
    splits = {}
    for key in split_keys:
        try:
            splits[key] = VOCSegmentation(Path(cfg.data.root), attrgetter(key)(cfg))
        except InputError as exc:
            problems.append(f"{key}={attrgetter(key)(cfg)}: {exc}")
    for key, ds in {ds.split: (key, ds) for key, ds in reversed(splits.items())}.values():    # each split once
        twice = ds.listed_twice()
        if twice:
            problems.append(f"{key}={ds.split}: {name_some(twice)} listed more than once in its split "
                            f"file; expected each image once (dsrg data check names them all)")
    return splits


def _check_files(cfg: Profile, steps: list[str], splits: dict[str, VOCSegmentation], problems: _Problems
                 ) -> dict[Path, list[str]]:
    """The images of each split, and their label maps where training reads its classes from them or evaluate
    scores them, each split's files checked once while they are unchanged; returns each check's marker ->
    its problems."""
    # the image-level labels of training come from the label maps, as the classifier's validation does, unless
    # the split has an ImageLabels file
    labelled = (["data.train_split"] if {"cls", "seeds", "seg"} & set(steps) else []) + \
        (["data.val_split"] if "cls" in steps else [])
    complete = {}                      # split key -> whether every image has its label map
    for key in labelled:
        if key in splits and splits[key].image_labels is not None:
            complete[key] = splits[key].has_masks      # its label maps, all of them or none, read to measure
        elif key in splits:
            before = len(problems)
            problems.collect(_require_label_maps, key, splits[key])
            complete[key] = len(problems) == before
    checked: dict[Path, list[str]] = {}     # a marker of each split's check -> its problems
    for key, ds in splits.items():          # the label maps where training reads classes or evaluate scores
        labels = complete.get(key, False) or key == "eval.split" and not unlabelled_indices(ds)
        marker = cfg.run_dir / ".checked" / f"{ds.split}-{'labels-' if labels else ''}{_fingerprint(ds)}"
        if marker not in checked:
            checked[marker] = [] if marker.is_file() else _file_problems(ds, labels)
    problems += [line for lines in checked.values() for line in lines]
    if any(checked.values()):
        problems.append(_Line(f"(dsrg data check --root {Path(cfg.data.root)} --all opens every file; pre-flight "
                              f"decodes {FILE_SAMPLE} of each split and reads the others' headers)", stands_for=0))
    return checked


def _check_seed_inputs(cfg: Profile, train: VOCSegmentation, problems: _Problems) -> dict[Path, list[str]]:
    """What the seeds step reads besides the images: a saliency map of each training image's size in
    ``seeds.saliency_dir``, or the authors' cues on the segmentation network's grid; returns the marker of a
    clean check of the maps' sizes -> its problems."""
    checked: dict[Path, list[str]] = {}
    if cfg.seeds.source == "cam" and cfg.seeds.saliency == "folder" and Path(cfg.seeds.saliency_dir).is_dir():
        maps = SaliencyFolder(cfg.seeds.saliency_dir)
        missing = [maps.path(i).name for i in train.ids if not maps.path(i).is_file()]
        if missing:
            other = sorted({p.suffix for p in maps.folder.glob(f"{Path(missing[0]).stem}.*")} - {maps.suffix})
            found = f"; found {missing[0][:-len(maps.suffix)]}{other[0]}: convert the maps to PNG" if other else ""
            problems.append(f"seeds.saliency_dir: {len(missing)} of the {len(train)} training images have no map in "
                            f"{maps.folder} (e.g. {name_some(missing)}); expected one <image id>{maps.suffix} per "
                            f"image of data.train_split={cfg.data.train_split}{found}")
        if not cfg.seeds.saliency_resize:       # every map's header, once while the files are unchanged
            marker = cfg.run_dir / ".checked" / f"saliency-sizes-{_maps_fingerprint(maps, train)}"
            if not marker.is_file():
                before = len(problems)
                problems.collect(_require_map_sizes, maps, train)
                checked[marker] = problems[before:]
    if cfg.seeds.source == "authors" and Path(cfg.seeds.authors_pickle).is_file() and \
            Path(cfg.seeds.authors_list).is_file():
        problems.collect(read_authors_cues, cfg.seeds.authors_pickle, cfg.seeds.authors_list, train.num_classes,
                         output_size(cfg.seg.input_size, cfg.seg.backbone), train.ids)
    return checked


def _warn_shared_images(train: VOCSegmentation | None, scored: VOCSegmentation | None) -> None:
    """A warning on stderr (process 0) where the evaluated split, under another name than the training split,
    holds some of its images: the mIoU would be measured on images the networks were trained on (VOC's
    train_aug leaves val out). The same split by name is taken as meant (the smoke checks)."""
    if train is None or scored is None or train.split == scored.split or os.environ.get("RANK", "0") != "0":
        return
    shared = sorted(set(train.ids) & set(scored.ids))
    if shared:
        print(f"[dsrg] warning: {len(shared)} of the {len(scored)} images of eval.split={scored.split} are in "
              f"data.train_split={train.split} too (e.g. {name_some(shared)}): the mIoU would be measured on "
              f"images the networks trained on", file=sys.stderr, flush=True)


def _note_voc_classes(train: VOCSegmentation | None) -> None:
    """A note on stderr (process 0) where a training split of images that are not VOC's (by their ids) takes
    VOC 2012's classes for want of a ``class_names.txt``: label value k then means VOC's k-th class."""
    if train is None or os.environ.get("RANK", "0") != "0" or (train.root / "class_names.txt").is_file() \
            or voc_images(train):
        return
    print(f"[dsrg] note: {train.root} has no class_names.txt, so the networks learn PASCAL VOC 2012's "
          f"{train.num_classes} classes (label value k is VOC's k-th class); for classes of your own, list them "
          f"in {train.root / 'class_names.txt'}, one per line, background first", file=sys.stderr, flush=True)


def _note_voc_subsets(splits: dict[str, VOCSegmentation]) -> None:
    """A note on stderr (process 0) for each split of VOC's images with fewer or more images than VOC 2012's
    split of that name (``dsrg data check`` says the same): the paper's numbers are on the whole splits."""
    if os.environ.get("RANK", "0") != "0":
        return
    said = set()
    for key, ds in splits.items():
        want = VOC2012_COUNTS.get(ds.split)
        if want is not None and len(ds) != want and ds.split not in said and voc_images(ds):
            said.add(ds.split)
            print(f"[dsrg] note: {key}={ds.split} has {plural(len(ds), 'image')}, VOC 2012's {ds.split} {want}: a "
                  f"subset? (the paper's numbers are measured on the whole split)", file=sys.stderr, flush=True)


def _require_map_sizes(maps: SaliencyFolder, train: VOCSegmentation) -> None:
    """InputError naming the saliency maps whose size (from their headers) is not their image's."""
    wrong = []
    for i, image_id in enumerate(train.ids):
        try:
            sizes = image_size(maps.path(image_id)), image_size(train.image_path(i))
        except InputError:
            continue                          # an unreadable file: the step names it, as the file check does
        if sizes[0] != sizes[1]:
            wrong.append(f"{maps.path(image_id).name} {sizes[0][0]} x {sizes[0][1]}, image {sizes[1][0]} x "
                         f"{sizes[1][1]}")
    if wrong:
        raise InputError(f"seeds.saliency_dir: {len(wrong)} of the {len(train)} maps have another size than their "
                         f"image (H x W; e.g. {name_some(wrong, 2)}); to resize them bilinearly: "
                         f"seeds.saliency_resize=true")


FILE_SAMPLE = 50     # images and label maps of each split that pre-flight decodes in full
FILE_LINES = 10      # problems with a split's files listed one by one; the rest are counted


def _file_problems(ds: VOCSegmentation, labels: bool) -> list[str]:
    """:func:`dsrg.data.check.file_problems` of the split ``ds``, the first :data:`FILE_LINES` of them one by one."""
    problems = file_problems(ds, FILE_SAMPLE, labels)
    if len(problems) > FILE_LINES:
        more = len(problems) - FILE_LINES
        problems = problems[:FILE_LINES] + [_Line(f"... and {more} more problems with the files of split "
                                                  f"'{ds.split}'", stands_for=more)]
    return problems


def _fingerprint(ds: VOCSegmentation) -> str:
    """A digest of the split's files as they are now: ids, and each image's and label map's size and time."""
    digest = hashlib.sha256(str(ds.root.resolve()).encode())
    for i, image_id in enumerate(ds.ids):
        stats = []
        for path in (ds.image_path(i), ds.mask_path(i)):
            try:
                st = path.stat()
                stats.append(f"{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                stats.append("-")
        digest.update(f"{image_id} {' '.join(stats)}\n".encode())
    return digest.hexdigest()[:16]


def _maps_fingerprint(maps: SaliencyFolder, train: VOCSegmentation) -> str:
    """A digest of a saliency folder's maps for the split ``train`` as they are now (each map's size and time)
    and of the split's own files (:func:`_fingerprint`)."""
    digest = hashlib.sha256(f"{maps.folder.resolve()} {_fingerprint(train)}".encode())
    for image_id in train.ids:
        try:
            st = maps.path(image_id).stat()
            digest.update(f"{image_id} {st.st_size}:{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{image_id} -\n".encode())
    return digest.hexdigest()[:16]


def _require_run_folder(run_dir: Path) -> None:
    """InputError naming ``out`` unless ``run_dir`` is a folder, or can be made in a folder that can be written."""
    if run_dir.exists():
        ok, why = run_dir.is_dir() and os.access(run_dir, os.W_OK | os.X_OK), "it is not a folder you can write to"
    else:                  # made and removed again: only making it says whether it can be (e.g. under /proc)
        try:
            with made_folders(run_dir, keep=False):            # exist_ok inside: another torchrun process's probe
                ok, why = True, ""
        except OSError as exc:
            ok, why = False, f"it cannot be created ({exc.strerror})"
    if not ok:
        raise InputError(f"out: cannot keep the run folder in {run_dir}: {why}; expected a folder to write the "
                         f"run into (out=... or, by default, runs/<profile>)")


def _require_cuda_for_triton(cfg: Profile) -> None:
    """InputError naming ``seg.grow_method`` when it asks for the Triton kernel and the run's device is the CPU."""
    if cfg.seg.grow_method == "triton" and resolve_device(cfg.device).type != "cuda":
        raise InputError(f"seg.grow_method=triton: the Triton kernel grows regions on CUDA, and this run's device "
                         f"is the CPU (device={cfg.device}); expected numba, scipy, torch or auto there (the same "
                         f"result)")


class _Line(str):
    """A line of the report that stands for ``stands_for`` problems: 0 for a note on the lines before it, N for
    the rest of a list cut short ("... and N more"). Any other line is one problem."""

    def __new__(cls, text: str, stands_for: int):
        line = super().__new__(cls, text)
        line.stands_for = stands_for
        return line


def _raise(problems: list[str]) -> None:
    """One InputError for all the problems found (none: nothing), counted as :class:`_Line` says."""
    count = sum(getattr(p, "stands_for", 1) for p in problems)
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        raise InputError(f"{plural(count, 'problem')} with the inputs, found before any step ran:\n  - "
                         + "\n  - ".join(problems))


def _require_label_maps(key: str, ds) -> None:
    """Every image of the split ``key`` has its label map (the image-level labels come from them)."""
    missing = unlabelled_indices(ds)
    if missing:
        reader = "training reads" if key == "data.train_split" else "the classifier's validation reads"
        raise InputError(f"{key}={ds.split}: {len(missing)} of its {len(ds)} images have no label map in "
                         f"{ds.root / ds.label_dir} ({name_some([ds.ids[i] for i in missing])}); {reader} each "
                         f"image's classes from its label map: expected one for every image, or the classes of every "
                         f"image in {image_labels_path(ds.root, ds.split)} ('<id> <class> ...' per image) and a "
                         f"label map for every image or for none{found_instead(ds.mask_path(missing[0]))}")
