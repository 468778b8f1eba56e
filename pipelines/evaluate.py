"""`python -m pipelines.evaluate`: score a run on a partition, optionally with a modality corrupted.

The evaluation itself is `pipelines.evaluation.evaluate.run`; `--help` lists the flags.
"""

import argparse
import os
import warnings
from pathlib import Path

from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.data import corrupt as corrupt_lib
from pipelines.data import features
from pipelines.evaluation import diagnostics
from pipelines.evaluation import evaluate as evaluate_lib


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.evaluate",
        description="Evaluate a trained run on one partition: scores, calibration, robustness to a corrupted "
        "modality, uncertainty diagnostics and figures. Example: python -m pipelines.evaluate "
        "--run-dir runs/synthetic_cold_fusion_regression --corrupt visual:0.5",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="run directory written by pipelines.train")
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
        help="noise: Gaussian noise; zeros: zeroed frames; swap: frames of another recording; "
        "face_mask: a mask over the lower half of the face (raw-mode runs); in-range "
        "corruptions of features: frozen (first frame held), drift (a slow offset), desync "
        "(frames 2-5 s earlier), dropout (the recording's mean frame). Default: "
        "face_mask for visual in a raw-mode run, noise otherwise",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruption")
    plots = parser.add_mutually_exclusive_group()
    plots.add_argument("--plot-recordings", metavar="NAME1,NAME2", help="draw timelines of these recordings")
    plots.add_argument("--plot-first", type=int, default=1, metavar="N", help="draw timelines of the first N")
    parser.add_argument("--bins", type=int, default=diagnostics.NUM_BINS, help="calibration bins")
    parser.add_argument("--output-dir", help="parent folder of the evaluation folders (default RUN/evaluation)")
    parser.add_argument(
        "--uncertainty",
        default="native",
        choices=("native", "mc_dropout"),
        help="per-frame std of a regression run: native = the model's own score (COLD's sigma, "
        "constant for other models), mc_dropout = std over --mc-passes stochastic passes "
        "with dropout on; either calibrated on the validation partition",
    )
    parser.add_argument("--mc-passes", type=int, default=20, help="stochastic passes of --uncertainty mc_dropout")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    # Checks only: a run directory that does not exist is reported by `run` (nothing is created for it).
    if args.output_dir:
        cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    else:  # the evaluation folders go into the run directory
        cli.check_output_dir(args.run_dir, "--run-dir", create=False)
        cli.check_output_dir(Path(args.run_dir) / "evaluation", "--run-dir (its evaluation folder)", create=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(libtensorflow_io|file system plugins).*")
        evaluate_lib.run(
            args.run_dir,
            args.partition,
            args.corrupt,
            args.corrupt_mode,
            plot_recordings=args.plot_recordings,
            plot_first=args.plot_first,
            output_dir=args.output_dir,
            seed=args.seed,
            num_bins=args.bins,
            uncertainty=args.uncertainty,
            mc_passes=args.mc_passes,
        )


if __name__ == "__main__":
    main()
