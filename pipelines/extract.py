"""`python -m pipelines.extract`: audio and video files in, a corpus folder out that the other commands read.

    python -m pipelines.extract recordings/ --output-dir corpus
    python -m pipelines.extract talk.mp4 "call 2.wav" --output-dir corpus --feature-sets egemaps,mfcc,faces

The feature sets and the output are described in `pipelines.components.extract`, which does the work;
this module reads the flags. `--help` lists them. No TensorFlow is imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.components import extract
from pipelines.components.extract_plan import ALL_SETS, DEFAULT_FACE_SIZE, DEFAULT_SAMPLE_RATE
from pipelines.core import cli
from pipelines.core.errors import cli_main
from pipelines.media import layout


def _feature_sets(text: str) -> list:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_SETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown feature set {unknown[0]!r} (choose from {', '.join(ALL_SETS)})"
            if unknown
            else f"expected a comma-separated list of {', '.join(ALL_SETS)}"
        )
    return list(dict.fromkeys(names))


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    """The command's flags, parsed from `argv` (default: `sys.argv`)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.extract",
        description="Extract per-frame features from your own audio and video files into a corpus folder "
        "in the AVEC layout (one CSV per recording and feature set, a row every 0.1 s), which "
        "pipelines.train, example_gen and predict read with --dataset avec; or raw mode's face crops and "
        "waveforms. Example: python -m pipelines.extract recordings/ --output-dir corpus",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio or video files (wav, flac, mp3, ogg, m4a, mp4, mkv, avi, mov, webm, ...) or folders of them; "
        "a folder's train/, devel/ and test/ subfolders (any case) give their recordings that partition, and a "
        "<stem>.csv beside a media file (timestamp;arousal;valence, a row per 0.1 s) labels it",
    )
    parser.add_argument("--output-dir", required=True, help="the corpus folder to write (created if needed)")
    parser.add_argument(
        "--feature-sets",
        type=_feature_sets,
        metavar="SETS",
        help="comma-separated feature sets: egemaps, mfcc (audio; AVEC 2019's openSMILE LLDs as 4 s mean/std "
        "functionals every 0.1 s), faces (raw mode: face crops and the waveform), openface (OpenFace 2 CSVs from "
        "--openface-dir) (default: egemaps,mfcc, plus faces for a file with video)",
    )
    parser.add_argument(
        "--for-run",
        metavar="RUN",
        help="a run folder written by pipelines.train: extract what it was trained on (its feature folders, "
        "under its folder names, or in raw mode its face size and sample rate) and check the dimensions",
    )
    parser.add_argument(
        "--face-size",
        type=cli.positive_int,
        metavar="PIXELS",
        help=f"side of the square face crops (default: raw mode's {DEFAULT_FACE_SIZE}, or the run's)",
    )
    parser.add_argument(
        "--sample-rate",
        type=cli.positive_int,
        metavar="HZ",
        help=f"sample rate of the raw-mode WAV files (default: raw mode's {DEFAULT_SAMPLE_RATE}, or the run's)",
    )
    parser.add_argument(
        "--openface-dir",
        metavar="DIR",
        help="folder of the CSV files OpenFace 2's FeatureExtraction wrote, <stem>.csv per recording "
        "(needed by the openface feature set)",
    )
    parser.add_argument(
        "--min-confidence",
        type=_confidence,
        default=0.8,
        metavar="X",
        help="OpenFace frames with success 0 or a lower confidence are absent",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="skip a corrupt or unreadable media file with a warning (listed in extract.json) instead of stopping, "
        "and extract a recording without its OpenFace CSV without the openface set",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="extract every recording again, even those whose outputs are complete and up to date",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    manifest = extract.run(args)
    outcome = manifest["last_run"]
    print(
        f"extract: {len(outcome['extracted'])} recording(s) extracted, {len(outcome['up to date'])} up to date, "
        f"{len(outcome['skipped'])} skipped; manifest {Path(args.output_dir) / layout.MANIFEST}"
    )


if __name__ == "__main__":
    main()
