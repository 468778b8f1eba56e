"""The raw synthetic corpus: determinism, expressions and voice that follow the labels, corruption."""

import csv

import numpy as np
import pytest

from pipelines.datasets import open_corpus, synthetic, synthetic_raw
from tests.pipelines.conftest import TINY_RAW


@pytest.fixture(scope="module")
def recordings(raw_corpus_dir):
    return list(open_corpus("synthetic", raw_corpus_dir).recordings())


def test_same_seed_same_corpus_and_another_seed_another(raw_corpus_dir, tmp_path):
    again = synthetic.generate(tmp_path / "again", **TINY_RAW)
    other = synthetic.generate(tmp_path / "other", **{**TINY_RAW, "seed": TINY_RAW["seed"] + 1})
    names = sorted(p.name for p in (raw_corpus_dir / "faces").iterdir())
    assert names == sorted(p.name for p in (again / "faces").iterdir()) and len(names) == 5
    for name in names:
        np.testing.assert_array_equal(
            synthetic_raw.read_faces(raw_corpus_dir / "faces" / name), synthetic_raw.read_faces(again / "faces" / name)
        )
        wav = name.replace(".npz", ".wav")
        assert (raw_corpus_dir / "audio" / wav).read_bytes() == (again / "audio" / wav).read_bytes()
    for folder in ("labels",):
        for path in (raw_corpus_dir / folder).iterdir():
            assert path.read_bytes() == (again / folder / path.name).read_bytes()
    assert (raw_corpus_dir / "corruption.csv").read_bytes() == (again / "corruption.csv").read_bytes()
    first = names[0]
    assert not np.array_equal(
        synthetic_raw.read_faces(raw_corpus_dir / "faces" / first), synthetic_raw.read_faces(other / "faces" / first)
    )
    # A complete corpus with the same parameters is reused, not written again.
    stamp = (again / "faces" / first).stat().st_mtime_ns
    synthetic.generate(tmp_path / "again", **TINY_RAW)
    assert (again / "faces" / first).stat().st_mtime_ns == stamp


def test_recordings_hold_raw_inputs(recordings):
    n = int(round(TINY_RAW["duration_seconds"] / 0.1))
    assert [r.partition for r in recordings] == ["train"] * 3 + ["devel", "test"]
    for recording in recordings:
        size = TINY_RAW["face_size"]
        assert recording.raw and recording.audio is None and recording.num_frames == n
        assert recording.faces.shape == (n, size, size, 3) and recording.faces.dtype == np.uint8
        assert recording.sample_rate == TINY_RAW["sample_rate"]
        assert recording.waveform.shape == (n * TINY_RAW["sample_rate"] // 10,)
        assert np.abs(recording.waveform).max() <= 1.0


def _clean(recording):
    return ~(recording.visual_corrupted | recording.audio_corrupted)


def _pearson(x, y):
    return float(np.corrcoef(x, y)[0, 1])


def test_face_expression_carries_valence_across_identities(recordings):
    """A ridge regression from the pixels of the training faces predicts valence on unseen faces."""

    def pixels(recording):
        keep = ~recording.visual_corrupted
        gray = recording.faces[keep].astype(np.float64).mean(axis=-1).reshape(keep.sum(), -1)
        return gray, recording.valence[keep]

    train = [pixels(r) for r in recordings if r.partition == "train"]
    x = np.concatenate([p for p, _ in train])
    y = np.concatenate([v for _, v in train])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    weights = np.linalg.solve(z.T @ z + 10.0 * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    for recording in recordings:
        if recording.partition == "train":
            continue
        gray, valence = pixels(recording)
        predicted = ((gray - mean) / scale) @ weights
        assert _pearson(predicted, valence) > 0.5, recording.name


def test_voice_loudness_follows_arousal(recordings):
    # Over whole seconds of clean audio, so that the syllable rhythm averages out.
    loudness, arousal = [], []
    for recording in recordings:
        frames = recording.waveform.reshape(-1, 10 * recording.sample_rate // 10)
        clean = ~recording.audio_corrupted.reshape(-1, 10).any(axis=1)
        loudness.append(np.log(np.sqrt((frames**2).mean(axis=1)))[clean])
        arousal.append(recording.arousal.reshape(-1, 10).mean(axis=1)[clean])
    assert _pearson(np.concatenate(loudness), np.concatenate(arousal)) > 0.8


def test_corrupted_stretches_are_recorded_and_visible(raw_corpus_dir, recordings):
    rows = list(csv.reader(open(raw_corpus_dir / "corruption.csv"), delimiter=";"))[1:]
    by_name = {r.name: r for r in recordings}
    kinds = set()
    for name, modality, start, end, kind in rows:
        recording, start, end = by_name[name], int(start), int(end)
        flags = getattr(recording, f"{modality}_corrupted")
        assert flags[start:end].all()
        clean = ~flags
        kinds.add((modality, kind))
        if modality == "visual":
            faces = recording.faces.astype(np.float64)
            size = faces.shape[1]
            if kind == "occlusion":  # the block hides eyes and mouth: nearly flat there
                region = faces[start:end, int(0.3 * size) : int(0.85 * size)]
                assert region.std(axis=(1, 2)).max() < 10
            else:  # heavy pixel noise: neighbouring pixels differ far more than on clean frames

                def roughness(x):
                    return np.abs(np.diff(x, axis=2)).mean()

                assert roughness(faces[start:end]) > 2 * roughness(faces[clean])
        else:
            frames = recording.waveform.reshape(recording.num_frames, -1)
            rms = np.sqrt((frames**2).mean(axis=1))
            if kind == "noise":
                assert rms[start:end].min() > rms[clean].max()
            else:
                assert rms[start:end].max() < rms[clean].min()
    assert {m for m, _ in kinds} == {"audio", "visual"}
    flagged = sum(int(r.visual_corrupted.sum() + r.audio_corrupted.sum()) for r in recordings)
    assert flagged == sum(int(e) - int(s) for _, _, s, e, _ in rows)
