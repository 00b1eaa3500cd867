"""Every figure and table a page saves says what made it: in the folder's sources.json, and in the image."""

from __future__ import annotations

import json
import threading

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from dsrg.reproduce import sources  # noqa: E402
from dsrg.reproduce.figures import save_figure  # noqa: E402
from dsrg.reproduce.tables import save_table  # noqa: E402

SOURCE = "dataset synthetic (data/smoke), profile smoke, machine: test; remade by: dsrg run --profile smoke"


def test_a_saved_figure_carries_its_source_in_the_png_the_svg_and_the_index(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, svg = save_figure(fig, tmp_path / "table9_miou", SOURCE)
    plt.close(fig)
    assert Image.open(png).text["Source"] == SOURCE
    assert SOURCE in svg.read_text()
    index = sources.read(tmp_path)
    assert {k: v["source"] for k, v in index.items()} == {"table9_miou.png": SOURCE, "table9_miou.svg": SOURCE}
    assert not list(tmp_path.glob(".*"))             # no lock or temporary file left


def test_a_saved_table_is_in_the_index_and_a_rewrite_replaces_its_entry_only(tmp_path):
    save_table(pd.DataFrame({"mIoU": [57.61]}, index=["ours"]), tmp_path / "table9_ours", "first run")
    save_table(pd.DataFrame({"mIoU": [1.0]}), tmp_path / "table9_other", "other")
    save_table(pd.DataFrame({"mIoU": [58.0]}, index=["ours"]), tmp_path / "table9_ours", "second run")
    index = sources.read(tmp_path)
    assert {k: v["source"] for k, v in index.items()} == {"table9_ours.csv": "second run", "table9_other.csv": "other"}
    assert pd.read_csv(tmp_path / "table9_ours.csv", index_col=0).loc["ours", "mIoU"] == 58.0


def test_a_file_removed_since_is_not_listed(tmp_path):
    save_table(pd.DataFrame({"a": [1]}), tmp_path / "gone", "made it")
    (tmp_path / "gone.csv").unlink()
    assert sources.read(tmp_path) == {}
    assert "gone.csv" in json.loads((tmp_path / sources.INDEX).read_text())    # kept until the next write


def test_pages_saving_side_by_side_lose_no_entry(tmp_path):
    names = [f"t{i}" for i in range(16)]
    for name in names:
        (tmp_path / f"{name}.csv").write_text("a\n1\n")
    threads = [threading.Thread(target=sources.record, args=([tmp_path / f"{n}.csv"], n)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {k: v["source"] for k, v in sources.read(tmp_path).items()} == {f"{n}.csv": n for n in names}


@pytest.mark.parametrize("text", ["{ not json", "[1, 2]", "null"])
def test_an_unreadable_index_is_started_again(tmp_path, text):
    (tmp_path / sources.INDEX).write_text(text)
    save_table(pd.DataFrame({"a": [1]}), tmp_path / "t", "made it")
    assert sources.read(tmp_path)["t.csv"]["source"] == "made it"


def test_a_grid_keeps_the_names_of_its_rows_and_columns_in_its_corner(tmp_path):
    grid = pd.DataFrame([[57.5, 57.7]], index=pd.Index([0.99], name="theta_b"),
                        columns=pd.Index([0.95, 0.85], name="theta_f"))
    path = save_table(grid, tmp_path / "table9_grid", "made it")
    assert path.read_text().splitlines()[0] == "theta_b \\ theta_f,0.95,0.85"
