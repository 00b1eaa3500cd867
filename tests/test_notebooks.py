"""The book's notebooks run end to end on the smoke profile (seconds per step).

Each MyST notebook is converted by jupytext and executed by nbval (``--nbval-lax``: every cell must run;
outputs are not compared) in a scratch copy of the project layout (``notebooks/``, with data, runs and
figures beside it), with ``DSRG_NOTEBOOK_PROFILE=smoke`` read by each parameters cell. The notebooks
share runs as in the book: the ones after the first reuse its run folders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from dsrg.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.md"))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run nbval once over every notebook; ``(base folder, pytest output)``."""
    base = tmp_path_factory.mktemp("book")
    nb_dir = base / "notebooks"
    nb_dir.mkdir()
    for md in NOTEBOOKS:
        jupytext.write(jupytext.read(md), nb_dir / f"{md.stem}.ipynb")
    env = {**os.environ, "DSRG_NOTEBOOK_PROFILE": "smoke", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "--nbval-lax", "-p", "no:cacheprovider",
                           "-o", "addopts=", str(nb_dir)], cwd=nb_dir, env=env, capture_output=True, text=True,
                          timeout=1500)
    return base, proc


def test_there_is_a_notebook_for_every_table_and_figure_of_the_paper():
    prefixes = {p.stem.split("_")[0] for p in NOTEBOOKS}
    assert {"table1", "table2", "table3", "table4", "fig3", "fig4"} <= prefixes  # Fig. 1 is made by fig4


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_the_smoke_profile(executed, md):
    base, proc = executed
    name = f"{md.stem}.ipynb"
    failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR")) and name in line]
    assert not failed, f"{name} failed under nbval:\n" + "\n".join(failed) + "\n" + proc.stdout[-6000:]
    passed = [line for line in proc.stdout.splitlines() if line.startswith("PASSED") and name in line]
    assert passed, f"{name}: no cell ran under nbval:\n" + proc.stdout[-3000:]


def test_notebooks_save_their_figures_and_tables(executed):
    base, proc = executed
    assert proc.returncode == 0, proc.stdout[-3000:]
    figures = {p.name for p in (base / "figures" / "smoke").iterdir()}        # not the demo book's figures/
    assert not (base / "figures").is_dir() or not any(p.is_file() for p in (base / "figures").iterdir())
    for stem in ("table1_miou", "table2_miou", "table2_curves", "table3_miou", "table4_ours", "fig4_supervision",
                 "fig1_supervision", "fig3_qualitative"):
        assert {f"{stem}.png", f"{stem}.svg"} <= figures, f"{stem}: png/svg missing in {sorted(figures)}"
    for stem in ("table1_ours", "table2_ours", "table2_miou", "table3_ours", "table4_ours", "fig4_ours"):
        assert f"{stem}.csv" in figures, f"{stem}.csv missing"


def test_notebooks_hold_no_outputs_in_git():
    for md in NOTEBOOKS:
        nb = jupytext.read(md)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), md.name
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{md.name}: expected one cell tagged 'parameters' for papermill"


