"""`python -m pipelines.example_gen`: convert a corpus into TFRecord shards, checking every field.

The command's flags are read by `pipelines.components.example_gen.main`; `--help` lists them.
"""

from pipelines.components.example_gen import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
