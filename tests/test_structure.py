"""The package's import structure, read from the source (no module is imported).

Every `import` counts, at module level and inside functions: a function-level import still ties
two modules together. The folders are the layers; an import points to its own layer or one below:

    commands      pipelines/<command>.py, pipelines/__main__.py   (`python -m pipelines.<command>`)
    experiments   compare, ensemble, ablate, benchmark      serving   export, predict, client, ...
    training      setup, train, tune, lr_finder, callbacks, stability, ...
    evaluation    scoring, evaluate, uncertainty, conformal, figures, fusion_guard, ...
    runs          prepare, folders, checks, backup, resume, epoch_line
    components    example_gen, statistics_gen, transform, input_pipeline, extract, ...
    data          config/, data/, datasets/, media/   (keys, records, corpora, settings; imports no component)
    core          errors, io_utils, cli, quiet, pause
    cold_keras    the library: imports nothing of `pipelines`
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cold_keras", "pipelines")
# Bottom to top; a module may import modules of its own layer (acyclically) or of a lower one.
LAYERS = (
    ("cold_keras",),
    ("pipelines.core",),
    ("pipelines.config", "pipelines.data", "pipelines.datasets", "pipelines.media"),
    ("pipelines.components",),
    ("pipelines.runs",),
    ("pipelines.evaluation",),
    ("pipelines.training",),
    ("pipelines.serving", "pipelines.experiments"),
)
COMMAND_LAYER = len(LAYERS)  # pipelines/<command>.py and pipelines/__main__.py


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


def _layer(name: str) -> int:
    for level, prefixes in enumerate(LAYERS):
        if _in(name, prefixes):
            return level
    if name.count(".") == 1 and name.startswith("pipelines."):
        return COMMAND_LAYER
    raise AssertionError(f"{name} is in no layer of tests/test_structure.py: place its folder in LAYERS")


def test_every_import_points_to_its_own_layer_or_below():
    graph = _graph()
    upward = []
    for name, targets in graph.items():
        if name == "pipelines":  # the package's own __init__
            continue
        for target in targets:
            if target != "pipelines" and _layer(target) > _layer(name):
                upward.append(f"{name} -> {target}")
    assert upward == [], "\n".join(sorted(upward))


def test_the_layer_check_sees_an_upward_import():
    assert _layer("pipelines.data.records") < _layer("pipelines.components.example_gen")
    assert _layer("pipelines.evaluation.evaluate") < _layer("pipelines.training.train")
    assert _layer("pipelines.train") == COMMAND_LAYER
    assert _layer("cold_keras.layers") == 0


def test_the_library_imports_nothing_of_pipelines():
    graph = _graph()
    for name, targets in graph.items():
        if _in(name, ("cold_keras",)):
            assert not [t for t in targets if _in(t, ("pipelines",))], (name, sorted(targets))


def test_commands_are_thin_and_nothing_imports_them():
    """A command module only runs its `main`; the work is in the layers below, which never import a command."""
    graph = _graph()
    commands = [name for name in MODULES if name != "pipelines" and _layer(name) == COMMAND_LAYER]
    assert "pipelines.train" in commands and "pipelines.__main__" in commands
    for name, targets in graph.items():
        if name != "pipelines" and _layer(name) < COMMAND_LAYER:
            assert not [t for t in targets if t in commands], (name, sorted(targets))
    for name in commands:
        if name == "pipelines.__main__":
            continue
        lines = MODULES[name].read_text().splitlines()
        assert len(lines) <= 200, f"{MODULES[name].relative_to(REPO)} is {len(lines)} lines: a command is thin"


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


MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines():
    """A module holds one job; a longer one is split by job (a newcomer reads a room, not a house)."""
    long = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in MODULES.values()
        if len(path.read_text().splitlines()) > MAX_MODULE_LINES
    }
    assert long == {}, long