def test_papermills_help_lists_every_parameter_of_every_chapter_with_what_it_does():
    """`papermill --help-notebook` reads a parameters cell line by line: a line with two '=' (a comment's example)
    is left out, and a parameter's help is the comment on its own last line."""
    from papermill.translators import PythonTranslator

    for md in [*NOTEBOOKS, ROOT / "book" / "performance.md"]:
        (cell,) = [c for c in jupytext.read(md).cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assigned = re.findall(r"^(\w+)\s*=", cell.source, re.M)
        listed = {p.name: p.help for p in PythonTranslator.inspect(cell)}
        assert list(listed) == assigned, f"{md.name}: papermill lists {list(listed)} of {assigned}"
        assert all(listed.values()), f"{md.name}: no help for {[k for k, v in listed.items() if not v]}"


def test_a_notebook_saved_from_jupyterlab_is_left_as_it_is_in_git(tmp_path):
    """jupytext's contents manager (what `make lab` saves with) under the project's jupytext.toml: no
    jupytext or format version added to the header."""
    from jupytext.sync_contentsmanager import TextFileContentsManager

    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    (tmp_path / "notebooks").mkdir()
    cm = TextFileContentsManager(root_dir=str(tmp_path))
    for md in [*NOTEBOOKS, ROOT / "book" / "performance.md"]:      # cell metadata in YAML blocks included
        shutil.copy(md, tmp_path / "notebooks" / md.name)
        cm.save(cm.get(f"notebooks/{md.name}"), f"notebooks/{md.name}")
        assert (tmp_path / "notebooks" / md.name).read_text() == md.read_text(), md.name


def test_papermill_parameters_reach_the_notebook(tmp_path):
    """The notebooks' own recipe for papermill, run from a project root: jupytext writes the MyST file as a
    notebook to stdout, papermill reads it from stdin, runs it in ``notebooks/`` and injects the ``-p``
    parameters after the cell tagged ``parameters``."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "embedded_dataset.md", tmp_path / "notebooks")
    recipe = re.search(r"`(jupytext --to ipynb -o - notebooks/embedded_dataset\.md \| papermill - out\.ipynb "
                       r"--cwd notebooks) -p profile voc-vgg16 -p data_root [^`]*`", (ROOT / "notebooks" / "embedded_dataset.md").read_text())
    assert recipe, "embedded_dataset.md no longer gives the papermill recipe this test runs"
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "MPLBACKEND": "Agg", "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run(recipe.group(1) + " -p profile smoke -p bg_threshold 0.2 -p limit 2", shell=True,
                         cwd=tmp_path, env=env, capture_output=True, timeout=600)
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "bg_threshold = 0.2" in "".join(injected[0]["source"])
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     + re.sub(r"<[^>]+>", " ", "".join(o.get("data", {}).get("text/html", "")))   # tables: HTML
                     for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "profile smoke" in text                                     # the smoke profile's data, not the demo's
    saliency = load_profile("smoke").seeds.saliency                    # the profile's, as its seeds step's
    assert re.search(rf"built-in {saliency}\s+2\s+0\.2\s", text), text[-2000:]  # 2 val images at threshold 0.2
    assert (tmp_path / "data" / "smoke").is_dir() and (tmp_path / "figures").is_dir()   # inside the project


def test_a_papermill_parameter_typed_wrong_stops_the_page_before_it_writes(tmp_path):
    """papermill only warns about ``-p profil smoke`` and would run the demo profile; the page refuses it, and
    the notebook shows the InputError as its message alone (InputError._render_traceback_)."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "embedded_dataset.md", tmp_path / "notebooks")
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "MPLBACKEND": "Agg", "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run("jupytext --to ipynb -o - notebooks/embedded_dataset.md | papermill - out.ipynb "
                         "--cwd notebooks -p profil smoke", shell=True, cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode != 0
    assert "papermill parameter 'profil' (did you mean 'profile'?): not a parameter of this page" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebooks", "out.ipynb"]      # no data, no figures
    errors = [o for c in json.loads((tmp_path / "out.ipynb").read_text())["cells"] for o in c.get("outputs", [])
              if o["output_type"] == "error"]
    assert [e["traceback"] for e in errors] == [[f"InputError: {errors[0]['evalue']}"]]   # the message, no traceback


@pytest.mark.parametrize("md", [*NOTEBOOKS, ROOT / "book" / "performance.md"], ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(md):
    """papermill's parser gives up on a line whose comment holds '=' or brackets: such a parameter is missing
    from `papermill --help-notebook`, and papermill warns about it."""
    import ast

    from papermill.translators import PythonTranslator

    cell = next(c for c in jupytext.read(md).cells if "parameters" in c.metadata.get("tags", []))
    assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])]
    assert [p.name for p in PythonTranslator.inspect(cell)] == assigned


@pytest.mark.parametrize("md", sorted((ROOT / "notebooks").glob("*.md")), ids=lambda p: p.stem)
def test_every_experiment_a_page_runs_takes_its_resume_parameter(md):
    """`-p resume True` continues every step the page trains, not only some of them."""
    import ast

    calls = [node for cell in jupytext.read(md).cells if cell.cell_type == "code"
             for node in ast.walk(ast.parse("\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and isinstance(node.func.value, ast.Name) and node.func.value.id == "experiments"
             and node.func.attr in ("run", "ablation")]
    missing = [node.lineno for node in calls if not any(k.arg == "resume" for k in node.keywords)]
    assert not missing, f"{md.name}: experiments.run/ablation without resume= (cell lines {missing})"
    if calls:
        assert "resume = parameters.flag(\"resume\", resume)" in md.read_text()
