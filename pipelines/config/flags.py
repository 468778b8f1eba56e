"""The command-line options the trainer, the tuner and the other training commands share, and how
they resolve to a run's configuration (dataset file, then `--config`, then `--hparams`, then flags).

Nothing here imports TensorFlow: a bad flag or config key fails before anything heavy starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config import settings
from pipelines.config.merging import deep_update
from pipelines.core import cli
from pipelines.data import features


def build_config(args) -> settings.RunConfig:
    """Resolves the run's configuration: dataset file (+ its raw-mode file in raw mode), then
    --config, then --hparams, then flags (merged as plain mappings, then parsed)."""
    config = config_lib.load_file(config_lib.default_config_path(args.dataset))
    user = config_lib.load_file(args.config) if args.config else {}
    mode = getattr(args, "mode", None) or user.get("mode") or config.get("mode") or "features"
    raw_path = config_lib.raw_config_path(args.dataset) if mode == "raw" else None
    if raw_path is not None:
        config = deep_update(config, config_lib.load_file(raw_path))
    if args.config:
        config = deep_update(config, user)
    if mode != (config.get("mode") or "features"):
        config["mode"] = mode
    if args.hparams:
        config = deep_update(config, config_lib.load_hparams(args.hparams))
    config["dataset"] = args.dataset
    overrides = {
        ("data_dir",): args.data_dir,
        ("features_dir",): getattr(args, "features_dir", None),
        ("allow_missing_modality",): True if getattr(args, "allow_missing_modality", False) else None,
        ("strict",): getattr(args, "strict", None),
        ("task",): args.task,
        ("model", "name"): args.model,
        ("model", "lambda_co_visual"): args.lambda_co_visual,
        ("model", "lambda_co_audio"): args.lambda_co_audio,
        ("model", "lambda_co_cross"): args.lambda_co_cross,
        ("model", "lambda_regu"): args.lambda_regu,
        ("model", "weight_convention"): getattr(args, "weight_convention", None),
        ("model", "lambda_weight"): getattr(args, "lambda_weight", None),
        ("training", "epochs"): args.epochs,
        ("training", "batch_size"): args.batch_size,
        ("training", "learning_rate"): args.learning_rate,
        ("training", "mixed_precision"): args.mixed_precision,
        ("training", "distribute"): args.distribute,
        ("training", "seed"): args.seed,
        ("training", "window_seconds"): getattr(args, "window_seconds", None),
        ("training", "label_delay_seconds"): getattr(args, "label_delay", None),
        ("raw", "visual_backbone_weights"): _absolute(getattr(args, "visual_backbone_weights", None)),
        ("raw", "audio_backbone_weights"): _absolute(getattr(args, "audio_backbone_weights", None)),
    }
    for path, value in overrides.items():
        if value is None:
            continue
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    if args.audio_features is not None:
        config.setdefault("features", {})["audio"] = _split(args.audio_features)
    if args.visual_features is not None:
        config.setdefault("features", {})["visual"] = _split(args.visual_features)
    for section in ("model", "training"):
        config.setdefault(section, {})
    return config_lib.validate(config, args.config or str(config_lib.default_config_path(args.dataset)))


def _split(value):
    return [part.strip() for part in value.split(",") if part.strip()]


def _absolute(path):
    return None if path is None else str(Path(path).expanduser().resolve())


def default_output_dir(config: settings.RunConfig) -> Path:
    """`runs/<dataset>_<model>_<task>` (`runs/<dataset>_raw_...` in raw mode): the same command
    always resumes the same run."""
    dataset = config.dataset + ("_raw" if config_lib.mode_of(config) == "raw" else "")
    return Path("runs") / f"{dataset}_{config.model.name}_{config.task}"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the trainer and the tuner."""
    parser.add_argument(
        "--dataset",
        required=True,
        choices=config_lib.DATASETS,
        help="corpus adapter; `synthetic` is generated on first use",
    )
    parser.add_argument("--data-dir", help="corpus folder (required for avec and iemocap unless set in the config)")
    parser.add_argument("--features-dir", help="IEMOCAP: folder of per-utterance feature files")
    parser.add_argument(
        "--config", help="YAML file overriding configs/<dataset>.yaml (e.g. configs/cold_reliable.yaml)"
    )
    parser.add_argument(
        "--allow-missing-modality",
        action="store_true",
        help="mark recordings/frames/utterances without a modality's features as absent "
        "(presence flag 0, fusion weight 0) instead of failing",
    )
    add_strictness_arguments(parser)
    parser.add_argument("--model", choices=features.MODEL_NAMES, help="model to train (default from the config)")
    parser.add_argument("--task", choices=config_lib.TASKS, help="regression (CCC) or 3-way classification")
    parser.add_argument("--audio-features", help="comma-separated audio feature folders (AVEC)")
    parser.add_argument("--visual-features", help="comma-separated visual feature folders (AVEC)")
    parser.add_argument(
        "--epochs",
        type=cli.positive_int,
        help="training epochs (default from the config); on a finished or interrupted run, a "
        "larger value continues it for the extra epochs",
    )
    parser.add_argument("--batch-size", type=cli.positive_int, help="windows per batch (default from the config)")
    parser.add_argument(
        "--learning-rate",
        type=cli.positive_float,
        help="peak learning rate of AdamW's cosine schedule (default from the config)",
    )
    parser.add_argument("--window-seconds", type=cli.positive_float, help="training window length (default 30 s)")
    parser.add_argument(
        "--label-delay",
        type=cli.non_negative_float,
        metavar="SECONDS",
        help="annotation delay: pair the features at t with the labels at t + SECONDS; "
        "predictions and scores are shifted back onto the labels' timeline (default 0)",
    )
    parser.add_argument(
        "--lambda-co-visual", type=cli.non_negative_float, help="weight of the visual intramodal calibration term"
    )
    parser.add_argument(
        "--lambda-co-audio", type=cli.non_negative_float, help="weight of the audio intramodal calibration term"
    )
    parser.add_argument(
        "--lambda-co-cross", type=cli.non_negative_float, help="weight of the crossmodal calibration term"
    )
    parser.add_argument("--lambda-regu", type=cli.non_negative_float, help="weight of the KL regulariser")
    parser.add_argument(
        "--weight-convention",
        choices=config_lib.WEIGHT_CONVENTIONS,
        help="COLD fusion weights: informativeness (paper) or uncertainty",
    )
    parser.add_argument(
        "--lambda-weight",
        type=cli.non_negative_float,
        help="weight of the fused-weight calibration term (0 = the paper's objective)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=config_lib.MIXED_PRECISION,
        type=config_lib.mixed_precision_choice,
        help="auto = mixed_float16 on a GPU, float32 on CPU; bfloat16 = mixed_bfloat16 "
        "(Keras's policy names are accepted too)",
    )
    parser.add_argument(
        "--distribute",
        choices=config_lib.DISTRIBUTE,
        help="mirrored: all GPUs (2 logical CPUs without one); multiworker: TF_CONFIG",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of weights, shuffling and augmentation (default from the config)"
    )
    parser.add_argument("--hparams", help="JSON of tuned hyperparameters from `pipelines.tune`")
    parser.add_argument(
        "--mode",
        choices=config_lib.MODES,
        help="features: per-frame feature vectors (default); raw: end to end from face crops "
        "and audio through CNN backbones (synthetic corpus; configs/<dataset>_raw.yaml)",
    )
    parser.add_argument(
        "--visual-backbone-weights",
        metavar="FILE.npz",
        help="raw mode: pretrained face-CNN weights (.npz, see docs/raw-mode.md); only its last two dense "
        "layers are then trained. Default: train from scratch",
    )
    parser.add_argument(
        "--audio-backbone-weights",
        metavar="FILE.npz",
        help="raw mode: pretrained VGGish weights (.npz); only its last two dense layers are "
        "then trained. Default: train from scratch",
    )


def add_strictness_arguments(parser) -> None:
    """`--strict` (the default) / `--lenient`, stored as `strict` (absent when neither is given)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--strict",
        dest="strict",
        action="store_true",
        default=argparse.SUPPRESS,
        help="AVEC/IEMOCAP: every field must be exactly what it must be (the default)",
    )
    group.add_argument(
        "--lenient",
        dest="strict",
        action="store_false",
        default=argparse.SUPPRESS,
        help="AVEC/IEMOCAP: accept, with a warning naming the file, feature timestamps that drift "
        "from the labels' by less than half a hop, a name column that differs from the "
        "recording only in its quoting, a last line without a line break, IEMOCAP ids not "
        "of their dialog; Train/Devel features without a label file are skipped",
    )
