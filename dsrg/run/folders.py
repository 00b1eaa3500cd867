"""The steps of the pipeline (the one table, :data:`STEPS`) and the run folder: one sub-folder per step,
named by a hash of everything that decides its output.

    <run>/cls-<hash>/        train-cls      model.pt, log.jsonl, done.json
    <run>/seeds-<hash>/      seeds          cues.npz, done.json (with the cues' quality)
    <run>/seg-<hash>/        train-seg      model.pt, log.jsonl, supervision.csv, fig1.npz, done.json
    <run>/pseudo-<hash>/     pseudo-labels  labels/<id>.png, done.json
    <run>/retrain-<hash>/    retrain        model.pt, log.jsonl, done.json
    <run>/eval-<hash>/       evaluate       metrics.json, per_image.csv, pred/<id>.png, done.json

A step's hash covers its own config section, the data it reads and its upstream step's hash, so
changing ``seg.theta_fg`` makes a new ``seg-*``, ``pseudo-*``, ``retrain-*`` and ``eval-*`` folder
while ``cls-*`` and ``seeds-*`` are reused. Settings that do not change results, or change them only as
floats round (device, deterministic kernels, progress bars, checkpoint interval, worker counts, the run
folder itself, torch's CPU threads and torchrun's processes), are left out of the hash; ``done.json`` records
the machine, the threads and the processes.
A step is complete when its ``done.json`` exists; it is written last, atomically.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.coco import COCO_CLASSES
from ..data.synthetic import MAX_CLASSES
from ..data.synthetic import class_names as embedded_class_names
from ..data.voc import VOC_CLASSES, VOCSegmentation, image_labels_path, root_class_names, split_path
from ..errors import InputError, expect_choice
from ..files import held, locked, made_folders, read_json, write_json
from ..profile import PATH_KEYS, Profile, section_dict
from . import clock, step_files

# torch is imported inside step_config and step_state, where they need it: the command line reads this table
# to build its parser, and `dsrg --help` or `dsrg data check` should not wait for torch to load.


@dataclass(frozen=True)
class Step:
    """A step of the pipeline (paper Figure 2, Section 4.1)."""

    name: str       # its profile section and its folder, <run>/<name>-<hash>/
    command: str    # `dsrg <command>`; its module is dsrg.steps.<command>, "-" written "_"
    trains: bool    # a training loop: <name>.batch_size, log.jsonl, checkpoints
    help: str       # one line of `dsrg --help`

    @property
    def module(self) -> str:
        return self.command.replace("-", "_")


#: The pipeline's steps in order, by name; the one list of them, which the command line, the pipeline, the
#: pre-flight check and the run folders read.
STEPS = {step.name: step for step in (
    Step("cls", "train-cls", True, "train the classification network for CAMs (image-level labels only)"),
    Step("seeds", "seeds", False, "CAM foreground + saliency background cues of every training image (or the "
                                  "authors' pickle)"),
    Step("seg", "train-seg", True, "DSRG step 1: the segmentation network with region growing"),
    Step("pseudo", "pseudo-labels", False, "multi-scale inference + CRF on the training set"),
    Step("retrain", "retrain", True, "fully-supervised retraining on the pseudo labels"),
    Step("eval", "evaluate", False, "multi-scale inference + CRF on a split: IoU per class, mIoU"),
)}
#: Each step's command, by step name (from :data:`STEPS`).
COMMANDS = {name: step.command for name, step in STEPS.items()}


def step_of(command: str) -> str:
    """The step that ``command`` runs (``train-seg`` -> ``seg``); a name that is no command is returned as is."""
    return next((name for name, step in STEPS.items() if step.command == command), command)


#: Settings of a section that change no result (left out of a step's hash), beside the run's own (RUN_SETTINGS).
NOT_RESULTS = {"data.loader_workers", "seg.crf_workers", "seg.record_images", "seg.grow_method", "seg.cuda_graph",
                "seeds.workers", "seeds.overlap"}
#: The run's own settings, none of which a step's hash (:func:`step_config`) takes by name (of the device, it takes
#: what the device changes, bf16 autocast and the CRF backend that runs).
RUN_SETTINGS = {"out", "device", "deterministic", "progress", "ckpt_every"}


def _strip(d: dict, base: str, prefix: str = "") -> dict:
    """``d`` without the settings that do not change results, its paths (:data:`PATH_KEYS`) as written from
    ``base`` (the profile's: ``../data/x`` from a notebook whose base is ``..`` is ``data/x``, as from the
    project), normalised (``./data/x/`` is ``data/x``); absolute ones as written, normalised."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if key in NOT_RESULTS:
            continue
        if key in PATH_KEYS and v:
            v = as_from_project(v, base)
        out[k] = _strip(v, base, key + ".") if isinstance(v, dict) else v
    return out


