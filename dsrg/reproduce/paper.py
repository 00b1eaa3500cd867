"""The paper's reported numbers, as pandas DataFrames, for showing ours beside the paper's.

All numbers live in one data file, ``dsrg/reproduce/paper_results.yaml``, transcribed from Huang et al.,
"Weakly-Supervised Semantic Segmentation Network with Deep Seeded Region Growing", CVPR 2018
(the text in ``shared/paper/dsrg-cvpr2018.md``). Values are percent, exactly as printed; a cell the text
does not give is null there and NaN here, with a note in ``df.attrs["notes"]``.

Every DataFrame carries ``attrs["source"]`` (``"Table 2"``, ``"Figure 4"``, ...), ``attrs["caption"]`` and
``attrs["notes"]``, so that a notebook can write::

    from dsrg.reproduce import paper
    t2 = paper.table2()
    print(f"Paper, {t2.attrs['source']}: {t2.attrs['caption']}")
"""

from __future__ import annotations

import copy
import functools
from importlib import resources

import pandas as pd
import yaml

RESOURCE = "paper_results.yaml"


@functools.cache
def _raw() -> dict:
    text = resources.files(__package__).joinpath(RESOURCE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load() -> dict:
    """The whole of ``paper_results.yaml`` as a dict (parsed once; each call returns a fresh copy).

    Keys: ``paper``, ``table1``-``table4``, ``fig4``, ``seeds``, ``setup`` (Section 4.1's settings),
    ``claims`` (other numbers stated in the text) and ``notes``.
    """
    return copy.deepcopy(_raw())


def _attrs(df: pd.DataFrame, block: dict, **extra) -> pd.DataFrame:
    df.attrs.update(source=block["source"], caption=block.get("caption", ""), metric=block.get("metric", ""),
                    notes=list(block.get("notes", [])), **extra)
    return df


def table1() -> pd.DataFrame:
    """Table 1: mIoU (%) of weakly-supervised methods on PASCAL VOC 2012 val and test.

    One row per method in the paper's order, columns ``method, ref, group, implicit_supervision, training,
    val, test``. ``group`` is the table's block: ``implicit`` (methods marked * / †, which implicitly use
    pixel-level / box supervision), ``image_labels``, ``dsrg`` (the two DSRG rows). ``ref`` is the paper's
    reference number; ``training`` the "Training" column as printed ("10k", "700k", ...).
    ``attrs["footnotes"]`` holds the evaluation-server links of the DSRG test results.
    """
    block = load()["table1"]
    df = pd.DataFrame(block["rows"], columns=block["columns"])
    df["ref"] = df["ref"].astype("Int64")
    return _attrs(df, block, groups=block["groups"], footnotes=block["footnotes"])


def table2() -> pd.DataFrame:
    """Table 2: per-class IoU (%) and mIoU of the ablation settings on VOC 2012 val (VGG16).

    Index ``setting`` (baseline, +BSL, +DSRG, +Retrain); columns the 21 classes as printed (bkg, plane,
    ..., tv), then ``mIoU``. ``attrs["descriptions"]`` says what each setting is (Section 4.4);
    ``attrs["miou_not_rounded_mean"]`` lists the rows whose printed mIoU is not the rounded mean of their
    printed per-class values (+BSL; see the notes).
    """
    block = load()["table2"]
    classes = block["classes"]
    df = pd.DataFrame([r["per_class"] + [r["miou"]] for r in block["rows"]],
                      index=pd.Index([r["name"] for r in block["rows"]], name="setting"),
                      columns=[*classes, "mIoU"])
    return _attrs(df, block, classes=list(classes), descriptions=block["descriptions"],
                  miou_not_rounded_mean=list(block["miou_not_rounded_mean"]))


def table3() -> pd.DataFrame:
    """Table 3: per-class IoU (%) on COCO val of SEC, BFBP and DSRG (VGG16; the paper's "Ours").

    Index ``class``: the 81 classes (background first) in the paper's order; columns ``SEC, BFBP, DSRG``.
    DSRG's person IoU is missing from the paper's text and is NaN. The printed mean-IoU row is in
    ``attrs["miou"]`` (``{"SEC": 22.4, "BFBP": 20.4, "DSRG": 26.0}``), not in the frame.
    """
    block = load()["table3"]
    rows = block["rows"]
    df = pd.DataFrame([r[1:] for r in rows], index=pd.Index([r[0] for r in rows], name="class"),
                      columns=block["columns"], dtype=float)
    return _attrs(df, block, miou=dict(block["miou"]), split=block["split"],
                  category_labels_as_printed=dict(block["category_labels_as_printed"]))


def table4() -> pd.DataFrame:
    """Table 4: VOC 2012 val mIoU (%) over the growing thresholds, as printed with two decimals.

    Index ``theta_b`` (0.99, 0.95, 0.90), columns ``theta_f`` (0.99, 0.95, 0.90, 0.85, 0.80).
    ``attrs["best"]`` is the bold cell (theta_b=0.99, theta_f=0.85: 57.69), the paper's setting.
    The one-sided variants of Section 4.4's text are :func:`table4_one_sided`.
    """
    block = load()["table4"]
    df = pd.DataFrame(block["miou"], index=pd.Index(block["theta_b"], name="theta_b"),
                      columns=pd.Index(block["theta_f"], name="theta_f"))
    return _attrs(df, block, best=dict(block["best"]))


def table4_one_sided() -> pd.DataFrame:
    """Section 4.4 (text after Table 4): growing one side only, VOC 2012 val mIoU (%).

    Columns ``theta_b, theta_f, miou, grows``; an infinite threshold (``math.inf``) means that side never
    grows: theta_b=inf, theta_f=0.85 gives 55.9; theta_b=0.99, theta_f=inf gives 54.3.
    """
    block = load()["table4"]
    df = pd.DataFrame(block["one_sided"], columns=["theta_b", "theta_f", "miou", "grows"])
    return _attrs(df, {**block, "source": "Section 4.4", "caption": "Region growing for foreground or background only"})


def fig4() -> pd.DataFrame:
    """Figure 4: quality (%) of the dynamic supervision against VOC ground truth, by training epoch.

    Index ``epoch``; columns ``precision, recall, iou``. Only epochs 0 (the seed cues) and 12 are known:
    the paper states them in the text of Section 4.5 (``attrs["from_text"]`` is True); the curves in
    between are only in the plot, which the text does not contain.
    """
    block = load()["fig4"]
    df = pd.DataFrame(block["points"]).set_index("epoch")[["precision", "recall", "iou"]]
    return _attrs(df, block, from_text=bool(block["from_text"]))


# Not the paper's numbers: DSRG step 1 in the authors' public run script (shared/reference/
# official-implementation.md, "Schedules": 8000 iterations of batch 20 over train_aug's 10,582 images, "~15
# epochs"). The paper gives neither an iteration count nor a number of epochs; its Fig. 4 text reports epoch 12.
AUTHORS_STEP1 = {"iterations": 8000, "batch_size": 20, "train_images": 10582,
                 "source": "the authors' public code (run script), not the paper"}


def authors_step1_epochs() -> float:
    """Epochs of DSRG step 1 in the authors' public code: 8000 x 20 / 10,582 = 15.1 (``AUTHORS_STEP1``).

    An assumption for placing the paper's Fig. 4 points on a fraction-of-training axis (epoch 12 of about
    15): the paper itself does not say how long it trained.
    """
    a = AUTHORS_STEP1
    return a["iterations"] * a["batch_size"] / a["train_images"]


def claims() -> pd.DataFrame:
    """Other numbers stated in the text (gains, fully-supervised references, seed coverage, ...).

    Index ``id``; columns ``section, value, unit, text`` (``text`` quotes the sentence).
    """
    data = load()
    df = pd.DataFrame(data["claims"]).set_index("id")[["section", "value", "unit", "text"]]
    return _attrs(df, {"source": "Sections 1-4 (text)", "caption": "Quantitative statements of the text",
                       "notes": data["notes"]})


def claim(id: str) -> float:
    """The value of one claim of :func:`claims`, e.g. ``claim("coco_fully_supervised") == 40.98``."""
    for c in _raw()["claims"]:
        if c["id"] == id:
            return float(c["value"])
    raise KeyError(f"no claim {id!r} in {RESOURCE}; known: {[c['id'] for c in _raw()['claims']]}")

