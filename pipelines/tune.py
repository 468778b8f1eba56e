"""`python -m pipelines.tune`: search the loss weights, learning rate or annotation delay with KerasTuner.

The search itself is `pipelines.training.tune.run`; `--help` lists the flags.
"""

import argparse
from pathlib import Path

from pipelines.config import flags as run_options
from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.training import search_space
from pipelines.training import tune as tune_lib
from pipelines.training import tuner as tuner_lib


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.tune",
        description="Search COLD fusion's loss weights (and optionally the learning rate) with KerasTuner. "
        "Example: python -m pipelines.tune --dataset synthetic --max-trials 20",
        formatter_class=cli.HelpFormatter,
    )
    run_options.add_common_arguments(parser)
    parser.add_argument("--tuner", choices=tuner_lib.TUNERS, default="random", help="KerasTuner search algorithm")
    parser.add_argument(
        "--max-trials",
        type=int,
        default=10,
        help="total number of trials; rerunning with a larger value adds only the missing ones",
    )
    parser.add_argument(
        "--tune-learning-rate",
        action="store_true",
        help=f"also search the learning rate in {list(search_space.LEARNING_RATE_RANGE)} (log scale)",
    )
    parser.add_argument(
        "--search",
        metavar="GROUPS",
        help=f"comma-separated groups to search: {', '.join(search_space.SEARCH_GROUPS)} (default: lambdas for "
        "cold_fusion, plus learning_rate with --tune-learning-rate)",
    )
    parser.add_argument(
        "--label-delay-choices",
        metavar="S1,S2,...",
        help="annotation delays in seconds a label_delay search picks from (default 0,1,2,3,4)",
    )
    parser.add_argument(
        "--output-dir",
        help="search directory (default tuning/<dataset>_<model>_<task>); "
        "the same directory and project name resume a search",
    )
    parser.add_argument(
        "--project-name", default=tune_lib.DEFAULT_PROJECT, help="KerasTuner project inside --output-dir"
    )
    parser.add_argument("--overwrite", action="store_true", help="discard an existing search in --output-dir")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    config = run_options.build_config(args)
    output_dir = Path(args.output_dir) if args.output_dir else tune_lib.default_output_dir(config)
    cli.check_output_dir(output_dir, "--output-dir" if args.output_dir else "the default search directory")
    tune_lib.run(
        config,
        output_dir,
        tuner=args.tuner,
        max_trials=args.max_trials,
        tune_learning_rate=args.tune_learning_rate,
        project_name=args.project_name,
        overwrite=args.overwrite,
        progress=not args.quiet,
        search=search_space.parse_search(args.search),
        label_delay_choices=args.label_delay_choices,
    )


if __name__ == "__main__":
    main()
