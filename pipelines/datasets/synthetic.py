"""The synthetic corpus: generated from a seed, written in the AVEC layout, read by the AVEC reader.

Layout written by `generate` (AVEC 2019 CES's, culture `SY`)::

    <root>/labels/{Train,Devel,Test}_SY_<NN>.csv   name;timestamp;arousal;valence;liking (all partitions labelled)
    <root>/audio/<same names>                      name;timestamp;audio_0;...
    <root>/visual/<same names>                     name;timestamp;visual_0;...
    <root>/corruption.csv                          name;modality;start_frame;end_frame;kind
    <root>/synthetic.json                          the parameters (the reuse key) and a summary

`corruption.csv` lists one row per corrupted stretch: 0-based frames, `end_frame` exclusive, `kind`
one of `noise` / `silence` (audio) and `noise` / `occlusion` (visual); in the realistic variant
(`variant="realistic"`, `pipelines.datasets.synthetic_realistic`) one of `noise`, `swap`, `frozen`,
`drift`, `desync`, `dropout` in both modalities. `open_synthetic` turns it
into the per-frame `audio_corrupted` / `visual_corrupted` ground truth of each recording.

The recordings of the simple variant are made in `pipelines.datasets.synthetic_simple` (how, in its
docstring), the files read and written in `pipelines.datasets.synthetic_files`.

Files are written under temporary names and renamed, `synthetic.json` last: a folder without it is
incomplete and is regenerated. `generate` reuses a complete folder with the same parameters.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from pipelines.core.errors import ConfigError, DataError, cli_main
from pipelines.data import features
from pipelines.datasets import synthetic_raw, synthetic_realistic, synthetic_simple
from pipelines.datasets.avec import open_layout
from pipelines.datasets.avec_folders import LABELS_FOLDER
from pipelines.datasets.base import Corpus, Recording
from pipelines.datasets.synthetic_files import (
    CORRUPTION_FILE,
    PARAMETERS_FILE,
    load_parameters,
    read_corruption,
    write_corruption,
    write_parameters,
    write_recording,
)

CULTURE = "SY"
_OWN_FILE = re.compile(
    rf"^(\.(Train|Devel|Test)_{CULTURE}_\d+\.(csv|npz|wav)\..*\.tmp|"
    rf"(Train|Devel|Test)_{CULTURE}_\d+\.(csv|npz|wav))$"
)


def _parameters(
    seed,
    num_train,
    num_devel,
    num_test,
    duration_seconds,
    hop,
    audio_dim,
    visual_dim,
    corruption_fraction,
    noise_std,
    smoothness_seconds,
    raw=False,
    face_size=48,
    sample_rate=16000,
    label_delay_seconds=0.0,
    variant="simple",
) -> dict:
    def integer(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"synthetic {name} must be an integer >= {low}, got {value!r}")
        return int(value)

    def number(name, value, low, high=None, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ConfigError(f"synthetic {name} must be a number, got {value!r}")
        value = float(value)
        if (value <= low if strict else value < low) or (high is not None and value > high):
            bounds = f"{'>' if strict else '>='} {low}" + (f" and <= {high}" if high is not None else "")
            raise ConfigError(f"synthetic {name} must be {bounds}, got {value!r}")
        return value

    params = {
        "seed": integer("seed", seed, 0),
        "num_train": integer("num_train", num_train, 1),
        "num_devel": integer("num_devel", num_devel, 1),
        "num_test": integer("num_test", num_test, 0),
        "duration_seconds": number("duration_seconds", duration_seconds, 0.0),
        "hop": number("hop", hop, 0.0),
        "audio_dim": integer("audio_dim", audio_dim, 1),
        "visual_dim": integer("visual_dim", visual_dim, 1),
        "corruption_fraction": number("corruption_fraction", corruption_fraction, 0.0, 0.45, strict=False),
        "noise_std": number("noise_std", noise_std, 0.0, strict=False),
        "smoothness_seconds": number("smoothness_seconds", smoothness_seconds, 0.0),
    }
    if not isinstance(raw, bool):
        raise ConfigError(f"synthetic raw must be true or false, got {raw!r}")
    if variant not in synthetic_realistic.VARIANTS:
        raise ConfigError(
            f"synthetic variant must be one of {', '.join(synthetic_realistic.VARIANTS)}, got {variant!r}"
        )
    if variant != "simple":
        if raw:
            raise ConfigError(f"synthetic variant {variant} writes features only; it does not combine with raw")
        # Only the realistic variant carries the key, so the parameters of a simple corpus stay as they were.
        params["variant"] = variant
    if raw:
        # Only raw corpora carry these keys, so the parameters of a feature corpus stay as they were.
        params["raw"] = True
        params["face_size"] = integer("face_size", face_size, 8)
        params["sample_rate"] = integer("sample_rate", sample_rate, 4000)
    delay = number("label_delay_seconds", label_delay_seconds, 0.0, strict=False)
    if delay:
        # Only delayed corpora carry the key, so the parameters (and caches) of the others stay as they were.
        if raw:
            raise ConfigError("synthetic label_delay_seconds applies to the feature corpus, not the raw one")
        params["label_delay_seconds"] = delay
    if round(params["duration_seconds"] / params["hop"]) < 10:
        raise ConfigError(
            f"synthetic duration_seconds / hop must give at least 10 frames, got "
            f"{params['duration_seconds']} / {params['hop']}"
        )
    return params


def recording_names(params: dict) -> list:
    """(partition, name) of every recording, in order."""
    names = []
    for partition, count in (
        ("Train", params["num_train"]),
        ("Devel", params["num_devel"]),
        ("Test", params["num_test"]),
    ):
        names += [(partition, f"{partition}_{CULTURE}_{i:02d}") for i in range(1, count + 1)]
    return names


def _data_files(params: dict) -> list:
    """(folder, suffix) of every per-recording file besides the labels."""
    if params.get("raw"):
        return [(synthetic_raw.FACES_FOLDER, ".npz"), (synthetic_raw.AUDIO_FOLDER, ".wav")]
    return [(features.AUDIO, ".csv"), (features.VISUAL, ".csv")]


def _is_complete(root: Path, params: dict) -> bool:
    return (
        load_parameters(root) == params
        and (root / CORRUPTION_FILE).is_file()
        and all(
            (root / folder / f"{name}{suffix}").is_file()
            for folder, suffix in [(LABELS_FOLDER, ".csv")] + _data_files(params)
            for _, name in recording_names(params)
        )
    )


def generate(
    output_dir,
    *,
    seed=0,
    num_train=12,
    num_devel=4,
    num_test=4,
    duration_seconds=90.0,
    hop=0.1,
    audio_dim=24,
    visual_dim=48,
    corruption_fraction=0.3,
    noise_std=0.3,
    smoothness_seconds=3.0,
    raw=False,
    face_size=48,
    sample_rate=16000,
    label_delay_seconds=0.0,
    variant="simple",
    progress=False,
) -> Path:
    """Writes the synthetic corpus into `output_dir` (or reuses it when it is already there).

    The defaults give 12 + 4 + 4 recordings of 900 frames (10,800 training frames): a small model
    trains on them in a few minutes on two CPU cores.

    Args:
        output_dir: str or Path. Created if needed.
        seed: int. Everything is a deterministic function of the parameters. Defaults to 0.
        num_train, num_devel, num_test: int. Recordings per partition. Defaults to 12, 4, 4.
        duration_seconds: float. Length of every recording. Defaults to 90.0.
        hop: float. Frame hop in seconds. Defaults to 0.1.
        audio_dim, visual_dim: int. Feature dimensions. Defaults to 24 and 48.
        corruption_fraction: float in [0, 0.45]. Fraction of each modality's frames corrupted.
            Defaults to 0.3.
        noise_std: float. Gaussian noise on the clean features. Defaults to 0.3.
        smoothness_seconds: float. Width of the Gaussian smoothing of the label trajectories.
            Defaults to 3.0.
        raw: bool. Write the raw variant instead (`pipelines.datasets.synthetic_raw`): drawn
            faces (`faces/<name>.npz`) and a synthetic voice (`audio/<name>.wav`) that carry the
            labels, with the same label files and corruption ground truth. `audio_dim`,
            `visual_dim` and `noise_std` do not apply. Defaults to False.
        face_size: int. Raw variant: side of the square face crops in pixels. Defaults to 48.
        sample_rate: int. Raw variant: audio samples per second. Defaults to 16000.
        label_delay_seconds: float >= 0. Annotation delay of the label files (module docstring).
            Defaults to 0.
        variant: "simple" (this module's docstring) or "realistic": low-dimensional, lagged,
            noisy estimates from several imperfect systems per modality, dyads, speaker and
            language shifts and in-range corruptions (`pipelines.datasets.synthetic_realistic`).
            Defaults to "simple".
        progress: bool. Show a progress bar. Defaults to False.

    Returns:
        Path: `output_dir`.

    Raises:
        ConfigError: a parameter out of range.

    >>> root = generate("/tmp/synthetic", seed=1, num_train=2, num_devel=1, num_test=1)  # doctest: +SKIP
    """
    params = _parameters(
        seed,
        num_train,
        num_devel,
        num_test,
        duration_seconds,
        hop,
        audio_dim,
        visual_dim,
        corruption_fraction,
        noise_std,
        smoothness_seconds,
        raw,
        face_size,
        sample_rate,
        label_delay_seconds,
        variant,
    )
    root = Path(output_dir)
    names = recording_names(params)
    if _is_complete(root, params):
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / PARAMETERS_FILE).unlink(missing_ok=True)
    for folder in (LABELS_FOLDER, features.AUDIO, features.VISUAL, synthetic_raw.FACES_FOLDER):
        if folder == synthetic_raw.FACES_FOLDER and not params.get("raw"):
            continue
        if folder == features.VISUAL and params.get("raw"):
            continue
        (root / folder).mkdir(exist_ok=True)
        # Recordings of an earlier, larger corpus would otherwise be read as part of this one.
        for path in (root / folder).iterdir():
            if _OWN_FILE.match(path.name):
                path.unlink()

    n = int(round(params["duration_seconds"] / params["hop"]))
    sequence = np.random.SeedSequence(params["seed"])
    mapping_seed, recordings_seed = sequence.spawn(2)
    mappings = synthetic_simple.draw_mappings(np.random.default_rng(mapping_seed), params)
    rows = []
    corrupted = {features.AUDIO: 0, features.VISUAL: 0, "both": 0}
    children = recordings_seed.spawn(len(names))
    realistic = (
        synthetic_realistic.recordings(recordings_seed, params, names, n)
        if params.get("variant") == "realistic"
        else None
    )
    iterator = zip(names, children, realistic or [None] * len(names))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(names), desc="synthetic corpus", unit="recording", file=sys.stderr)
    for (_, name), child, data in iterator:
        rng = np.random.default_rng(child)
        if data is None and params.get("raw"):
            data = synthetic_simple.raw_recording(rng, params, n)
        elif data is None:
            data = synthetic_simple.feature_recording(rng, params, mappings, n)
        write_recording(root, name, data, params, n)
        for modality in features.MODALITIES:
            rows += [[name, modality, start, end, kind] for start, end, kind in data[f"{modality}_segments"]]
            corrupted[modality] += int(data[f"{modality}_flags"].sum())
        corrupted["both"] += int((data["audio_flags"] & data["visual_flags"]).sum())
    write_corruption(root / CORRUPTION_FILE, rows)
    total = n * len(names)
    summary = {
        "frames_per_recording": n,
        "recordings": {
            features.TRAIN: params["num_train"],
            features.DEVEL: params["num_devel"],
            features.TEST: params["num_test"],
        },
        "corrupted_fraction": {key: round(value / total, 4) for key, value in corrupted.items()},
    }
    write_parameters(root, params, summary)
    return root


def open_synthetic(
    data_dir, *, audio_features=(features.AUDIO,), visual_features=(features.VISUAL,), allow_missing_modality=False
) -> Corpus:
    """Opens a generated synthetic corpus: the AVEC reader plus the corruption ground truth.

    Args:
        data_dir: str or Path. A folder written by `generate`.
        audio_features: list of str. Defaults to ["audio"].
        visual_features: list of str. Defaults to ["visual"].
        allow_missing_modality: bool. As for AVEC. Defaults to False.

    Returns:
        `Corpus` whose recordings carry `audio_corrupted` / `visual_corrupted` [N] bool arrays. A
        raw corpus (`generate(..., raw=True)`) gives a `Corpus` with `mode="raw"` whose recordings
        hold `faces`, `waveform` and `sample_rate` instead of features (the feature options do
        not apply).

    Raises:
        DataError: not a complete synthetic corpus, or bad files.
    """
    root = Path(data_dir)
    params = load_parameters(root)
    if params is None:
        raise DataError(
            f"not a complete synthetic corpus (no readable {PARAMETERS_FILE}); write one with "
            f"python -m pipelines.datasets.synthetic --output-dir {root}",
            root,
        )
    corruption_path = root / CORRUPTION_FILE
    segments = read_corruption(corruption_path)
    if params.get("raw"):
        return synthetic_raw.open_synthetic_raw(root, params, segments, corruption_path, recording_names(params))

    def decorate(recording: Recording) -> Recording:
        n = recording.num_frames
        for modality in features.MODALITIES:
            flags = np.zeros(n, bool)
            for start, end, line in segments.get(recording.name, {}).get(modality, []):
                if end > n:
                    raise DataError(
                        f"end_frame {end} is past the end of {recording.name} ({n} frames)", corruption_path, line, 4
                    )
                flags[start:end] = True
            setattr(recording, f"{modality}_corrupted", flags)
        return recording

    return open_layout(
        root,
        audio_features=audio_features,
        visual_features=visual_features,
        allow_missing_modality=allow_missing_modality,
        dataset="synthetic",
        extra_files=[root / PARAMETERS_FILE, corruption_path],
        decorate=decorate,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.datasets.synthetic",
        description="Write the synthetic corpus (AVEC layout: labels/, audio/, visual/, corruption.csv, "
        "synthetic.json). A folder that already holds the same corpus is reused.",
    )
    parser.add_argument("--output-dir", required=True, help="folder to write (created if needed)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--num-train", type=int, default=12, help="training recordings (default 12)")
    parser.add_argument("--num-devel", type=int, default=4, help="development recordings (default 4)")
    parser.add_argument("--num-test", type=int, default=4, help="test recordings (default 4)")
    parser.add_argument("--duration-seconds", type=float, default=90.0, help="length of a recording (default 90)")
    parser.add_argument("--hop", type=float, default=0.1, help="frame hop in seconds (default 0.1)")
    parser.add_argument("--audio-dim", type=int, default=24, help="audio features per frame (default 24)")
    parser.add_argument("--visual-dim", type=int, default=48, help="visual features per frame (default 48)")
    parser.add_argument(
        "--corruption-fraction",
        type=float,
        default=0.3,
        help="fraction of each modality's frames corrupted, at most 0.45 (default 0.3)",
    )
    parser.add_argument("--noise-std", type=float, default=0.3, help="feature noise (default 0.3)")
    parser.add_argument(
        "--smoothness-seconds", type=float, default=3.0, help="smoothing width of the label trajectories (default 3)"
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="write the raw variant: drawn faces (faces/*.npz) and a synthetic voice (audio/*.wav)",
    )
    parser.add_argument("--face-size", type=int, default=48, help="raw: face crop side in pixels (default 48)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="raw: audio sample rate (default 16000)")
    parser.add_argument(
        "--label-delay-seconds",
        type=float,
        default=0.0,
        help="annotation delay: the labels lag the features by this many seconds (default 0)",
    )
    parser.add_argument(
        "--variant",
        choices=synthetic_realistic.VARIANTS,
        default="simple",
        help="simple (default), or realistic: low-dimensional lagged noisy estimates from several "
        "systems per modality, dyads, speaker/language shifts, in-range corruptions "
        "(noise, swap, frozen, drift, desync, dropout)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    options = {key: value for key, value in vars(args).items() if key not in ("output_dir", "no_progress")}
    reused = _is_complete(Path(args.output_dir), _parameters(**options))
    root = generate(args.output_dir, progress=not args.no_progress and not reused, **options)
    summary = json.loads((root / PARAMETERS_FILE).read_text())["summary"]
    fraction = summary["corrupted_fraction"]
    counts = summary["recordings"]
    print(
        f"synthetic corpus {'reused' if reused else 'written'}: {root} ({counts['train']} train, "
        f"{counts['devel']} devel, {counts['test']} test recordings of {summary['frames_per_recording']} frames; "
        f"corrupted frames: audio {fraction['audio']:.1%}, visual {fraction['visual']:.1%}, "
        f"both {fraction['both']:.1%})"
    )


if __name__ == "__main__":
    main()
