"""The documentation cannot go stale: every command it shows is checked against today's command line.

Every `python -m pipelines.<command> ...`, `python bench/<name>.py ...` and `python -m bench.<name> ...`
in a fenced code block of README.md, docs/*.md and bench/README.md is parsed with that command's own
argparse parser (captured from `parse_args` / `build_parser` / `main`, so nothing runs): a renamed or
removed flag, a missing required flag or a bad value fails here. Commands with placeholders (`...`),
synopses (`[--flag X]`, `{a,b}`) and commands quoted inline in the prose are checked flag by flag: each
flag must exist. A documented one-line argparse error (`$ command` followed by `error: argument ...`)
must be exactly the error the parser gives. Paths such as RUN or DIR are placeholders: parsing is the
check. The cheap commands run for real: every command's `--help` and `python -m pipelines.settings`.
README.md's relative links must point to existing files, and every repository path the docs name in
backquotes (`pipelines/serving/predict.py`, `tests/...::test_name`) must exist.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BENCH_README = REPO / "bench" / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md")), BENCH_README]

FENCE = re.compile(r"^(\s*)(```|~~~)")
INLINE = re.compile(r"`(python (?:-m (?:pipelines|bench)\.|bench/)[^`]*)`")
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ">", ">>", "2>", "2>&1", "<", "<<"}


# --------------------------------------------------------------------------- reading the docs


def _blocks(path: Path):
    """(first line number, lines) of every fenced code block of a Markdown file."""
    lines = path.read_text().splitlines()
    blocks, current, fence, start = [], None, None, 0
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if current is None and match:
            current, fence, start = [], match.group(2), number + 1
        elif current is not None and line.strip().startswith(fence):
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _logical_lines(lines):
    """(offset, line) with shell line continuations joined."""
    joined, pending, first = [], "", None
    for offset, line in enumerate(lines):
        if first is None:
            first = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append((first, pending + line))
        pending, first = "", None
    if pending:
        joined.append((first, pending))
    return joined


def _target_and_argv(tokens):
    """The command's target (`pipelines.train`, `bench/stability.py`) and its arguments, or None."""
    for i, token in enumerate(tokens):
        if token not in ("python", "python3"):
            if re.match(r"^[A-Za-z_]\w*=", token):  # an environment assignment before the command
                continue
            return None
        rest = tokens[i + 1 :]
        if len(rest) >= 2 and rest[0] == "-m" and rest[1].split(".")[0] in ("pipelines", "bench"):
            target, argv = rest[1], rest[2:]
        elif rest and rest[0].startswith("bench/") and rest[0].endswith(".py"):
            target, argv = rest[0], rest[1:]
        else:
            continue
        if not re.match(r"^(\w+(\.\w+)*|bench/\w+\.py)$", target):  # `python -m pipelines.<name>`: no command
            return None
        end = next((j for j, token in enumerate(argv) if token in SHELL_OPERATORS), len(argv))
        return target, argv[:end]
    return None


def _split(text):
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote: no shell command
        return []


def _commands():
    """Every documented command: (where, target, argv, full, expected argparse error or None)."""
    found = []
    for path in DOCS:
        name = path.relative_to(REPO)
        for start, lines in _blocks(path):
            logical = _logical_lines(lines)
            for index, (offset, line) in enumerate(logical):
                text = line.strip()
                if text.startswith("$ "):
                    text = text[2:]
                for part in re.split(r"\s(?:&&|\|\||;)\s", text):
                    parsed = _target_and_argv(_split(part))
                    if parsed is None:
                        continue
                    target, argv = parsed
                    following = logical[index + 1][1].strip() if index + 1 < len(logical) else ""
                    expected = following if following.startswith("error: argument") else None
                    full = not any(_is_placeholder(token) for token in argv)
                    found.append((f"{name}:{start + offset}", target, argv, full, expected))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in INLINE.finditer(line):
                parsed = _target_and_argv(_split(match.group(1)))
                if parsed is not None:
                    found.append((f"{name}:{number} (inline)", parsed[0], parsed[1], False, None))
    return found


def _is_placeholder(token):
    return token == "..." or any(mark in token for mark in ("[", "]", "{", "}", "|", "<", ">"))


