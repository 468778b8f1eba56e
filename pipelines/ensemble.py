"""`python -m pipelines.ensemble`: evaluate several runs as one deep ensemble.

The evaluation itself is `pipelines.experiments.ensemble.run`; `--help` lists the flags.
"""

import argparse

from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.data import corrupt as corrupt_lib
from pipelines.data import features
from pipelines.experiments import ensemble as ensemble_lib


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ensemble",
        description="Evaluate several runs as a deep ensemble (mean prediction, std of the members as the "
        "uncertainty, calibrated on the validation partition). Example: python -m pipelines.ensemble "
        "--runs runs/cf_seed0,runs/cf_seed1,runs/cf_seed2 --output-dir runs/cf_ensemble --partition test",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "--runs",
        required=True,
        metavar="RUN1,RUN2,...",
        help="comma-separated run directories of pipelines.train, trained on the same data",
    )
    parser.add_argument("--output-dir", required=True, help="folder of the ensemble's calibration and evaluations")
    parser.add_argument("--partition", default=features.DEVEL, help="labelled partition to evaluate")
    parser.add_argument(
        "--corrupt",
        metavar="MODALITY:FRACTION",
        help="corrupt this share of a modality's frames in consecutive blocks, e.g. visual:0.5",
    )
    parser.add_argument(
        "--corrupt-mode",
        default=None,
        choices=corrupt_lib.MODES,
        help="how corrupted frames look (see pipelines.evaluate); default noise",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruption")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only (`run` writes into it once the members load), before TensorFlow starts.
    cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    ensemble_lib.run(runs, args.output_dir, args.partition, args.corrupt, args.corrupt_mode, seed=args.seed)


if __name__ == "__main__":
    main()
