"""`python -m pipelines.prepare`: run (or reuse) the three data components for a configuration or a run.

The command's flags are read by `pipelines.runs.prepare.parse_args`; `--help` lists them.
"""

from pipelines.runs.prepare import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
