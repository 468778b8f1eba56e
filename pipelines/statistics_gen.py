"""`python -m pipelines.statistics_gen`: statistics, schema and anomaly report of the shards.

The command's flags are read by `pipelines.components.statistics_gen.main`; `--help` lists them.
"""

from pipelines.components.statistics_gen import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
