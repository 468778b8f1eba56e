"""`python -m pipelines.example_gen`: convert a corpus into TFRecord shards, checking every field.

The conversion is `pipelines.components.example_gen.run` (the record layout and the manifest are
described there); this module reads the flags and opens the corpus. `--help` lists the flags.
"""

from __future__ import annotations

import argparse

from pipelines.components import example_gen
from pipelines.config.flags import add_strictness_arguments
from pipelines.core import cli
from pipelines.core.errors import ConfigError, cli_main
from pipelines.datasets import ADAPTERS


def _split(value):
    return [item for item in (value or "").split(",") if item]


def parse_args(argv=None) -> argparse.Namespace:
    """The command's flags, parsed from `argv` (default: `sys.argv`)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.example_gen",
        description="Convert a corpus into sharded TFRecord SequenceExamples plus manifest.json. "
        "Re-running with unchanged corpus files reuses the shards (checksums are verified).",
    )
    parser.add_argument("--dataset", required=True, choices=tuple(ADAPTERS), help="corpus adapter")
    parser.add_argument(
        "--data-dir",
        required=True,
        help="corpus folder (AVEC/synthetic: holds labels/ and the feature folders; IEMOCAP: holds Session1..Session5)",
    )
    parser.add_argument(
        "--audio-features",
        default=None,
        help="comma-separated audio feature folders, concatenated per frame "
        "(IEMOCAP: the audio modality folder under --features-dir)",
    )
    parser.add_argument("--visual-features", default=None, help="comma-separated visual feature folders")
    parser.add_argument(
        "--features-dir",
        default=None,
        help="IEMOCAP only: folder of per-utterance feature files <modality>/<utterance id>",
    )
    parser.add_argument(
        "--validation-speaker",
        default=None,
        choices=("F", "M"),
        help="IEMOCAP only: the session-5 speaker used for validation (the other one is test)",
    )
    parser.add_argument(
        "--allow-missing-modality",
        action="store_true",
        help="IEMOCAP only: keep utterances with one modality missing (zero-filled, flagged)",
    )
    parser.add_argument("--output-dir", required=True, help="artefact folder to write")
    parser.add_argument(
        "--num-shards", type=int, default=None, help="shards per partition (default: a new shard every 64 MiB)"
    )
    parser.add_argument(
        "--mel-bins", type=int, default=None, help="raw corpora: mel bins of the log-mel spectrogram (default 64)"
    )
    parser.add_argument(
        "--mel-hop-seconds",
        type=float,
        default=None,
        help="raw corpora: hop of the log-mel spectrogram in seconds (default 0.01)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_strictness_arguments(parser)
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only (`run` makes the folder once the corpus reads), before the corpus is read.
    cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    options = {}
    audio, visual = _split(args.audio_features), _split(args.visual_features)
    if args.dataset == "iemocap":
        if len(audio) > 1 or len(visual) > 1:
            raise ConfigError("IEMOCAP takes one folder per modality in --audio-features / --visual-features")
        if audio:
            options["audio_features"] = audio[0]
        if visual:
            options["visual_features"] = visual[0]
        if args.features_dir:
            options["features_dir"] = args.features_dir
        if args.validation_speaker:
            options["validation_speaker"] = args.validation_speaker
    else:
        for flag in ("features_dir", "validation_speaker"):
            if getattr(args, flag):
                raise ConfigError(f"--{flag.replace('_', '-')} applies to --dataset iemocap only")
        if audio:
            options["audio_features"] = audio
        if visual:
            options["visual_features"] = visual
    if args.allow_missing_modality:
        options["allow_missing_modality"] = True
    options.update(example_gen.strictness_option(args.dataset, getattr(args, "strict", None)))
    if args.num_shards is not None and args.num_shards < 1:
        raise ConfigError(f"--num-shards must be at least 1, got {args.num_shards}")
    from pipelines.datasets import open_corpus

    corpus = open_corpus(args.dataset, args.data_dir, **options)
    logmel = {
        key: value
        for key, value in (("mel_bins", args.mel_bins), ("hop_seconds", args.mel_hop_seconds))
        if value is not None
    }
    example_gen.run(corpus, args.output_dir, num_shards=args.num_shards, progress=not args.no_progress, logmel=logmel)


if __name__ == "__main__":
    main()
