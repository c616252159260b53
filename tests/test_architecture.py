"""Dependencies between edgeact's packages point one way.

The nodes are edgeact's subpackages and top-level modules (``runtime``, ``export``,
``bundle``…; ``edgeact`` is the package's ``__init__``). There is an edge A → B when a file
in A imports anything from B: every import counts, at module level, inside functions and
under ``TYPE_CHECKING``. The tests fail on any cycle (printing it, with the importing
files) and on the edges docs/DESIGN.md rules out.

``python tests/test_architecture.py`` prints the graph bottom-up: each node with what it
imports, every import pointing to a node printed above it.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "edgeact"
ROOT = "edgeact"  # the node of edgeact/__init__.py (load_policy, __version__)

# docs/DESIGN.md's lines, top to bottom: a node imports only from lines below its own.
LAYERS = [
    {"cli", "commands"},
    {"demo", "bench", "hailo", "teleop", "deploy"},
    {"drive"},
    {ROOT, "export", "sim", "training", "inspection", "doctor", "firmware"},
    {"backends", "runtime", "data"},
    {"checkpoint"},
    {"model"},
    {"normalization"},
    {"config"},
    {"bundle"},
    {"policy", "frames", "cpu", "cpu_peak", "fileio", "ssh"},
    {"errors", "version"},
]
# Shared pieces low in the tree: they import nothing of edgeact but each other.
NEUTRAL = {"errors", "version", "fileio", "frames", "cpu", "cpu_peak", "policy", "bundle", "ssh"}
# Pairs that must not import each other in either direction, and one-way rules.
NEVER_EITHER_WAY = [("export", "backends")]
NEVER = [("runtime", "sim"), ("runtime", "export"), ("runtime", "model"), ("runtime", "checkpoint"),
         ("backends", "runtime"), ("sim", "export"), ("model", "data")]

# Inside training/ (its __init__ docstring): a module imports only from the lines below its own.
TRAINING_LAYERS = [
    {"__main__"},
    {"loop"},
    {"benchmark", "loader_bench"},
    {"step"},
    {"pipeline"},
    {"sampler", "distributed", "presets", "outputs"},
]

Edges = dict[str, dict[str, set[str]]]  # source node -> target node -> importing files


def node_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if rel.parts == ("__init__.py",):
        return ROOT
    return rel.parts[0].removesuffix(".py")


def _submodules() -> set[str]:
    return {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
            if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}


def _module_name(path: Path) -> list[str]:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_main_guard(stmt: ast.stmt) -> bool:
    test = stmt.test if isinstance(stmt, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def imported_nodes(path: Path, submodules: set[str]) -> set[str]:
    """The nodes ``path`` imports from (itself included), every import statement counted."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path)[:-1]
    found: set[str] = set()
    # An `if __name__ == "__main__":` block is a script entry point (`python -m edgeact.training`
    # hands over to the command line): it runs only when executed, so no importer of the
    # module depends on what it imports.
    entry = {id(node) for stmt in tree.body if _is_main_guard(stmt) for node in ast.walk(stmt)}
    for stmt in ast.walk(tree):
        if id(stmt) in entry:
            continue
        if isinstance(stmt, ast.Import):
            targets = [alias.name.split(".") for alias in stmt.names]
        elif isinstance(stmt, ast.ImportFrom):
            base = package[:len(package) - stmt.level + 1] if stmt.level else []
            module = base + (stmt.module.split(".") if stmt.module else [])
            targets = [module + [alias.name] for alias in stmt.names] if module == [ROOT] else [module]
        else:
            continue
        for target in targets:
            if target[0] != ROOT:
                continue
            found.add(target[1] if len(target) > 1 and target[1] in submodules else ROOT)
    return found


def import_graph() -> Edges:
    submodules = _submodules()
    edges: Edges = defaultdict(lambda: defaultdict(set))
    for path in sorted(PACKAGE.rglob("*.py")):
        source = node_of(path)
        edges[source]  # every node appears, even one that imports nothing of edgeact
        for target in imported_nodes(path, submodules) - {source}:
            edges[source][target].add(str(path.relative_to(PACKAGE.parent)))
    return edges


