"""The run folder: one sub-folder per pipeline step, named by a hash of everything that decides its output.

    <run>/cls-<hash>/        train-cls      model.pt, log.jsonl, done.json
    <run>/seeds-<hash>/      seeds          cues.npz, quality.json, done.json
    <run>/seg-<hash>/        train-seg      model.pt, log.jsonl, supervision.csv, fig1.npz, done.json
    <run>/pseudo-<hash>/     pseudo-labels  labels/<id>.png, done.json
    <run>/retrain-<hash>/    retrain        model.pt, log.jsonl, done.json
    <run>/eval-<hash>/       evaluate       metrics.json, per_image.csv, pred/<id>.png, done.json

A step's hash covers its own config section, the data it reads and its upstream step's hash, so
changing ``seg.theta_fg`` makes a new ``seg-*``, ``pseudo-*``, ``retrain-*`` and ``eval-*`` folder
while ``cls-*`` and ``seeds-*`` are reused. Settings that do not change results (device, progress
bars, checkpoint interval, worker counts, the run folder itself) are left out of the hash.
A step is complete when its ``done.json`` exists; it is written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from .io import InputError, locked, write_json
from .profile import Profile, section_dict

STEPS = ("cls", "seeds", "seg", "pseudo", "retrain", "eval")
COMMANDS = {"cls": "train-cls", "seeds": "seeds", "seg": "train-seg", "pseudo": "pseudo-labels",
            "retrain": "retrain", "eval": "evaluate"}
_NOT_RESULTS = {"data.loader_workers", "seg.crf_workers", "seg.record_images", "seg.grow_method"}


def _strip(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if key in _NOT_RESULTS:
            continue
        out[k] = _strip(v, key + ".") if isinstance(v, dict) else v
    return out


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


def step_config(cfg: Profile, step: str) -> dict:
    """Everything that decides ``step``'s output (before the upstream hash)."""
    data = section_dict(cfg, "data")["data"]
    own: dict = {"step": step, "seed": cfg.seed, "data": data}
    if step == "eval":
        own["eval"] = section_dict(cfg, "eval")["eval"]
    else:
        own[step] = section_dict(cfg, step)[step]
    from .train import bf16_native, resolve_device

    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    if cuda:
        own["amp"] = cfg.amp and bf16_native(device)   # bf16 autocast changes the numbers where it runs
    if step == "seg" and cfg.seg.crf_backend == "auto":
        # hash the backend that will run (they differ slightly): crf.resolve_backend's rule
        from .crf import EXACT_MAX_POSITIONS
        from .models.deeplab import output_size
        small = output_size(cfg.seg.input_size, cfg.seg.backbone) ** 2 <= EXACT_MAX_POSITIONS
        own["seg"]["crf_backend"] = "exact" if cuda and small else "pydensecrf"
    if step == "seg" and cfg.seg.init == "cls":
        own["init_from"] = step_hash(cfg, "cls")
    prev = upstream(cfg, step)
    if prev is not None:
        own["upstream"] = step_hash(cfg, prev)
    return _strip(own)


def step_hash(cfg: Profile, step: str) -> str:
    text = json.dumps(step_config(cfg, step), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def step_dir(cfg: Profile, step: str) -> Path:
    if step not in STEPS:
        raise InputError(f"step: expected one of {STEPS}, got {step!r}")
    return cfg.run_dir / f"{step}-{step_hash(cfg, step)}"


def step_lock(cfg: Profile, step: str):
    """The lock (``dsrg.io.locked``) of ``step``'s folder: ``<run>/.<step>-<hash>.lock``."""
    folder = step_dir(cfg, step)
    return locked(folder.parent / f".{folder.name}.lock")


def is_done(folder: Path) -> bool:
    return (folder / "done.json").is_file()


def done_info(folder: Path) -> dict:
    return json.loads((folder / "done.json").read_text())


def read_log(path: str | Path) -> list[dict]:
    """The iterations a training step logged, in order: ``log.jsonl``, one JSON object per line with ``it``,
    ``epoch``, ``lr``, the step's losses and ``s`` (seconds). ``path``: the file or its step folder. A line
    cut short (a killed run) ends the log; the file is read as it stands, so a step still training works."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".jsonl":
        path = path / "log.jsonl"
    if not path.is_file():
        raise InputError(f"{path}: no training log here; train-cls, train-seg and retrain write log.jsonl "
                         f"in their step folder (runs/<profile>/<step>-<hash>/)")
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            int(row["it"])
        except (ValueError, KeyError, TypeError):
            break
        rows.append(row)
    return rows


def setting_labels(folders: list[Path]) -> list[str]:
    """A label per step folder for plots: the settings in which its ``config.json`` differs from the other
    folders' (``seg.theta_fg=0.9``), or the folder's name where none differ or there is no config."""
    flat = []
    for folder in folders:
        path = Path(folder) / "config.json"
        config = json.loads(path.read_text()).get("config", {}) if path.is_file() else None
        flat.append(None if config is None else _flatten(config))
    known = [f for f in flat if f is not None]
    keys = sorted({k for f in known for k in f if k not in ("upstream", "init_from")})
    differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in known}) > 1]
    labels = []
    for folder, f in zip(folders, flat):
        shown = ", ".join(f"{k}={f.get(k)}" for k in differ[:3]) if f is not None and differ else ""
        labels.append(shown + (", ..." if len(differ) > 3 and shown else "") or Path(folder).name)
    return labels


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def step_state(folder: Path) -> str:
    """What ``dsrg run`` would do with a step folder, in words: done (reused), interrupted (``--resume``
    continues from its checkpoint's iteration) or to run."""
    if is_done(folder):
        wall = done_info(folder).get("wall_s")
        return "done, reused" + (f" (took {wall:.0f} s)" if isinstance(wall, (int, float)) else "")
    if (folder / "ckpt.pt").is_file():
        from .train import checkpoint_iteration

        it = checkpoint_iteration(folder / "ckpt.pt")
        at = f" at iteration {it}" if it is not None else " (unreadable)"
        return f"interrupted: --resume continues from its checkpoint{at}; without it the step starts over"
    return "to run"


def require(cfg: Profile, step: str) -> Path:
    """The completed output folder of ``step``, or an InputError saying which command makes it."""
    folder = step_dir(cfg, step)
    if not is_done(folder):
        raise InputError(f"step '{COMMANDS[step]}' has no complete output for this profile in {folder}; "
                         f"run `dsrg {COMMANDS[step]}` (or `dsrg run`) with the same profile and overrides first")
    return folder


def start(cfg: Profile, step: str) -> Path:
    """Create ``step``'s folder (if needed) and write its ``config.json``; return the folder."""
    folder = step_dir(cfg, step)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", {"step": COMMANDS[step], "hash": step_hash(cfg, step),
                                        "config": step_config(cfg, step), "profile": cfg.name})
    return folder


def finish(folder: Path, started: float, **summary) -> dict:
    """Write ``done.json`` (wall time and a summary) last, marking the step complete."""
    from .provenance import machine

    info = {"wall_s": round(time.perf_counter() - started, 2), "machine": machine(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **summary}
    write_json(folder / "done.json", info)
    return info
