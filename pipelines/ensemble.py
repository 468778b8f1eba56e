"""`python -m pipelines.ensemble`: evaluate several runs as one deep ensemble.

The command's flags are read by `pipelines.experiments.ensemble.parse_args`; `--help` lists them.
"""

from pipelines.experiments.ensemble import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
