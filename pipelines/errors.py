"""Errors that reach the user as one line, and the wrapper that turns them into an exit code."""

from __future__ import annotations

import functools
import signal
import sys
import threading


class ColdKerasError(Exception):
    """An error the user can act on: printed as one line, no traceback.

    Args:
        message: str. What is wrong.
        path: optional str. The file or folder concerned.
        line: optional int. 1-based line number in `path`.
        column: optional int or str. 1-based column number or column name.
    """

    def __init__(self, message, path=None, line=None, column=None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column
        super().__init__(self.__str__())

    def __str__(self):
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            elif self.column is not None:
                where += f": column {self.column}"
            where += ": "
        return f"{where}{self.message}"


class DataError(ColdKerasError):
    """Bad input data: a corpus file, a feature file or an artefact."""


class ConfigError(ColdKerasError):
    """A bad configuration value or command-line flag."""


_INTERRUPTED = threading.Event()


def interrupt_requested() -> bool:
    """Whether Ctrl-C (SIGINT) reached a command run through `cli_main`."""
    return _INTERRUPTED.is_set()


def _on_sigint(signum, frame):
    # Remember the request: a KeyboardInterrupt raised while Python runs a finaliser (`__del__`,
    # e.g. of a TensorFlow resource) is printed and dropped, so long loops also poll the flag.
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def cli_main(fn):
    """Decorates a command's `main`: user errors print one line and exit 2.

    A KeyboardInterrupt exits 130 with a note that the run can be resumed; anything
    else is a bug and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, _on_sigint)
        try:
            return fn(*args, **kwargs)
        except ColdKerasError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print(
                "interrupted: everything written so far is kept; run the same command again to resume", file=sys.stderr
            )
            sys.exit(130)

    return wrapper
