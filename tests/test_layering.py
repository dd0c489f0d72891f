"""Package layering: backbones/ and stages/ never import stream/ (the user-error types they raise
live in posestream_common/, which imports nothing of the project); imports of ``stream.config``
for type hints only, under ``if TYPE_CHECKING:``, are allowed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER_PACKAGES = ("backbones", "stages")


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import outside ``if TYPE_CHECKING:`` blocks."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", LOWER_PACKAGES)
def test_lower_packages_never_import_stream(package):
    offending = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for path in _sources(package)
                 for line, module in _imported_modules(ast.parse(path.read_text()))
                 if module == "stream" or module.startswith("stream.")]
    assert not offending, "\n".join(offending)


def test_the_errors_module_imports_nothing_of_the_project():
    project = {"stream", "stages", "backbones", "benchmarks", "run_stream"}
    imported = {module.split(".")[0]
                for path in _sources("posestream_common")
                for _, module in _imported_modules(ast.parse(path.read_text()))}
    assert not imported & project


def test_a_ray_cluster_gets_every_package_the_shipped_code_imports():
    """``ray.ship_code`` sends CODE_PACKAGES to the cluster: each project package they import
    must be among them, or the workers there fail to import it."""
    from stream.ray.runner import CODE_PACKAGES

    project = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    imported = {module.split(".")[0]
                for path in _sources(*CODE_PACKAGES)
                for _, module in _imported_modules(ast.parse(path.read_text()))}
    assert imported & project <= set(CODE_PACKAGES)


def test_no_module_imports_a_private_name_of_another():
    """Packages talk through public names: ``from module import _name`` of a project module is
    a private cross-module import (tests included)."""
    project = {"stream", "stages", "backbones", "benchmarks", "posestream_common", "tests",
               "run_stream", "seed_flags"}
    paths = [*_sources(*sorted(project - {"run_stream", "seed_flags"})),
             ROOT / "run_stream.py", ROOT / "seed_flags.py"]
    offending = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] in project):
                offending.extend(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} "
                                 f"from {node.module}" for alias in node.names
                                 if alias.name.startswith("_"))
    assert not offending, "\n".join(offending)
