"""`python -m pipelines.uncertainty`: fit a run's per-frame uncertainty calibration on its validation partition.

The calibration is `pipelines.evaluation.uncertainty` (`calibration_for`); with the native score the
run's conformal intervals (`pipelines.evaluation.intervals`, conformal_calibration.json) are fitted too,
which adds them to a run trained before the trainer fitted them. `--help` lists the flags.
"""

import argparse
from pathlib import Path

from pipelines.core import cli
from pipelines.core.errors import ConfigError, cli_main
from pipelines.evaluation import uncertainty as uncertainty_lib
from pipelines.evaluation import uncertainty_scores


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.uncertainty",
        description="Fit the per-frame uncertainty calibration of a run on its validation partition and write "
        "it to the run directory (uncertainty_calibration*.json and, for the native score, the conformal "
        "intervals conformal_calibration.json). Example: python -m "
        "pipelines.uncertainty --run-dir runs/synthetic_cold_fusion_regression",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="run directory written by pipelines.train")
    parser.add_argument(
        "--uncertainty",
        default="native",
        choices=("native", "mc_dropout"),
        help="native: the model's own score (COLD's sigma; constant for other models); "
        "mc_dropout: std over --mc-passes stochastic passes with dropout on",
    )
    parser.add_argument(
        "--mc-passes", type=int, default=uncertainty_scores.DEFAULT_PASSES, help="passes of --uncertainty mc_dropout"
    )
    parser.add_argument("--seed", type=int, default=0, help="Keras random seed set before the stochastic passes")
    parser.add_argument(
        "--scale-by",
        default="frames",
        choices=uncertainty_lib.SCALE_BY,
        help="the 90%% intervals cover 90%% of the pooled validation frames (frames) or of every "
        "validation recording's frames (recordings: wider, for test recordings harder than the "
        "validation ones)",
    )
    parser.add_argument(
        "--fit-corrupt",
        metavar="SPEC[,SPEC]",
        default="",
        help="also fit on a corrupted copy of the validation partition per SPEC "
        "(MODALITY:FRACTION[:MODE], e.g. visual:0.5:dropout,visual:0.5:frozen; modes as in "
        "pipelines.evaluate --corrupt-mode), so that the intervals learn how the error grows with "
        "the score on damaged frames too",
    )
    parser.add_argument(
        "--no-conformal",
        action="store_true",
        help="do not fit the conformal intervals (conformal_calibration.json, fitted with the native score on "
        "the validation partition plus corrupted copies of it)",
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only: the calibration is written into the run directory, which must exist (`open_run` says so).
    cli.check_output_dir(args.run_dir, "--run-dir", create=False)
    if args.mc_passes < 2:
        raise ConfigError(f"--mc-passes must be >= 2, got {args.mc_passes}")
    from pipelines.data import corrupt
    from pipelines.runs import folders as runs

    fit_corruptions = [spec for spec in args.fit_corrupt.split(",") if spec.strip()]
    for spec in fit_corruptions:
        corrupt.parse_corruption(spec)

    config, artifact_dir, manifest = runs.open_run(args.run_dir)
    if any(p.get("sequence_level", False) for p in manifest["partitions"].values()):
        raise ConfigError(
            "uncertainty calibration applies to frame-level corpora (this run's labels are per utterance)",
            Path(args.run_dir) / "config.json",
        )
    if config.task != "regression":
        raise ConfigError(
            "uncertainty calibration applies to regression runs (classification: temperature "
            "scaling in pipelines.evaluate)",
            Path(args.run_dir) / "config.json",
        )
    infer, _ = runs.load_inference_model(args.run_dir)
    calibration = uncertainty_lib.calibration_for(
        args.run_dir,
        infer,
        config,
        artifact_dir,
        args.uncertainty,
        passes=args.mc_passes,
        seed=args.seed,
        refit=True,
        scale_by=args.scale_by,
        fit_corruptions=fit_corruptions,
    )
    print(f"score: {calibration.score}")
    for key, entry in calibration.maps.items():
        print(
            f"  {key:<16} {len(entry['x']):>3} knots, E|e| {entry['y'][0]:.4f} .. {entry['y'][-1]:.4f}, "
            f"scale {entry['scale']:.3f} (Gaussian link {entry['scale_gaussian']:.3f})"
        )
    if args.uncertainty == "native" and not args.no_conformal:
        from pipelines.evaluation import intervals

        intervals.fit_for_run(args.run_dir, infer, config, artifact_dir, isotonic=False)


if __name__ == "__main__":
    main()
