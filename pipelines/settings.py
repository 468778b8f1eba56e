"""`python -m pipelines.settings`: print every configuration key with its default and allowed values.

The command's flags are read by `pipelines.config.settings.main`; `--help` lists them.
"""

from pipelines.config.settings import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
