"""The package's imports run one way: no cycle, even through imports inside functions, and no layer reaches up.

Layers, top to bottom (a module may import its own layer's siblings only where listed, and anything lower):

    cli → commands → {ancestry, simulate, compare} → plot → io → {likelihood, pca} → genotypes → kernels →
    {device, progress, shard}
    → errors
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "genoae"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every genoae module that ``path`` imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "genoae" or name.startswith("genoae.")}


@pytest.fixture(scope="module")
def graph():
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        # `from genoae.x import y` names module genoae.x.y when that is a module, else the attribute y of genoae.x
        edges[name] = {target for target in _imports(path) if target in modules and target != name}
    return edges


def _find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle(graph):
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


LAYERS = [
    ("genoae.__main__",),
    ("genoae.cli",),
    ("genoae.commands",),
    ("genoae.ancestry", "genoae.simulate", "genoae.compare"),
    ("genoae.plot",),
    ("genoae.io",),
    ("genoae.likelihood", "genoae.pca"),
    ("genoae.genotypes",),
    ("genoae.kernels",),  # the numba kernels: genotypes' subsetting moves packed codes with one
    ("genoae.device", "genoae.progress", "genoae.shard"),
    ("genoae.errors",),
]


def _layer(module: str) -> tuple[int, str]:
    for depth, group in enumerate(LAYERS):
        for prefix in group:
            if module == prefix or module.startswith(prefix + "."):
                return depth, prefix
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py")


def test_imports_only_reach_down(graph):
    upward = []
    for module, targets in graph.items():
        if module == "genoae":
            continue  # the package's front door re-exports from below
        depth, room = _layer(module)
        for target in targets:
            if target == "genoae":
                continue
            target_depth, target_room = _layer(target)
            if target_depth < depth or (target_depth == depth and target_room != room):
                upward.append(f"{module} imports {target}")
    assert not upward, "\n".join(sorted(upward))
