"""Training curves: the log a training step writes, read back and drawn (``dsrg curves``)."""

import json
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from dsrg.cli import main
from dsrg.errors import InputError
from dsrg.reproduce.figures import smoothed, training_curves
from dsrg.run.train import _read_log, read_log


def _write_log(folder, rows, tail=""):
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows) + tail
    (folder / "log.jsonl").write_text(text)
    return folder


def _rows(n, **columns):
    return [{"it": i, "epoch": i // 2, "lr": 0.001, **{k: f(i) for k, f in columns.items()}, "s": 0.1}
            for i in range(n)]


def test_read_log_returns_the_iterations_in_order(tmp_path):
    folder = _write_log(tmp_path / "seg-abc", _rows(3, loss=lambda i: 3.0 - i))
    assert [r["loss"] for r in read_log(folder)] == [3.0, 2.0, 1.0]
    assert read_log(folder / "log.jsonl") == read_log(folder)


def test_read_log_stops_at_a_line_cut_by_a_kill(tmp_path):
    folder = _write_log(tmp_path / "seg-abc", _rows(2, loss=lambda i: 1.0), tail='{"it": 2, "epoch": 1, "lo')
    assert [r["it"] for r in read_log(folder)] == [0, 1]


def test_read_log_names_a_bad_line_that_is_not_the_last_and_a_value_that_is_no_number(tmp_path):
    folder = _write_log(tmp_path / "seg-abc", _rows(1, loss=lambda i: 1.0),
                        tail="a line edited by hand\n" + json.dumps(_rows(2, loss=lambda i: 1.0)[1]) + "\n")
    with pytest.raises(InputError, match=r"log.jsonl, line 2: not a log entry; expected a JSON object with the "
                                         r"iteration 'it' on each line \(a line cut short"):
        read_log(folder)
    _write_log(folder, _rows(2, loss=lambda i: "x" if i else 1.0))
    with pytest.raises(InputError, match=r"log.jsonl, line 2: 'loss' is 'x'; expected numbers in a log entry"):
        read_log(folder)
    log = folder / "log.jsonl"                                         # bytes that are no UTF-8 text
    log.write_bytes(json.dumps(_rows(1, loss=lambda i: 1.0)[0]).encode() + b"\n\xff\xfe\n" + log.read_bytes())
    with pytest.raises(InputError, match=r"log.jsonl, line 2: not a log entry"):
        read_log(folder)


def test_read_log_names_a_folder_without_a_log(tmp_path):
    with pytest.raises(InputError, match="no training log here.*log.jsonl"):
        read_log(tmp_path)


def test_a_resumed_step_keeps_the_log_lines_before_its_checkpoint_as_written(tmp_path):
    folder = _write_log(tmp_path / "cls-abc", _rows(4, loss=lambda i: 0.1 * i))
    lines = (folder / "log.jsonl").read_text().splitlines()
    assert _read_log(folder / "log.jsonl", 2) == lines[:2]
    assert _read_log(tmp_path / "missing.jsonl", 2) == []


def test_smoothed_is_the_trailing_mean():
    assert smoothed(pd.Series([0.0, 3.0, 6.0, 9.0]), 2).tolist() == [0.0, 1.5, 4.5, 7.5]


def test_training_curves_draw_a_panel_per_quantity_and_two_lines_per_run():
    logs = {"a": pd.DataFrame(_rows(4, loss=lambda i: 3.0 * i, seed_loss=lambda i: 1.0)),
            "b": pd.DataFrame(_rows(4, loss=lambda i: 2.0, seed_loss=lambda i: 0.5))}
    fig = training_curves(logs, window=2)
    assert [ax.get_title() for ax in fig.axes] == ["total loss", "seeding loss"]
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4                                   # raw and smoothed, for each run
    np.testing.assert_allclose(lines[1].get_ydata(), [0.0, 1.5, 4.5, 7.5])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]          # below the panels


