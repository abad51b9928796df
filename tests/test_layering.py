"""The package's layering (issue 12, docs/ARCHITECTURE.md): no import cycles between zoo's
modules, imports at the top of files, the registry imports no model, and every public function
shows an example."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parents[1] / "zoo"
#: Imports of zoo modules inside functions, each for a stated reason.
ALLOWED_INNER = {
    ("zoo.data", "zoo.data.pipeline"),  # keeps zoo.data free of Keras until ArrayDataset is used
    ("zoo.listing", "zoo.catalog"),  # the live catalog (Keras) only when plugins are installed
}
#: Modules whose inner imports are all allowed: the command line imports Keras (and the
#: library layers over it) only in the commands that need it, so `zoo list` starts in well
#: under a second.
LAZY_MODULES = {"zoo.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ZOO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _zoo_imports(nodes) -> set[str]:
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "zoo")
    return found


def _graph() -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
    trees = {_module_name(p): ast.parse(p.read_text()) for p in ZOO.rglob("*.py")}
    graph, inner = {}, set()
    for name, tree in trees.items():
        top = _zoo_imports(tree.body)
        graph[name] = {dep for dep in top if dep in trees and dep != name}
        nested = _zoo_imports(node for node in ast.walk(tree) if node not in tree.body)
        inner |= {(name, dep) for dep in nested - top if dep in trees}
    return graph, inner


def test_no_import_cycles_between_modules():
    graph, _ = _graph()
    graph.pop("zoo")  # the package facade re-exports the public API
    graph = {name: deps - {"zoo"} for name, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(name, path):
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep in graph and not state.get(dep):
                visit(dep, path + [dep])
        state[name] = 2

    for name in sorted(graph):
        if not state.get(name):
            visit(name, [name])
    assert cycles == []


def test_imports_are_at_the_top_and_the_registry_imports_no_model():
    graph, inner = _graph()
    inner = {(name, dep) for name, dep in inner if name not in LAZY_MODULES}
    assert inner <= ALLOWED_INNER, sorted(inner - ALLOWED_INNER)
    assert not any(dep.startswith("zoo.models") for dep in graph["zoo.registry"])
    assert not any(dep.startswith(("zoo.api", "zoo.models")) for dep in graph["zoo.hub"])
    assert graph["zoo"] == {"zoo._version"}  # the facade imports its exports lazily


@pytest.mark.slow  # a fresh interpreter that never imports a backend: the same in every suite
def test_import_zoo_and_the_cli_leave_keras_unimported_and_lookups_register_the_builtins():
    import subprocess
    import sys

    code = (
        "import sys, zoo, zoo.cli, zoo.listing; zoo.listing.model_rows(); "
        "print('keras' in sys.modules, 'tensorflow' in sys.modules); "
        "from zoo.registry import BUILTIN_MODULES, list_models; print(BUILTIN_MODULES, list_models()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "False False"
    assert out[1] == "('zoo.models',) cnn"


def test_public_functions_have_a_docstring_with_an_example():
    """Every public function of a public zoo module says what it does and shows a call (the standards)."""
    missing = []
    for path in sorted(ZOO.rglob("*.py")):
        if any(part.startswith("_") and part != "__init__.py" for part in path.relative_to(ZOO).parts):
            continue  # private modules (zoo/models/_checks.py, zoo/_version.py)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                if "Example" not in (ast.get_docstring(node) or ""):
                    missing.append(f"{path.relative_to(ZOO.parent)}:{node.lineno} {node.name}")
    assert not missing, "public functions without a docstring example:\n" + "\n".join(missing)
