"""The book's tables, ours beside the paper's, and the words glued from measured numbers.

Tables are pandas DataFrames saved as CSV (:func:`save_table`) and shown on a page by :func:`show`; the
caption with dataset, profile and machine comes from :meth:`dsrg.reproduce.experiments.Experiment.provenance`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.voc import IGNORE, read_label_png
from ..errors import InputError
from ..files import atomic_path
from . import sources


#: What a table shows where it has no value (the paper reports none, a class is absent, ...).
DASH = "–"


def show(df: pd.DataFrame, digits: int = 1, paper: str | None = "paper", shorten: dict[str, str] | None = None,
         caption: str | None = None, formats: dict[str, str] | None = None):
    """``df`` as a page shows it (a pandas Styler, HTML in the book): numbers to ``digits`` decimals, a dash
    (:data:`DASH`) where there is no value, never ``NaN``; the index only where it names the rows (not a
    0, 1, 2, ... range); the rows of the paper (index label, or its first level, equal to ``paper``) in grey
    italics; labels in ``shorten`` (full text -> short) shortened, with the full text in the caption;
    ``formats``: a format string for some columns (``{"mean |dQ|": "{:.1e}"}``)."""
    t = df.copy()
    numbered = isinstance(t.index, pd.RangeIndex) and t.index.name is None     # 0, 1, 2, ...: no meaning
    notes = []
    if shorten:
        labels = {v for i in range(t.index.nlevels) for v in t.index.get_level_values(i)} | \
            {v for i in range(t.columns.nlevels) for v in t.columns.get_level_values(i)}
        used = {full: short for full, short in shorten.items() if full in labels or t.isin([full]).to_numpy().any()}
        t = t.rename(index=used, columns=used).replace(used)
        notes = [f"{short}: {full}" for full, short in used.items()]
    styler = t.style.format(precision=digits, na_rep=DASH, thousands=",")
    for axis in ("index", "columns"):          # labels that are numbers (thresholds, epochs): as short as they go
        styler = styler.format_index(lambda v: f"{v:g}" if isinstance(v, float) else v, axis=axis)
    if formats:
        chosen = {k: v for k, v in formats.items() if k in t.columns}
        styler = styler.format(chosen, na_rep=DASH, subset=list(chosen))      # the other columns keep digits
    if numbered:
        styler = styler.hide(axis="index")
    elif paper is not None:                  # the paper's rows told apart at a glance
        grey = ["color: #666; font-style: italic" if label == paper else "" for label in t.index.get_level_values(0)]
        styler = styler.apply(lambda column: grey, axis=0)
        styler = styler.map_index(lambda label: "color: #666; font-style: italic" if label == paper else "", axis=0,
                                  level=0)
    styler = styler.set_table_styles([{"selector": "td, th", "props": "padding: 0.15em 0.7em;"}], overwrite=False)
    text = " ".join(part for part in (caption, "; ".join(notes) + "." if notes else None) if part)
    return styler.set_caption(text) if text else styler


def beside(paper: pd.Series, ours: pd.Series, paper_label: str = "paper", ours_label: str = "ours") -> pd.DataFrame:
    """Rows = the union of both indexes (paper's order first); columns paper, ours and ours - paper."""
    index = list(paper.index) + [k for k in ours.index if k not in paper.index]
    df = pd.DataFrame({paper_label: paper.reindex(index), ours_label: ours.reindex(index)})
    df[f"{ours_label} - {paper_label}"] = df[ours_label] - df[paper_label]
    return df


def save_table(df: pd.DataFrame, path_stem: str | os.PathLike, source: str, digits: int = 2,
               index: bool = True) -> Path:
    """Write ``df`` (rounded to ``digits``) to ``<stem>.csv`` atomically; returns the path. ``source``, what
    made it (its page's caption line), goes into the folder's ``sources.json``."""
    path = Path(path_stem).with_suffix(".csv")
    label = None                        # a grid's two names (theta_b \ theta_f) in its corner, where CSV keeps one
    if index and df.columns.nlevels == 1 and df.columns.name and df.index.nlevels == 1 and df.index.name:
        label = f"{df.index.name} \\ {df.columns.name}"
    with atomic_path(path) as tmp:
        df.round(digits).to_csv(tmp, index=index, index_label=label)
    sources.record([path], source)
    return path


def eval_setting(cfg) -> str:
    """How a profile's ``evaluate`` step tests a model, in words, from ``cfg.eval`` (so an override such as
    ``eval.crf=false`` or ``eval.scales=[1.0]`` is what the page says).

    E.g. ``"scales 0.75, 1, 1.25 of the image size (logits summed), then the dense CRF (s = 4)"``.
    """
    return _test_words([float(s) for s in cfg.eval.scales], cfg.eval.crf, float(cfg.eval.crf_scale))


#: The scales of the authors' test on each dataset (logits summed, then the dense CRF at s = 1).
AUTHORS_TEST = {"voc": [0.75, 1.0, 1.25], "coco": [1.0]}


def authors_test(cfg, dataset: str = "voc") -> str:
    """A sentence for the pages: whether ``cfg.eval`` tests as the authors' code does on ``dataset`` (the scales
    of :data:`AUTHORS_TEST`, logits summed, then the dense CRF at s = 1), and if not, what theirs is."""
    theirs = AUTHORS_TEST[dataset]
    if [float(s) for s in cfg.eval.scales] == theirs and cfg.eval.crf and float(cfg.eval.crf_scale) == 1.0:
        return "That is the authors' test."
    return f"The authors' code tests at {_test_words(theirs, True, 1.0)}: this profile's test is not theirs."


def _test_words(scales: list[float], crf: bool, crf_scale: float) -> str:
    sizes = ", ".join(f"{s:g}" for s in scales)
    text = (f"scales {sizes} of the image size (logits summed)" if len(scales) > 1
            else f"one scale, {sizes}x the image size")
    return text + (f", then the dense CRF (s = {crf_scale:g})" if crf else ", no CRF")


def label_shares(experiment) -> pd.DataFrame:
    """Share of each class among the evaluated pixels: in ``experiment``'s predictions and in the ground truth.

    Reads the prediction PNGs that ``evaluate`` wrote and the split's label maps (pixels labelled 255 in
    the ground truth are left out of both). Returns a DataFrame indexed by class name with columns
    ``predicted`` and ``ground truth`` (fractions summing to 1).
    """
    split = experiment.metrics()["split"]
    ds = experiment.dataset(split)
    pred_dir = experiment.predictions()
    k = ds.num_classes
    pred = np.zeros(k, np.int64)
    true = np.zeros(k, np.int64)
    for i, image_id in enumerate(ds.ids):
        gt = np.asarray(ds.mask(i))
        p = read_label_png(pred_dir / f"{image_id}.png", k)
        valid = gt != IGNORE
        pred += np.bincount(np.asarray(p)[valid].ravel(), minlength=k)[:k]
        true += np.bincount(gt[valid].ravel(), minlength=k)[:k]
    return pd.DataFrame({"predicted": pred / max(pred.sum(), 1), "ground truth": true / max(true.sum(), 1)},
                        index=pd.Index(ds.class_names, name="class"))


def compare_word(a: float, b: float, higher: str = "higher", lower: str = "lower", same: str = "the same",
                 tol: float = 0.05) -> str:
    """``higher`` if ``a > b + tol``, ``lower`` if ``a < b - tol``, else ``same``: for sentences glued from
    measured numbers, so that the words follow the numbers of the run."""
    return higher if a > b + tol else lower if a < b - tol else same


def shares_sentence(label: str, experiment) -> str:
    """Where ``experiment``'s model (a row named ``label``) puts the evaluated pixels, in a sentence: the share it
    labels background beside the ground truth's (:func:`label_shares`), and how many of the ground truth's
    object classes score an IoU of zero."""
    shares, iou = label_shares(experiment), experiment.per_class_iou()
    present = shares.index[1:][shares["ground truth"].iloc[1:] > 0]   # object classes of the evaluated images
    zero, scored = int((iou.reindex(present) == 0).sum()), len(present)
    zeros = (f"all {scored} object classes of the ground truth score an IoU of zero" if scored and zero == scored
             else f"{zero} of the {scored} object classes of the ground truth score an IoU of zero" if zero else
             f"none of the {scored} object classes of the ground truth scores an IoU of zero")
    return (f"{label} ({100 * experiment.miou:.1f} mIoU) labels {100 * shares.iloc[0]['predicted']:.1f}% "
            f"of the evaluated pixels background (the ground truth: {100 * shares.iloc[0]['ground truth']:.1f}%), "
            f"and {zeros}.")


def stages(experiments: dict) -> pd.DataFrame:
    """What each DSRG row learned from, stage by stage, against the ground truth (%): its seeds (precision,
    recall, IoU on the output grid; Fig. 4's epoch 0), the supervision after the DSRG step's last epoch
    (``grown``: the seeds and what grew from them; ``epochs``: how many), the pseudo labels of a row that
    retrained (mIoU) and the model's mIoU on the evaluated split.
    One row per experiment (``{label: Experiment}``); a stage a row did not run: no value."""
    rows = {}
    for label, exp in experiments.items():
        curve = exp.supervision()
        first, last = curve.iloc[0], curve.iloc[-1]
        quality = exp.training_quality()
        rows[label] = {"seeds: precision": 100 * first["precision"], "seeds: recall": 100 * first["recall"],
                       "seeds: IoU": 100 * first["iou"],
                       "grown: precision": 100 * last["precision"], "grown: recall": 100 * last["recall"],
                       "grown: IoU": 100 * last["iou"], "epochs": int(last["epoch"]),
                       "pseudo labels: mIoU": quality["IoU"].get("pseudo labels", np.nan),
                       "model: mIoU": 100 * exp.miou}
    return pd.DataFrame.from_dict(rows, orient="index")


#: The stages of :func:`stages` that :func:`where_rows_part` compares, in the order a run makes them, in words.
STAGE_WORDS = {"seeds: IoU": "in the seeds", "grown: IoU": "in the DSRG step, where each network's predictions "
               "decide what grows", "pseudo labels: mIoU": "in the pseudo labels",
               "model: mIoU": "in the evaluated models"}


def where_rows_part(stages: pd.DataFrame, first: str, second: str, points: float = 1.0) -> str:
    """The first stage of :data:`STAGE_WORDS` where rows ``first`` and ``second`` of :func:`stages` differ by
    ``points`` or more, in a sentence with the difference (``second`` minus ``first``); what they share before it."""
    a, b = stages.loc[first], stages.loc[second]
    for stage, where in STAGE_WORDS.items():
        gap = b[stage] - a[stage]
        if np.isfinite(gap) and abs(gap) >= points:
            return (f"The rows part {where}: {second} {b[stage]:.1f} against {first}'s {a[stage]:.1f} "
                    f"({stage}, {gap:+.1f} points).")
    return f"{first} and {second} stay within {points:g} point of each other at every stage."


def _gap(stages: pd.DataFrame, start: str, changed: str, target: str, stage: str) -> tuple[float, float, float]:
    """``stage``'s values of rows ``start``, ``changed`` and ``target`` of :func:`stages`, as shown (one decimal)."""
    values = [float(stages.loc[row, stage]) for row in (start, changed, target)]
    if not all(np.isfinite(values)):
        raise InputError(f"{stage}: not measured for every one of {start}, {changed} and {target}")
    return tuple(round(v, 1) for v in values)


def gap_closed(stages: pd.DataFrame, start: str, changed: str, target: str, stage: str, change: str,
               what: str) -> str:
    """How far row ``changed`` of :func:`stages` (row ``start`` with ``change``, one of the settings in which
    row ``target`` differs) moves ``stage`` (``what``, in words) from ``start``'s value towards ``target``'s, in
    a sentence; on the values as shown, a point or more being a gap or a move."""
    a, b, c = _gap(stages, start, changed, target, stage)
    gap, moved = round(c - a, 1), round(b - a, 1)
    said = f"{what}: {changed} {b:.1f}, against {start} {a:.1f} and {target} {c:.1f}"
    if abs(gap) < 1:
        return (f"{said}; {target} is within a point of {start}, no gap to close"
                + (f" ({change} moves it {moved:+.1f} points)." if abs(moved) >= 1 else "."))
    if abs(moved) < 1:
        return f"{said}: {change} leaves the gap as it was ({moved:+.1f} of {gap:+.1f} points)."
    share = moved / gap
    how = (f"{change} widens the gap" if share < 0 else f"{change} closes the gap and goes past it" if share > 1
           else f"{change} closes {share:.0%} of the gap")
    return f"{said}: {how} ({moved:+.1f} of {gap:+.1f} points)."


def gap_left(stages: pd.DataFrame, start: str, changed: str, target: str, stage: str, where: str,
             differs: str) -> str:
    """Where :func:`gap_closed` finds a gap that the change left open (a part of it closed, none, or widened), a
    sentence on what is left of ``stage`` (``where``: e.g. "in the grown supervision") between rows ``changed``
    and ``target`` and where it may lie (``differs``); ``""`` where there was no gap, or the change closed it to
    within a point or went past it."""
    a, b, c = _gap(stages, start, changed, target, stage)
    gap, left = round(c - a, 1), round(c - b, 1)
    if abs(gap) < 1 or abs(left) < 1 or (left > 0) != (gap > 0):
        return ""
    return (f"{where[:1].upper()}{where[1:]}, {target} stays {abs(left):.1f} points "
            f"{'above' if left > 0 else 'below'} {changed}: {differs}.")


def trunk_by_head(stages: pd.DataFrame, cells: dict[tuple[str, str], str], stage: str) -> pd.DataFrame:
    """``stage``'s values of the rows of :func:`stages` that ``cells`` names by (trunk, head), two by two: a row
    per trunk, a column per head, in ``cells``' order (the first trunk and head being the reference ones)."""
    trunks, heads = list(dict.fromkeys(t for t, _ in cells)), list(dict.fromkeys(h for _, h in cells))
    grid = pd.DataFrame([[float(stages.loc[cells[(t, h)], stage]) for h in heads] for t in trunks],
                        index=pd.Index(trunks, name="trunk"), columns=pd.Index(heads, name="head"))
    if not np.isfinite(grid.to_numpy()).all():
        raise InputError(f"{stage}: not measured for every one of {', '.join(cells.values())}")
    return grid


def trunk_or_head(grid: pd.DataFrame, what: str) -> str:
    """How a :func:`trunk_by_head` ``grid`` takes apart the gap in ``what`` (in words) between its two networks
    as they are (the first trunk under the first head, the second under the second), in sentences: the second
    trunk alone (under the first head), the second head alone (on the first trunk), and what the two add only
    together (the rest of the gap); then which of the three makes half of the gap or more, or which pull against
    each other by that much. On the values as shown (one decimal), a gap of under a point being none."""
    v = grid.round(1)
    (t0, t1), (h0, h1) = list(v.index), list(v.columns)
    own0, own1 = v.loc[t0, h0], v.loc[t1, h1]
    gap = round(own1 - own0, 1) + 0.0                   # + 0.0: no "-0.0"
    trunk, head = round(v.loc[t1, h0] - own0, 1) + 0.0, round(v.loc[t0, h1] - own0, 1) + 0.0
    together = round(gap - trunk - head, 1) + 0.0
    said = (f"{what}: {t1} under {h1} {own1:.1f} against {t0} under {h0} {own0:.1f} ({gap:+.1f} points); {t1}'s "
            f"trunk alone (under {h0}) moves it {trunk:+.1f}, {h1} alone (on the {t0} trunk) {head:+.1f}, and the "
            f"two together add {together:+.1f} to the sum of those.")
    if abs(gap) < 1:
        return f"{said} There is no gap (a point or more) to take apart."
    parts = {f"{t1}'s trunk alone": trunk, f"{h1} alone": head, "the trunk and the head only together": together}
    big = {name: part for name, part in parts.items() if abs(part) >= abs(gap) / 2}
    if any(part / gap < 0 for part in big.values()):
        return (f"{said} {_and([f'{name} ({part:+.1f})' for name, part in big.items()])} pull against each other, "
                f"each by half of the gap or more: no one of the three makes it.")
    if len(big) == 1:
        return f"{said} Half of the gap or more comes from {next(iter(big))}; the others move it by less than half."
    if big:
        return f"{said} Half of the gap or more comes from each of {_and(list(big))}."
    return f"{said} No one of the three makes half of the gap."


def _and(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def rank_verdict(ours: pd.Series, paper: pd.Series, first: str, second: str) -> str:
    """A sentence on whether our rows (``ours``, by label; a row not run: NaN) rank as the paper's do, lowest
    first, and ``second`` minus ``first`` in points in each (where both ran)."""
    ran = [k for k in ours.index if pd.notna(ours[k]) and pd.notna(paper.get(k))]
    mine = sorted(ran, key=lambda k: ours[k])
    theirs = sorted(ran, key=lambda k: paper[k])
    said = (f"Our rows rank as the paper's do, lowest first: {', '.join(mine)}" if mine == theirs else
            f"Our rows rank otherwise than the paper's: {', '.join(mine)} here, {', '.join(theirs)} there, "
            f"lowest first")
    if first in ran and second in ran:
        said += (f"; {second} minus {first}: {ours[second] - ours[first]:+.1f} points here, "
                 f"{paper[second] - paper[first]:+.1f} in the paper")
    return said + "."
