"""`python -m pipelines.benchmark`: compare every model with an equal tuning budget over seeds.

The protocol itself is `pipelines.experiments.benchmark.run`; `--help` lists the flags.
"""

import argparse
from pathlib import Path

from pipelines.config import flags as run_options
from pipelines.core import cli
from pipelines.core.errors import ConfigError, cli_main
from pipelines.data import features
from pipelines.experiments import benchmark as benchmark_lib


def parse_list(text, flag):
    items = [part.strip() for part in str(text).split(",") if part.strip()]
    if not items:
        raise ConfigError(f"{flag} needs at least one value")
    return items


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.benchmark",
        description="Equal-budget comparison of models: the same number of tuning trials per model, the best "
        "configuration of each trained with several seeds, paired t-tests against COLD fusion. "
        "Example: python -m pipelines.benchmark --dataset synthetic --models all --trials 3 --seeds 0,1,2",
        formatter_class=cli.HelpFormatter,
    )
    run_options.add_common_arguments(parser)
    parser.add_argument("--models", default="all", help="comma-separated model names, or all")
    parser.add_argument(
        "--trials", type=cli.positive_int, default=3, help="random-search trials per model (the same for all)"
    )
    parser.add_argument(
        "--seeds",
        default="0,1,2",
        help="comma-separated seeds each chosen configuration is trained with (the first one also runs the search)",
    )
    parser.add_argument("--partition", default=features.TEST, help="partition the table reports")
    parser.add_argument(
        "--output-dir",
        help="protocol directory (default benchmarks/<dataset>_<task>); the same "
        "directory resumes an interrupted protocol",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.model:
        raise ConfigError("--model does not apply here; list the models with --models")
    config = run_options.build_config(args)
    models = list(features.MODEL_NAMES) if args.models == "all" else parse_list(args.models, "--models")
    try:
        seeds = [int(s) for s in parse_list(args.seeds, "--seeds")]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    output_dir = Path(args.output_dir) if args.output_dir else Path("benchmarks") / f"{config.dataset}_{config.task}"
    cli.check_output_dir(output_dir, "--output-dir" if args.output_dir else "the default protocol directory")
    benchmark_lib.run(
        config,
        output_dir,
        models=models,
        trials=args.trials,
        seeds=seeds,
        partition=args.partition,
        progress=not args.quiet,
    )


if __name__ == "__main__":
    main()