def as_from_project(path: str, base: str | None) -> str:
    """``path`` (relative to ``base``, a profile's base folder) as written from the project, normalised:
    ``../data/x`` from a notebook whose base is ``..`` is ``data/x``; an absolute path stays, normalised (made
    relative to where the command runs, it would name other folders from another working directory)."""
    return os.path.normpath(path if os.path.isabs(path) else os.path.relpath(path, base or "."))


def eval_source(cfg: Profile) -> str:
    """The step whose model ``evaluate`` reads: ``retrain`` or ``seg``."""
    if cfg.eval.model == "auto":
        return "retrain" if cfg.retrain.enabled else "seg"
    return cfg.eval.model


def upstream(cfg: Profile, step: str) -> str | None:
    """The step whose outputs ``step`` reads (None for the first)."""
    if step == "cls":
        return None
    if step == "seeds":
        return "cls" if cfg.seeds.source == "cam" else None
    if step == "eval":
        return eval_source(cfg)
    return {"seg": "seeds", "pseudo": "seg", "retrain": "pseudo"}[step]


def reads(cfg: Profile, step: str) -> list[str]:
    """The steps whose outputs ``step`` reads, directly or through another, in the pipeline's order: its
    upstream chain, and ``cls`` where train-seg starts from its trunk (``seg.init=cls``)."""
    chain, prev = [], upstream(cfg, step)
    while prev is not None:
        chain.append(prev)
        prev = upstream(cfg, prev)
    if cfg.seg.init == "cls" and "seg" in (step, *chain):
        chain.append("cls")
    return [name for name in STEPS if name in chain and name != step]


def step_config(cfg: Profile, step: str) -> dict:
    """Everything that decides ``step``'s output (before the upstream hash), its paths as written from the
    profile's base folder."""
    data = section_dict(cfg, "data")["data"]
    if data["dataset"] == "synthetic_coco":
        data["dataset"] = "voc"         # its converted root is read as any VOC-layout root: the runs made before
    own: dict = {"step": step, "seed": cfg.seed, "data": data}
    classes = own_classes(cfg)
    if classes:                         # a dataset of one's own classes: editing class_names.txt is a new run
        own["classes"] = classes
    tags = image_labels_digest(cfg)
    if tags:                            # image-level labels of their own (dsrg.data.voc): editing them, too
        own["image_labels"] = tags
    if step == "eval":
        own["eval"] = section_dict(cfg, "eval")["eval"]
    else:
        own[step] = section_dict(cfg, step)[step]
    from ..method.crf import choose_backend, choose_test_backend
    from ..models.deeplab import output_size
    from .dist import bf16_native, resolve_device

    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    if cuda:
        own["amp"] = cfg.amp and bf16_native(device)   # bf16 autocast changes the numbers where it runs
    if step == "seg" and cfg.seg.crf_backend == "auto":    # the backend that will run (they differ slightly)
        own["seg"]["crf_backend"] = choose_backend("auto", output_size(cfg.seg.input_size, cfg.seg.backbone) ** 2,
                                                   cuda)
    if step in ("pseudo", "eval"):      # the backend that will run; pydensecrf, the one before the choice, unnamed
        backend = choose_test_backend(own[step]["crf_backend"], cuda)
        if backend == "pydensecrf" or not own[step]["crf"]:
            del own[step]["crf_backend"]
        else:
            own[step]["crf_backend"] = backend
    if step == "seeds" and not (cfg.seeds.saliency == "folder" and cfg.seeds.saliency_resize):
        del own["seeds"]["saliency_resize"]    # the maps as they are, as before the setting: unnamed
    if step == "seg" and cfg.seg.head_name == cfg.seg.backbone:
        del own["seg"]["head"]          # the backbone's own head, as before the setting: unnamed
    if step == "seg" and cfg.seg.init == "cls":
        own["init_from"] = step_hash(cfg, "cls")
    prev = upstream(cfg, step)
    if prev is not None:
        own["upstream"] = step_hash(cfg, prev)
    return _strip(own, cfg.base)


