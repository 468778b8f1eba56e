"""`python -m pipelines.train`: train a model (or continue a run), score it, write the run directory.

The command's flags are read by `pipelines.training.train.parse_args`; `--help` lists them.
"""

from pipelines.training.train import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
