"""`python -m pipelines.ablate`: ablate COLD's loss terms over seeds.

The command's flags are read by `pipelines.experiments.ablate.parse_args`; `--help` lists them.
"""

from pipelines.experiments.ablate import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
