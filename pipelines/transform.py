"""`python -m pipelines.transform`: fit the feature normalisation on the train partition.

The command's flags are read by `pipelines.components.transform.main`; `--help` lists them.
"""

from pipelines.components.transform import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
