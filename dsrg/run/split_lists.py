"""The image lists a step folder was made from: on a real-data root (``data.dataset=voc``) a step's
``config.json`` keeps the list of the split it read (:func:`records`), and a command that would run, reuse or
read a complete step whose list has changed since is refused before it starts (:func:`refuse_changed`), as is
``--resume`` of an interrupted step on a changed list. The record is not in the step's hash: the run folders
made before it keep their names."""

from __future__ import annotations

import hashlib
from operator import attrgetter
from typing import Sequence

import numpy as np

from ..data.cues import CueStore
from ..data.voc import VOCSegmentation, split_file_ids, split_path
from ..errors import InputError, name_some, plural
from ..profile import Profile
from . import folders, step_files


def keys(step: str) -> list[str]:
    """The settings that name the splits ``step`` reads: the evaluated split, else the training split (and the
    classifier's validation split)."""
    return ["eval.split"] if step == "eval" else ["data.train_split"] + (["data.val_split"] if step == "cls" else [])


def records(cfg: Profile, step: str) -> dict[str, dict]:
    """The image list of the split ``step`` reads from a real-data root, as it is now:
    ``{split: {"images": n, "digest": d, "set": e}}``, ``d`` a digest of the ids in the order listed, ``e`` of
    them sorted. Not the classifier's validation split (its mAP is a report: another list would refuse its
    trained network), nor an embedded dataset's (named by its settings), nor a list that cannot be read
    (pre-flight names it where a step to run reads it)."""
    if cfg.data.dataset != "voc":
        return {}
    out = {}
    for key in keys(step)[:1]:
        split = attrgetter(key)(cfg)
        path = split_path(cfg.data.root, split)
        try:
            ids = split_file_ids(path) if path.is_file() else None
        except (OSError, InputError):
            ids = None
        if ids is not None:
            out[split] = {"images": len(ids), "digest": _digest(ids), "set": _digest(sorted(ids))}
    return out


def _digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def to_keep(cfg: Profile, step: str) -> dict[str, dict]:
    """What :func:`dsrg.run.folders.start` keeps of :func:`records`: nothing for an interrupted folder made before
    the record, as which list it began on is not known."""
    folder = folders.step_dir(cfg, step)
    if folders.has_progress(folder) and "splits" not in folders.config_of(folder):
        return {}
    return records(cfg, step)


def changed(cfg: Profile, step: str) -> str | None:
    """How the image list that the folder of ``step`` recorded (complete or interrupted) differs from the list now,
    in words; None where it does not, or the folder has no record (made before the record, or by no run yet)."""
    then = folders.config_of(folders.step_dir(cfg, step)).get("splits") or {}
    now = records(cfg, step)
    for split, record in then.items() if isinstance(then, dict) else ():
        key = "set" if step == "eval" else "digest"        # the order of the images scored changes no score
        if split in now and isinstance(record, dict) and record.get(key) != now[split][key]:
            return (f"made from split '{split}' as {split_path(cfg.data.root, split)} listed it then; it lists "
                    f"{how_changed(record, now[split])}")
    return None


def how_changed(then: dict, now: dict) -> str:
    """How a split's list differs from the one recorded ``then`` (both as :func:`records` gives one split:
    ``images``, ``digest``, ``set``), in words: its count, its order or its images."""
    n, m = then.get("images"), now["images"]
    if n != m:
        return f"{plural(m, 'image')} now, {n} then"
    return f"the same {m} images in another order" if then.get("set") == now["set"] else \
        f"{plural(m, 'image')} as then, but other ones"


def stale(cfg: Profile) -> dict[str, str]:
    """The complete steps of ``cfg``'s run folder whose list has changed since they ran (:func:`changed`), and
    those that read the output of one: ``{step: why}``, in the pipeline's order."""
    out: dict[str, str] = {}
    for step in folders.STEPS:
        if not folders.is_done(folders.step_dir(cfg, step)):
            continue
        why = changed(cfg, step)
        above = next((r for r in reversed(folders.reads(cfg, step)) if r in out), None)
        if why or above:
            out[step] = why or f"it reads the output of {folders.COMMANDS[above]} above"
    return out


def refuse_changed(cfg: Profile, steps: Sequence[str], resume: bool = False) -> None:
    """An InputError where ``steps`` run, reuse or read a complete step of :func:`stale` (each named, with those
    made from it), or would resume an interrupted step on a changed list: their outputs are of other images than
    the list names now."""
    wanted = {step for s in steps for step in (*folders.reads(cfg, s), s)}
    named: dict[str, str] = {}                  # the stale ones read, and those made from them
    for step, why in stale(cfg).items():
        if step in wanted or any(r in named for r in folders.reads(cfg, step)):
            named[step] = why
    resumed = {s: why for s in steps if resume and s not in named and folders.has_progress(folders.step_dir(cfg, s))
               and (why := changed(cfg, s))}
    if not resumed and not named:
        return
    lines = [f"{folders.step_dir(cfg, s)} ({folders.COMMANDS[s]}): {why}" for s, why in named.items()]
    lines += [f"{folders.step_dir(cfg, s)} ({folders.COMMANDS[s]}, interrupted): {why}; --resume would go on with "
              f"the list as it is now" for s, why in resumed.items()]
    todo = ("delete the complete folders and run without --resume to start over" if named and resumed else
            "run without --resume to start over" if resumed else
            "delete the folders to run the steps again" if len(lines) > 1 else
            "delete the folder to run the step again")
    raise InputError(f"{plural(len(lines), 'step folder')} {'was' if len(lines) == 1 else 'were'} made from a split "
                     f"list that has changed since:\n  - " + "\n  - ".join(lines)
                     + f"\n{todo} on the list as it is, or restore the list (its lines in their order)")


def require_cover(cfg: Profile, steps: Sequence[str], step: str, source: str, train: VOCSegmentation) -> None:
    """Where ``step`` (train-seg, retrain) is to run, the complete output of ``source`` it reads (the seed cues, the
    pseudo labels) has every image of the training split: one made before its folder recorded its list may not."""
    folder = folders.step_dir(cfg, source)
    if step not in steps or not folders.is_done(folder):
        return
    if source == "seeds":
        try:
            with np.load(folder / step_files.CUES) as z:
                have = {str(i) for i in z["ids"]}
        except Exception:  # noqa: BLE001 (cut short or damaged: said with the folder to delete)
            have = set(CueStore.load(folder / step_files.CUES).ids)
        what, verb = "seed cues", "the seeds"
    else:
        have = {p.stem for p in (folder / "labels").glob("*.png")}
        what, verb = "pseudo labels", "them"
    missing = [image_id for image_id in train.ids if image_id not in have]
    if missing:
        raise InputError(f"the {what} in {folder} cover {len(train) - len(missing)} of the {len(train)} images of "
                         f"split '{train.split}' (none for {name_some(missing)}): they were made for another list of "
                         f"images; delete the folder {folder} to make {verb} again")
