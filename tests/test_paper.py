"""The paper's numbers (dsrg/reproduce/paper_results.yaml via dsrg.reproduce.paper): shapes, the headline values,
and the consistency of each printed mIoU with its per-class values, a check on the transcription itself.

Where the paper's text is at hand (shared/paper/dsrg-cvpr2018.md), its tables are also parsed and compared
cell by cell with the data file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from dsrg.reproduce import paper

ROOT = Path(__file__).resolve().parents[1]
PAPER_MD = next((p for p in (ROOT / "shared/paper/dsrg-cvpr2018.md", ROOT.parent / "shared/paper/dsrg-cvpr2018.md")
                 if p.exists()), None)


def rounds_to(values, printed: float) -> bool:
    """The mean of ``values`` rounded to one decimal is ``printed`` (the paper prints one decimal)."""
    return round(sum(values) / len(values) + 1e-9, 1) == printed


# --- the data file and the loader -------------------------------------------------------------------------

def test_the_data_file_ships_with_the_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dsrg = \[.*"reproduce/\*\.yaml"', pyproject, re.M), \
        "package-data must include dsrg/reproduce/*.yaml"
    assert (Path(paper.__file__).parent / paper.RESOURCE).is_file()


def test_load_returns_every_block_and_a_fresh_copy():
    data = paper.load()
    assert {"table1", "table2", "table3", "table4", "fig4", "seeds", "setup", "claims", "notes"} <= set(data)
    data["table1"]["rows"].clear()
    assert paper.load()["table1"]["rows"], "load() must not hand out the cached dict"


@pytest.mark.parametrize("make, source", [(paper.table1, "Table 1"), (paper.table2, "Table 2"),
                                          (paper.table3, "Table 3"), (paper.table4, "Table 4"),
                                          (paper.table4_one_sided, "Section 4.4"), (paper.fig4, "Figure 4")])
def test_every_frame_says_where_its_numbers_come_from(make, source):
    df = make()
    assert df.attrs["source"] == source and df.attrs["caption"]


# --- Table 1 ----------------------------------------------------------------------------------------------

def test_table1_has_dsrg_val_and_test():
    t1 = paper.table1().set_index("method")
    assert t1.loc["DSRG (VGG16)", ["val", "test"]].tolist() == [59.0, 60.4]
    assert t1.loc["DSRG (Resnet101)", ["val", "test"]].tolist() == [61.4, 63.2]
    assert t1.loc["SEC", ["val", "test"]].tolist() == [50.7, 51.7]
    assert t1.loc["DCSP", ["val", "test"]].tolist() == [58.6, 59.2]


def test_table1_shape_and_groups():
    t1 = paper.table1()
    assert t1.shape == (19, 7)
    assert t1["group"].value_counts().to_dict() == {"image_labels": 12, "implicit": 5, "dsrg": 2}
    implicit = t1[t1.group == "implicit"].set_index("method")["implicit_supervision"]
    assert implicit.to_dict() == {"SN_B": "pixel", "MIL-seg": "pixel", "TransferNet": "pixel",
                                  "AF-MCG": "pixel", "GuidedSeg": "box"}
    # Section 4.2: the methods with more training images (700K, 700K, 50K, 20K, 70K)
    sizes = t1.set_index("method")["training"]
    assert [sizes[m] for m in ["CCNN", "MIL-seg", "STC", "GuidedSeg", "TransferNet"]] == \
        ["700k", "700k", "50k", "20k", "70k"]


def test_table1_agrees_with_the_text():
    t1 = paper.table1().set_index("method")
    # Section 4.2: DSRG (VGG16) beats the best image-label method (DCSP) on test by 1.2
    best_other = t1[t1.group == "image_labels"]["test"].max()
    assert round(t1.loc["DSRG (VGG16)", "test"] - best_other, 1) == paper.claim("vgg16_gain_over_best_voc_test")
    # Table 1's DSRG (VGG16) val is Table 2's +Retrain
    assert t1.loc["DSRG (VGG16)", "val"] == paper.table2().loc["+Retrain", "mIoU"]


# --- Table 2 ----------------------------------------------------------------------------------------------

def test_table2_has_21_classes_per_row_in_the_papers_order():
    t2 = paper.table2()
    assert t2.shape == (4, 22)
    assert list(t2.index) == ["baseline", "+BSL", "+DSRG", "+Retrain"]
    assert list(t2.columns[:3]) == ["bkg", "plane", "bike"] and list(t2.columns[-3:]) == ["train", "tv", "mIoU"]
    assert len(t2.attrs["classes"]) == 21


def test_table2_miou_is_the_rounded_mean_except_the_documented_row():
    t2 = paper.table2()
    classes = t2.attrs["classes"]
    failing = [name for name, row in t2.iterrows() if not rounds_to(row[classes], row["mIoU"])]
    assert failing == t2.attrs["miou_not_rounded_mean"] == ["+BSL"]
    # The documented exception: +BSL's 21 values average 53.705; the paper prints 53.6, off by just
    # over the rounding (true mean in [53.655, 53.755]) and equal to the truncation of the mean.
    bsl = t2.loc["+BSL"]
    mean = bsl[classes].mean()
    assert mean == pytest.approx(53.705, abs=1e-3) and bsl["mIoU"] == 53.6
    assert 0.1 < mean - bsl["mIoU"] < 0.11                           # not a rounding of any true mean
    assert bsl["mIoU"] <= mean + 0.05 and mean - 0.05 < bsl["mIoU"] + 0.1  # some true mean truncates to 53.6


def test_table2_gains_stated_in_section_4_4():
    t2 = paper.table2()["mIoU"]
    assert round(t2["+BSL"] - t2["baseline"], 1) == paper.claim("bsl_gain_over_baseline")
    assert round(t2["+DSRG"] - t2["+BSL"], 1) == paper.claim("dsrg_gain_over_bsl")
    assert (t2["+DSRG"], t2["+Retrain"]) == (paper.claim("retrain_from"), paper.claim("retrain_to"))


# --- Table 3 ----------------------------------------------------------------------------------------------

def test_table3_has_81_coco_classes_in_the_papers_order():
    t3 = paper.table3()
    assert t3.shape == (81, 3) and list(t3.columns) == ["SEC", "BFBP", "DSRG"]
    assert t3.index[0] == "background" and t3.index[1] == "person" and t3.index[-1] == "toothbrush"
    assert t3.index.is_unique
    assert list(t3.index[40:42]) == ["bottle", "wine glass"]  # where the printed table's two halves meet


def test_table3_only_missing_cell_is_dsrg_person():
    t3 = paper.table3()
    missing = t3.isna().stack()
    assert missing[missing].index.tolist() == [("person", "DSRG")]
    assert any("person" in n and "missing" in n for n in t3.attrs["notes"])


@pytest.mark.parametrize("method", ["SEC", "BFBP"])
def test_table3_miou_is_the_mean_over_81_classes(method):
    t3 = paper.table3()
    assert rounds_to(t3[method], t3.attrs["miou"][method])


def test_table3_dsrg_miou_is_consistent_with_some_person_iou():
    # DSRG's person cell is missing: the printed 26.0 must still be reachable with a person IoU in [0, 100].
    t3 = paper.table3()
    others = t3["DSRG"].dropna()
    assert len(others) == 80
    reachable = [p / 10 for p in range(1001) if rounds_to([*others, p / 10], t3.attrs["miou"]["DSRG"])]
    assert reachable and 45 < min(reachable) and max(reachable) < 57


def test_table3_gain_stated_in_section_4_6():
    miou = paper.table3().attrs["miou"]
    assert miou == {"SEC": 22.4, "BFBP": 20.4, "DSRG": 26.0}
    assert round(miou["DSRG"] - max(miou["SEC"], miou["BFBP"]), 1) == paper.claim("coco_gain_over_best")


# --- Table 4 and the one-sided variants -------------------------------------------------------------------

def test_table4_grid_has_three_theta_b_by_five_theta_f():
    t4 = paper.table4()
    assert t4.shape == (3, 5)
    assert list(t4.index) == [0.99, 0.95, 0.90] and list(t4.columns) == [0.99, 0.95, 0.90, 0.85, 0.80]
    assert t4.index.name == "theta_b" and t4.columns.name == "theta_f"


def test_table4_best_cell_is_the_papers_setting():
    t4, setup = paper.table4(), paper.load()["setup"]
    best = t4.attrs["best"]
    assert t4.to_numpy().max() == best["miou"] == t4.loc[best["theta_b"], best["theta_f"]] == 57.69
    assert (best["theta_b"], best["theta_f"]) == (setup["theta_b"], setup["theta_f"]) == (0.99, 0.85)
    # The grid is robust to the thresholds (Section 4.4): every cell within 0.5 of the best.
    assert best["miou"] - t4.to_numpy().min() < 0.5


def test_one_sided_growing_is_worse_than_both_sided():
    one = paper.table4_one_sided().set_index("grows")
    fg, bg = one.loc["foreground only"], one.loc["background only"]
    assert math.isinf(fg.theta_b) and fg.theta_f == 0.85 and fg.miou == 55.9
    assert bg.theta_b == 0.99 and math.isinf(bg.theta_f) and bg.miou == 54.3
    assert (fg.miou, bg.miou) == (paper.claim("foreground_only_growing"), paper.claim("background_only_growing"))
    assert max(one.miou) < paper.table4().attrs["best"]["miou"]


# --- Figure 4 and the seeds -------------------------------------------------------------------------------

def test_fig4_has_the_two_epochs_stated_in_the_text():
    f4 = paper.fig4()
    assert f4.attrs["from_text"] is True
    assert f4.to_dict("index") == {0: {"precision": 62.6, "recall": 32.1, "iou": 30.0},
                                   12: {"precision": 63.9, "recall": 65.4, "iou": 57.1}}
    # Section 4.5: precision stays high while recall and IoU improve
    assert f4.loc[12, "recall"] > 2 * f4.loc[0, "recall"] and f4.loc[12, "iou"] > f4.loc[0, "iou"]


def test_seed_statistics():
    seeds = paper.load()["seeds"]
    assert seeds["labelled_fraction"] == 40 == paper.claim("seed_labelled_fraction")
    assert seeds["quality"] == "fig4 epoch 0"


def test_claims_are_unique_numbers_with_a_quote():
    c = paper.claims()
    assert c.index.is_unique and len(c) >= 10
    assert pd.api.types.is_numeric_dtype(c["value"]) and c["text"].str.len().gt(10).all()
    assert paper.claim("coco_fully_supervised") == 40.98
    with pytest.raises(KeyError, match="no claim"):
        paper.claim("not_a_claim")


def test_the_profile_defaults_are_the_papers_settings():
    from dsrg.profile import Profile

    setup, prof = paper.load()["setup"], Profile()
    assert (prof.seg.theta_bg, prof.seg.theta_fg) == (setup["theta_b"], setup["theta_f"])
    assert (prof.seeds.fg_fraction, prof.seeds.bg_threshold) == (setup["fg_top_fraction"],
                                                                 setup["bg_saliency_threshold"])
    assert prof.seg.lr == prof.cls.lr == setup["lr"]             # "classification and segmentation network"


def test_the_authors_step1_length_places_the_papers_epoch_12():
    """Not the paper's: the authors' public schedule (8000 x 20 / 10,582 images), the same numbers as the
    profile's default step 1 and the train_aug count, about 15 epochs; the paper's epoch 12 is before its end."""
    from dsrg.data.sbd import TRAIN_AUG_COUNT
    from dsrg.profile import Profile

    a, prof = paper.AUTHORS_STEP1, Profile()
    assert (a["iterations"], a["batch_size"], a["train_images"]) == (prof.seg.iterations, prof.seg.batch_size,
                                                                     TRAIN_AUG_COUNT)
    assert paper.authors_step1_epochs() == pytest.approx(15.12, abs=0.01)
    assert 0 < paper.fig4().index.max() / paper.authors_step1_epochs() < 1


# --- the transcription against the paper's text -----------------------------------------------------------

def _cells(line: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in line.split("\t")]


def _num(cell: str) -> float | None:
    return float(cell.split()[0]) if cell else None


@pytest.fixture(scope="module")
def md_lines():
    if PAPER_MD is None:
        pytest.skip("shared/paper/dsrg-cvpr2018.md is not here")
    return PAPER_MD.read_text(encoding="utf-8").splitlines()


def test_table2_matches_the_papers_text(md_lines):
    header = next(_cells(line) for line in md_lines if line.startswith("Method\tbkg"))
    t2 = paper.table2()
    assert header[1:] == t2.attrs["classes"] + ["mIoU"]
    for name, row in t2.iterrows():
        printed = next(_cells(line) for line in md_lines if line.startswith(f"{name}\t"))
        assert [float(c) for c in printed[1:]] == row.tolist(), name


def test_table3_matches_the_papers_text(md_lines):
    start = next(i for i, line in enumerate(md_lines) if line.startswith("Cat.\tClass"))
    left, right = [], []
    for line in md_lines[start + 1:]:
        if not line.strip():
            break
        cells = _cells(line)
        left.append(cells[1:5])
        right.append(cells[6:10])
    printed = left + right[:-1]
    t3 = paper.table3()
    assert [r[0] for r in printed] == list(t3.index)
    for (name, *vals), (_, row) in zip(printed, t3.iterrows()):
        vals = [_num(v) for v in vals] + [None] * (3 - len(vals))
        assert vals == [None if pd.isna(v) else v for v in row], name
    assert [_num(v) for v in right[-1][1:]] == list(t3.attrs["miou"].values())


def test_table4_matches_the_papers_text(md_lines):
    start = next(i for i, line in enumerate(md_lines) if line.startswith("$\\theta_b"))
    t4 = paper.table4()
    assert [_num(c) for c in _cells(md_lines[start])[1:]] == list(t4.columns)
    for line, (theta_b, row) in zip(md_lines[start + 1:start + 4], t4.iterrows()):
        assert [_num(c) for c in _cells(line)] == [theta_b, *row]


def test_table1_matches_the_papers_text(md_lines):
    printed = {c[0]: c[1:] for c in map(_cells, md_lines) if len(c) == 4 and c[0] != "Method" and c[1]}
    for _, r in paper.table1().iterrows():
        mark = {"pixel": "*", "box": "†"}.get(r.implicit_supervision, "")
        key = r.method + mark + (f" [{r.ref}]" if not pd.isna(r.ref) else "")
        training, val, test = printed.pop(key)
        assert (training, _num(val), _num(test)) == (r.training, r.val, r.test), key
    assert printed == {}, "rows of the paper's Table 1 missing from the data file"
