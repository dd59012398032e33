"""Every third-party module the package imports is declared in pyproject.toml, as a dependency
or in an extra (issue 27: SciPy arrived only because scikit-learn depends on it)."""
import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules() -> dict[str, str]:
    """{top-level module: a file importing it} over src/torchnas, at any depth of the code."""
    found = {}
    for path in sorted((ROOT / "src" / "torchnas").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_every_imported_distribution_is_declared():
    declared = _declared()
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in _imported_modules().items():
        if module in sys.stdlib_module_names or module in ("torchnas", "__future__"):
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & declared:
            missing[module] = where
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_check_sees_a_missing_declaration():
    """SciPy is imported (ws_rank.py): without its line the check above would fail."""
    assert "scipy" in _imported_modules() and "scipy" in _declared()
