"""The pins of pyproject.toml and environment.yml agree, and the layout is as the README says."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements):
    out = {}
    for req in requirements:
        name, sep, version = req.partition("==")
        assert sep, f"{req!r} is not pinned with =="
        out[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return out


def test_environment_yml_pins_the_same_versions_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(pip_section) == _pins(reqs)


def test_torch_is_pinned_and_torchvision_is_not_a_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"])
    assert pins["torch"] == "2.13.0"
    assert not any(name.startswith("torchvision") for name in pins)


def test_layout_and_the_readme_commands():
    for name in ["book", "dsrg", "notebooks", "tests", "benchmarks", "environment.yml", "_config.yml",
                 "_toc.yml", "README.md", "Makefile", ".ci/run"]:
        assert (ROOT / name).exists(), name
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_no_name_is_used_undefined_or_imported_unused():
    """Pyflakes' checks (ruff's F rules) over the code, the benchmarks and the tests: a name used before it is
    defined fails only on the path that reaches it, which may be one that only a GPU machine takes."""
    paths = [str(ROOT / d) for d in ("dsrg", "benchmarks", "tests", "scripts")]
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F", "--ignore", "F811",
                            "--output-format", "concise", *paths], capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr
