"""The `dsrg` command as a user types it."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "dsrg"
    assert script.exists(), f"console script missing: {script} (is the package installed with pip -e .?)"
    r = subprocess.run([str(script), "data", "synth", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--out" in r.stdout
