"""`python -m pipelines.train`: train a model (or continue a run), score it, write the run directory.

The run itself is `pipelines.training.train.run`; `--find-lr` runs the learning-rate range test of
`pipelines.training.lr_finder` instead. `--help` lists the flags.
"""

import argparse
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config import flags as run_options
from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.runs import checks
from pipelines.training import train as train_lib


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.train",
        description="Train a COLD fusion (or baseline) model and evaluate it. "
        "Example: python -m pipelines.train --dataset synthetic",
        formatter_class=cli.HelpFormatter,
    )
    run_options.add_common_arguments(parser)
    parser.add_argument(
        "--output-dir",
        help="run directory (default runs/<dataset>_<model>_<task>); the same directory resumes an interrupted run",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run in --output-dir")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    parser.add_argument(
        "--find-lr",
        action="store_true",
        help="instead of training: learning-rate range test (exponential sweep, one rate per step) "
        "writing <output-dir>/lr_find/lr_find.png and printing a suggested --learning-rate; "
        "the run itself is not touched",
    )
    parser.add_argument("--find-lr-min", type=float, default=1e-5, help="first learning rate of the sweep")
    parser.add_argument("--find-lr-max", type=float, default=1.0, help="last learning rate of the sweep")
    parser.add_argument(
        "--find-lr-steps",
        type=int,
        default=200,
        help="training steps of the sweep (it stops early once the loss diverges)",
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    config = run_options.build_config(args)
    checks.backup_settings(config.training, args.config or str(config_lib.default_config_path(args.dataset)))
    output_dir = Path(args.output_dir) if args.output_dir else run_options.default_output_dir(config)
    cli.check_output_dir(output_dir, "--output-dir" if args.output_dir else "the default run directory")
    if args.find_lr:
        from pipelines.training import lr_finder

        lr_finder.run(
            config,
            output_dir,
            min_lr=args.find_lr_min,
            max_lr=args.find_lr_max,
            steps=args.find_lr_steps,
            progress=not args.quiet,
        )
        return
    train_lib.run(config, output_dir, overwrite=args.overwrite, progress=not args.quiet)


if __name__ == "__main__":
    main()
