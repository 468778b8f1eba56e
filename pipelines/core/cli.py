"""Command-line helpers shared by every command: help formatting, the `-v/--verbose` flag, flag
types that reject bad values naming the flag, and output-folder checks that run before TensorFlow
is imported."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from pipelines.core.errors import ConfigError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: X)` only for a real default: never `(default: None)` or `(default: False)`,
    and not when the help text already says what the default is."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def finish_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds `-v/--verbose` (TensorFlow's start-up logging and the warnings `pipelines.core.quiet` filters)
    and makes a bad flag one line, `error: argument --flag: what is wrong (see --help)`, exit 2."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show TensorFlow's start-up logging and library warnings, which are filtered otherwise",
    )

    def error(message):
        parser.exit(2, f"error: {message} (see {parser.prog} --help)\n")

    parser.error = error
    return parser


def _number(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a number > 0")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")


def progress_bar(iterable, desc: str, *, total=None, unit: str = "rec", enabled: bool = True):
    """`iterable` with a tqdm progress bar on stderr (the project's style), or unchanged when not
    `enabled`."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr)


def check_output_dir(path, flag: str = "--output-dir", *, create: bool = True) -> Path:
    """Makes sure `path` is (or can become) a folder this process can write; returns it.

    The one guard of every command that writes, called right after the flags are parsed and before
    anything heavy (TensorFlow, a model, a corpus). Raises ConfigError naming `flag` and the folder
    when it is a file, lies under a file, or cannot be created or written (e.g. /proc/x, a
    read-only disk).

    Args:
        path: the folder.
        flag: str. What the error names, e.g. "--output-dir".
        create: bool. Create the folder (default). False only checks, and leaves nothing behind:
            for commands that create the folder later or not at all (one that must exist already,
            one whose absence means something), the nearest existing folder must be writable.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} is a file, not a folder; pass a folder (new or existing)", path)
    _check_writable(path, flag, path, create)
    return path


def check_output_file(path, flag: str) -> Path:
    """Like `check_output_dir(create=False)` for a file a command writes (e.g. `--output report.json`):
    raises ConfigError naming `flag` and the file when it is a folder, lies under a file, or its
    folder cannot be created or written. Creates nothing."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{flag} is a folder, not a file; pass a file path", path)
    _check_writable(path.parent, flag, path, create=False)
    return path


def _check_writable(folder: Path, flag: str, shown: Path, create: bool) -> None:
    """`folder` is not under a file and is writable (created when `create`); errors name `shown`."""
    parent = folder
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} lies under a file ({parent}); pass a path in a folder", shown)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        # Write access as the file system sees it (os.access says yes to root on /proc, for one).
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder if create else parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(
            f"{flag} cannot be created or written ({error.strerror or error}); pass a writable folder", shown
        ) from None
