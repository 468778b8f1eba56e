"""`python -m pipelines.predict`: predict on a corpus folder, one CSV per recording with 90% intervals.

The command's flags are read by `pipelines.serving.predict.parse_args`; `--help` lists them.
"""

from pipelines.serving.predict import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