# --------------------------------------------------------------------------- the commands' parsers


class _Captured(BaseException):
    """Raised instead of parsing: carries the parser a command built."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def _capture(self, *args, **kwargs):
    raise _Captured(self)


def _load_bench(target):
    name = target.removesuffix(".py").replace("/", ".").split(".")[-1]
    path = REPO / "bench" / f"{name}.py"
    assert path.is_file(), f"{target}: no such benchmark"
    spec = importlib.util.spec_from_file_location(f"_docs_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PARSERS = {}


def parser_of(target) -> argparse.ArgumentParser:
    """The argument parser of a command, built by the command's own code, without running it."""
    if target in _PARSERS:
        return _PARSERS[target]
    bench = target.startswith("bench")
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    try:
        if bench:
            sys.path.insert(0, str(REPO / "bench"))
            module = _load_bench(target)
        else:
            module = importlib.import_module(target)
        parser = None
        with mock.patch.object(argparse.ArgumentParser, "parse_args", _capture):
            try:
                if hasattr(module, "build_parser"):
                    parser = module.build_parser()
                elif hasattr(module, "parse_args"):
                    module.parse_args([])
                else:
                    sys.argv = [target]
                    try:
                        module.main([])
                    except TypeError:  # main() without an argv parameter: it reads sys.argv
                        module.main()
            except _Captured as captured:
                parser = captured.parser
    finally:
        sys.path[:], sys.argv[:] = saved_path, saved_argv
    assert parser is not None, f"{target} built no argument parser before doing any work"
    _PARSERS[target] = parser
    return parser


