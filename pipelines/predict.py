"""`python -m pipelines.predict`: predict on a corpus folder, one CSV per recording with 90% intervals.

    python -m pipelines.predict --run-dir RUN --data-dir DIR [--dataset avec] [--partition test] --output-dir OUT
    python -m pipelines.predict --saved-model saved_models/NAME/VERSION --data-dir DIR --output-dir OUT

What is read and written: `pipelines.serving.predict`.
"""

from __future__ import annotations

import argparse

from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.data import features
from pipelines.datasets import ADAPTERS
from pipelines.serving import predict as predict_lib


def _level(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.predict",
        description="Predict valence and arousal for every recording of a corpus folder, labelled or not, and "
        "write AVEC-format files (one CSV per recording, plus the fusion weights, sigma norms and "
        "uncertainty in extra/). Example: python -m pipelines.predict --run-dir runs/avec_cold_fusion_"
        "regression --data-dir AVEC2019_CES --partition test --output-dir submission",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "--run-dir",
        help="run directory written by pipelines.train (its model.keras, unless "
        "--saved-model is given, and its config.json)",
    )
    parser.add_argument(
        "--saved-model",
        metavar="DIR",
        help="an exported SavedModel version folder (saved_models/NAME/VERSION), run with plain "
        "TensorFlow; the reading settings come from its assets.extra/config.json or --run-dir",
    )
    parser.add_argument("--data-dir", help="corpus folder to predict on, in the layout of --dataset")
    parser.add_argument("--dataset", choices=tuple(ADAPTERS), help="layout of --data-dir (default: the run's dataset)")
    parser.add_argument(
        "--partition",
        default=features.TEST,
        help=f"partition to predict: {', '.join(features.PARTITIONS)} or {predict_lib.ALL}",
    )
    parser.add_argument("--output-dir", required=True, help="folder for the prediction files (the submission)")
    parser.add_argument("--audio-features", help="comma-separated audio feature folders (default: the run's)")
    parser.add_argument("--visual-features", help="comma-separated visual feature folders (default: the run's)")
    parser.add_argument("--features-dir", help="IEMOCAP: folder of per-utterance feature files (default: the run's)")
    parser.add_argument(
        "--allow-missing-modality",
        action="store_true",
        help="zero-fill a modality whose feature file is missing (presence 0) instead of failing",
    )
    parser.add_argument(
        "--label-delay",
        type=cli.non_negative_float,
        metavar="SECONDS",
        help="annotation delay the model was trained with (default: the run's "
        "training.label_delay_seconds); outputs are shifted back by it",
    )
    parser.add_argument(
        "--level",
        type=_level,
        default=0.9,
        help="coverage of the intervals in the prediction files (*_lower, *_upper): 0.5, 0.8, 0.9 or 0.95 for a "
        "run's conformal intervals (an exported model gives 0.9), any level strictly between 0 and 1 for the "
        "isotonic std of a run trained before them",
    )
    parser.add_argument(
        "--no-intervals",
        action="store_true",
        help="write AVEC's four submission columns only (name;timestamp;arousal;valence), no intervals or presence",
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="also draw a timeline per recording (plots/<name>.png): predictions with interval bands, fusion "
        "weights, absent frames shaded",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace predictions made with other settings")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only (the folder is made once the corpus and the model are read), before TensorFlow starts.
    cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    predict_lib.run(args)


if __name__ == "__main__":
    main()
