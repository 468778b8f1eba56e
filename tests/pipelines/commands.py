"""A command run in the test process, as `python -m pipelines.<command>` runs it in its own.

For end-to-end tests that need no process of their own (no signal, no device setup): the command's
`main` runs here with the given data cache, and its exit code, standard output and standard error
come back like `subprocess.run`'s; the global dtype policy a command sets (`--mixed-precision`) is
put back afterwards. Each use saves starting TensorFlow in a new process (about 5 CPU seconds). What
only a process of its own shows (the `python -m` entry, start-up noise, Ctrl-C) is tested with real
processes elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import os


@dataclasses.dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def run_command(module: str, argv, cache) -> Completed:
    """Runs `pipelines.<module>.main(argv)` with `COLD_KERAS_CACHE=cache`; a traceback propagates."""
    import keras

    stdout, stderr = io.StringIO(), io.StringIO()
    previous = os.environ.get("COLD_KERAS_CACHE")
    policy = keras.config.dtype_policy()
    os.environ["COLD_KERAS_CACHE"] = str(cache)
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            importlib.import_module(f"pipelines.{module}").main([str(arg) for arg in argv])
    except SystemExit as leave:
        code = 0 if leave.code is None else leave.code if isinstance(leave.code, int) else 1
    finally:
        if previous is None:
            os.environ.pop("COLD_KERAS_CACHE", None)
        else:
            os.environ["COLD_KERAS_CACHE"] = previous
        keras.config.set_dtype_policy(policy)
        keras.backend.clear_session(free_memory=False)  # no full collection: 0.4 s or more per call
    return Completed(code, stdout.getvalue(), stderr.getvalue())
