"""The layout holds: imports point downward through the order docs/architecture.md gives, and modules stay small."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "stream_scorer"
# A served model never depends on how it was trained (the import order keeps training from Kafka and features).
NEVER = {name: {"training"} for name in ("kafka", "features", "labels", "monitoring", "pipeline", "worker")}


def import_order() -> list[str]:
    text = (REPO / "docs" / "architecture.md").read_text()
    line = re.search(r"^Import order: (.+)$", text, re.M)
    assert line is not None, "docs/architecture.md must have an 'Import order:' line"
    return [name.strip() for name in line.group(1).split(",")]


def imported_packages(path: Path) -> set[str]:
    """The top-level stream_scorer packages ``path`` imports (``stream_scorer.model.score`` -> ``model``)."""
    out = set()
    here = path.relative_to(REPO).with_suffix("").parts  # for relative imports: ("stream_scorer", "worker", "loop")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:  # from . import x / from ..model import y
            base = here[: len(here) - node.level]
            target = [*base, *(node.module.split(".") if node.module else [])]
            if len(target) > 1:
                out.add(target[1])
            else:
                out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "stream_scorer":
                out |= {alias.name for alias in node.names}
            elif node.module.startswith("stream_scorer."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("stream_scorer.")}
    return out


def owner(path: Path) -> str | None:
    first = path.relative_to(PACKAGE).with_suffix("").parts[0]
    return None if first in ("__init__", "__main__") else first


def test_the_order_names_every_package_once() -> None:
    order = import_order()
    packages = {owner(p) for p in PACKAGE.rglob("*.py")} - {None}
    assert sorted(order) == sorted(packages) and len(set(order)) == len(order)


def test_imports_point_downward() -> None:
    order = import_order()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = owner(path)
        if me is None:
            continue
        for other in imported_packages(path) - {me}:
            if order.index(other) > order.index(me) or other in NEVER.get(me, set()):
                wrong.append(f"{path.relative_to(REPO)} imports stream_scorer.{other}")
    assert not wrong, "imports that point upward:\n" + "\n".join(wrong)


def test_the_installed_package_imports_no_tooling() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("tools", "benchmarks", "tests", "examples")), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith(("tools", "benchmarks", "tests", "examples")) for a in node.names), (
                    path
                )


def test_modules_stay_under_about_300_lines_and_functions_under_about_60() -> None:
    long_modules, long_functions = [], []
    for path in sorted([*PACKAGE.rglob("*.py"), *(REPO / "tools").rglob("*.py"), *(REPO / "examples").rglob("*.py")]):
        source = path.read_text()
        if source.count("\n") > 330:
            long_modules.append(f"{path.relative_to(REPO)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 66:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines")
    assert not long_modules and not long_functions, "\n".join(long_modules + long_functions)


def test_every_benchmark_still_imports() -> None:
    """The benchmarks are run by hand, not by CI: at least they must not rot into import errors."""
    import importlib

    for path in sorted((REPO / "benchmarks").glob("*.py")):
        importlib.import_module(f"benchmarks.{path.stem}")
