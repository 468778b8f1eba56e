"""TFX-style components of cold-keras, each runnable as `python -m pipelines.<component>`."""

from pipelines.core import quiet as _quiet

if _quiet.running_as_command():
    _quiet.install()
