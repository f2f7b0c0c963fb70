"""The scheduler package stands alone: it could move to its own repository unchanged."""

import ast
import sys
from pathlib import Path

import pytest

import entrypoints.scheduler

PACKAGE = Path(entrypoints.scheduler.__file__).parent
THIRD_PARTY = {"httpx", "msgspec"}


def imported_roots(source: Path) -> list[str]:
    """The top-level module of every absolute import; relative imports stay in the package."""
    roots: list[str] = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.extend(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.append(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("source", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_imports_only_the_standard_library_httpx_and_msgspec(source: Path) -> None:
    roots = imported_roots(source)

    outside = sorted(set(roots) - set(sys.stdlib_module_names) - THIRD_PARTY)

    assert outside == []


def test_the_boundary_check_sees_an_import_of_the_project(tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.py"
    leaky.write_text("from domain.reports import ReportWindow\nfrom . import client\n")

    roots = imported_roots(leaky)

    assert roots == ["domain"]
