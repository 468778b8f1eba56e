"""MkDocs hook: the configuration key reference, generated from `pipelines/config/settings.py` at build time.

`docs/configuration.md` holds the marker below; this hook replaces it with tables built from
`pipelines.config.settings.describe()` (the lines `python -m pipelines.settings` prints: every key, its default,
its allowed values and its help) and, for the mapping-valued keys (`training.augment`, `synthetic`,
`raw.logmel`, ...), the keys their code accepts. A key added, renamed or given another default in
`settings.py` changes the page with no edit here. `tests/test_docs.py` checks every key is on the page.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- settings-reference -->"
LINE = re.compile(r"^(?P<indent> *)(?P<key>\w+):(?: (?P<default>.*?))?(?:  # (?P<notes>.*))?$")


def _settings():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from pipelines.config import settings

    if Path(settings.__file__).resolve().parents[2] != REPO:  # another checkout installed in the environment
        raise RuntimeError(f"the docs of {REPO} would describe {settings.__file__}; run mkdocs from that checkout")
    return settings


def parse(lines):
    """(key path, default or None for a section, notes) of every line of `describe()`."""
    rows, stack = [], []
    for line in lines:
        match = LINE.match(line)
        if match is None:
            raise ValueError(f"pipelines.config.settings.describe() printed a line this hook cannot read: {line!r}")
        depth = len(match.group("indent")) // 2
        stack[depth:] = [match.group("key")]
        rows.append((".".join(stack), match.group("default"), match.group("notes") or ""))
    return rows


def key_paths(lines):
    """The dotted path of every key (not section) `describe()` prints."""
    return [path for path, default, _ in parse(lines) if default is not None]


def _cell(text):
    return text.replace("|", "\\|")


def _mapping_keys(settings):
    """{key path: sorted accepted keys} of the mapping-valued settings whose keys code elsewhere declares."""
    found = {}

    def visit(section, prefix):
        for field in dataclasses.fields(section):
            kind = field.metadata.get("kind")
            if isinstance(kind, type) and issubclass(kind, settings.Section):
                visit(kind, f"{prefix}{field.name}.")
            elif kind == "mapping" and field.metadata.get("keys") is not None:
                found[f"{prefix}{field.name}"] = sorted(field.metadata["keys"]())

    visit(settings.RunConfig, "")
    return found


def render() -> str:
    settings = _settings()
    rows = parse(settings.describe())
    sections = {path for path, default, _ in rows if default is None}
    mappings = _mapping_keys(settings)
    groups = {"": []}
    for path, default, notes in rows:
        if default is None:
            continue
        section = path.rsplit(".", 1)[0] if "." in path else ""
        if path in mappings:
            notes = "; ".join(n for n in (notes, "keys: " + ", ".join(f"`{k}`" for k in mappings[path])) if n)
        groups.setdefault(section, []).append(f"| `{path}` | `{_cell(default)}` | {_cell(notes)} |")
    out = []
    for section, lines in groups.items():
        title = f"`{section}:`" if section in sections else "Top-level keys"
        out += ["", f"#### {title}", "", "| key | default | allowed values, meaning |", "| --- | --- | --- |", *lines]
    return "\n".join(out).strip() + "\n"


def on_page_markdown(markdown, page, config, files, **kwargs):
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
