"""`python -m pipelines.evaluate`: score a run on a partition, optionally with a modality corrupted.

The command's flags are read by `pipelines.evaluation.evaluate.parse_args`; `--help` lists them.
"""

from pipelines.evaluation.evaluate import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
