"""`python -m pipelines.transform`: fit the feature normalisation on the train partition.

The fit is `pipelines.components.transform.run` (what `transform.json` holds is described there);
this module reads the flags. `--help` lists them.
"""

from __future__ import annotations

import argparse

from pipelines.components import transform
from pipelines.core import cli
from pipelines.core.errors import cli_main


def parse_args(argv=None) -> argparse.Namespace:
    """The command's flags, parsed from `argv` (default: `sys.argv`)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.transform",
        description="Fit per-feature z-normalisation (mean, variance) on the train partition; writes transform.json.",
    )
    parser.add_argument("--artifact-dir", required=True, help="ExampleGen's output folder")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only: the folder must hold ExampleGen's artefacts already (`run` says so when it does not).
    cli.check_output_dir(args.artifact_dir, "--artifact-dir", create=False)
    transform.run(args.artifact_dir, progress=True)


if __name__ == "__main__":
    main()
