"""Quiet start-up for every command: TensorFlow's C++ logging and known harmless warnings are
filtered here, in one place, before TensorFlow is imported.

`pipelines/__init__.py` calls `install()` when a command runs as `python -m pipelines.<command>`;
`-v`/`--verbose` on the command line (or `COLD_KERAS_VERBOSE=1`) leaves everything visible.
What is filtered:

* TensorFlow's C++ start-up and runtime logging (oneDNN and CPU-instruction notices, CUDA probing,
  absl's "log messages before absl::InitializeLog()" line): `TF_CPP_MIN_LOG_LEVEL=3` unless the
  environment already sets a level, and, for the lines TensorFlow writes before its logging reads
  that variable, a filter on file descriptor 2 while `import tensorflow` runs (other lines written
  meanwhile are passed on);
* tensorflow-io's "unable to load libtensorflow_io_plugins.so ... undefined symbol" and "file system
  plugins are not loaded" warnings (its pure-Python ops, which the project uses, work without them);
* Keras' "`shuffle=True` was passed, but will be ignored" (the input pipeline shuffles itself) and
  "Your input ran out of data; interrupting training" (a finite dataset ends an epoch by running
  out; that is how the trainer uses it, not a fault);
* Python-side INFO and WARNING records of the `tensorflow` and `absl` loggers.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings

VERBOSE_FLAGS = ("-v", "--verbose")
VERBOSE_ENV = "COLD_KERAS_VERBOSE"

# (message regex, category) of warnings that carry no information for a user of the commands.
HARMLESS_WARNINGS = (
    (r".*libtensorflow_io.*", UserWarning),
    (r".*file system plugins are not loaded.*", UserWarning),
    (r".*`shuffle=True` was passed, but will be ignored.*", UserWarning),
    (r".*Your input ran out of data; interrupting training.*", UserWarning),
)

# Lines TensorFlow's C++ libraries write to stderr while loading, before TF_CPP_MIN_LOG_LEVEL applies.
STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \S+\s+\d+ \S+:\d+\] "
    r"|E\d{4} \S+\s+\d+ \S+:\d+\] .*(cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS)"
    r"|To enable the following instructions: .*rebuild TensorFlow)"
)

_installed = {"quiet": None}


def filter_startup_noise(text: str) -> str:
    """`text` without the lines that match `STARTUP_NOISE`."""
    kept = [line for line in text.splitlines(keepends=True) if not STARTUP_NOISE.match(line)]
    return "".join(kept)


class _FilteredLoader(importlib.abc.Loader):
    """Runs the real loader of `tensorflow` with file descriptor 2 sent to a temporary file, then
    writes what was captured, minus `STARTUP_NOISE`, to the real stderr."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as capture:
            os.dup2(capture.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                text = filter_startup_noise(capture.read().decode("utf-8", "replace"))
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()


class _TensorFlowImportFilter(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, giving it a `_FilteredLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


def verbose_requested(argv=None) -> bool:
    """Whether the command line (`-v`/`--verbose`) or `COLD_KERAS_VERBOSE=1` asks for full logging."""
    argv = sys.argv[1:] if argv is None else argv
    return any(arg in VERBOSE_FLAGS for arg in argv) or os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def install(verbose=None) -> bool:
    """Filters the start-up logging and harmless warnings unless `verbose`; returns True when filtered.

    Must run before TensorFlow is imported for the C++ logging to be filtered. Idempotent.
    """
    if verbose is None:
        verbose = verbose_requested()
    if verbose or _installed["quiet"]:
        _installed["quiet"] = _installed["quiet"] or False
        return bool(_installed["quiet"])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _TensorFlowImportFilter) for f in sys.meta_path):
        sys.meta_path.insert(0, _TensorFlowImportFilter())
    for message, category in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _installed["quiet"] = True
    return True


def running_as_command() -> bool:
    """True while `python -m pipelines.<command>` imports the package (runpy sets argv[0] to '-m')."""
    return bool(sys.argv) and sys.argv[0] == "-m"
