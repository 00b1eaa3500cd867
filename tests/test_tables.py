"""Tables as a page shows them: one decimal, a dash for a missing value, no meaningless index, the paper's
rows told apart, long labels shortened with their full text in the caption."""

import numpy as np
import pandas as pd
import pytest

from dsrg.errors import InputError
from dsrg.reproduce.tables import DASH, gap_closed, gap_left, show, trunk_by_head, trunk_or_head


def _cells(styler) -> list[str]:
    html = styler.to_html()
    return [cell.split(">", 1)[1].split("<", 1)[0].strip() for cell in html.split("<td")[1:]]


def test_missing_values_are_a_dash_and_numbers_have_one_decimal():
    df = pd.DataFrame({"mIoU": [59.04, np.nan], "person": [pd.NA, 12.345]}, index=["paper", "ours"])
    assert _cells(show(df)) == ["59.0", DASH, DASH, "12.3"]
    assert "nan" not in show(df).to_html().lower()


def test_a_numbered_index_is_not_shown_but_a_naming_one_is():
    assert "row_heading" not in show(pd.DataFrame({"a": [1.0, 2.0]})).to_html()
    assert "row_heading" in show(pd.DataFrame({"a": [1.0]}, index=["+DSRG"])).to_html()
    epochs = pd.DataFrame({"recall": [30.0, 60.0]}, index=pd.RangeIndex(0, 24, 12, name="epoch"))
    assert ">12<" in show(epochs).to_html()                 # a named range (the epochs) means something


def test_the_papers_rows_are_grey_and_italic():
    df = pd.DataFrame({"mIoU": [59.0, 61.0]}, index=pd.MultiIndex.from_tuples([("paper", "+DSRG"), ("ours", "+DSRG")]))
    html = show(df).to_html()
    styled = html.split("</style>")[0]
    assert styled.count("font-style: italic") >= 1 and "row0" in styled and "row1" not in styled


def test_long_labels_are_shortened_and_spelled_out_in_the_caption():
    df = pd.DataFrame({"method": ["scipy.ndimage.label per image and class", "numba"], "ms": [12.0, 1.0]})
    html = show(df, shorten={"scipy.ndimage.label per image and class": "loop"}, caption="On 2 cores.").to_html()
    assert ">loop<" in html and "<caption>On 2 cores. loop: scipy.ndimage.label per image and class.</caption>" in html


def test_a_column_format_leaves_the_other_columns_at_the_page_digits():
    df = pd.DataFrame({"threshold": [0.2], "mean |dQ|": [4.5e-9]}, index=["rbd"])
    assert _cells(show(df, formats={"mean |dQ|": "{:.1e}"})) == ["0.2", "4.5e-09"]


def test_number_labels_read_as_typed():
    grid = pd.DataFrame([[57.45, 57.59]], index=pd.Index([0.99], name="theta_b"),
                        columns=pd.Index([0.95, 0.85], name="theta_f"))
    html = show(grid, digits=2).to_html()
    assert ">0.99<" in html and ">0.85<" in html and "0.990000" not in html


def test_the_test_setting_is_said_in_words_and_against_the_authors_test():
    from dsrg.profile import load_profile
    from dsrg.reproduce.tables import authors_test, eval_setting

    paper = load_profile("voc-vgg16")
    assert eval_setting(paper) == "scales 0.75, 1, 1.25 of the image size (logits summed), then the dense CRF (s = 1)"
    assert authors_test(paper) == "That is the authors' test."
    assert authors_test(load_profile("coco-vgg16"), "coco") == "That is the authors' test."
    demo = load_profile("demo")                                 # the CRF at s = 4 on the demo's small images
    assert authors_test(demo).startswith("The authors' code tests at scales 0.75, 1, 1.25 of the image size")
    assert authors_test(load_profile("voc-vgg16", ["eval.crf=false"])).endswith("this profile's test is not theirs.")


def _stages(seeds_iou: list[float], grown_iou: list[float], pseudo: list[float], model: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"seeds: IoU": seeds_iou, "grown: IoU": grown_iou, "pseudo labels: mIoU": pseudo,
                         "model: mIoU": model}, index=["VGG16", "ResNet-101"])