def own_classes(cfg: Profile) -> list[str] | None:
    """The class names of a real-data root (``data.dataset=voc``) whose ``class_names.txt`` lists classes of its
    own, neither VOC 2012's, COCO's nor the embedded sets'; None otherwise (those are named by their settings
    alone, as before the names counted)."""
    if cfg.data.dataset != "voc":
        return None
    names = root_class_names(cfg.data.root)
    embedded = 1 <= len(names) - 1 <= MAX_CLASSES and names == embedded_class_names(len(names) - 1)
    return None if embedded or names in (VOC_CLASSES, COCO_CLASSES) else names


def image_labels_digest(cfg: Profile) -> dict[str, str]:
    """A digest of the image-level labels that training reads from ``ImageLabels/<split>.txt``
    (``data.train_split``, ``data.val_split``) where there is one, as read (the split's images and their
    classes, not the file's spelling): other labels are a new run, as other classes are."""
    out = {}
    for split in dict.fromkeys((cfg.data.train_split, cfg.data.val_split)):
        path = image_labels_path(cfg.data.root, split)
        if cfg.data.dataset == "voc" and path.is_file():     # parsed once while the files it reads are unchanged
            root = Path(cfg.data.root)
            files = (path, split_path(root, split), root / "class_names.txt")
            contents = hashlib.sha256(b"".join(p.read_bytes() if p.is_file() else b"-" for p in files)).hexdigest()
            try:
                out[split] = _labels_digest(str(root.resolve()), split, contents)
            except InputError:      # a file pre-flight refuses, with its reason: named by its bytes meanwhile
                out[split] = contents[:16]
    return out


@functools.lru_cache(maxsize=16)
def _labels_digest(root: str, split: str, contents: str) -> str:
    """:func:`image_labels_digest` of one split, cached by the ``contents`` of the files it reads (a step's hash
    is computed for every step downstream of it: the labels are parsed once per command, not once per step)."""
    ds = VOCSegmentation(root, split)
    text = "".join(f"{i} {np.flatnonzero(ds.image_labels[i]).tolist()}\n" for i in sorted(ds.ids))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Hex digits of a step's hash, which names its folder (``seg-0123456789``).
HASH_DIGITS = 10


def step_hash(cfg: Profile, step: str) -> str:
    text = json.dumps(step_config(cfg, step), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]


def step_dir(cfg: Profile, step: str) -> Path:
    expect_choice("step", step, tuple(STEPS))
    return cfg.run_dir / f"{step}-{step_hash(cfg, step)}"


@contextlib.contextmanager
def step_lock(cfg: Profile, step: str, world=None):
    """The lock (``dsrg.files.locked``) of ``step``'s folder: ``<run>/.<step>-<hash>.lock``, so that one run
    writes a step folder (another one running it, a notebook beside this one, is waited for and its output
    reused); a process that has to wait says so. Under torchrun the processes of ``world`` (a
    :class:`~dsrg.run.dist.World`; None: one process) run the step together: process 0 holds the lock for them
    all (the others wait until it has it, and it keeps it until every one is through; a process that fails
    ends the torchrun launch, its lock released with it)."""
    folder = step_dir(cfg, step)
    lock = locked(_lock_path(folder),
                  waiting=f"{STEPS[step].command}: another process is running this step into {folder}; waiting for "
                          f"it to end, then its output is used where it is complete (Ctrl-C stops waiting)")
    main = world is None or world.main
    if is_done(folder) and not os.access(folder.parent, os.W_OK):     # a finished run on a read-only disk: read it
        lock = contextlib.nullcontext()
    alone = world is None or world.size == 1
    with lock if main else contextlib.nullcontext():
        try:
            if world is not None and world.size > 1:
                from .dist import barrier           # (torch: not for the commands that never train)

                barrier(world)
                yield
                barrier(world)
            else:
                yield
        except BaseException:
            if alone:                   # under torchrun another process may still be writing into it
                drop_stub(folder)
            raise