def test_a_short_and_a_long_run_are_each_smoothed_over_their_own_window_which_the_legend_says():
    logs = {"long": pd.DataFrame(_rows(400, loss=lambda i: 1.0)), "short": pd.DataFrame(_rows(8, loss=lambda i: 2.0))}
    fig = training_curves(logs, keys=["loss"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["long (mean of 20 it.)", "short"]
    assert fig.axes[0].get_lines()[3].get_marker() == "o"                  # 8 points: each one drawn
    same = training_curves({"a": logs["long"], "b": logs["long"]}, keys=["loss"])
    assert same.legends[0].get_title().get_text() == "mean of 20 it."       # one window: said once


def test_training_curves_take_labels_that_are_not_strings():
    logs = {0.85: pd.DataFrame(_rows(3, loss=lambda i: 1.0, seed_loss=lambda i: 1.0)),
            0.95: pd.DataFrame(_rows(3, loss=lambda i: 2.0, seed_loss=lambda i: 1.0))}
    assert [t.get_text() for t in training_curves(logs, window=1).legends[0].get_texts()] == ["0.85", "0.95"]


def test_training_curves_name_a_quantity_a_log_lacks():
    logs = {"cls": pd.DataFrame(_rows(2, loss=lambda i: 1.0))}
    with pytest.raises(InputError, match=r"^keys: the log of 'cls' has no seed_loss; it logs loss$"):
        training_curves(logs, keys=["seed_loss"])
    with pytest.raises(InputError, match=r"has no los \(did you mean 'loss'\?\)"):
        training_curves(logs, keys=["los"])


@pytest.mark.parametrize("window", [0, -3, 1.5, True])
def test_training_curves_refuse_a_window_that_is_not_a_positive_count(window):
    with pytest.raises(InputError, match="window: expected a positive number"):
        training_curves({"a": pd.DataFrame(_rows(2, loss=lambda i: 1.0))}, window=window)


def test_runs_of_different_steps_share_the_quantities_they_all_log():
    seg = pd.DataFrame(_rows(3, loss=lambda i: 1.0, seed_loss=lambda i: 0.5))
    retrain = pd.DataFrame(_rows(3, loss=lambda i: 2.0))
    fig = training_curves({"seg": seg, "retrain": retrain})
    assert [ax.get_title() for ax in fig.axes] == ["total loss"]
    with pytest.raises(InputError, match=r"share no quantity to plot: 'a' logs seed_loss; 'b' logs loss"):
        training_curves({"a": pd.DataFrame(_rows(2, seed_loss=lambda i: 1.0)),
                         "b": pd.DataFrame(_rows(2, loss=lambda i: 1.0))})


def test_a_window_longer_than_a_log_is_said_as_the_iterations_it_averages(tmp_path, capsys):
    a = _write_log(tmp_path / "runs" / "seg-aaa", _rows(4, loss=lambda i: float(i)))
    assert main(["curves", str(a), "--out", str(tmp_path / "fig.png"), "--window", "100"]) == 0
    assert "mean of the last 4: loss 1.5" in capsys.readouterr().out


def test_training_curves_refuse_an_empty_log():
    with pytest.raises(InputError, match="'a' has no iterations"):
        training_curves({"a": pd.DataFrame()})


def test_dsrg_curves_writes_the_figure_and_prints_each_runs_last_means(tmp_path, capsys):
    a = _write_log(tmp_path / "runs" / "seg-aaa", _rows(4, loss=lambda i: float(i)))
    b = _write_log(tmp_path / "runs" / "seg-bbb", _rows(2, loss=lambda i: 5.0))
    assert main(["curves", str(a), str(b / "log.jsonl"), "--out", str(tmp_path / "fig.png"), "--window", "2"]) == 0
    out = capsys.readouterr().out
    assert "seg-aaa: 4 iterations logged (the last: iteration 3); mean of the last 2: loss 2.5" in out
    assert "seg-bbb: 2 iterations logged (the last: iteration 1); mean of the last 2: loss 5" in out
    assert (tmp_path / "fig.png").stat().st_size > 0 and (tmp_path / "fig.svg").is_file()


def test_dsrg_curves_without_out_prints_the_last_means_and_writes_nothing(tmp_path, capsys, monkeypatch):
    a = _write_log(tmp_path / "runs" / "seg-aaa", _rows(4, loss=lambda i: float(i)))
    monkeypatch.chdir(tmp_path)
    assert main(["curves", str(a), "--window", "2"]) == 0
    out = capsys.readouterr().out
    assert "seg-aaa: 4 iterations logged (the last: iteration 3); mean of the last 2: loss 2.5" in out
    assert "curves:" not in out and sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert main(["curves", str(a), "--keys", "los"]) == 2, "a key the log lacks, as with a figure"
    assert "has no los (did you mean 'loss'?)" in capsys.readouterr().err


def test_dsrg_curves_says_how_far_a_step_is_and_whether_it_still_trains(tmp_path, capsys):
    from dsrg.files import locked

    run = tmp_path / "runs"
    for name in ("seg-aaa", "seg-bbb", "seg-ccc"):
        _write_log(run / name, _rows(4, loss=lambda i: 1.0))
        (run / name / "config.json").write_text(json.dumps({"config": {"step": "seg", "seg": {"iterations": 1500}}}))
    (run / "seg-ccc" / "done.json").write_text("{}")
    with locked(run / ".seg-aaa.lock"):
        assert main(["curves", *(str(run / n) for n in ("seg-aaa", "seg-bbb", "seg-ccc"))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "4 of 1,500 iterations logged (the last: iteration 3; training now)" in lines[0]
    assert "4 of 1,500 iterations logged (the last: iteration 3; not training: interrupted, or failed)" in lines[1]
    assert "4 of 1,500 iterations logged (the last: iteration 3); mean" in lines[2]


def test_dsrg_curves_tells_apart_the_same_step_folder_in_two_copies_of_a_run(tmp_path, capsys):
    a = _write_log(tmp_path / "a" / "runs" / "seg-abc", _rows(4, loss=lambda i: 1.0))
    b = _write_log(tmp_path / "b" / "runs" / "seg-abc", _rows(2, loss=lambda i: 2.0))
    assert main(["curves", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and f"({a}): 4 iterations" in lines[0] and f"({b}): 2 iterations" in lines[1]


def test_dsrg_curves_on_a_folder_without_a_log_is_an_error_naming_it(tmp_path, capsys):
    (tmp_path / "seeds-abc").mkdir()
    assert main(["curves", str(tmp_path / "seeds-abc"), "--out", str(tmp_path / "fig.png")]) == 2
    assert "seeds-abc/log.jsonl: no training log here" in capsys.readouterr().err
    assert main(["curves", str(tmp_path / "nope"), "--out", str(tmp_path / "fig.png")]) == 2
    assert f"{tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "fig.png").exists()


def test_dsrg_curves_refuses_a_folder_for_out_and_names_a_damaged_log(tmp_path, capsys):
    folder = _write_log(tmp_path / "seg-abc", _rows(3, loss=lambda i: 1.0))
    for out in (tmp_path, "/dev/null", f"{tmp_path}/figs/"):
        assert main(["curves", str(folder), "--out", str(out)]) == 2
        assert f"--out {out}: not a file name; expected FILE, FILE.png or FILE.svg" in capsys.readouterr().err
    assert main(["curves", str(folder), "--out", str(tmp_path / "fig.pdf")]) == 2
    assert "the curves are written as PNG and SVG; give FILE, FILE.png or FILE.svg" in capsys.readouterr().err
    for out, written in (("curves-lr0.01", "curves-lr0.01"), ("fig.txt", "fig.txt"), ("fig.svg", "fig")):
        assert main(["curves", str(folder), "--out", str(tmp_path / out)]) == 0    # a dot is part of the name
        assert (tmp_path / f"{written}.png").is_file() and (tmp_path / f"{written}.svg").is_file(), out
    for made in [*tmp_path.glob("*.png"), *tmp_path.glob("*.svg")]:
        made.unlink()
    _write_log(folder, _rows(3, loss=lambda i: 1.0), tail="edited\n" + json.dumps(_rows(4)[3]) + "\n")
    assert main(["curves", str(folder), "--out", str(tmp_path / "fig")]) == 2
    assert "log.jsonl, line 4: not a log entry" in capsys.readouterr().err     # not "skipped: no iteration"
    assert not list(tmp_path.glob("*.png"))


def test_dsrg_curves_labels_runs_by_the_settings_that_differ_and_skips_folders_without_a_log(tmp_path, capsys):
    runs = tmp_path / "runs"
    for name, theta in (("seg-aaa", 0.85), ("seg-bbb", 0.9)):
        folder = _write_log(runs / name, _rows(2, loss=lambda i: 1.0))
        (folder / "config.json").write_text(json.dumps({"config": {"seg": {"theta_fg": theta, "theta_bg": 0.99}}}))
    (runs / "seg-ccc").mkdir()                              # a step that never started
    assert main(["curves", str(runs / "seg-aaa"), str(runs / "seg-bbb"), str(runs / "seg-ccc"),
                 "--out", str(tmp_path / "fig.png")]) == 0
    captured = capsys.readouterr()
    assert "seg.theta_fg=0.85: 2 iterations" in captured.out and "seg.theta_fg=0.9: 2 iterations" in captured.out
    assert "skipped" in captured.err and "seg-ccc" in captured.err


def test_runs_whose_first_three_settings_agree_are_labelled_by_all_they_differ_in(tmp_path):
    """Table 2's rows beside Table 4's cells: the +DSRG cells share growing, iterations and the seed loss,
    and differ only in the thresholds, which must show."""
    from dsrg.reproduce.legends import setting_labels

    configs = [{"growing": False, "iterations": 8, "seed_loss": "sec", "theta_bg": 0.99, "theta_fg": 0.85},
               {"growing": True, "iterations": 8, "seed_loss": "balanced", "theta_bg": 0.99, "theta_fg": 0.85},
               {"growing": True, "iterations": 8, "seed_loss": "balanced", "theta_bg": 0.99, "theta_fg": 0.95},
               {"growing": True, "iterations": 4, "seed_loss": "balanced", "theta_bg": 0.99, "theta_fg": 0.85}]
    folders = [_step(tmp_path / f"seg-{i}", "seg", {"seg": c}) for i, c in enumerate(configs)]
    labels = setting_labels(folders)
    assert len(set(labels)) == 4
    assert labels[0] == "seg.growing=False, seg.iterations=8, seg.seed_loss=sec, ..."
    assert labels[1].endswith("seg.theta_fg=0.85") and labels[2].endswith("seg.theta_fg=0.95")


def _step(folder, step, config, upstream=None, log=True):
    if log:
        _write_log(folder, _rows(2, loss=lambda i: 1.0))
    folder.mkdir(parents=True, exist_ok=True)
    config = {"step": step, **config, **({"upstream": upstream} if upstream else {})}
    (folder / "config.json").write_text(json.dumps({"config": config}))
    return folder


def test_runs_that_differ_upstream_are_labelled_by_the_upstream_setting(tmp_path):
    from dsrg.reproduce.legends import setting_labels

    runs = tmp_path / "runs"
    for seg_hash, iterations, retrain_hash in (("5e9000000a", 4, "7e7000000a"), ("5e9000000b", 8, "7e7000000b")):
        _step(runs / f"seg-{seg_hash}", "seg", {"seg": {"iterations": iterations}}, log=False)
        _step(runs / f"retrain-{retrain_hash}", "retrain", {"retrain": {"iterations": 4}}, upstream=seg_hash)
    _step(runs / "old-seg-5e9000000a", "seg", {"seg": {"iterations": 99}}, log=False)   # a copy by hand: not read
    folders = [runs / "retrain-7e7000000a", runs / "retrain-7e7000000b"]
    assert setting_labels(folders) == ["seg.iterations=4", "seg.iterations=8"]


def test_runs_of_several_steps_are_labelled_by_their_step_and_what_differs_within_it(tmp_path):
    from dsrg.reproduce.legends import setting_labels

    runs = tmp_path / "runs"
    cls = _step(runs / "cls-c1", "cls", {"cls": {"iterations": 500}, "seed": 0})
    r1 = _step(runs / "retrain-r1", "retrain", {"retrain": {"iterations": 750}, "seed": 0})
    r2 = _step(runs / "retrain-r2", "retrain", {"retrain": {"iterations": 1000}, "seed": 0})
    assert setting_labels([cls, r1, r2]) == ["train-cls", "retrain: retrain.iterations=750",
                                             "retrain: retrain.iterations=1000"]


def test_odd_config_files_give_the_folder_name_not_an_error(tmp_path):
    from dsrg.reproduce.legends import setting_labels

    odd = _step(tmp_path / "seg-x", ["seg"], {"seg": {"iterations": 1}}, upstream="**")
    broken = tmp_path / "seg-y"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert setting_labels([odd, broken]) == ["seg-x", "seg-y"]


def test_a_label_names_the_steps_own_settings_before_the_rest_and_the_upstream_ones(tmp_path):
    from dsrg.reproduce.legends import setting_labels

    runs, folders = tmp_path / "runs", []
    for cls_hash, k in (("c1a0000000", 1), ("c1b0000000", 2)):
        _step(runs / f"cls-{cls_hash}", "cls", {"cls": {"iterations": 100 * k}}, log=False)
        folders.append(_step(runs / f"seg-s{k}", "seg", {"data": {"root": f"data/{k}"},
                                                          "seg": {"theta_fg": k / 10, "iterations": 10 * k}},
                             upstream=cls_hash))
    assert setting_labels(folders) == ["seg.iterations=10, seg.theta_fg=0.1, data.root=data/1, ...",
                                       "seg.iterations=20, seg.theta_fg=0.2, data.root=data/2, ..."]


def test_the_curves_draw_with_any_matplotlib_backend(tmp_path):
    """The legend's room below the panels is measured without asking the canvas for a renderer (only Agg's
    has one)."""
    import subprocess
    import sys

    code = ("import numpy as np, pandas as pd; from dsrg.reproduce.figures import training_curves; "
            "log = pd.DataFrame({'it': np.arange(5), 'loss': np.arange(5.0)}); "
            f"training_curves({{'a': log, 'b': log}}).savefig({str(tmp_path / 'c.svg')!r})")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MPLBACKEND": "svg"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and (tmp_path / "c.svg").stat().st_size > 0, done.stderr[-2000:]


@pytest.mark.parametrize("profile, folder", [("demo", "../figures"), ("demo-coco", "../figures"),
                                             ("smoke", "../figures/smoke"), ("smoke-coco", "../figures/smoke"),
                                             ("coco-vgg16", "../figures/coco-vgg16"), ("my/runs/x.yaml", "../figures/x"),
                                             ("mine/demo.yaml", "../figures/demo"),
                                             ("mine/demo-coco.yml", "../figures/demo")])
def test_a_page_run_with_another_profile_saves_apart_from_the_demo_books_figures(profile, folder):
    from dsrg.reproduce.figures import figures_folder

    assert figures_folder(None, profile) == Path(folder)
    assert figures_folder(None, profile, "/root") == Path("/root") / Path(folder).relative_to("..")
    assert figures_folder("elsewhere", profile) == Path("elsewhere")


def test_a_class_legend_names_the_classes_the_label_maps_hold_in_their_colours():
    import matplotlib.pyplot as plt
    import numpy as np

    from dsrg.data.voc import voc_palette
    from dsrg.reproduce.figures import class_legend

    fig = plt.figure()
    class_legend(fig, [np.array([[0, 2], [2, 255]], np.uint8), np.array([[9]], np.uint8)], ["bg", "cat", "dog"],
                 unlabelled=True)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["bg", "dog", "class 9", "not scored (255)", "unlabelled"]
    assert tuple(legend.get_patches()[1].get_facecolor()[:3]) == tuple(voc_palette()[2] / 255)
    plt.close(fig)