def _parse(parser, argv):
    """(exit code or None, stderr) of parsing `argv`."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exit:
            return exit.code, err.getvalue()
    return None, err.getvalue()


def _flags(argv):
    flags = []
    for token in argv:
        token = token.strip("[](){}")
        if re.match(r"^--?[A-Za-z]", token):
            flags.append(token.split("=", 1)[0])
    return flags


COMMANDS = _commands()


def test_the_docs_show_commands():
    targets = {target for _, target, _, _, _ in COMMANDS}
    assert {"pipelines.train", "pipelines.predict", "pipelines.evaluate", "pipelines.export"} <= targets
    assert any(target.startswith("bench") for target in targets)


@pytest.mark.parametrize("where, target, argv, full, expected", COMMANDS, ids=[f"{c[0]} {c[1]}" for c in COMMANDS])
def test_documented_command_matches_the_command_line(where, target, argv, full, expected):
    parser = parser_of(target)
    known = set(parser._option_string_actions)
    unknown = [flag for flag in _flags(argv) if flag not in known]
    assert not unknown, f"{where}: {target} has no flag {', '.join(unknown)} (documented: {' '.join(argv)})"
    if not full:
        return
    code, err = _parse(parser, argv)
    if expected is not None:
        assert code == 2, f"{where}: {' '.join(argv)} parses, but the docs show {expected!r}"
        assert err.strip() == expected, f"{where}: the documented error is stale:\n  docs: {expected}\n  now:  {err}"
    else:
        assert code is None, f"{where}: python -m {target} {' '.join(argv)}: {err.strip()}"


# --------------------------------------------------------------------------- run for real


def _runnable_modules():
    """Every module of `pipelines` (and subpackages) with an `if __name__ == "__main__"` block."""
    found = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                found.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


BENCHMARKS = sorted(path.name for path in (REPO / "bench").glob("[a-z]*.py"))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def test_every_command_and_benchmark_answers_help():
    commands = [[sys.executable, "-m", module, "--help"] for module in _runnable_modules()]
    commands += [[sys.executable, f"bench/{name}", "--help"] for name in BENCHMARKS]

    def run(command):
        return command, subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run, commands))
    failed = [f"{' '.join(c[1:])}: exit {r.returncode}: {r.stderr[-500:]}" for c, r in results if r.returncode != 0]
    assert not failed, "\n".join(failed)
    assert all(r.stdout.startswith("usage:") for _, r in results)


def test_the_settings_command_prints_every_key():
    from pipelines.config import settings

    result = subprocess.run(
        [sys.executable, "-m", "pipelines.settings"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == settings.describe()


def _hook():
    spec = importlib.util.spec_from_file_location("_docs_hooks", REPO / "docs" / "_hooks" / "settings_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_config_reference_is_generated_from_the_settings():
    from pipelines.config import settings

    hook = _hook()
    page = (REPO / "docs" / "configuration.md").read_text()
    assert hook.MARKER in page
    rendered = hook.on_page_markdown(page, page=None, config=None, files=None)
    assert hook.MARKER not in rendered
    for path in hook.key_paths(settings.describe()):
        assert f"`{path}`" in rendered, path


# --------------------------------------------------------------------------- lists, links and paths


def test_the_readme_lists_every_command():
    text = README.read_text()
    listed = set(re.findall(r"`python -m (pipelines[\w.]*)[` ]", text))
    # `python -m pipelines` runs `pipelines/__main__.py` (the command list)
    runnable = {"pipelines" if module == "pipelines.__main__" else module for module in _runnable_modules()}
    assert runnable - listed == set(), f"README.md does not list {sorted(runnable - listed)}"
    stale = listed - runnable
    assert not stale, f"README.md lists commands that do not exist: {sorted(stale)}"


def test_every_benchmark_has_its_section_in_bench_readme():
    text = BENCH_README.read_text()
    missing = [name for name in BENCHMARKS if f"python bench/{name}" not in text]
    assert not missing, f"bench/README.md has no command for {missing}"


def test_the_readme_test_command_is_what_ci_runs():
    blocks = [lines for _, lines in _blocks(README) if any("python -m pytest" in line for line in lines)]
    assert blocks, "README.md shows no test command"
    command = blocks[0][0].strip()
    ci = next(line for line in (REPO / ".ci" / "run").read_text().splitlines() if "python -m pytest" in line)
    position = 0
    for part in command.split(" && "):
        found = ci.find(part, position)
        assert found >= 0, f".ci/run does not run {part!r} of the README's test command (in that order)"
        position = found + len(part)
    assert "mkdocs build --strict" in ci


def test_the_readme_is_short_and_its_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    broken = [
        link
        for link in links
        if not re.match(r"^[a-z]+:", link) and not link.startswith("#") and not (REPO / link.split("#")[0]).exists()
    ]
    assert not broken, f"README.md links to missing files: {broken}"


REPO_PATH = re.compile(r"`((?:cold_keras|pipelines|tests|bench|configs|docs)/[\w./-]*\w)(?:::(\w+))?`")


def test_every_repository_path_the_docs_name_exists():
    missing = []
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in REPO_PATH.finditer(line):
                target, function = REPO / match.group(1), match.group(2)
                if not target.exists():
                    missing.append(f"{path.relative_to(REPO)}:{number}: {match.group(1)}")
                elif function and not re.search(rf"def {function}\b", target.read_text()):
                    missing.append(f"{path.relative_to(REPO)}:{number}: {match.group(1)}::{function}")
    assert not missing, "\n".join(missing)


# --------------------------------------------------------------------------- the architecture page


def _documented_layers():
    """[(layer, [folder, ...])] of the layer table of docs/architecture.md."""
    layers = []
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        match = re.match(r"^\| (\d) \| [^|]+ \| (.+) \|$", line)
        if match:
            layers.append((int(match.group(1)), re.findall(r"`([\w.<>/]+)`", match.group(2))))
    return layers


def test_the_documented_layers_are_the_tested_ones():
    """The table of docs/architecture.md is `LAYERS` of tests/test_structure.py, commands on top."""
    from tests.test_structure import COMMAND_LAYER, LAYERS

    layers = _documented_layers()
    assert [layer for layer, _ in layers] == list(range(COMMAND_LAYER + 1)), layers
    assert [tuple(folders) for _, folders in layers[:COMMAND_LAYER]] == list(LAYERS)
    assert layers[COMMAND_LAYER][1] == ["pipelines/<command>.py", "pipelines/__main__.py"]
    for folders in LAYERS[1:]:
        for folder in folders:
            assert (REPO / folder.replace(".", "/") / "__init__.py").exists(), folder
