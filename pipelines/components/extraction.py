"""`pipelines.extract`'s work on one recording, and the manifest `extract.json` it keeps current.

`Extraction.extract(source)` decodes a media file (`pipelines.media`), computes the feature sets the
plan (`pipelines.components.extract_plan`) gives it, writes the outputs and records them, with the
checksums of their inputs, in the manifest; a recording whose outputs are complete and current is
left as it is. No TensorFlow is imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipelines.components.extract_plan import AUDIO_SETS, FACES, FORMAT_VERSION, FRAME_SLACK, HOP, OPENFACE, Plan
from pipelines.core.errors import DataError
from pipelines.core.io_utils import file_digest, read_json, write_bytes_atomic, write_json_atomic
from pipelines.datasets.synthetic_raw import wav_bytes
from pipelines.media import layout


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _file_record(path: Path) -> dict:
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": file_digest(path)}


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