def find_cycle(edges: Edges) -> list[str] | None:
    """One cycle as [a, b, …, a], or None (depth-first search, grey/black marking)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def describe_cycle(edges: Edges, cycle: list[str]) -> str:
    lines = [" -> ".join(cycle)]
    for a, b in zip(cycle, cycle[1:]):
        lines.append(f"  {a} -> {b}: " + ", ".join(sorted(edges[a][b])))
    return "\n".join(lines)


def bottom_up(edges: Edges) -> list[str]:
    """Nodes in an order where each one's imports come before it (the graph must be acyclic)."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for nxt in sorted(edges.get(node, {})):
            visit(nxt)
        order.append(node)

    for node in sorted(edges):
        visit(node)
    return order


def test_the_graph_sees_every_package_and_function_local_imports():
    edges = import_graph()
    assert {"runtime", "export", "backends", "sim", "bundle", "frames", "cpu", "errors", ROOT} <= set(edges)
    # bench imports the exporter only inside functions; it must still count
    assert "export" in edges["bench"]
    # `from edgeact import __version__` would be an import of the package's __init__
    assert imported_nodes(PACKAGE / "cli.py", _submodules()) >= {"version", "errors"}


def test_cycle_finder_reports_the_cycle_and_the_files():
    edges: Edges = {"a": {"b": {"a/x.py"}}, "b": {"c": {"b/y.py"}}, "c": {"a": {"c.py"}}, "d": {}}
    cycle = find_cycle(edges)
    assert cycle == ["a", "b", "c", "a"]
    assert "c -> a: c.py" in describe_cycle(edges, cycle)
    assert find_cycle({"a": {"b": {"a.py"}}, "b": {}}) is None


def test_no_cycle_between_packages():
    edges = import_graph()
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle between edgeact packages:\n" + describe_cycle(edges, cycle)


def test_neutral_modules_import_only_neutral_modules():
    edges = import_graph()
    wrong = {n: sorted(set(edges[n]) - NEUTRAL) for n in NEUTRAL if set(edges[n]) - NEUTRAL}
    assert not wrong, f"neutral modules importing above themselves: {wrong}"


def test_imports_point_down_the_layers():
    edges = import_graph()
    level = {node: i for i, layer in enumerate(LAYERS) for node in layer}
    unplaced = sorted(set(edges) - set(level))
    assert not unplaced, f"give these packages a line in docs/DESIGN.md and LAYERS: {unplaced}"
    upward = {f"{a} -> {b}": sorted(files) for a, targets in edges.items() for b, files in targets.items()
              if level[b] <= level[a]}
    assert not upward, f"imports that do not point down the layers: {upward}"


def test_forbidden_directions():
    edges = import_graph()
    rules = NEVER + NEVER_EITHER_WAY + [(b, a) for a, b in NEVER_EITHER_WAY]
    broken = {f"{a} -> {b}": sorted(edges[a][b]) for a, b in rules if b in edges.get(a, {})}
    assert not broken, f"imports docs/DESIGN.md rules out: {broken}"


def test_training_modules_import_down_their_lines():
    package = PACKAGE / "training"
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    level = {m: i for i, layer in enumerate(TRAINING_LAYERS) for m in layer}
    assert modules == set(level), f"give these training modules a line in TRAINING_LAYERS: {modules ^ set(level)}"
    upward = {}
    for name in modules:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        entry = {id(node) for stmt in tree.body if _is_main_guard(stmt) for node in ast.walk(stmt)}
        for stmt in ast.walk(tree):
            if id(stmt) in entry or not isinstance(stmt, ast.ImportFrom) or not stmt.module:
                continue
            parts = stmt.module.split(".")
            targets = parts[2:3] if parts[:2] == [ROOT, "training"] else []
            if parts == [ROOT, "training"]:
                targets = [alias.name for alias in stmt.names]
            upward.update({f"{name} -> {t}": stmt.lineno for t in targets if t in level and level[t] <= level[name]})
    assert not upward, f"training modules importing sideways or up (line numbers): {upward}"


if __name__ == "__main__":
    graph = import_graph()
    found = find_cycle(graph)
    if found:
        print("CYCLE: " + describe_cycle(graph, found))
        sys.exit(1)
    for name in bottom_up(graph):
        print(f"{name:<12} <- {', '.join(sorted(graph[name])) or '(nothing of edgeact)'}")
