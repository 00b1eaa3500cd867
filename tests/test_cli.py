"""The `dsrg` command as a user types it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsrg.cli import main
from dsrg.data.voc import VOCSegmentation


def test_data_synth_writes_a_voc_layout_dataset_with_overrides(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--quiet", "n_train=4", "n_val=2", "size=64"]) == 0
    assert len(VOCSegmentation(out, "train")) == 4 and len(VOCSegmentation(out, "val")) == 2
    assert json.loads((out / "dataset.json").read_text())["config"]["size"] == 64
    assert "4 train + 2 val" in capsys.readouterr().out


def test_a_bad_override_is_an_error_naming_the_key(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "n_trian=4"]) == 2
    err = capsys.readouterr().err
    assert "n_trian" in err and "n_train" in err
    assert not (tmp_path / "x").exists()


def test_an_option_cut_short_is_refused_not_taken_for_another(capsys):
    """`--resum` was taken for --resume (argparse's abbreviations), and a run of the demo profile started."""
    with pytest.raises(SystemExit) as exc:
        main(["run", "--resum", "--dry-run"])
    assert exc.value.code == 2 and "unrecognized arguments: --resum" in capsys.readouterr().err


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "dsrg"
    assert script.exists(), f"console script missing: {script} (is the package installed with pip -e .?)"
    r = subprocess.run([str(script), "data", "synth", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--out" in r.stdout


def _tiny_synth(tmp_path):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--quiet", "n_train=5", "n_val=3", "size=64"]) == 0
    return out


def test_data_check_passes_a_good_root_and_reports_counts(tmp_path, capsys):
    root = _tiny_synth(tmp_path)
    capsys.readouterr()
    assert main(["data", "check", "--root", str(root), "--all"]) == 0
    out = capsys.readouterr().out
    assert "split 'train': 5 images (expected 5: its dataset.json), 5 opened, 0 problems" in out and out.strip().endswith("OK")


def test_data_check_names_each_defect(tmp_path, capsys):
    root = _tiny_synth(tmp_path)
    ids = (root / "ImageSets/Segmentation/train.txt").read_text().split()
    (root / "JPEGImages" / f"{ids[0]}.jpg").unlink()                       # a missing image
    (root / "SegmentationClass" / f"{ids[1]}.png").write_bytes(b"not a png")  # a corrupt label map
    with open(root / "ImageSets/Segmentation/val.txt", "a") as f:           # one more than expected
        f.write(ids[2] + "\n")
    capsys.readouterr()
    assert main(["data", "check", "--root", str(root), "--all"]) == 1
    out = capsys.readouterr().out
    assert f"image of id '{ids[0]}' (split 'train') not found" in out
    assert f"label map of id '{ids[1]}'" in out and "cannot read label image" in out
    assert "split 'val' lists 4 images; expected 3" in out
    assert out.strip().endswith("3 problems")


def test_data_check_names_a_file_every_split_reads_once(tmp_path, capsys):
    root = _tiny_synth(tmp_path)
    (root / "class_names.txt").write_text("")
    capsys.readouterr()
    assert main(["data", "check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.count("class_names.txt is empty") == 1 and out.strip().endswith("1 problem")


def test_data_check_says_when_the_label_maps_hold_more_classes_than_the_list(tmp_path, capsys):
    root = _tiny_synth(tmp_path)
    (root / "class_names.txt").write_text("background\nfirst\n")
    capsys.readouterr()
    assert main(["data", "check", "--root", str(root), "--all"]) == 1
    classes = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("classes:"))
    assert "label maps opened hold values beyond them (up to at least" in classes
    assert classes.endswith("does the list name every class?")


def test_data_check_on_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    assert main(["data", "check", "--root", str(tmp_path)]) == 2
    assert "no ImageSets/Segmentation folder" in capsys.readouterr().err


def test_data_check_of_a_coco_root_as_voc_says_to_check_it_as_coco_and_how_to_convert_it(tmp_path, capsys):
    for folder in ("annotations", "train2014", "val2014"):
        (tmp_path / "coco" / folder).mkdir(parents=True)
    assert main(["data", "check", "--root", str(tmp_path / "coco")]) == 2
    err = capsys.readouterr().err
    assert "check a COCO root with --dataset coco" in err
    assert f"dsrg data coco --root {tmp_path / 'coco'} --out <folder>" in err


def test_data_check_on_the_folder_above_a_voc_root_names_the_root_and_on_a_half_made_one_says_how_to_finish(
        tmp_path, capsys):
    (tmp_path / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation").mkdir(parents=True)
    assert main(["data", "check", "--root", str(tmp_path / "VOCdevkit")]) == 2
    assert f"it holds VOC2012: --root is the folder with ImageSets, e.g. {tmp_path / 'VOCdevkit' / 'VOC2012'}" \
        in capsys.readouterr().err
    (tmp_path / "half" / "JPEGImages").mkdir(parents=True)
    assert main(["data", "check", "--root", str(tmp_path / "half")]) == 2
    assert "stopped before it wrote its split files? the same command again finishes it" in capsys.readouterr().err


def test_version_is_printed(capsys):
    import dsrg

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"dsrg {dsrg.__version__}"
