"""Tables as a page shows them: one decimal, a dash for a missing value, no meaningless index, the paper's
rows told apart, long labels shortened with their full text in the caption."""

import numpy as np
import pandas as pd

from dsrg.reproduce.tables import DASH, show


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