@contextlib.contextmanager
def run_folder(cfg: Profile):
    """A command that runs steps into ``cfg``'s run folder: where the folder did not exist, it (and the parents made
    with it) is removed again if the command fails and leaves nothing in it but pre-flight's record of the files it
    found clean (``.checked/``), as its first step failed. Not under torchrun (another process may be writing).
    A second command started into the same new folder meanwhile loses that record at most (its lock files make the
    folder again)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or cfg.run_dir.exists():
        yield
        return
    with made_folders(cfg.run_dir, make=False):          # pre-flight makes it (or says why it cannot)
        try:
            yield
        except BaseException:
            with contextlib.suppress(OSError):
                if {p.name for p in cfg.run_dir.iterdir()} <= {".checked"}:
                    shutil.rmtree(cfg.run_dir / ".checked")
            raise


def drop_stub(folder: Path) -> None:
    """Remove a step folder that a failed or interrupted run left with nothing to keep: only its
    ``config.json``, an empty ``log.jsonl`` and empty folders (a checkpoint, a log line or a label kept it)."""
    if not folder.is_dir() or is_done(folder):
        return
    for path in folder.rglob("*"):
        if path.is_dir() or path.parent == folder and (path.name == step_files.CONFIG or path.name == step_files.LOG
                                                       and path.stat().st_size == 0):
            continue
        return
    shutil.rmtree(folder, ignore_errors=True)


def _lock_path(folder: Path) -> Path:
    """The lock file of a step folder (:func:`step_lock`): ``<run>/.<step>-<hash>.lock``."""
    return folder.parent / f".{folder.name}.lock"


def is_done(folder: Path) -> bool:
    """Whether the step in ``folder`` is complete: its ``done.json`` exists (written last)."""
    return (folder / step_files.DONE).is_file()


def is_running(folder: Path) -> bool:
    """Whether a live process runs the step in ``folder`` now (its lock held)."""
    return held(_lock_path(folder))


def done_info(folder: Path) -> dict:
    """A complete step's ``done.json``: its wall time, machine and summary."""
    info = read_json(folder / step_files.DONE, f"the summary a finished step writes last; delete the step folder "
                                           f"{folder} to run the step again")
    if not isinstance(info, dict):
        raise InputError(f"{folder / step_files.DONE}: expected a JSON object; delete the step folder {folder} to run "
                         f"the step again")
    return info


def wall_time(folder: Path) -> float:
    """A complete step's wall time in seconds, over every session where it was resumed (``wall_s_total``; a
    ``done.json`` from before that field, or whose earlier sessions' time is not known, has this session's only)."""
    info = done_info(folder)
    return float(info.get("wall_s_total", info["wall_s"]))


def seconds(wall: float) -> str:
    """``12 s``, and ``0.2 s`` under 10 s (not ``0 s``)."""
    return f"{wall:.1f} s" if round(wall, 1) < 10 else f"{wall:.0f} s"


def with_sessions_before(info: dict) -> str:
    """``"; 40 s with the 2 sessions before"`` (:func:`seconds`) where a complete step's ``done.json`` (``info``)
    has the time of every session it was resumed over (``wall_s_total``; their count where it has ``sessions``),
    else ``""``."""
    total, count = info.get("wall_s_total"), clock.known_count(info.get("sessions"))
    if not isinstance(total, (int, float)):
        return ""
    before = ("the session" if count == 2 else f"the {count - 1} sessions") if count > 1 else "the sessions"
    return f"; {seconds(total)} with {before} before"


def took(info: dict, fallback: float) -> str:
    """A complete step's time as its line says it, from its ``done.json`` (``info``): ``"234 s"`` (:func:`seconds`),
    with :func:`with_sessions_before`; ``fallback`` seconds where it says none."""
    wall = info.get("wall_s")
    return f"{seconds(wall if isinstance(wall, (int, float)) else fallback)}{with_sessions_before(info)}"


def step_state(folder: Path, why: Callable[[], str] | None = None) -> str:
    """What ``dsrg run`` would do with a step folder, in words: done (reused), running now in another process
    (its lock held), interrupted (``--resume`` continues from its checkpoint's iteration) or to run (``why()``'s
    reason beside it, if any)."""
    if is_done(folder):
        try:
            info = done_info(folder)
        except InputError:
            return "done, but its done.json is unreadable: delete the folder to run the step again"
        wall = info.get("wall_s")
        since = (f" from its resume at iteration {info['resumed_at_iteration']}" if info.get("resumed_at_iteration")
                 else f" from its resume with {info['resumed_with_images']} images written" if
                 info.get("resumed_with_images") else "")
        since += with_sessions_before(info)
        if not isinstance(wall, (int, float)):
            return "done, reused"
        return f"done, reused (took {seconds(wall)}{since})"
    if is_running(folder):
        return ("running now in another process (`dsrg run` would wait for it to end, then use its output where "
                "complete)")
    labels = _images_written(folder)
    if labels:                                   # pseudo-labels or evaluate, interrupted
        total = _images(folder)
        return f"interrupted ({labels}{f' of {total}' if total else ''} written): --resume continues; without it " \
               f"the step starts over"
    if (folder / step_files.CHECKPOINT).is_file():
        from .checkpoints import checkpoint_iteration

        it = checkpoint_iteration(folder / step_files.CHECKPOINT)
        if it is None:
            return "interrupted, and its checkpoint ckpt.pt is unreadable (cut short?): --resume stops at it; " \
                   "without --resume (or with ckpt.pt deleted) the step starts over"
        return f"interrupted: --resume continues from its checkpoint at iteration {it}; without it the step " \
               f"starts over"
    from .checkpoints import set_aside_note

    reason = why() if why else ""
    return "to run" + (f" ({reason})" if reason else "") + set_aside_note(folder) + interrupted_elsewhere(folder)


