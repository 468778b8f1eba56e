"""`python -m pipelines.tune`: search the loss weights, learning rate or annotation delay with KerasTuner.

The command's flags are read by `pipelines.training.tune.parse_args`; `--help` lists them.
"""

from pipelines.training.tune import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
