"""The package's rooms: no import circle (imports inside functions counted), the paper's method apart from the
run machinery, and one table of steps that the command line, the pipeline and the profiles follow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dsrg.cli import build_parser
from dsrg.profile import Profile
from dsrg.run.folders import STEPS
from dsrg.steps import pipeline

PACKAGE = Path(__file__).resolve().parents[1] / "dsrg"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every module of dsrg -> the dsrg modules it imports, at the top or inside a function."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:      # `from pkg import mod` imports the module pkg.mod
                    found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_finds_a_circle_made_by_an_import_inside_a_function():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_has_no_import_circle_counting_imports_inside_functions():
    graph = _imports()
    assert "dsrg.run.checkpoints" in graph["dsrg.run.folders"], "an import inside a function is counted"
    assert _circle(graph) is None


@pytest.mark.parametrize("room", ["dsrg.method", "dsrg.models", "dsrg.data"])
def test_the_method_models_and_data_never_import_a_profile_or_the_machinery(room):
    above = ("dsrg.profile", "dsrg.run", "dsrg.steps", "dsrg.reproduce", "dsrg.cli")
    graph = _imports()
    wrong = {m: sorted(i for i in imported if i.startswith(above))
             for m, imported in graph.items() if m.startswith(room)}
    assert not any(wrong.values()), wrong


@pytest.mark.parametrize("room", ["dsrg.method", "dsrg.models"])
def test_the_method_and_models_read_and_write_no_file(room):
    """Tensors in, tensors out: nothing the method or the networks import, however deep, touches files or the
    data's folders (a weights file is read by dsrg.run.networks)."""
    graph = _imports()
    seen, todo = set(), [m for m in graph if m.startswith(room)]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    assert "dsrg.files" not in seen
    assert {m for m in seen if m.startswith("dsrg.data")} <= {"dsrg.data", "dsrg.method.transforms"}


def test_every_step_of_the_table_has_its_section_module_and_command():
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, step in STEPS.items():
        assert hasattr(Profile(), name), f"the profile has no section {name!r}"
        assert callable(pipeline.MODULES[name].run)
        assert pipeline.MODULES[name].__name__ == f"dsrg.steps.{step.module}"
        assert step.command in commands
    assert set(pipeline.MODULES) == set(STEPS)
