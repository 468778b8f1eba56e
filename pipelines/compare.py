"""`python -m pipelines.compare`: compare runs: scores side by side, paired t-tests, uncertainty curves.

The comparison itself is `pipelines.experiments.compare.run`, the uncertainty curves
`pipelines.evaluation.uncertainty_report.compare_runs`; `--help` lists the flags.
"""

import argparse
import warnings
from pathlib import Path

from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.data import features
from pipelines.experiments import compare as compare_lib


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.compare",
        description="Compare finished runs side by side, with paired t-tests over per-recording scores. "
        "Example: python -m pipelines.compare runs/a runs/b --partition devel",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN", help="run directories written by pipelines.train")
    parser.add_argument("--partition", default=features.DEVEL, help="partition of metrics.json compared")
    parser.add_argument("--metric", help="per-recording score of the t-tests (default ccc_mean or f1_macro)")
    parser.add_argument("--branch", default="av", help="branch of metrics.json shown in the table")
    parser.add_argument("--output", help="also write the comparison to this JSON file")
    parser.add_argument(
        "--uncertainty-plot",
        metavar="PNG",
        help="draw the runs' calibration, sparsification and reject-option CCC curves (fused output) "
        "on one figure, from their evaluation reports; accepts pipelines.ensemble folders too",
    )
    parser.add_argument(
        "--evaluation",
        metavar="FOLDER",
        help="evaluation folder of --uncertainty-plot, e.g. test_corrupt-visual-0.5-noise (default: the partition)",
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    for path, flag in ((args.output, "--output"), (args.uncertainty_plot, "--uncertainty-plot")):
        if path:
            cli.check_output_file(path, flag)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(libtensorflow_io|file system plugins).*")
        if args.uncertainty_plot:
            from pipelines.evaluation import uncertainty_report

            uncertainty_report.compare_runs(args.run_dirs, args.evaluation or args.partition, args.uncertainty_plot)
            if not all((Path(d) / "metrics.json").is_file() for d in args.run_dirs):
                return  # an ensemble folder has no metrics.json: the curves are the comparison
        compare_lib.run(args.run_dirs, args.partition, args.metric, branch=args.branch, output=args.output)


if __name__ == "__main__":
    main()
