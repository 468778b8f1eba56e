"""The package's import structure, read from the source (no module is imported).

Every `import` counts, at module level and inside functions: a function-level import still ties
two modules together. Layers, from the bottom: the library `cold_keras` (imports nothing of
`pipelines`); the data layer (`pipelines.features`, `records`, `labels`, the corpus adapters in
`pipelines.datasets`); the components (`example_gen`, `statistics_gen`, `transform`,
`input_pipeline`, `train`, ...); the commands (each component's `main`).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cold_keras", "pipelines")
DATA_LAYER = ("pipelines.features", "pipelines.records", "pipelines.labels", "pipelines.datasets")
COMPONENTS = (
    "pipelines.example_gen",
    "pipelines.statistics_gen",
    "pipelines.transform",
    "pipelines.input_pipeline",
    "pipelines.train",
    "pipelines.tune",
    "pipelines.evaluate",
    "pipelines.export",
    "pipelines.predict",
)


def _modules() -> dict:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(path: Path) -> list:
    """(imported module, imported name or None, line) for every absolute import of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def _graph() -> dict:
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for module, imported, _ in _imports(path):
            for candidate in (module, f"{module}.{imported}"):
                if candidate in MODULES and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components


def _in(name: str, prefixes) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]


def test_no_import_cycle():
    """Imports (function-level ones included) only point one way, between components too."""
    assert [sorted(cycle) for cycle in _cycles(_graph())] == []


def test_the_data_layer_imports_no_component_and_the_library_no_pipeline():
    graph = _graph()
    for name, targets in graph.items():
        if _in(name, DATA_LAYER):
            assert not [t for t in targets if _in(t, COMPONENTS)], (name, sorted(targets))
        if _in(name, ("cold_keras",)):
            assert not [t for t in targets if _in(t, ("pipelines",))], (name, sorted(targets))


def test_no_module_uses_another_modules_private_names():
    offences = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for module, imported, line in _imports(path):
            if module.split(".")[0] not in PACKAGES:
                continue
            if imported is not None and imported.startswith("_") and not imported.startswith("__"):
                offences.append(f"{path.relative_to(REPO)}:{line}: from {module} import {imported}")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    full = alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
                    if full.split(".")[0] in PACKAGES and full in MODULES:
                        aliases[alias.asname or alias.name.split(".")[-1]] = full
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offences.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offences, "\n".join(offences)
