"""``--dry-run``: what a pipeline command would do, and to which folders, without running or writing anything."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from ..data.voc import split_file_ids, split_path
from ..errors import InputError, plural
from ..overrides import key_of
from ..profile import Profile
from ..run import folders
from .pipeline import planned_steps


#: The profiles whose whole run ``benchmarks/paper_scale.py`` projects (on a VOC-shaped set).
PROJECTED = ("voc-vgg16", "voc-resnet101")


def dry_run(cfg: Profile, command: str, profile: str, overrides: Sequence[str] = (), resume: bool = False) -> None:
    """Print the resolved settings of ``cfg`` (loaded as ``profile`` with ``overrides``), what they come to on
    this machine, each step's folder and what would happen to it (with why it would run), the work of the steps
    the command runs, and the pre-flight check of their inputs (``resume``: as the command with ``--resume``
    would). ``command``: ``run`` or a single step's command (shown after the steps it reads, which it does not
    run)."""
    from ..run.preflight import check_inputs, random_starts

    if command == "run":
        steps = planned_steps(cfg)
    else:   # a single step, after the steps it reads from
        step = folders.step_of(command)
        steps = [*folders.reads(cfg, step), step]
    here = resolved_here(cfg)                    # first: a device this machine lacks is said before any setting
    print(f"# profile {profile}" + (f" with {' '.join(overrides)}" if overrides else ""))
    print(OmegaConf.to_yaml(OmegaConf.structured(cfg)).rstrip())
    print(here)
    print("# steps" + ("" if command == "run" else f" (`dsrg {command}` runs the last; it reads the others)"))
    for step in steps:
        folder = folders.step_dir(cfg, step)
        state = folders.step_state(folder, lambda: folders.why_to_run(cfg, step))
        print(f"{folders.STEPS[step].command:<14} {folder}  {state}")
    to_run = [step for step in steps if not folders.is_done(folders.step_dir(cfg, step))]
    if command != "run" and to_run[:-1]:
        print(f"# first run: {', '.join(folders.STEPS[s].command for s in to_run[:-1])} (or dsrg run)")
    read: list[str] = []
    check_inputs(cfg, steps if command == "run" else steps[-1:], remember=False, resume=resume, read=read)
    print(inputs_said(cfg, bool(to_run)))
    mine = to_run if command == "run" else [s for s in to_run if s == steps[-1]]      # the steps it would run
    if to_run:
        if not _unwritten(cfg):
            from ..data.voc import classes_said, image_labels_path

            tags = image_labels_path(cfg.data.root, cfg.data.train_split)
            print(f"# classes: {classes_said(cfg.data.root)}; training's image-level labels from "
                  + (str(tags) if tags.is_file() else "its label maps"))
        print(work(cfg, mine, resume))
        if profile in PROJECTED:
            print(f"# time: `{projection(cfg, profile, overrides)}` (in a checkout of dsrg) times a slice of each "
                  f"step on this machine and projects the whole run's wall time")
    for line in read:
        print(f"# weights: {line}")
    empty = random_starts(cfg, mine)
    if empty:
        print(f"# random weights: {' and '.join(empty)} empty, random_init=true")


def inputs_said(cfg: Profile, to_run: bool) -> str:
    """What pre-flight checked of the inputs of the steps to run (none where ``to_run`` is False), as a comment
    line of the dry run."""
    if not to_run:
        return "# inputs: not checked, every step is done"
    if _unwritten(cfg):
        return (f"# inputs: found (batch sizes, weights and cue files of the steps to run); the embedded dataset is "
                f"written into {cfg.data.root} by the first step")
    return "# inputs: found (data root and splits, batch sizes, weights and cue files of the steps to run)"


def _unwritten(cfg: Profile) -> bool:
    """Whether the data is an embedded dataset not written yet (the first step writes it)."""
    from ..data.dataset import EMBEDDED, embedded_written

    return cfg.data.dataset in EMBEDDED and not embedded_written(cfg.data)


def projection(cfg: Profile, profile: str, overrides: Sequence[str] = ()) -> str:
    """The command of ``benchmarks/paper_scale.py`` that projects this run on this machine's device. The
    overrides that name the data or the run folder are left out: the benchmark writes its own set."""
    from ..run.dist import resolve_device

    own = [o for o in overrides if key_of(o) not in ("data.root", "out")]
    device = ["--device", "cuda"] if resolve_device(cfg.device).type == "cuda" else []
    return shlex.join([_python(), "benchmarks/paper_scale.py", "--profile", profile, *device, *own])


def _python() -> str:
    """This Python as a command: a virtual environment's, from here where it is under this checkout
    (``.venv/bin/python``), else by its full path; ``python`` outside one."""
    exe = Path(sys.executable)
    if sys.prefix == sys.base_prefix:
        return "python"
    try:
        here = exe.relative_to(Path.cwd()) if Path("benchmarks", "paper_scale.py").is_file() else None
    except (ValueError, OSError):       # elsewhere, or this folder deleted
        here = None
    return str(exe) if here is None else str(here) if here.parent != Path(".") else f"./{here}"


def resolved_here(cfg: Profile) -> str:
    """What the settings that depend on the machine come to on this one (device, precision, the CRFs' backends,
    the run folder, worker processes), as a comment line of the dry run."""
    from ..method.crf import choose_backend, choose_test_backend
    from ..models.deeplab import output_size
    from ..run.dist import bf16_native, resolve_device
    from ..run.workers import auto_workers

    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    precision = "bf16 autocast" if cfg.amp and bf16_native(device) else "float32" + (
        " (amp: no native bf16 here)" if cfg.amp else "")
    grid = output_size(cfg.seg.input_size, cfg.seg.backbone)
    test = {section: choose_test_backend(getattr(cfg, section).crf_backend, cuda) if getattr(cfg, section).crf
            else "none" for section in ("pseudo", "eval")}
    crf = (f"CRF {choose_backend(cfg.seg.crf_backend, grid * grid, cuda)} in train-seg, {test['pseudo']} in "
           f"pseudo-labels, {test['eval']} in evaluate")
    workers = ", ".join(f"{key} {auto_workers(value)}" for key, value in (
        ("data.loader_workers", cfg.data.loader_workers), ("seeds.workers", cfg.seeds.workers),
        ("seg.crf_workers", cfg.seg.crf_workers)))
    return f"# here: device {device}, {precision}, {crf}, run folder {cfg.run_dir}; processes: {workers}"


def _split_images(cfg: Profile, split: str) -> int | None:
    """How many images ``split`` of the data root lists, as the dataset reads it (None where its list is not
    there yet or cannot be read: pre-flight says why)."""
    path = split_path(cfg.data.root, split)
    if not path.is_file():
        return None
    try:
        return len(split_file_ids(path))
    except (InputError, OSError):
        return None


def work(cfg: Profile, steps: Sequence[str], resume: bool = False) -> str:
    """The work of ``steps``, as a comment line of the dry run: a training step's iterations and batch, an
    inference step's images (where its split's list is there) and the inputs each image is scored at; with
    ``resume``, what is left of a step an earlier run began (:func:`~dsrg.run.folders.kept_by_resume`)."""
    def kept(step: str) -> int | None:
        folder = folders.step_dir(cfg, step)
        return folders.kept_by_resume(folder, folders.STEPS[step].trains) if resume and folder.is_dir() else 0

    def images(split: str, step: str = "") -> str:
        n, done = _split_images(cfg, split), kept(step) if step else 0
        if done and n is not None:
            return f"{n - min(done, n):,} of {n:,} images of {split} to go"
        return f"the images of {split} ({done:,} done)" if done else \
            f"{n:,} images of {split}" if n is not None else f"the images of {split}"

    def iterations(step: str, total: int) -> str:
        done = kept(step)
        if done is None:
            return f"{total:,} iterations (its ckpt.pt is unreadable: --resume stops at it; delete it to start over)"
        return f"{total - min(done, total):,} of {total:,} iterations to go" if done else f"{total:,} iterations"

    said = {
        "cls": lambda: f"train-cls {iterations('cls', cfg.cls.iterations)} x {cfg.cls.batch_size} images, then "
                       f"{images(cfg.data.val_split)} scored",
        "seeds": lambda: f"seeds {images(cfg.data.train_split, 'seeds')}",
        "seg": lambda: f"train-seg {iterations('seg', cfg.seg.iterations)} x {cfg.seg.batch_size} images",
        "pseudo": lambda: f"pseudo-labels {images(cfg.data.train_split, 'pseudo')} x "
                          f"{plural(len(cfg.pseudo.sizes), 'input size')}" + (" + CRF" if cfg.pseudo.crf else ""),
        "retrain": lambda: f"retrain {iterations('retrain', cfg.retrain.iterations)} x {cfg.retrain.batch_size} "
                           f"images",
        "eval": lambda: f"evaluate {images(cfg.eval.split, 'eval')} x {plural(len(cfg.eval.scales), 'scale')}"
                        + (" + CRF" if cfg.eval.crf else ""),
    }
    return "# work: " + "; ".join(said[step]() for step in steps) if steps else "# work: none"