def test_two_rows_part_at_the_first_stage_that_differs_by_a_point():
    from dsrg.reproduce.tables import where_rows_part

    same_seeds = _stages([38.2, 38.2], [56.3, 75.4], [61.7, 89.1], [63.3, 91.6])
    assert where_rows_part(same_seeds, "VGG16", "ResNet-101") == (
        "The rows part in the DSRG step, where each network's predictions decide what grows: ResNet-101 75.4 "
        "against VGG16's 56.3 (grown: IoU, +19.1 points).")
    assert where_rows_part(_stages([38.2, 35.0], [56.3, 75.4], [1, 1], [1, 1]), "VGG16", "ResNet-101").startswith(
        "The rows part in the seeds: ResNet-101 35.0 against VGG16's 38.2 (seeds: IoU, -3.2 points)")
    no_retrain = _stages([38.2, 38.2], [56.3, 56.9], [np.nan, np.nan], [63.3, 61.0])
    assert "in the evaluated models" in where_rows_part(no_retrain, "VGG16", "ResNet-101")   # no pseudo labels
    assert where_rows_part(_stages([1, 1], [2, 2.5], [3, 3], [4, 4.9]), "VGG16", "ResNet-101") == \
        "VGG16 and ResNet-101 stay within 1 point of each other at every stage."


def _grown(vgg: float, random: float, resnet: float) -> pd.DataFrame:
    return pd.DataFrame({"grown: IoU": [vgg, random, resnet]}, index=["VGG16", "random", "ResNet"])


def _closed(vgg: float, random: float, resnet: float) -> str:
    return gap_closed(_grown(vgg, random, resnet), "VGG16", "random", "ResNet", "grown: IoU", "the start", "Grown")


def test_a_change_closes_its_share_of_the_gap_between_two_rows_and_what_is_left_is_said():
    assert _closed(56.0, 61.0, 76.0) == ("Grown: random 61.0, against VGG16 56.0 and ResNet 76.0: the start closes "
                                         "25% of the gap (+5.0 of +20.0 points).")
    assert gap_left(_grown(56.0, 61.0, 76.0), "VGG16", "random", "ResNet", "grown: IoU", "in the grown supervision",
                    "the networks") == "In the grown supervision, ResNet stays 15.0 points above random: the networks."
    assert _closed(76.0, 61.0, 56.0).endswith("the start closes 75% of the gap (-15.0 of -20.0 points).")
    assert gap_left(_grown(76.0, 61.0, 56.0), "VGG16", "random", "ResNet", "grown: IoU", "there", "x").startswith(
        "There, ResNet stays 5.0 points below random")


@pytest.mark.parametrize("values, ends, left", [
    ((56.0, 51.0, 76.0), "the start widens the gap (-5.0 of +20.0 points).", "There, ResNet stays 25.0 points above"),
    ((56.0, 81.0, 76.0), "the start closes the gap and goes past it (+25.0 of +20.0 points).", ""),
    ((56.0, 56.4, 76.0), "the start leaves the gap as it was (+0.4 of +20.0 points).", "There, ResNet stays 19.6 points"),
    ((56.0, 75.5, 76.0), "the start closes 98% of the gap (+19.5 of +20.0 points).", ""),    # 0.5 left: closed
    ((56.02, 60.0, 56.94), "no gap to close (the start moves it +4.0 points).", ""),   # 0.92 apart: within a point
    ((56.02, 60.0, 56.98), "the start closes the gap and goes past it (+4.0 of +1.0 points).", ""),  # 56.0, 57.0
])
def test_gap_sentences_read_on_the_values_as_shown(values, ends, left):
    assert _closed(*values).endswith(ends), _closed(*values)
    said = gap_left(_grown(*values), "VGG16", "random", "ResNet", "grown: IoU", "there", "the networks")
    assert said.startswith(left) and (said == "") == (left == "")


def test_a_gap_not_measured_for_a_row_is_named():
    with pytest.raises(InputError, match="grown: IoU: not measured for every one of VGG16, random and ResNet"):
        _closed(56.0, float("nan"), 76.0)


CELLS = {("V", "v's"): "V+v", ("V", "r's"): "V+r", ("R", "v's"): "R+v", ("R", "r's"): "R+r"}


def _trunk_by_head(vv: float, vr: float, rv: float, rr: float) -> pd.DataFrame:
    stages = pd.DataFrame({"grown: IoU": {"V+v": vv, "V+r": vr, "R+v": rv, "R+r": rr}})
    return trunk_by_head(stages, CELLS, "grown: IoU")


