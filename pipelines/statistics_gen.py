"""`python -m pipelines.statistics_gen`: statistics, schema and anomaly report of ExampleGen's shards.

The work is `pipelines.components.statistics_gen.run` (the files it writes are described there); this
module reads the flags and exits 2 on a blocking anomaly. `--help` lists the flags.
"""

from __future__ import annotations

import argparse

from pipelines.components import anomalies, statistics_gen
from pipelines.core import cli
from pipelines.core.errors import cli_main


def parse_args(argv=None) -> argparse.Namespace:
    """The command's flags, parsed from `argv` (default: `sys.argv`)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.statistics_gen",
        description="Compute data statistics, infer the schema and validate every partition against it "
        "(statistics.json, schema.json, anomalies.json and .txt summaries). Exits 2 on a "
        "blocking anomaly.",
    )
    parser.add_argument("--artifact-dir", required=True, help="ExampleGen's output folder")
    parser.add_argument(
        "--shift-threshold",
        type=float,
        default=anomalies.DEFAULT_SHIFT_THRESHOLD,
        help="mean shift in train standard deviations that counts as shifted (default 1)",
    )
    parser.add_argument(
        "--shift-fraction",
        type=float,
        default=anomalies.DEFAULT_SHIFT_FRACTION,
        help="share of shifted features that makes a distribution-shift warning (default 0.25)",
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only: the folder must hold ExampleGen's artefacts already (`run` says so when it does not).
    cli.check_output_dir(args.artifact_dir, "--artifact-dir", create=False)
    statistics_gen.run(
        args.artifact_dir, shift_threshold=args.shift_threshold, shift_fraction=args.shift_fraction, progress=True
    )
    statistics_gen.check_anomalies(args.artifact_dir)


if __name__ == "__main__":
    main()
