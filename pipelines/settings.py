"""`python -m pipelines.settings`: print every configuration key with its default and allowed values.

The keys are declared in `pipelines.config.settings`; `describe()` there writes the lines (the docs'
configuration reference is generated from it too).
"""

import argparse

from pipelines.config import settings as settings_lib
from pipelines.core.errors import cli_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.settings",
        description="Print every configuration key with its default and its allowed values "
        "(the dataset files in configs/ override some of them).",
    )
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    parse_args(argv)
    print("\n".join(settings_lib.describe()))


if __name__ == "__main__":
    main()