def kept_by_resume(folder: Path, trains: bool) -> int | None:
    """What ``--resume`` keeps of a step's earlier run in ``folder``: the iterations its checkpoint holds (a training
    step, ``trains``), or the images it has written the output of (an inference step); 0 for none, None for a
    checkpoint it cannot read (``--resume`` stops at it)."""
    if not trains:
        return _images_written(folder)
    from .checkpoints import checkpoint_iteration

    ckpt = folder / step_files.CHECKPOINT
    return checkpoint_iteration(ckpt) if ckpt.is_file() else 0


def has_progress(folder: Path) -> bool:
    """Whether an earlier run of a step left something in ``folder`` that ``--resume`` continues or speaks of: a
    checkpoint, images written, a training log, or a run set aside (``ckpt.prev.pt``)."""
    from .checkpoints import PREV_CHECKPOINT

    return (any((folder / name).is_file() for name in (step_files.CHECKPOINT, step_files.LOG, PREV_CHECKPOINT))
            or _images_written(folder) > 0)


def interrupted_elsewhere(folder: Path) -> str:
    """A note naming another folder of the same step, with other settings, that an interruption left (so
    ``--resume`` with changed settings does not quietly start over), or ``""``."""
    prefix = folder.name.rsplit("-", 1)[0] + "-"
    others = [f for f in folder.parent.glob(f"{prefix}*") if f != folder and f.is_dir()
              and f.name.removeprefix(prefix).isalnum() and not is_done(f)
              and not held(_lock_path(f))                                    # not one that runs now
              and ((f / step_files.CHECKPOINT).is_file() or _images_written(f))]
    if not others:
        return ""
    latest = max(others, key=lambda f: f.stat().st_mtime)
    return (f"; an interrupted run of this step with other settings is in {latest.name} (--resume continues only "
            f"a run of the same settings: its config.json says which)")


def why_to_run(cfg: Profile, step: str) -> str:
    """Why ``step`` has no complete folder for ``cfg`` (the dry run's words): the step it reads is to run first,
    or the settings in which the nearest complete run of it in the run folder differs, or that none is there."""
    prev = upstream(cfg, step)
    if prev is not None and not is_done(step_dir(cfg, prev)):
        return f"after {COMMANDS[prev]}, whose output it reads"
    if step == "seg" and cfg.seg.init == "cls" and not is_done(step_dir(cfg, "cls")):
        return "after train-cls, whose trunk it starts from (seg.init=cls)"
    here = flat_settings(json.loads(json.dumps(step_config(cfg, step), default=str)))
    nearest: tuple[Path, list[str], dict] | None = None
    for other in sorted(cfg.run_dir.glob(f"{step}-*")):
        config = config_of(other).get("config") if is_done(other) else None
        there = flat_settings(config) if isinstance(config, dict) else None
        if there is not None:
            differ = [k for k in sorted(here.keys() | there.keys()) if here.get(k, "unset") != there.get(k, "unset")]
            if differ and (nearest is None or len(differ) < len(nearest[1])):
                nearest = (other, differ, there)
    if nearest is None:
        return f"no complete run of it in {cfg.run_dir}"
    other, differ, there = nearest
    inputs = {"upstream": f"another {COMMANDS[prev]} run" if prev else None, "init_from": "another train-cls run"}
    said = [f"{k} ({inputs[k]})" if inputs.get(k) and k in here and k in there else
            f"{k}: {_as_typed(there.get(k, 'unset'))} there, {_as_typed(here.get(k, 'unset'))} here"
            for k in differ[:3]]
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    return f"the complete {other.name} differs in {'; '.join(said)}{more}"


def _as_typed(value) -> str:
    """A setting as one types it on the command line (YAML): ``true``, ``[241, 321]``, ``0.9``, ``.inf``."""
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return value if isinstance(value, str) and value else json.dumps(value)     # an empty text: ""


