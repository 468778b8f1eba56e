"""`python -m pipelines.benchmark`: compare every model with an equal tuning budget over seeds.

The command's flags are read by `pipelines.experiments.benchmark.parse_args`; `--help` lists them.
"""

from pipelines.experiments.benchmark import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
