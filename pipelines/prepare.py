"""`python -m pipelines.prepare`: run (or reuse) the three data components for a configuration or a run.

The work is `pipelines.runs.prepare`: `prepare_artifacts` for a configuration, `rebuild_run_artifacts`
for a trained run (`--run-dir`); `--help` lists the flags.
"""

import argparse

from pipelines.config import flags as run_options
from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.runs import prepare as prepare_lib


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.prepare",
        description="Run (or reuse) the data components for a configuration: ExampleGen, statistics, schema "
        "validation and transform, into the cache. With --run-dir, rebuild the data artefacts a "
        "trained run refers to. Examples: python -m pipelines.prepare --dataset synthetic; "
        "python -m pipelines.prepare --run-dir runs/synthetic_cold_fusion_regression",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "--run-dir",
        help="run directory written by pipelines.train: rebuild its data artefacts "
        "from the corpus recorded in its config.json (instead of --dataset)",
    )
    run_options.add_common_arguments(parser)
    for action in parser._actions:
        if action.dest == "dataset":
            action.required = False
            action.help += " (required unless --run-dir is given)"
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    cli.finish_parser(parser)
    args = parser.parse_args(argv)
    if (args.run_dir is None) == (args.dataset is None):
        parser.error("pass either --dataset (with its data flags) or --run-dir")
    return args


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.run_dir:
        out = prepare_lib.rebuild_run_artifacts(args.run_dir, progress=not args.no_progress)
    else:
        config = run_options.build_config(args)
        prepare_lib.check_inputs(config)
        out = prepare_lib.prepare_artifacts(config, progress=not args.no_progress)
    print(f"data artefacts ready: {out}")


if __name__ == "__main__":
    main()
