"""What a run measured, in the last lines ``dsrg run`` (and a single step's command) prints."""

from __future__ import annotations

from pathlib import Path

from ..errors import plural
from ..profile import Profile
from ..run import folders, step_files


def closing_summary(cfg: Profile, done: dict, who: str = "dsrg run") -> list[str]:
    """``dsrg run``'s last lines (``[who]`` ahead of each), each with how many images it measures and the file it
    is read from: the classifier's validation mAP, the supervision's quality on the training set (the seeds' and,
    after train-seg's last epoch, the grown cues' precision, recall and labelled share on the output grid; the
    pseudo labels' mIoU, precision and recall), and the evaluation's mIoU. ``done``: ``{step: folder}``."""

    def info(step: str) -> dict:
        return folders.done_info(done[step]) if step in done and folders.is_done(done[step]) else {}

    def pct(q: dict, *keys: str) -> str:
        names = {"miou": "mIoU", "val_map": "mAP", "labelled_fraction": "labelled"}
        return ", ".join(f"{names.get(k, k)} {100 * q[k]:.1f}" for k in keys if q.get(k) is not None)

    def source(step: str, name: str = step_files.DONE) -> str:
        return f"  {Path(done[step]) / name}"

    def about(d: dict, *more: str) -> str:         # the images counted (a done.json of an older run may not say)
        return ", ".join([*([plural(d["images"], "image")] if d.get("images") is not None else []), *more])

    lines = []
    train, cls = cfg.data.train_split, info("cls")
    if cls.get("val_map") is not None:
        lines.append(f"[{who}] classifier on {cfg.data.val_split}: {pct(cls, 'val_map')} (%){source('cls')}")
    seeds = info("seeds")
    if seeds.get("quality"):
        grid = " x ".join(map(str, seeds.get("grid", [])))
        lines.append(f"[{who}] seeds on {train} ({about(seeds, f'on the {grid} output grid', 'class means')}): "
                     f"{pct(seeds['quality'], 'precision', 'recall', 'labelled_fraction')} (%)"
                     f"{source('seeds')}")
    grown = info("seg").get("supervision_last_epoch")
    if grown:
        lines.append(f"[{who}] grown cues on {train} (epoch {grown['epoch']}, class means): "
                     f"{pct(grown, 'precision', 'recall', 'labelled_fraction')} (%)"
                     f"{source('seg', step_files.SUPERVISION)}")
    pseudo = info("pseudo")
    if pseudo.get("quality"):
        lines.append(f"[{who}] pseudo labels on {train} ({about(pseudo) or 'all'}): "
                     f"{pct(pseudo['quality'], 'miou', 'precision', 'recall')} (%{_labelled(pseudo['quality'])})"
                     f"{source('pseudo')}")
    scored = info("eval")
    if "miou" in scored:
        lines.append(f"[{who}] mIoU on {scored['split']} ({about(scored, scored['model'] + ' model')}): "
                     f"{100 * scored['miou']:.1f} (%){source('eval', step_files.METRICS)}")
    elif scored:
        from .evaluate import SERVER_LAYOUT

        server = " for the evaluation server" if scored["predictions"] == SERVER_LAYOUT else ""
        lines.append(f"[{who}] {scored['split']} has no label maps: predictions{server} in "
                     f"{Path(done['eval']) / scored['predictions']}")
    return lines


def _labelled(quality: dict) -> str:
    """Where the labels leave out classes of the ground truth, which classes their mean precision is over (an
    all-background labelling has the precision of its background alone); else ""."""
    precision, recall = quality.get("class_precision") or [], quality.get("class_recall") or []
    labelled = [p for p in precision if p is not None]     # null: a class never labelled (no precision)
    present = [r for r in recall if r is not None]         # null: a class the ground truth does not hold
    if not any(p is None and r is not None for p, r in zip(precision, recall)):
        return ""
    return f"; precision over the {plural(len(labelled), 'class')} they label, the ground truth has {len(present)}"
