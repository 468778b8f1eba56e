"""`python -m pipelines.uncertainty`: fit a run's per-frame uncertainty calibration on its validation partition.

The command's flags are read by `pipelines.evaluation.uncertainty.parse_args`; `--help` lists them.
"""

from pipelines.evaluation.uncertainty import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
