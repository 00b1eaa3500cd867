"""Experiments by their settings: what the book's notebooks ask for.

An experiment is a profile plus ``key=value`` overrides. :func:`run` runs the pipeline steps it needs and
returns an :class:`Experiment` that reads the results. Nothing is cached here: each step's folder is named
by a hash of everything that decides its output (:mod:`dsrg.run.folders`), and a complete folder is reused. So
rebuilding the book, or re-running a notebook with one parameter changed, trains only the steps whose
settings changed, and notebooks that ask for the same settings (Table 2's +DSRG and Table 4's centre cell,
Table 2 and Fig. 4) share the same folders.

The rows of the paper's tables are named here, once (:data:`ABLATION`, :func:`theta_overrides`), so every
notebook and test means the same thing by "+BSL".
"""

from __future__ import annotations

import csv
import math
import os
import shlex
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.check import VOC2012_COUNTS
from ..data.coco import COCO2014_COUNTS, COCO_CLASSES
from ..data.dataset import EMBEDDED, open_split
from ..data.voc import VOC_CLASSES
from ..errors import InputError, Terminated, interruption_under, sigterm_interrupts
from ..files import read_json
from ..overrides import key_of
from ..profile import PATH_KEYS, Profile, is_profile_file, load_profile
from ..run import folders
from ..run.provenance import describe
from ..run.train import read_log
from ..run import step_files


# Table 2 (Section 4.4): each row is the previous one plus one change.
ABLATION: dict[str, list[str]] = {
    "baseline": ["seg.seed_loss=sec", "seg.growing=false", "retrain.enabled=false"],
    "+BSL": ["seg.seed_loss=balanced", "seg.growing=false", "retrain.enabled=false"],
    "+DSRG": ["seg.seed_loss=balanced", "seg.growing=true", "retrain.enabled=false"],
    "+Retrain": ["seg.seed_loss=balanced", "seg.growing=true", "retrain.enabled=true"],
}


# Table 1 (Section 4.2): our rows of the comparison. ResNet-101 cannot start from the (VGG) CAM net, so it
# starts from ImageNet weights (seg.backbone_weights; random where none are given, as on the demo).
RESNET_ROW = ["seg.backbone=resnet101", "seg.init=imagenet"]
TABLE1: dict[str, list[str]] = {
    "SEC": ABLATION["baseline"],
    "DSRG (VGG16)": ABLATION["+Retrain"],
    "DSRG (Resnet101)": ABLATION["+Retrain"] + RESNET_ROW,
}
# The rows of DSRG_STEPS, by name.
VGG16_STEP, RANDOM_STEP, RESNET_STEP = "VGG16 from the CAM net", "VGG16 from random weights", "ResNet-101"
VGG16_RESNET_HEAD = "VGG16 from random weights with ResNet-101's head"
RESNET_VGG16_HEAD = "ResNet-101 with VGG16's head"
#: The DSRG steps that Table 1's page sets side by side where its two DSRG rows part, each evaluated without
#: retraining (Table 2's +DSRG) -- the VGG16 row's, the VGG16 row's started from random weights (as the
#: ResNet-101 row starts on the embedded profiles), the ResNet-101 row's, and the last two with each other's head.
DSRG_STEPS: dict[str, list[str]] = {
    VGG16_STEP: ABLATION["+DSRG"],
    RANDOM_STEP: ABLATION["+DSRG"] + ["seg.init=imagenet"],
    RESNET_STEP: ABLATION["+DSRG"] + RESNET_ROW,
    VGG16_RESNET_HEAD: ABLATION["+DSRG"] + ["seg.init=imagenet", "seg.head=resnet101"],
    RESNET_VGG16_HEAD: ABLATION["+DSRG"] + RESNET_ROW + ["seg.head=vgg16"],
}
#: The rows of DSRG_STEPS that take the start away, and those that swap the heads.
START_STEPS, HEAD_STEPS = (VGG16_STEP, RANDOM_STEP, RESNET_STEP), (VGG16_RESNET_HEAD, RESNET_VGG16_HEAD)
#: The four random starts of DSRG_STEPS by (trunk, head), which Table 1's page sets two by two.
TRUNK_BY_HEAD: dict[tuple[str, str], str] = {
    ("VGG16", "VGG16's head"): RANDOM_STEP, ("VGG16", "ResNet-101's head"): VGG16_RESNET_HEAD,
    ("ResNet-101", "VGG16's head"): RESNET_VGG16_HEAD, ("ResNet-101", "ResNet-101's head"): RESNET_STEP,
}
#: The DSRG (Resnet101) row's own settings on the embedded profiles, whose ResNet-101 starts from random weights
#: (its BatchNorm trains, as a frozen one, DeepLab's, would normalise nothing; and no vgg16_bn option).
RESNET_FROM_SCRATCH = ["seg.batch_norm=false", "seg.freeze_bn=false"]
#: The profiles whose ResNet-101 starts from random weights (the embedded data has no ImageNet weights).
FROM_SCRATCH_PROFILES = ("demo", "smoke")


