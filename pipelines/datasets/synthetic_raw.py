"""The raw variant of the synthetic corpus: drawn faces and a synthetic voice instead of features.

Written by `pipelines.datasets.synthetic.generate(..., raw=True)` in this layout::

    <root>/labels/{Train,Devel,Test}_SY_<NN>.csv   name;timestamp;arousal;valence;liking (as the feature corpus)
    <root>/faces/<name>.npz                        `faces`: uint8 [N, size, size, 3], one crop per 0.1 s frame
    <root>/audio/<name>.wav                        16-bit PCM mono at `sample_rate` (default 16 kHz)
    <root>/corruption.csv                          name;modality;start_frame;end_frame;kind
    <root>/synthetic.json                          the parameters (with "raw": true) and a summary

How the faces and the voice follow the labels (valence v, arousal a in (-0.9, 0.9)):

* Face (numpy drawing on a `size` x `size` crop): a skin-coloured ellipse on a plain background,
  two eyes, two brows and a mouth. The mouth is a curve whose middle drops by up to 0.1 of the
  crop below its corners as v rises (a smile; a frown for negative v) and whose thickness grows
  with a; the eyes open and the brows rise with a. Per recording: face size and position,
  skin, background and eye spacing vary (identity); per frame: a small head movement and pixel
  noise.
* Voice: a harmonic tone whose pitch rises with a (up to +-0.6 octave around a per-recording
  base pitch between 110 and 190 Hz), whose loudness grows with a, and whose harmonics decay
  more slowly (a brighter timbre) as v rises; a 3-5 Hz syllable rhythm and faint background noise.
* Corrupted stretches (recorded in `corruption.csv` exactly as for the feature corpus): visual
  `occlusion` (an opaque block hides the eyes and mouth) or `noise` (heavy pixel noise over a
  blurred face); audio `noise` (a loud noise burst) or `silence`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import wave
import zipfile
import zlib
from pathlib import Path

import numpy as np

from pipelines.core.errors import DataError
from pipelines.data import features
from pipelines.datasets.base import Corpus, Recording, content_digest

FACES_FOLDER = "faces"
AUDIO_FOLDER = "audio"
READER_VERSION = 2  # 2: fingerprints hash the files' contents


# ---------------------------------------------------------------------------------------------
# Drawing


def identity(rng) -> dict:
    """Per-recording appearance and voice."""
    return {
        "center": rng.uniform(-0.04, 0.04, 2),
        "half_width": rng.uniform(0.30, 0.36),
        "half_height": rng.uniform(0.38, 0.44),
        "skin": rng.uniform([170, 120, 90], [235, 190, 160]),
        "background": rng.uniform(30, 120, 3),
        "eye_spacing": rng.uniform(0.11, 0.15),
        "base_pitch": rng.uniform(110.0, 190.0),
        "syllable_rate": rng.uniform(3.0, 5.0),
    }


def draw_faces(valence, arousal, size, person, rng) -> np.ndarray:
    """Face crops [N, size, size, 3] uint8 whose expression follows valence and arousal per frame."""
    valence = np.asarray(valence, np.float32)[:, None, None]
    arousal01 = ((np.asarray(arousal, np.float32) + 1.0) / 2.0)[:, None, None]
    n = valence.shape[0]
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    # Head movement: a slow random walk of at most ~2% of the crop.
    jitter = np.cumsum(rng.normal(0, 0.002, (n, 2)), axis=0).astype(np.float32)
    jitter = np.clip(jitter - jitter.mean(axis=0), -0.02, 0.02)
    cx = (person["center"][0] + jitter[:, 0])[:, None, None]
    cy = (person["center"][1] + jitter[:, 1])[:, None, None]
    u = coords[None, None, :] - cx  # [N, 1, S] horizontal
    v = coords[None, :, None] - cy  # [N, S, 1] vertical, downwards

    image = np.empty((n, size, size, 3), np.float32)
    image[:] = person["background"]
    face = (u / person["half_width"]) ** 2 + (v / person["half_height"]) ** 2 <= 1.0
    image[face] = person["skin"]
    eye_height = 0.02 + 0.05 * arousal01
    spacing = person["eye_spacing"]
    for side in (-1.0, 1.0):
        eye = ((u - side * spacing) / 0.065) ** 2 + ((v + 0.10) / eye_height) ** 2 <= 1.0
        image[eye] = (35.0, 30.0, 30.0)
        brow_y = -0.10 - eye_height - 0.035 - 0.05 * arousal01
        brow = (np.abs(u - side * spacing) < 0.08) & (np.abs(v - brow_y) < 0.018)
        image[brow] = (60.0, 40.0, 30.0)
    # Mouth: its middle lies 0.15 * valence below its corners (a smile for positive valence).
    half_width = 0.19
    curve = 0.17 + 0.15 * valence * (1.0 - (u / half_width) ** 2)
    thickness = 0.022 + 0.035 * arousal01
    mouth = (np.abs(u) < half_width) & (np.abs(v - curve) < thickness)
    image[mouth] = (150.0, 40.0, 50.0)
    image += rng.normal(0.0, 6.0, image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def corrupt_faces(faces, segments, rng) -> np.ndarray:
    """Occlusion or heavy noise on the corrupted stretches of `faces` (in place; returns it)."""
    size = faces.shape[1]
    for start, end, kind in segments:
        if kind == "occlusion":
            top, bottom = int(0.25 * size), int(0.9 * size)
            colour = rng.uniform(60, 200, 3)
            block = colour + rng.normal(0, 4, (end - start, bottom - top, size, 3))
            faces[start:end, top:bottom, :] = np.clip(block, 0, 255).astype(np.uint8)
        else:  # noise: a blurred face under heavy noise
            blurred = faces[start:end].astype(np.float32)
            for axis in (1, 2):
                blurred = (np.roll(blurred, 1, axis) + blurred + np.roll(blurred, -1, axis)) / 3.0
            noisy = blurred + rng.normal(0, 90, blurred.shape)
            faces[start:end] = np.clip(noisy, 0, 255).astype(np.uint8)
    return faces


def synthesize_voice(valence, arousal, hop, sample_rate, person, rng) -> np.ndarray:
    """A mono waveform in [-1, 1] whose pitch and loudness follow arousal and timbre valence."""
    n = len(valence)
    samples = int(round(n * hop * sample_rate))
    t = np.arange(samples, dtype=np.float64) / sample_rate
    frame_times = (np.arange(n) + 0.5) * hop
    v = np.interp(t, frame_times, valence)
    a = np.interp(t, frame_times, arousal)
    pitch = person["base_pitch"] * 2.0 ** (0.6 * a) * (1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    tilt = 1.6 - 0.9 * v  # slower decay of the harmonics = brighter voice for positive valence
    voice = np.zeros(samples)
    nyquist = sample_rate / 2.0
    for k in range(1, 16):
        audible = (k * pitch < 0.9 * nyquist).astype(np.float64)
        voice += audible * k ** (-tilt) * np.sin(k * phase)
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * person["syllable_rate"] * t + rng.uniform(0, 2 * np.pi))
    loudness = 0.04 + 0.22 * (a + 1.0) / 2.0
    wave_ = loudness * syllables * voice / 2.0 + rng.normal(0, 0.004, samples)
    return np.clip(wave_, -1.0, 1.0).astype(np.float32)


def corrupt_voice(waveform, segments, hop, sample_rate, rng) -> np.ndarray:
    """Noise bursts or silence on the corrupted stretches (in place; returns it)."""
    for start, end, kind in segments:
        a, b = int(round(start * hop * sample_rate)), int(round(end * hop * sample_rate))
        if kind == "noise":
            waveform[a:b] = np.clip(waveform[a:b] + rng.normal(0, 0.3, b - a), -1, 1)
        else:
            waveform[a:b] = rng.normal(0, 0.002, b - a)
    return waveform


# ---------------------------------------------------------------------------------------------
# Files


def write_faces(path: Path, faces) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, faces=faces)
    _write_bytes_atomic(path, buffer.getvalue())


def read_faces(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            faces = archive["faces"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"unreadable face file, expected a .npz with a 'faces' array ({error})", path) from None
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise DataError(f"faces must be uint8 [frames, height, width, 3], got {faces.dtype} {faces.shape}", path)
    return faces


def wav_bytes(waveform, sample_rate: int) -> bytes:
    """A 16-bit PCM mono WAV file's bytes of a waveform in [-1, 1] (clipped)."""
    pcm = np.round(np.clip(np.asarray(waveform, np.float64), -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(int(sample_rate))
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


def write_wav(path: Path, waveform, sample_rate: int) -> None:
    _write_bytes_atomic(path, wav_bytes(waveform, sample_rate))


def read_wav(path: Path):
    """(waveform float32 in [-1, 1], sample rate) of a 16-bit PCM mono WAV file."""
    try:
        with wave.open(str(path), "rb") as handle:
            if handle.getnchannels() != 1 or handle.getsampwidth() != 2:
                raise DataError(
                    f"expected 16-bit mono PCM, got {handle.getnchannels()} channel(s) of "
                    f"{8 * handle.getsampwidth()} bits",
                    path,
                )
            rate = handle.getframerate()
            data = handle.readframes(handle.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise DataError(f"unreadable WAV file ({error})", path) from None
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, rate


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Adapter


def open_synthetic_raw(root: Path, params: dict, segments: dict, corruption_path: Path, names) -> Corpus:
    """The raw synthetic corpus as a `Corpus` of recordings with `faces`, `waveform`, `sample_rate`."""
    from pipelines.datasets.avec_files import read_labels

    hop = float(params["hop"])
    files = []
    for _, name in names:
        for relative in (f"labels/{name}.csv", f"{FACES_FOLDER}/{name}.npz", f"{AUDIO_FOLDER}/{name}.wav"):
            path = root / relative
            if not path.is_file():
                raise DataError("missing file of the raw synthetic corpus; regenerate it", path)
            files.append([relative, content_digest(path)])
    for path in (root / "synthetic.json", corruption_path):
        files.append([path.name, content_digest(path)])
    key = {"dataset": "synthetic", "mode": "raw", "reader_version": READER_VERSION, "files": files}
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def recordings():
        for partition, name in names:
            timestamps, arousal, valence = read_labels(root / "labels" / f"{name}.csv", hop, name)
            faces = read_faces(root / FACES_FOLDER / f"{name}.npz")
            waveform, rate = read_wav(root / AUDIO_FOLDER / f"{name}.wav")
            n = len(timestamps)
            if len(faces) != n:
                raise DataError(f"{len(faces)} face frames but {n} label rows", root / FACES_FOLDER / f"{name}.npz")
            expected = n * hop * rate
            if abs(len(waveform) - expected) > hop * rate:
                raise DataError(
                    f"{len(waveform)} samples ({len(waveform) / rate:.6g} s), but the {n} label rows span "
                    f"{n * hop:.6g} s (expected {int(round(expected))} samples at {rate} Hz, within a hop)",
                    root / AUDIO_FOLDER / f"{name}.wav",
                )
            flags = {}
            for modality in features.MODALITIES:
                flags[modality] = np.zeros(n, bool)
                for start, end, line in segments.get(name, {}).get(modality, []):
                    if end > n:
                        raise DataError(
                            f"end_frame {end} is past the end of {name} ({n} frames)", corruption_path, line, 4
                        )
                    flags[modality][start:end] = True
            yield Recording(
                name=name,
                partition=partition.lower(),
                hop=hop,
                audio=None,
                visual=None,
                valence=valence,
                arousal=arousal,
                timestamps=timestamps,
                audio_corrupted=flags[features.AUDIO],
                visual_corrupted=flags[features.VISUAL],
                metadata={"culture": "SY"},
                faces=faces,
                waveform=waveform,
                sample_rate=rate,
            )

    return Corpus(
        dataset="synthetic",
        root=str(root),
        hop=hop,
        audio_feature_names=[],
        visual_feature_names=[],
        recordings=recordings,
        fingerprint=fingerprint,
        mode="raw",
    )
