"""`python -m pipelines.export`: export a run as a SavedModel for TensorFlow Serving.

    python -m pipelines.export --run-dir RUN --name NAME [--version N] [--base-dir saved_models]

What is written and checked: `pipelines.serving.export`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.serving import export as export_lib
from pipelines.serving import versions


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.export",
        description="Export a trained run as a TF Serving SavedModel with warmup requests and a models.config. "
        "Example: python -m pipelines.export --run-dir runs/synthetic_cold_fusion_regression "
        "--name cold_fusion",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="run directory written by pipelines.train")
    parser.add_argument("--name", required=True, help="model name on the server (folder under --base-dir)")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument("--base-dir", default="saved_models", help="export root")
    parser.add_argument(
        "--warmup-recordings", type=int, default=3, help="recordings whose requests make the warmup file"
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only (the model's folder is made once the model has loaded), before TensorFlow starts.
    cli.check_output_dir(args.base_dir, "--base-dir", create=False)
    versions.check_name(args.name)
    cli.check_output_dir(Path(args.base_dir) / args.name, "--base-dir/--name", create=False)
    export_lib.run(
        args.run_dir, args.name, version=args.version, base_dir=args.base_dir, warmup_recordings=args.warmup_recordings
    )


if __name__ == "__main__":
    main()
