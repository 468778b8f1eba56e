"""`python -m pipelines.extract`: audio and video files in, a corpus folder out that the other commands read.

    python -m pipelines.extract recordings/ --output-dir corpus
    python -m pipelines.extract talk.mp4 "call 2.wav" --output-dir corpus --feature-sets egemaps,mfcc,faces
    python -m pipelines.extract recordings/ --output-dir corpus --for-run runs/avec_cold_fusion_regression
    python -m pipelines.extract videos/ --output-dir corpus --feature-sets egemaps,openface --openface-dir openface_out

Feature sets (`--feature-sets`, default `egemaps,mfcc`, plus `faces` for a file with a video stream):

* `egemaps`, `mfcc`: AVEC 2019's audio LLDs (openSMILE eGeMAPSv02; MFCC 0-12 with deltas and
  accelerations) as AVEC 2019's functionals, a row every 0.1 s (`pipelines.media.audio_features`);
* `openface`: the CSV files OpenFace 2 wrote (`--openface-dir`), as the same functionals over the
  frames where the face was tracked, with a last `present` column (`pipelines.media.openface`);
* `faces`: raw mode's inputs: a face crop per 0.1 s frame (`faces/<name>.npz`: `faces` uint8
  [N, S, S, 3] and `present` uint8 [N]) and the waveform (`audio/<name>.wav`, 16-bit mono).

The output layout, the manifest `extract.json`, resuming and the errors are described in
`pipelines.media.layout` and in docs/own-recordings.md. No TensorFlow is imported.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipelines.core import cli
from pipelines.core.errors import ConfigError, DataError, cli_main
from pipelines.core.io_utils import file_digest, read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from pipelines.datasets.synthetic_raw import wav_bytes
from pipelines.media import layout

FORMAT_VERSION = 1
EGEMAPS, MFCC, FACES, OPENFACE = "egemaps", "mfcc", "faces", "openface"
AUDIO_SETS = (EGEMAPS, MFCC)
VISUAL_SETS = (FACES, OPENFACE)
ALL_SETS = AUDIO_SETS + VISUAL_SETS
DEFAULT_FACE_SIZE = 48  # raw mode's default (synthetic.face_size)
DEFAULT_SAMPLE_RATE = 16000  # raw mode's default (synthetic.sample_rate)
HOP = layout.HOP
# Labels and raw-mode faces more than this many frames apart are worth a warning.
FRAME_SLACK = 1


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


def build_parser() -> argparse.ArgumentParser:
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
    return parser


# ---------------------------------------------------------------------------------------------
# Settings


class Plan:
    """What to extract: the feature sets, their output folders and the settings that shape the outputs."""

    def __init__(self, args):
        from pipelines.media import for_run

        self.requested = args.feature_sets  # None: the default per file
        self.folders = {name: name for name in ALL_SETS}
        self.run = None
        self.face_size = args.face_size or DEFAULT_FACE_SIZE
        self.sample_rate = args.sample_rate or DEFAULT_SAMPLE_RATE
        if args.for_run:
            if args.feature_sets:
                raise ConfigError("--for-run chooses the feature sets (the run's); leave out --feature-sets")
            self.run = for_run.plan(args.for_run)
            if self.run.mode == "raw":
                for flag, given, value in (
                    ("--face-size", args.face_size, self.run.face_size),
                    ("--sample-rate", args.sample_rate, self.run.sample_rate),
                ):
                    if given is not None and given != value:
                        raise ConfigError(f"{flag} {given}, but the run {args.for_run} was trained on {value}")
                self.face_size, self.sample_rate = self.run.face_size, self.run.sample_rate
                self.requested = [FACES]
            else:
                self.requested = [name for _, name, _ in self.run.folders]
                for folder, name, _ in self.run.folders:
                    self.folders[name] = folder
        self.openface_dir = Path(args.openface_dir).expanduser() if args.openface_dir else None
        self.min_confidence = float(args.min_confidence)
        if OPENFACE in (self.requested or []):
            if self.openface_dir is None:
                raise ConfigError("the openface feature set needs --openface-dir (the folder of OpenFace's CSV files)")
            if not self.openface_dir.is_dir():
                raise ConfigError("--openface-dir is not a folder", self.openface_dir)
        elif self.openface_dir is not None:
            raise ConfigError("--openface-dir is given but the openface feature set is not chosen (--feature-sets)")

    def sets_for(self, info) -> tuple:
        """(feature sets this file gets, warnings) given the streams it has."""
        warnings = []
        if self.requested is None:
            sets = ([*AUDIO_SETS] if info.has_audio else []) + ([FACES] if info.has_video else [])
            if not info.has_audio:
                warnings.append("no audio stream: no audio features (egemaps, mfcc) and no waveform (audio/)")
            return sets, warnings
        sets = []
        for name in self.requested:
            if name in AUDIO_SETS and not info.has_audio:
                continue
            if name in VISUAL_SETS and not info.has_video:
                continue
            sets.append(name)
        missing_audio = [name for name in self.requested if name in AUDIO_SETS and not info.has_audio]
        missing_video = [name for name in self.requested if name in VISUAL_SETS and not info.has_video]
        if missing_audio:
            warnings.append(f"no audio stream: no audio features ({', '.join(missing_audio)})")
        if FACES in self.requested and info.has_video and not info.has_audio:
            warnings.append("no audio stream: no waveform (audio/) for raw mode")
        if missing_video:
            warnings.append(f"no video stream: no visual features ({', '.join(missing_video)})")
        return sets, warnings

    def settings(self) -> dict:
        from pipelines.media import faces, functionals

        return {
            "format_version": FORMAT_VERSION,
            "feature_sets": self.requested or "default: egemaps,mfcc, plus faces for a file with video",
            "folders": {name: self.folders[name] for name in (self.requested or [*AUDIO_SETS, FACES])},
            "hop_seconds": HOP,
            "functionals": {"window_seconds": functionals.WINDOW_SECONDS, "statistics": ["mean", "std (ddof 0)"]},
            "opensmile_sample_rate": 16000,
            "face_size": self.face_size,
            "sample_rate": self.sample_rate,
            "face_detector": {
                "cascade": faces.CASCADE,
                "detect_height": faces.DETECT_HEIGHT,
                "min_face_fraction": faces.MIN_FACE_FRACTION,
                "scale_factor": faces.SCALE_FACTOR,
                "min_neighbours": faces.MIN_NEIGHBOURS,
                "margin": faces.MARGIN,
                "full_search_every": faces.FULL_SEARCH_EVERY,
            },
            "openface_min_confidence": self.min_confidence,
        }


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _file_record(path: Path) -> dict:
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": file_digest(path)}


# ---------------------------------------------------------------------------------------------
# One recording


class Extraction:
    """Extracts recordings one at a time into the output folder, keeping the manifest current."""

    def __init__(self, args, plan: Plan, versions: dict, out: Path):
        self.args, self.plan, self.out = args, plan, out
        self.settings = plan.settings()
        self.settings_key = _digest(self.settings)
        self.versions = versions
        self.manifest_path = out / layout.MANIFEST
        old = None
        if self.manifest_path.is_file():
            try:
                old = read_json(self.manifest_path)
            except (OSError, ValueError):
                old = None
        self.old = old if isinstance(old, dict) and old.get("format_version") == FORMAT_VERSION else {}
        self.manifest = {
            "format_version": FORMAT_VERSION,
            "command": "pipelines.extract",
            "complete": False,
            "hop": HOP,  # seconds between frames of every output (read by the raw `recordings` adapter)
            "settings": self.settings,
            "versions": versions,
            "for_run": None,
            "feature_sets": {},
            "recordings": dict(self.old.get("recordings") or {}),
            "skipped": [],
        }
        if plan.run is not None:
            self.manifest["for_run"] = {
                "run_dir": str(plan.run.run_dir.resolve()),
                "mode": plan.run.mode,
                "folders": [list(item) for item in plan.run.folders],
                "checked_against": str(plan.run.artifact_manifest) if plan.run.artifact_manifest else None,
            }
        self.openface_names = None
        self.openface_first = None

    # -- bookkeeping ------------------------------------------------------------------------

    def warn(self, path, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"warning: {path}: {message}", file=sys.stderr)

    def save(self) -> None:
        write_json_atomic(self.manifest_path, self.manifest)

    def describe_sets(self, audio_names: dict) -> None:
        from pipelines.media import audio_features, faces

        for name in self.plan.requested or [*AUDIO_SETS, FACES]:
            entry = {"folder": self.plan.folders[name]}
            if name in AUDIO_SETS:
                entry.update(audio_features.describe(name))
                entry["dim"] = len(audio_names[name])
                entry["names"] = audio_names[name]
            elif name == FACES:
                entry.update(
                    modality="visual",
                    files=f"{layout.FACES_FOLDER}/<name>.npz (faces uint8 [N, S, S, 3], present uint8 [N]) and "
                    f"{layout.WAVEFORM_FOLDER}/<name>.wav (16-bit PCM mono)",
                    face_size=self.plan.face_size,
                    sample_rate=self.plan.sample_rate,
                    detector=f"OpenCV Haar cascade {faces.CASCADE}",
                )
            else:
                entry.update(
                    modality="visual",
                    source=str(self.plan.openface_dir.resolve()),
                    min_confidence=self.plan.min_confidence,
                    functionals="AVEC 2019 generate_functionals.py over present frames; last column present (0/1)",
                )
                if self.openface_names:
                    entry["dim"] = len(self.openface_names)
                    entry["names"] = self.openface_names
            self.manifest["feature_sets"][name] = entry

    def remove_outputs(self, entry, keep=()) -> None:
        """Deletes the files an earlier extraction of a recording wrote that are not in `keep` (e.g. the
        audio features of a file that has lost its audio stream), so that no stale file is read."""
        for relative in (entry or {}).get("outputs") or {}:
            if relative not in keep:
                (self.out / relative).unlink(missing_ok=True)

    def key(self, source, digests: dict) -> str:
        return _digest({"settings": self.settings_key, "partition": source.partition, **digests})

    def complete(self, name: str, key: str) -> bool:
        entry = self.manifest["recordings"].get(name)
        if self.args.overwrite or not isinstance(entry, dict) or entry.get("key") != key:
            return False
        for relative, record in (entry.get("outputs") or {}).items():
            path = self.out / relative
            if (
                not path.is_file()
                or path.stat().st_size != record.get("size")
                or file_digest(path) != record.get("sha256")
            ):
                return False
        return bool(entry.get("outputs"))

    # -- checks before any extraction -------------------------------------------------------

    def openface_path(self, source):
        return self.plan.openface_dir / f"{source.name}.csv"

    def check_openface_header(self, path: Path) -> None:
        """All OpenFace CSVs must give the same columns (one feature folder, one dimension)."""
        from pipelines.datasets.tables import clean_name, first_line, sniff_separator, split_line
        from pipelines.media import openface

        line = first_line(path)
        header = [clean_name(cell) for cell in split_line(line, sniff_separator(path, line))]
        names = [name for name in header if openface.FEATURE_COLUMN.match(name)]
        if not names:
            raise DataError(
                "no feature column (expected OpenFace's AU01_r..AU45_r, AU01_c..AU45_c, gaze_* or pose_* columns)",
                path,
                1,
            )
        names = openface.functionals_lib.names(names) + [openface.PRESENT_COLUMN]
        if self.openface_names is None:
            self.openface_names, self.openface_first = names, path
        elif names != self.openface_names:
            raise DataError(
                f"other OpenFace columns than {self.openface_first} ({len(names)} vs {len(self.openface_names)} "
                f"features); every recording of a feature folder needs the same columns",
                path,
                1,
            )

    # -- extraction -------------------------------------------------------------------------

    def extract(self, source) -> str:
        """Extracts one recording (or finds its outputs complete and current): "extracted" or "up to date"."""
        from pipelines.media import decode

        started = time.time()
        name = source.name
        digests = {"source": file_digest(source.path)}
        labels = None
        if source.label_path is not None:
            labels = layout.read_labels(source.label_path)
            digests["labels"] = file_digest(source.label_path)
        openface_csv = None
        if OPENFACE in (self.plan.requested or []):
            path = self.openface_path(source)
            if path.is_file():
                openface_csv = path
                digests["openface"] = file_digest(path)
        key = self.key(source, digests)
        if self.complete(name, key):
            return "up to date"
        info = decode.probe(source.path)
        sets, warnings = self.plan.sets_for(info)
        if OPENFACE in sets and openface_csv is None:
            message = f"no OpenFace CSV for recording {name!r} (expected {self.openface_path(source)})"
            if not self.args.lenient:
                raise DataError(message + "; --lenient extracts the recording without openface", source.path)
            warnings.append(message + ": no openface features (lenient)")
            sets.remove(OPENFACE)
        if not sets:
            raise DataError("none of the chosen feature sets can be computed from this file's streams", source.path)
        entry = {
            "source": {
                "path": str(source.path.resolve()),
                "size": source.path.stat().st_size,
                "sha256": digests["source"],
            },
            "labels": None,
            "openface_csv": None,
            "partition": source.partition,
            "key": key,
            "settings_key": self.settings_key,
            "streams": info.to_dict(),
            "feature_sets": [],
            "frames": {},
            "duration": info.duration,
            "warnings": list(warnings),
            "outputs": {},
        }
        if labels is not None:
            entry["labels"] = {
                "path": str(source.label_path.resolve()),
                "sha256": digests["labels"],
                "rows": len(labels.timestamps),
            }
        outputs = {}  # relative path -> bytes
        audio_sets = [s for s in sets if s in AUDIO_SETS]
        want_wave = info.has_audio and FACES in sets
        with ThreadPoolExecutor(max_workers=1) as pool:
            audio_job = pool.submit(self._audio, source, audio_sets, want_wave) if (audio_sets or want_wave) else None
            if FACES in sets:
                self._faces(source, labels, entry, outputs)
            if OPENFACE in sets:
                self._openface(source, openface_csv, entry, outputs)
            if audio_job is not None:
                audio, wave_signal = audio_job.result()
                self._audio_outputs(source, audio, wave_signal, labels, entry, outputs)
        for warning in entry["warnings"]:
            self.warn(source.path, warning)
        if labels is not None:
            relative = f"{layout.LABELS_FOLDER}/{name}.csv"
            outputs[relative] = layout.labels_csv(name, labels).encode("utf-8")
            entry["frames"]["labels"] = len(labels.timestamps)
            longest = max((n for s, n in entry["frames"].items() if s != "labels"), default=0)
            if longest and abs(longest - len(labels.timestamps)) > FRAME_SLACK + 1:
                entry["warnings"].append(
                    f"the label file has {len(labels.timestamps)} rows, the features {longest} (the reader cuts "
                    f"longer feature files and pads shorter ones, marking the padded frames absent)"
                )
                self.warn(source.label_path, entry["warnings"][-1])
        for relative, data in outputs.items():
            write_bytes_atomic(self.out / relative, data)
            entry["outputs"][relative] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        if info.duration is None:
            entry["duration"] = max([entry.get("video_duration") or 0.0, entry.get("audio_duration") or 0.0]) or None
        entry["seconds"] = round(time.time() - started, 3)
        old = self.manifest["recordings"].get(name)
        self.remove_outputs(old, keep=entry["outputs"])
        self.manifest["recordings"][name] = entry
        return "extracted"

    def _audio(self, source, audio_sets, want_wave):
        from pipelines.media import audio_features, decode

        features, wave_signal = {}, None
        if audio_sets:
            signal = decode.decode_audio(source.path, audio_features.SAMPLE_RATE)
            features = audio_features.extract(audio_sets, signal, audio_features.SAMPLE_RATE)
            features["_duration"] = len(signal) / audio_features.SAMPLE_RATE
            if want_wave and self.plan.sample_rate == audio_features.SAMPLE_RATE:
                wave_signal = signal
        if want_wave and wave_signal is None:
            wave_signal = decode.decode_audio(source.path, self.plan.sample_rate)
        return features, wave_signal

    def _audio_outputs(self, source, features, wave_signal, labels, entry, outputs) -> None:
        from pipelines.media import audio_features

        name = source.name
        duration = features.pop("_duration", None)
        for set_name, (times, values, lld_rows) in features.items():
            if not len(times):
                entry["warnings"].append(f"audio shorter than {audio_features.MIN_SECONDS} s: no {set_name} features")
                self.warn(source.path, entry["warnings"][-1])
                continue
            values = self._finite(source, set_name, values, entry)
            folder = self.plan.folders[set_name]
            outputs[f"{folder}/{name}.csv"] = layout.feature_csv(
                name, times, values, audio_features.feature_names(set_name)
            ).encode("utf-8")
            entry["feature_sets"].append(set_name)
            entry["frames"][set_name] = len(times)
            entry.setdefault("lld_rows", {})[set_name] = lld_rows
        if wave_signal is not None:
            rate = self.plan.sample_rate
            if FACES in entry["frames"]:
                # Raw mode pairs the waveform with the face frames: as long as they are.
                target = int(round(entry["frames"][FACES] * HOP * rate))
                if len(wave_signal) < target:
                    wave_signal = np.concatenate([wave_signal, np.zeros(target - len(wave_signal), np.float32)])
                wave_signal = wave_signal[:target]
            outputs[f"{layout.WAVEFORM_FOLDER}/{name}.wav"] = wav_bytes(wave_signal, rate)
            entry["waveform_samples"] = len(wave_signal)
            duration = duration or len(wave_signal) / rate
        entry["audio_duration"] = duration

    def _finite(self, source, set_name, values, entry):
        bad = ~np.isfinite(values)
        if bad.any():
            entry["warnings"].append(f"{int(bad.sum())} non-finite {set_name} values written as 0")
            self.warn(source.path, entry["warnings"][-1])
            values = np.where(bad, 0.0, values)
        return values

    def _faces(self, source, labels, entry, outputs) -> None:
        from pipelines.media import faces

        track = faces.extract_faces(source.path, self.plan.face_size, HOP)
        crops, present = track.faces, track.present
        if labels is not None:
            # Raw mode reads one crop per label row: cut or pad (absent, zeros) to the labels.
            rows = len(labels.timestamps)
            if abs(rows - len(crops)) > FRAME_SLACK:
                entry["warnings"].append(
                    f"{len(crops)} video frames of 0.1 s but {rows} label rows: the faces are cut or padded "
                    f"(absent) to the labels"
                )
            if len(crops) < rows:
                pad = rows - len(crops)
                crops = np.concatenate([crops, np.zeros((pad,) + crops.shape[1:], np.uint8)])
                present = np.concatenate([present, np.zeros(pad, np.uint8)])
            crops, present = crops[:rows], present[:rows]
        buffer = io.BytesIO()
        np.savez_compressed(buffer, faces=crops, present=present)
        outputs[f"{layout.FACES_FOLDER}/{source.name}.npz"] = buffer.getvalue()
        entry["feature_sets"].append(FACES)
        entry["frames"][FACES] = len(crops)
        entry["face_frames"] = len(crops)
        entry["face_detected_frames"] = int(present.sum())
        entry["video_duration"] = track.duration
        entry["video_decoded_frames"] = track.decoded_frames
        if len(crops) and not present.any():
            entry["warnings"].append("no face found on any frame: every face frame is absent")

    def _openface(self, source, path, entry, outputs) -> None:
        from pipelines.media import openface

        frames = openface.read(path, self.plan.min_confidence)
        fps = openface.frame_rate(frames, entry["streams"].get("video_fps"))
        times, values, present = openface.functionals(frames, fps)
        names = openface.feature_names(frames)
        if self.openface_names is not None and names != self.openface_names:
            raise DataError(f"other OpenFace columns than {self.openface_first}", path, 1)
        folder = self.plan.folders[OPENFACE]
        table = np.concatenate([values, present[:, None].astype(np.float64)], axis=1)
        outputs[f"{folder}/{source.name}.csv"] = layout.feature_csv(source.name, times, table, names).encode("utf-8")
        entry["openface_csv"] = _file_record(path)
        entry["feature_sets"].append(OPENFACE)
        entry["frames"][OPENFACE] = len(times)
        entry["openface_fps"] = round(fps, 6)
        entry["openface_fps_from"] = "the video" if fps != frames.fps else "the CSV's timestamps"
        entry["openface_present_frames"] = int(frames.present.sum())
        entry["openface_frames"] = len(frames.present)
        entry["openface_present_rows"] = int(present.sum())
        if fps == frames.fps and entry["streams"].get("video_fps"):
            entry["warnings"].append(
                f"the OpenFace CSV's timestamps give {frames.fps:.3f} frames per second, the video "
                f"{entry['streams']['video_fps']:.3f}: windows at the CSV's rate"
            )
        if entry["streams"].get("duration") and abs(frames.duration - entry["streams"]["duration"]) > 1.0:
            entry["warnings"].append(
                f"the OpenFace CSV spans {frames.duration:.2f} s, the media file {entry['streams']['duration']:.2f} s"
            )


# ---------------------------------------------------------------------------------------------
# The command


def run(args) -> dict:
    """Extracts every input into `args.output_dir`; returns the manifest."""
    from pipelines import media
    from pipelines.media import audio_features, for_run

    out = Path(args.output_dir).expanduser()
    versions = media.require_extra()
    plan = Plan(args)
    sources = layout.find_sources(args.inputs)
    for source in sources:  # every label file is checked before anything is extracted
        if source.label_path is not None:
            layout.read_labels(source.label_path)
    extraction = Extraction(args, plan, versions, out)
    audio_names = {name: audio_features.feature_names(name) for name in AUDIO_SETS}
    if OPENFACE in (plan.requested or []):
        for source in sources:
            path = extraction.openface_path(source)
            if path.is_file():
                extraction.check_openface_header(path)
    if plan.run is not None and plan.run.mode != "raw":
        for modality in ("audio", "visual"):
            folders = []
            for folder, name, folder_modality in plan.run.folders:
                if folder_modality == modality:
                    names = audio_names[name] if name in AUDIO_SETS else extraction.openface_names
                    if names is not None:
                        folders.append((folder, names))
            if folders and len(folders) == len([f for f in plan.run.folders if f[2] == modality]):
                for_run.check_dims(plan.run, modality, folders)
    out.mkdir(parents=True, exist_ok=True)
    extraction.describe_sets(audio_names)
    # Partitions of this run's recordings and of those an earlier run left in the folder.
    current = {source.name for source in sources}
    partitions = [(source.name, source.partition) for source in sources if source.partition]
    partitions += [
        (name, entry["partition"])
        for name, entry in extraction.manifest["recordings"].items()
        if name not in current and isinstance(entry, dict) and entry.get("partition")
    ]
    if partitions:
        write_text_atomic(out / layout.PARTITIONS_FILE, layout.partitions_csv(partitions))
    elif extraction.old.get("partitions"):  # written by an earlier run whose recordings had partitions
        (out / layout.PARTITIONS_FILE).unlink(missing_ok=True)
    extraction.manifest["partitions"] = bool(partitions)
    extraction.manifest["inputs"] = [str(Path(item).expanduser().resolve()) for item in args.inputs]
    outcome = {"extracted": [], "up to date": [], "skipped": []}
    extraction.manifest["last_run"] = outcome
    bar = cli.progress_bar(sources, "extract", total=len(sources), unit="rec", enabled=not args.quiet)
    try:
        for source in bar:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(source.name[:30])
            try:
                outcome[extraction.extract(source)].append(source.name)
            except DataError as error:
                if not args.lenient or not _is_media_error(error, source):
                    raise
                extraction.warn(source.path, f"{error.message}; skipped (lenient)")
                extraction.remove_outputs(extraction.manifest["recordings"].pop(source.name, None))
                extraction.manifest["skipped"].append(
                    {"name": source.name, "path": str(source.path), "error": str(error)}
                )
                outcome["skipped"].append(source.name)
            extraction.save()
    finally:
        if hasattr(bar, "close"):
            bar.close()  # an error line then starts on a line of its own
    extraction.manifest["complete"] = True
    extraction.save()
    return extraction.manifest


def _is_media_error(error: DataError, source) -> bool:
    return error.path is not None and Path(error.path) == source.path


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    manifest = run(args)
    outcome = manifest["last_run"]
    print(
        f"extract: {len(outcome['extracted'])} recording(s) extracted, {len(outcome['up to date'])} up to date, "
        f"{len(outcome['skipped'])} skipped; manifest {Path(args.output_dir) / layout.MANIFEST}"
    )