def flat_settings(d: dict, prefix: str = "") -> dict:
    """A nested settings dict (a step's ``config.json``) as ``{"seg.theta_fg": 0.9, ...}``."""
    out = {}
    for k, v in d.items():
        out.update(flat_settings(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _images_written(folder: Path) -> int:
    """The images an inference step has written the output of into ``folder``: pseudo labels, predictions,
    predictions in the evaluation server's layout, or seed cues."""
    written = sum(1 for pattern in ("labels/*.png", "pred/*.png", "results/**/*.png") for _ in folder.glob(pattern))
    for part in folder.glob(f"{step_files.CUE_PARTS}/[!.]*.npz"):     # seeds: a few hundred images' cues a file
        try:
            with np.load(part) as z:
                written += len(z["ids"])
        except Exception:  # noqa: BLE001 (a damaged file: the step says so when it reads it)
            pass
    return written


def _images(folder: Path) -> int | None:
    """The number of images of the split that a step folder's ``config.json`` names (None: unknown): the
    evaluated split for ``evaluate``, else the training split."""
    config = config_of(folder).get("config")
    try:
        data = config["data"]
        return len(VOCSegmentation(data["root"], config["eval"]["split"] if "eval" in config else data["train_split"]))
    except (InputError, KeyError, TypeError):
        return None


def require(cfg: Profile, step: str) -> Path:
    """The completed output folder of ``step``, or an InputError saying which command makes it."""
    folder = step_dir(cfg, step)
    if not is_done(folder):
        raise InputError(f"step '{COMMANDS[step]}' has no complete output for this profile in {folder}; "
                         f"run `dsrg {COMMANDS[step]}` (or `dsrg run`) with the same profile and overrides first")
    return folder


def start(cfg: Profile, step: str, splits: dict[str, dict]) -> Path:
    """Create ``step``'s folder (if needed) and write its ``config.json``, with the image lists it reads
    (:func:`dsrg.run.split_lists.to_keep`; none: ``{}``); return the folder."""
    from .provenance import code

    code()                                  # taken once: the code this process runs, before anyone edits a file
    folder = step_dir(cfg, step)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"out: cannot create the step folder {folder} ({exc.strerror}); expected a folder to "
                         f"write the run into (out=... or, by default, runs/<profile>)") from None
    write_json(folder / step_files.CONFIG, {"step": COMMANDS[step], "hash": step_hash(cfg, step),
                                        "config": step_config(cfg, step), "profile": cfg.name,
                                        **({"splits": splits} if splits else {})})
    return folder


def config_of(folder: Path) -> dict:
    """A step folder's ``config.json`` (an empty dict where it has none, or one that cannot be read)."""
    try:
        info = read_json(folder / step_files.CONFIG, "a step's settings")
    except (OSError, InputError):
        return {}
    return info if isinstance(info, dict) else {}


def finish(folder: Path, started: float, resumed_at_iteration: int = 0, resumed_with_images: int = 0,
           earlier_s: float = 0.0, sessions_before: int = 0, **summary) -> dict:
    """Write ``done.json`` (wall time and a summary) last, marking the step complete. A resumed step says where
    it resumed (a training step's iteration, or the images an inference step found written), as its wall time
    counts from there (:func:`step_state`); a step resumed also gives ``wall_s_total``, with ``earlier_s``, the
    earlier sessions' time up to the checkpoint it resumed from, or up to the last output they kept
    (:class:`dsrg.run.clock.Sessions`; where that is not known, no ``wall_s_total``), and ``sessions``, how many
    sessions that total adds up, this one and the ``sessions_before`` (where those are known)."""
    from .dist import machine, processes, threads
    from .provenance import code

    resumed = {k: v for k, v in (("resumed_at_iteration", resumed_at_iteration),
                                 ("resumed_with_images", resumed_with_images)) if v}
    wall = time.perf_counter() - started
    total = {"wall_s_total": round(wall + earlier_s, 2)} if resumed and earlier_s else {}
    if total and (count := clock.next_count(sessions_before, earlier_s)):
        total["sessions"] = count
    info = {"wall_s": round(wall, 2), **total, "machine": machine(), "threads": threads(), "processes": processes(),
            "code": code(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **summary, **resumed}
    (folder / step_files.ELAPSED).unlink(missing_ok=True)      # an inference step's while it ran: in done.json now
    write_json(folder / step_files.DONE, info)
    return info
