"""Errors that reach the user as one line, and the wrapper that turns them into an exit code."""

from __future__ import annotations

import functools
import os
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
_LEAVING = threading.Event()  # the command's own KeyboardInterrupt path is printing and exiting
_LEAVE_LOCK = threading.Lock()  # one thread prints the line and ends the process
INTERRUPTED_LINE = "interrupted: everything written so far is kept; run the same command again to resume"
# Seconds after Ctrl-C within which the command must be on its way out, else the watchdog ends it.
INTERRUPT_GRACE_SECONDS = 1.0


def interrupt_requested() -> bool:
    """Whether Ctrl-C (SIGINT) reached a command run through `cli_main`."""
    return _INTERRUPTED.is_set()


_DEFERRED = threading.Event()  # inside a short section that Ctrl-C must not cut (`defer_interrupts`)
_PENDING = threading.Event()


def _on_sigint(signum, frame):
    # Remember the request: a KeyboardInterrupt raised while Python runs a finaliser (`__del__`,
    # e.g. of a TensorFlow resource) is printed and dropped, so long loops also poll the flag.
    _INTERRUPTED.set()
    if _DEFERRED.is_set():
        _PENDING.set()
        return
    raise KeyboardInterrupt


def defer_interrupts() -> None:
    """Holds Ctrl-C back until `allow_interrupts`: for short sections whose work belongs together
    (an epoch's history row, checkpoint and backup). Keep them well under a second: the watchdog
    of a command run as a program still ends it `INTERRUPT_GRACE_SECONDS` after Ctrl-C."""
    _DEFERRED.set()


def allow_interrupts() -> None:
    """Ends `defer_interrupts`; raises the KeyboardInterrupt held back meanwhile, if any."""
    _DEFERRED.clear()
    if _PENDING.is_set():
        _PENDING.clear()
        raise KeyboardInterrupt


def _leave(code: int, line: str, *, own_line=False) -> None:
    """Prints `line` on stderr and ends the process at once: no interpreter teardown (TensorFlow's
    runtime, tf.data's threads and every module's finalisers take about 2 s). Everything a command
    writes is complete on disk or written by atomic renames, so this leaves what a kill would."""
    if not _LEAVE_LOCK.acquire(blocking=False):
        threading.Event().wait()  # the other thread is ending the process
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a broken pipe or a closed stream: nothing is left to flush into
            continue
    os.write(2, f"{chr(10) if own_line else ''}{line}\n".encode())  # own_line: after a progress bar's
    os._exit(code)


def _watch_sigint(read_fd: int) -> None:
    """Ends the process `INTERRUPT_GRACE_SECONDS` after Ctrl-C unless the command is leaving by itself.

    Python runs a signal handler only between bytecodes of the main thread: while that thread is in
    one long C++ call (TensorFlow optimising and running the first step of a traced function takes
    10-15 s on the default model and 2 CPU cores) a KeyboardInterrupt waits for the call to return.
    The C-level handler writes the signal's number to the wakeup fd at once, which wakes this thread.
    """
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        if signal.SIGINT not in data:
            continue
        _INTERRUPTED.set()
        if not _LEAVING.wait(INTERRUPT_GRACE_SECONDS):
            _leave(130, INTERRUPTED_LINE, own_line=True)


def _install_sigint_watchdog() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        return
    threading.Thread(target=_watch_sigint, args=(read_fd,), name="sigint-watchdog", daemon=True).start()


def cli_main(fn):
    """Decorates a command's `main`: user errors print one line and exit 2.

    A KeyboardInterrupt exits 130 with a note that the run can be resumed; output into a pipe
    whose reader has gone (`| head`) ends quietly with 141; anything else is a bug and keeps its
    traceback.

    Run as a program (`python -m pipelines.<command>`, the function's module is `__main__`), Ctrl-C
    ends the command within about a second at any stage: the interrupt's line is printed and the
    process ends without the interpreter's teardown, and a watchdog thread does the same when the
    main thread sits in a long C++ call (`_watch_sigint`). Called from Python (tests), `main`
    raises SystemExit as usual.
    """
    as_program = getattr(fn, "__module__", None) == "__main__"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, _on_sigint)
            if as_program:
                _install_sigint_watchdog()
        try:
            return _run(fn, args, kwargs)
        finally:
            if previous is not None and not as_program:  # called from Python: the caller's handler again
                signal.signal(signal.SIGINT, previous)

    def _run(fn, args, kwargs):
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
            return result
        except BrokenPipeError:
            # The reader of the output went away (`... | head`): stop quietly, as other command-line
            # tools do, with the exit code of a SIGPIPE.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
        except ColdKerasError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            _interrupted(as_program)
        except Exception:
            # Ctrl-C's KeyboardInterrupt can surface re-wrapped by library code it cut short (TensorFlow
            # turns one raised while it converts a shape during tracing into a TypeError): after Ctrl-C,
            # any error is the interrupt. Without Ctrl-C it is a bug and keeps its traceback.
            if not _INTERRUPTED.is_set():
                raise
            _interrupted(as_program)

    return wrapper


def _interrupted(as_program: bool) -> None:
    _LEAVING.set()
    if as_program:
        _leave(130, INTERRUPTED_LINE)
    print(INTERRUPTED_LINE, file=sys.stderr)
    sys.exit(130)
