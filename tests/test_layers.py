"""The package's layers: no import circles, and no lower layer importing a higher one.

Every ``import`` in src/torchnas is read with ``ast`` (those inside functions too, since a late
import is still a dependency), resolved to the torchnas module it names, and checked against
the layer order below (docs/design.md draws it).
"""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Top to bottom. A module may import its own layer or lower ones, never a higher one.
LAYERS = [
    ["torchnas.__main__", "torchnas.cli"],
    ["torchnas.api"],
    ["torchnas.terminal"],
    ["torchnas.bench", "torchnas.scale", "torchnas.ws_rank", "torchnas.show", "torchnas.tensorboard", "torchnas.export",
     "torchnas.train", "torchnas.search", "torchnas.enas"],
    ["torchnas.config"],
    ["torchnas.strategies"],
    ["torchnas.controller"],
    ["torchnas.evaluators", "torchnas.viz"],
    ["torchnas.tasks"],
    ["torchnas.spaces"],
    ["torchnas.training", "torchnas.nn", "torchnas.data"],
    ["torchnas.runs", "torchnas.registry", "torchnas.settings", "torchnas.presets", "torchnas"],
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "torchnas").rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The torchnas modules ``name`` imports (a ``from X import y`` of a submodule y counts y)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "torchnas")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "torchnas":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found.update(subs or [target])
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or (prefix != "torchnas" and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS in tests/test_layers.py"
    return best[0]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    up = sorted(m for m in GRAPH[module] if layer_of(m) < layer_of(module))
    assert not up, f"{module} (layer {layer_of(module)}) imports higher layers: {up}"


def test_no_import_cycles():
    """Tarjan's strongly connected components: any component of two or more modules is a cycle."""
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_walker_sees_late_and_relative_imports():
    assert "torchnas.api" in GRAPH["torchnas.cli"]                  # module level
    assert "torchnas.enas" in GRAPH["torchnas.api"]                 # inside a function
    assert "torchnas.spaces.base" in GRAPH["torchnas.spaces.nb201"]  # relative, one level
    assert "torchnas.training" in GRAPH["torchnas.evaluators.trainer"]   # relative, two levels


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_says_what_it_is_for_and_long_functions_say_why(module):
    tree = ast.parse(MODULES[module].read_text())
    assert ast.get_docstring(tree), f"{module} opens without a docstring saying what it is for"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
            assert "Long:" in (ast.get_docstring(node) or ""), \
                f"{module}.{node.name} has {node.end_lineno - node.lineno + 1} lines: shorten it or say why (Long: ...)"