def resnet_overrides(cfg: Profile) -> list[str]:
    """The DSRG (Resnet101) row's own overrides on the profile ``cfg``: :data:`RESNET_FROM_SCRATCH` on the demo
    and smoke profiles, none on any other (at paper scale the row starts from a torchvision resnet101 file)."""
    return list(RESNET_FROM_SCRATCH) if cfg.name in FROM_SCRATCH_PROFILES else []


def _theta(v: float) -> str:
    return ".inf" if math.isinf(v) else repr(float(v))


def theta_overrides(theta_bg: float, theta_fg: float) -> list[str]:
    """The +DSRG setting with the growing thresholds ``theta_bg`` / ``theta_fg`` (``inf`` = that side off)."""
    return ABLATION["+DSRG"] + [f"seg.theta_bg={_theta(theta_bg)}", f"seg.theta_fg={_theta(theta_fg)}"]


@dataclass
class Experiment:
    """A finished (or partly finished) run: its profile and the folder of each step."""

    cfg: Profile
    folders: dict[str, Path] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)     # the key=value settings it was run with
    row: list[str] = field(default_factory=list)           # those of them that are its table row's, last
    profile: str | None = None     # --profile as a command from the project root takes it; None: cfg.name

    def folder(self, step: str) -> Path:
        if step not in self.folders:
            raise InputError(f"experiment {self.cfg.name!r}: no {step!r} step was run (ran: {list(self.folders)})")
        return self.folders[step]

    def _json(self, step: str, name: str) -> dict:
        path = self.folder(step) / name
        if not path.is_file():
            raise InputError(f"{path}: missing; the step '{folders.COMMANDS[step]}' did not write it")
        return read_json(path, f"the {name} that the step '{folders.STEPS[step].command}' writes")

    def metrics(self) -> dict:
        """``evaluate``'s ``metrics.json``: ``miou``, ``pixel_accuracy``, ``iou`` per class, ``model``, ``split``."""
        return self._json("eval", step_files.METRICS)

    @property
    def miou(self) -> float:
        return float(self.metrics()["miou"])

    def per_class_iou(self) -> pd.Series:
        """IoU per class (class names as index), in the dataset's class order."""
        m = self.metrics()
        names = self.dataset(m["split"]).class_names
        return pd.Series({k: (np.nan if m["iou"].get(k) is None else float(m["iou"][k])) for k in names}, name="iou")

    def supervision(self) -> pd.DataFrame:
        """Fig. 4's curve: precision, recall, IoU of the supervision per epoch (row 0 = the seeds)."""
        path = self.folder("seg") / step_files.SUPERVISION
        with open(path, newline="") as f:
            return pd.DataFrame([{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]).astype(
                {"epoch": int})

    def training_quality(self) -> pd.DataFrame:
        """What the networks were trained on, against the training set's ground truth (%): the seeds
        (precision, recall, IoU on the output grid; Fig. 4's epoch 0) and, when the experiment retrained,
        the pseudo labels (mIoU, precision, recall, pixel accuracy). Rows ``seeds``, ``pseudo labels``."""
        rows = {}
        seeds = folders.done_info(self.folder("seeds")).get("quality")
        if seeds:
            rows["seeds"] = {"precision": seeds["precision"], "recall": seeds["recall"], "IoU": seeds["iou"]}
        if "pseudo" in self.folders:
            q = folders.done_info(self.folder("pseudo")).get("quality") or {}
            rows["pseudo labels"] = {"precision": q.get("precision"), "recall": q.get("recall"), "IoU": q.get("miou"),
                                     "pixel accuracy": q.get("pixel_accuracy")}
        return pd.DataFrame.from_dict(rows, orient="index").astype(float).mul(100)

    def pseudo_label_classes(self) -> pd.DataFrame:
        """The pseudo labels per class against the training set's ground truth (%): IoU, precision, recall."""
        q = folders.done_info(self.folder("pseudo")).get("quality") or {}
        names = q.get("classes") or self.dataset().class_names     # runs before the names were kept: the dataset's
        columns = {"IoU": q.get("iou"), "precision": q.get("class_precision"), "recall": q.get("class_recall")}
        return pd.DataFrame({k: v if v is not None else [None] * len(names) for k, v in columns.items()},
                            index=names).astype(float).mul(100)

    def log(self, step: str = "seg") -> pd.DataFrame:
        """A training step's ``log.jsonl`` (``cls``, ``seg`` or ``retrain``): one row per iteration, columns
        ``it``, ``epoch``, ``lr``, the losses and ``s``; the curves of
        :func:`dsrg.reproduce.figures.training_curves`."""
        return pd.DataFrame(read_log(self.folder(step)))

    def fig1(self) -> dict[str, np.ndarray]:
        """Fig. 1's maps: ``ids`` (K,), ``supervision`` bool (E+1, K, C, h, w) (index 0 = the seeds, then
        the grown supervision after each epoch) and ``epochs`` (E+1,)."""
        with np.load(self.folder("seg") / step_files.FIG1, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def per_image(self) -> pd.DataFrame:
        """Each evaluated image's mIoU (``id``, ``miou``): for picking examples by rule."""
        return pd.read_csv(self.folder("eval") / step_files.PER_IMAGE, dtype={"id": str})

    def dataset(self, split: str | None = None):
        """The experiment's dataset split (default: the training split), as the pipeline reads it."""
        return open_split(self.cfg.data, split or self.cfg.data.train_split)

    def predictions(self) -> Path:
        """The folder of ``evaluate``'s prediction PNGs (recorded within the step folder; runs before that
        recorded it as seen from where they ran, which only ``pred`` inside the folder finds again)."""
        folder, recorded = self.folder("eval"), self.metrics()["predictions"]
        return folder / recorded if (folder / recorded).is_dir() else folder / "pred"

    def machine(self) -> str:
        """The machine that ran the last step (from its ``done.json``); with no step, this one."""
        if not self.folders:
            from ..run.dist import machine

            return machine()
        return folders.done_info(self._last_folder()).get("machine", "unknown")

    def threads(self) -> list[int]:
        """torch's CPU thread counts its steps ran with (from their ``done.json``; steps that do not say, left
        out), sorted: on the CPU the count changes the numbers, as floats round."""
        return sorted({folders.done_info(f).get("threads") for f in self.folders.values()} - {None})

    def code(self) -> str:
        """The code that ran the last step (from its ``done.json``), in words
        (:func:`dsrg.run.provenance.describe`)."""
        return describe(folders.done_info(self._last_folder()).get("code"))

    def _last_folder(self) -> Path:
        """The folder of the experiment's last step; InputError where it ran none."""
        if not self.folders:
            raise InputError(f"experiment {self.cfg.name!r}: no step was run (experiments.run(...) runs one)")
        return list(self.folders.values())[-1]

    def command(self, shared: bool = False) -> str:
        """The command that remakes the experiment's runs (its settings; progress bars aside); ``shared``:
        without its table row's settings (the command every row of the table shares)."""
        settings = self.overrides[:len(self.overrides) - len(self.row)] if shared else self.overrides
        settings = [o for o in settings if not o.startswith("progress=")]
        return shlex.join(["dsrg", "run", "--profile", self.profile or self.cfg.name, *settings])

    def _profile_default(self, key: str, unknown):
        """``key``'s value in the profile itself, before any override (``unknown`` where it is not found
        from here)."""
        name = self.profile or self.cfg.name          # as from the project: from a page, in its base folder
        if self.cfg.base and (Path(self.cfg.base) / name).is_file():
            name = str(Path(self.cfg.base) / name)
        try:
            return getattr(load_profile(name), key)
        except InputError:
            return unknown

    def scored(self) -> dict:
        """What the evaluation scored: ``images`` and ``split`` (from its ``done.json``), ``classes`` (the
        dataset's, background included) and ``present`` (those with an IoU: found in the ground truth or in
        the predictions of those images, where the ground truth is not 255). Empty without a finished
        evaluation with label maps."""
        if "eval" not in self.folders or not folders.is_done(self.folders["eval"]):
            return {}
        done, iou = folders.done_info(self.folders["eval"]), self.metrics().get("iou") or {}
        if not iou:
            return {}
        return {"images": done.get("images"), "split": done.get("split"), "classes": len(iou),
                "present": sum(v is not None for v in iou.values())}

    #: The data of the paper's tables by name, each as (evaluated split, its images, classes with background).
    PAPER_DATA = {"VOC 2012 val": ("val", VOC2012_COUNTS["val"], len(VOC_CLASSES)),
                  "COCO 2014 val": ("val2014", COCO2014_COUNTS["val2014"], len(COCO_CLASSES))}

    def data_note(self, paper: str = "VOC 2012 val") -> str:
        """A sentence for a page that sets this experiment's numbers beside the paper's on ``paper``
        (:data:`PAPER_DATA`): that the evaluation scored that data (its split, images and classes), or that the
        numbers are of other data, to be read for how the rows move, not for their values."""
        split, images, classes = self.PAPER_DATA[paper]
        scored = self.scored()
        if scored and (scored["split"], scored["images"], scored["classes"]) == (split, images, classes):
            return f"Ours are measured on the paper's data ({paper}, {images} images)."
        what = (f"{scored['images']} images of split '{scored['split']}' with {scored['classes']} classes"
                if scored else "other images")
        return (f"Ours are measured on {what}, not on {paper}: beside the paper's, read how our rows move "
                f"against each other, not their values.")

    def ran_on(self) -> str:
        """Dataset (its root as written from the project, as the command takes it), the images evaluated,
        profile and machine; a smoke profile and random weights a paper profile refuses are said."""
        data = self.cfg.data
        root = folders.as_from_project(data.root, self.cfg.base)
        scored = self.scored()
        images = f", {scored['images']} {scored['split']} images scored" if scored else ""
        return f"dataset {data.dataset} ({root}{images}), profile {self.cfg.name}{self._caveat()}, " \
               f"machine: {self.machine()}"

    def label(self, trained: bool = True) -> str:
        """A few words for the text beside our numbers: the data, the images scored, the profile and, where a
        network was ``trained``, the seed (with :meth:`ran_on`'s caveats); the machine, the code and the command
        are :meth:`provenance`'s, said once per page."""
        data, scored = self.cfg.data, self.scored()
        what = "the embedded dataset" if data.dataset in EMBEDDED else folders.as_from_project(data.root, self.cfg.base)
        images = f", {scored['images']} {scored['split']} images" if scored else ""
        seed = f", seed {self.cfg.seed}" if trained else ""
        return f"{what}{images}, profile {self.cfg.name}{self._caveat()}{seed}"

    def _caveat(self) -> str:
        """A smoke profile, or random weights that a paper profile refuses, in words; "" otherwise."""
        if self.cfg.name.startswith("smoke"):
            return " (a check that the code runs: its numbers mean nothing)"
        if self.cfg.random_init and not self._profile_default("random_init", True):
            return " with random_init=true (networks from random weights, not ImageNet's: not the paper's setting)"
        return ""

    def provenance(self, rows: bool = False) -> str:
        """One line for a caption: :meth:`ran_on`, the code that ran it, the folder of its last step (as
        written from the project) and the command that remakes it; ``rows``: for a claim over all the rows of
        its table, the run folder that holds them and each row remade by the shared command with that row's
        settings."""
        if rows:
            where = f"the rows' step folders in {folders.as_from_project(str(self.cfg.run_dir), self.cfg.base)}"
            remade = f"each row remade by: {self.command(shared=True)} plus its row's settings"
        else:
            where, remade = f"results in {folders.as_from_project(str(self._last_folder()), self.cfg.base)}", \
                f"remade by: {self.command()}"
        return f"{self.ran_on()}; {self.code()}; {where}; {remade}"


def profile(name: str = "demo", overrides: Sequence[str] = (), base: str | Path | None = None) -> Profile:
    """The profile ``name`` with ``overrides`` (validated; see :func:`dsrg.profile.load_profile`).

    ``base``: the folder that relative paths (``out``, ``data.root``, the weights files, the saliency folder,
    the authors' cue files: ``PATH_KEYS``) are relative to (a notebook in ``notebooks/`` passes ``".."``,
    the project root); None = the working directory. A profile given as a relative YAML path is read from
    ``base`` too, where it is not in the working directory. ``".."`` from a folder whose parent has no
    ``notebooks/`` (a page run from the project root, papermill without ``--cwd notebooks``) is an InputError.
    """
    if base is not None and Path(base) == Path("..") and not (Path.cwd().parent / "notebooks").is_dir():
        raise InputError(f"base '..': the pages' relative paths (data, runs, figures) start from the project root, "
                         f"seen from notebooks/, but {Path.cwd().parent} has no notebooks/ folder; run papermill with "
                         f"--cwd notebooks, jupytext --execute with --run-path notebooks (or give -p base the project "
                         f"root)")
    if base is not None and not Path(name).is_file() and (Path(base) / name).is_file():
        name = str(Path(base) / name)
    elif base is not None and is_profile_file(name) and not Path(name).is_file():
        raise InputError(f"profile {name!r} not found: neither in {Path.cwd()} nor in base {base!r} "
                         f"({(Path(base) / name).resolve()})")
    cfg = load_profile(name, list(overrides))
    if base is not None:
        for key in PATH_KEYS:
            section, field_name = key.split(".")
            holder = getattr(cfg, section)
            value = getattr(holder, field_name)
            if value and not Path(value).is_absolute():
                setattr(holder, field_name, str(Path(base) / value))
        cfg.out = str(Path(base) / cfg.run_dir) if not cfg.run_dir.is_absolute() else cfg.out
        cfg.base = str(base)
    return cfg


def clashing(overrides: Sequence[str], row: Sequence[str]) -> list[str]:
    """The items of ``overrides`` whose key a table's ``row`` sets too (the row's value would overrule them)."""
    keys = {key_of(item) for item in row}
    return [item for item in overrides if key_of(item) in keys]


def refuse_row_keys(overrides: Sequence[str], row: Sequence[str]) -> None:
    """An InputError where ``overrides`` set a key that a table's ``row`` sets too (:func:`clashing`)."""
    clash = clashing(overrides, row)
    if clash:
        keys = {key_of(item): item for item in row}
        names = ", ".join(key_of(c) for c in clash)
        raise InputError(f"overrides: {', '.join(clash)}: this table sets {names} in its rows itself (this row: "
                         f"{', '.join(keys[key_of(c)] for c in clash)}), which would overrule "
                         f"the override; leave it out of the overrides: what the rows set is what the table "
                         f"compares (in Python, experiments.run(profile, overrides) without row= runs one setting)")


def run(name: str = "demo", overrides: Sequence[str] = (), *, row: Sequence[str] = (),
        base: str | Path | None = None, steps: Sequence[str] | None = None, resume: bool = False,
        hint: bool = True) -> Experiment:
    """Run (or reuse) the experiment ``name`` + ``overrides`` + a table's ``row`` (its settings, e.g.
    ``ABLATION["+DSRG"]``) and return it. A key of ``overrides`` that ``row`` sets too is an InputError (the
    row's value would overrule it unseen).

    ``base`` as in :func:`profile`. ``steps`` limits the run to some of the planned steps (e.g.
    ``["cls", "seeds"]``); by default every planned step up to ``evaluate``. ``resume``: continue the steps an
    interruption left, as ``dsrg run --resume`` (else an interrupted step starts over); ``hint``: an
    interruption says how to continue from Python (a command sets it False and says its own). SIGTERM stops a
    step as Ctrl-C does; then, where no one else handles SIGTERM, it ends the process as it would have (the
    caller's ``finally`` blocks do not run).
    """
    from ..steps import pipeline

    refuse_row_keys(overrides, row)
    overrides = [*overrides, *row]
    cfg = profile(name, overrides, base)
    if steps is not None:
        planned = pipeline.planned_steps(cfg)
        unknown = [s for s in steps if s not in planned]
        if unknown:
            raise InputError(f"steps: {unknown} are not planned for this experiment; expected some of {planned}")
    try:
        with sigterm_interrupts():      # SIGTERM stops a step as Ctrl-C does: where it stands said, checkpoint kept
            done = pipeline.run(cfg, resume=resume, only=steps)
    except InputError as exc:
        _seen_from_page(exc, cfg.base)
        raise
    except BaseException as exc:
        stop = interruption_under(exc)                 # also one a library's clean-up turned into another error
        if stop is None:
            raise
        if hint and not getattr(stop, "starts_over", False):   # the step's last line names dsrg run's --resume
            print("From Python or a page, `--resume` is experiments.run(..., resume=True): a training page's "
                  "parameter resume = True (papermill: -p resume True)", file=sys.stderr, flush=True)
        if isinstance(stop, Terminated) and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            sys.stdout.flush()
            signal.raise_signal(signal.SIGTERM)     # and then ends the process, as SIGTERM did before
        raise
    return Experiment(cfg, done, list(overrides), list(row), _profile_argument(name, base))


def _seen_from_page(exc: InputError, base: str | None) -> None:
    """Add to ``exc``'s message how to read a path written from ``base`` (a page's ``..``: the project), where
    it holds one."""
    prefix = f"{base}{os.sep}" if base else ""
    if prefix and prefix in str(exc) and not Path(base).is_absolute():
        exc.args = (f"{exc}. A page's paths are written from the project root (base={base!r}): data/x, not "
                    f"{prefix}data/x; this message shows them from {Path.cwd().name}{os.sep}, where the page runs, as "
                    f"{prefix}x", *exc.args[1:])


def _profile_argument(name: str, base: str | Path | None) -> str:
    """``--profile`` for the command that remakes a run from the project root: a profile's name, or a YAML
    path as given where :func:`profile` found it in ``base``, else (found beside the page) absolute."""
    path = Path(name)
    if not is_profile_file(path) or base is None or path.is_absolute() or not path.is_file():
        return str(name)
    return str(path.resolve())


def _step_settings(label: str, name: str, settings: Sequence[str], resnet_name: str,
                   resnet_settings: Sequence[str]) -> tuple[str, list[str]]:
    """The profile and overrides of :data:`DSRG_STEPS`' row ``label``: a ResNet-101's are its Table 1 row's."""
    resnet = "seg.backbone=resnet101" in DSRG_STEPS[label]
    return (resnet_name, [*settings, *resnet_settings]) if resnet else (name, list(settings))


def start_not_taken_away(name: str, settings: Sequence[str], resnet_name: str, resnet_settings: Sequence[str],
                         base: str | Path | None = None) -> str | None:
    """Why :data:`DSRG_STEPS` cannot take the VGG16 row's start away (nor swap the heads of the two random
    starts) with these settings (the page's, and the ResNet-101 row's profile and own ones), in words; None where
    it can: the VGG16 row starts from the CAM net (``seg.init=cls``), the ResNet-101 row from random weights, and
    the VGG16 row can start from them too."""
    cfgs = {}
    for label, row in DSRG_STEPS.items():
        profile_name, overrides = _step_settings(label, name, settings, resnet_name, resnet_settings)
        keys = sorted({key_of(item) for item in clashing(overrides, row)})
        if keys:
            return f"the settings give {', '.join(keys)}, which these runs set themselves"
        cfgs[label] = profile(profile_name, [*overrides, *row], base)
    vgg = cfgs[VGG16_STEP]
    if vgg.seg.init != "cls":
        return (f"on profile {vgg.name} the VGG16 row starts from ImageNet weights (seg.init=imagenet), not from "
                f"the CAM network: there is no start to take away")
    weights = [label for label in (RANDOM_STEP, RESNET_STEP) if cfgs[label].seg.backbone_weights]
    if weights:
        return (f"the {'ResNet-101' if weights[-1] == RESNET_STEP else 'VGG16'} row would start from a weights file "
                f"(seg.backbone_weights), not from random weights")
    return None


def dsrg_steps(name: str, settings: Sequence[str], resnet_name: str, resnet_settings: Sequence[str], *,
               labels: Sequence[str] = tuple(DSRG_STEPS), base: str | Path | None = None,
               resume: bool = False) -> dict[str, Experiment]:
    """The rows ``labels`` of :data:`DSRG_STEPS`, each run or reused (:func:`run`), a ResNet-101's with its Table
    1 row's profile and own settings after the page's."""
    unknown = [label for label in labels if label not in DSRG_STEPS]
    if unknown:
        raise InputError(f"labels: {', '.join(unknown)}: expected some of {', '.join(DSRG_STEPS)}")
    return {label: run(*_step_settings(label, name, settings, resnet_name, resnet_settings), row=DSRG_STEPS[label],
                       base=base, resume=resume) for label in labels}


def ablation(name: str = "demo", overrides: Sequence[str] = (), rows: Sequence[str] = tuple(ABLATION), *,
             base: str | Path | None = None, resume: bool = False, hint: bool = True) -> dict[str, Experiment]:
    """Table 2's rows (``baseline``, ``+BSL``, ``+DSRG``, ``+Retrain``), each run or reused (``resume`` and
    ``hint`` as in :func:`run`)."""
    unknown = [r for r in rows if r not in ABLATION]
    if unknown:
        raise InputError(f"rows: unknown {unknown}; expected some of {list(ABLATION)}")
    return {r: run(name, overrides, row=ABLATION[r], base=base, resume=resume, hint=hint) for r in rows}


def coco_profile(name: str) -> str:
    """Table 3's profile for a page given ``name``: the COCO twin of the embedded profiles (``demo`` ->
    ``demo-coco``, ``smoke`` -> ``smoke-coco``, said on stdout), an InputError for the VOC ones, any other
    name or YAML path as it is."""
    twins = {"demo": "demo-coco", "smoke": "smoke-coco"}
    if name in twins:
        print(f"profile {name}: Table 3 is on COCO, so its COCO twin {twins[name]} runs")
        return twins[name]
    if name in ("voc-vgg16", "voc-resnet101"):
        raise InputError(f"profile {name}: Table 3 is on COCO; expected coco-vgg16 (real COCO, with data_root), "
                         f"demo-coco or smoke-coco (the embedded set in the COCO layout), or a YAML path")
    return name


def iou_table(experiments: dict[str, Experiment]) -> pd.DataFrame:
    """Per-class IoU (%) and mIoU (%) of several experiments: one row each, classes as columns."""
    rows = {}
    for label, e in experiments.items():
        s = e.per_class_iou() * 100
        s["mIoU"] = e.miou * 100
        rows[label] = s
    return pd.DataFrame(rows).T
