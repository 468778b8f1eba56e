"""`python -m pipelines.export`: export a run as a SavedModel for TensorFlow Serving.

The command's flags are read by `pipelines.serving.export.parse_args`; `--help` lists them.
"""

from pipelines.serving.export import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