def test_four_dsrg_steps_set_two_by_two_take_the_gap_apart_into_trunk_head_and_the_two_together():
    grid = _trunk_by_head(47.0, 45.0, 45.1, 70.8)
    assert grid.to_dict() == {"v's": {"V": 47.0, "R": 45.1}, "r's": {"V": 45.0, "R": 70.8}}
    assert (grid.index.name, grid.columns.name) == ("trunk", "head")
    assert trunk_or_head(grid, "Grown") == (
        "Grown: R under r's 70.8 against V under v's 47.0 (+23.8 points); R's trunk alone (under v's) moves it -1.9, "
        "r's alone (on the V trunk) -2.0, and the two together add +27.7 to the sum of those. Half of the gap or "
        "more comes from the trunk and the head only together; the others move it by less than half.")


@pytest.mark.parametrize("cells, verdict", [
    ((50.0, 51.0, 70.0, 71.0), "comes from R's trunk alone; the others move it by less than half."),   # +20 of +21
    ((50.0, 62.0, 58.0, 70.0), "comes from r's alone; the others move it by less than half."),         # +12 of +20
    ((50.0, 60.0, 60.0, 70.0), "comes from each of R's trunk alone and r's alone."),        # +10, +10 and 0 of 20
    ((50.0, 40.0, 40.0, 30.0), "comes from each of R's trunk alone and r's alone."),        # -10, -10 and 0 of -20
    ((50.0, 56.0, 56.0, 70.0), "No one of the three makes half of the gap."),               # 6, 6 and 8 of 20
    ((50.0, 44.0, 56.0, 52.0), "R's trunk alone (+6.0), r's alone (-6.0) and the trunk and the head only together "
                               "(+2.0) pull against each other, each by half of the gap or more: no one of the "
                               "three makes it."),                                          # of +2
    ((50.0, 60.0, 40.0, 50.94), "There is no gap (a point or more) to take apart."),        # 50.9 shown
    ((50.04, 60.0, 40.0, 50.96), "pull against each other, each by half of the gap or more: no one of the three "
                                 "makes it."),                                               # 50.0 and 51.0 shown
])
def test_what_makes_half_of_the_gap_is_read_on_the_values_as_shown(cells, verdict):
    said = trunk_or_head(_trunk_by_head(*cells), "Grown")
    assert said.endswith(verdict), said


def test_a_part_of_the_gap_that_rounds_to_zero_reads_plus_zero():
    said = trunk_or_head(_trunk_by_head(50.0, 50.1, 50.2, 50.3), "Grown")
    assert "the two together add +0.0 to the sum of those" in said and "-0.0" not in said


def test_a_cell_of_the_two_by_two_not_measured_is_named():
    with pytest.raises(InputError, match="grown: IoU: not measured for every one of V\\+v, V\\+r, R\\+v, R\\+r"):
        _trunk_by_head(50.0, float("nan"), 70.0, 75.0)


def test_a_heat_map_of_tied_cells_draws_them_mid_scale_not_at_its_ends():
    from dsrg.reproduce.figures import heatmap

    tied = heatmap(pd.DataFrame([[61.0, 61.0]], index=[0.99], columns=[0.95, 0.85]), "tied")
    assert tied.axes[0].images[0].get_clim() == (60.5, 61.5)
    close = heatmap(pd.DataFrame([[61.04, 61.06]], index=[0.99], columns=[0.95, 0.85]), "close")
    assert close.axes[0].images[0].get_clim() == pytest.approx((60.55, 61.55))
    wide = heatmap(pd.DataFrame([[50.0, 60.0]], index=[0.99], columns=[0.95, 0.85]), "wide")
    assert wide.axes[0].images[0].get_clim() == (50.0, 60.0)


def test_the_verdict_says_whether_our_rows_rank_as_the_papers_and_by_how_much_the_second_leads():
    from dsrg.reproduce.tables import rank_verdict

    paper = pd.Series({"SEC": 50.7, "VGG16": 59.0, "ResNet": 61.4})
    assert rank_verdict(pd.Series({"SEC": 9.0, "VGG16": 63.3, "ResNet": 91.6}), paper, "VGG16", "ResNet") == (
        "Our rows rank as the paper's do, lowest first: SEC, VGG16, ResNet; ResNet minus VGG16: +28.3 points "
        "here, +2.4 in the paper.")
    assert rank_verdict(pd.Series({"SEC": 9.0, "VGG16": 63.3, "ResNet": 60.0}), paper, "VGG16", "ResNet").startswith(
        "Our rows rank otherwise than the paper's: SEC, ResNet, VGG16 here, SEC, VGG16, ResNet there")
    assert rank_verdict(pd.Series({"SEC": 9.0, "VGG16": 63.3, "ResNet": np.nan}), paper, "VGG16", "ResNet") == \
        "Our rows rank as the paper's do, lowest first: SEC, VGG16.", "a row not run is left out"
