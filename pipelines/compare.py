"""`python -m pipelines.compare`: compare runs: scores side by side, paired t-tests, uncertainty curves.

The command's flags are read by `pipelines.experiments.compare.parse_args`; `--help` lists them.
"""

from pipelines.experiments.compare import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
