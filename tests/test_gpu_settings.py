"""The settings of the GPU tests, checked on the CPU: a `gpu` test whose overrides the profile check refuses
fails before it trains, and only on a GPU machine, where time is short. Each `gpu` test's key=value strings
are read from its source and loaded, over the tiny profile the GPU tests start from."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import tiny_profile

OVERRIDE = re.compile(r"^[a-z_]+(\.[a-z_]+)*=\S+$")


def _is_gpu_mark(node: ast.expr) -> bool:
    return "mark.gpu" in ast.unparse(node)


def gpu_tests() -> dict[str, list[str]]:
    """``{file::test: [its key=value strings]}`` for every test marked `gpu` (by decorator or by the module's
    ``pytestmark``) under tests/."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_gpu = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                         and _is_gpu_mark(n.value) for n in tree.body)
        constants = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)}
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            if not (module_gpu or any(_is_gpu_mark(d) for d in node.decorator_list)):
                continue
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            values = [node] + [constants[n] for n in names if n in constants]
            found[f"{path.name}::{node.name}"] = [n.value for v in values for n in ast.walk(v)
                                                  if isinstance(n, ast.Constant) and isinstance(n.value, str)
                                                  and OVERRIDE.match(n.value)]
    return found


def test_the_gpu_tests_are_found():
    tests = gpu_tests()
    assert "test_gpu.py::test_cpu_and_cuda_give_close_first_losses" in tests
    assert "seg.batch_norm=false" in tests["test_gpu.py::test_cpu_and_cuda_give_close_first_losses"]
    assert "seeds.saliency=rbd" in tests["test_gpu.py::test_the_tiny_pipeline_runs_on_cuda_with_bf16_autocast"]


@pytest.mark.parametrize("test", sorted(gpu_tests()))
def test_every_gpu_test_asks_for_settings_the_profile_check_accepts(test, tmp_path):
    overrides = gpu_tests()[test]
    tiny_profile(tmp_path / "synth", tmp_path / "run", *overrides)     # InputError: the GPU test would fail too
