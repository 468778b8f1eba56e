"""Transform: normalisation fitted on train only, against NumPy."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from pipelines.components import example_gen, transform
from pipelines.core.errors import DataError
from tests.pipelines.example_gen_helpers import make_corpus, make_recordings


def _build(tmp_path, recordings, fingerprint="fp-1"):
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(recordings, fingerprint=fingerprint), out, progress=False)
    return out


def _numpy_moments(recordings, modality):
    train = [r for r in recordings if r.partition == "train"]
    present = np.concatenate([getattr(r, f"{modality}_present") for r in train]) > 0
    values = np.concatenate([getattr(r, modality) for r in train]).astype(np.float64)[present]
    return values.mean(axis=0), values.var(axis=0, ddof=0), len(values)


def test_mean_and_variance_on_train_only(tmp_path):
    recordings = make_recordings(seed=5)
    # Devel and test far off: they must not move the fitted statistics.
    recordings = [
        r if r.partition == "train" else dataclasses.replace(r, audio=r.audio * 100 + 50, visual=r.visual - 80)
        for r in recordings
    ]
    out = _build(tmp_path, recordings)
    written = transform.run(out)
    on_disk = json.loads((out / "transform.json").read_text())
    assert on_disk == written and on_disk["fitted_on"] == "train"
    norms = transform.load_normalization(out)
    for modality in ("audio", "visual"):
        mean, variance, count = _numpy_moments(recordings, modality)
        np.testing.assert_allclose(on_disk[modality]["mean"], mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(on_disk[modality]["variance"], variance, rtol=1e-10)
        assert on_disk[modality]["count"] == count
        loaded_mean, loaded_var = norms[modality]
        assert loaded_mean.dtype == np.float32 and loaded_var.dtype == np.float32
        np.testing.assert_allclose(loaded_mean, mean, rtol=1e-6)
        np.testing.assert_allclose(loaded_var, variance, rtol=1e-6)


def test_keras_normalization_with_the_fitted_values_standardises_train(tmp_path):
    recordings = make_recordings(seed=6)
    out = _build(tmp_path, recordings)
    transform.run(out)
    mean, variance = transform.load_normalization(out)["visual"]
    layer = keras.layers.Normalization(mean=mean, variance=variance)
    train = np.concatenate([r.visual for r in recordings if r.partition == "train"])
    normalised = np.asarray(layer(train), np.float64)
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.var(axis=0), 1.0, rtol=1e-4)


def test_large_offsets_keep_float64_precision(tmp_path):
    rng = np.random.default_rng(1)
    recordings = [
        dataclasses.replace(r, audio=(1e4 + rng.normal(size=r.audio.shape) * 0.01).astype(np.float32))
        for r in make_recordings(seed=7)
    ]
    out = _build(tmp_path, recordings)
    fitted = transform.run(out)
    mean, variance, _ = _numpy_moments(recordings, "audio")
    np.testing.assert_allclose(fitted["audio"]["variance"], variance, rtol=1e-6)
    np.testing.assert_allclose(fitted["audio"]["mean"], mean, rtol=1e-12)


def test_reuse_and_staleness(tmp_path):
    recordings = make_recordings(seed=5)
    out = _build(tmp_path, recordings)
    transform.run(out)
    before = (out / "transform.json").stat().st_mtime_ns
    transform.run(out)
    assert (out / "transform.json").stat().st_mtime_ns == before
    changed = [dataclasses.replace(r, audio=r.audio + 1) for r in recordings]
    _build(tmp_path, changed, fingerprint="fp-2")
    with pytest.raises(DataError, match="fitted on other shards"):
        transform.load_normalization(out)
    refit = transform.run(out)
    mean, _, _ = _numpy_moments(changed, "audio")
    np.testing.assert_allclose(refit["audio"]["mean"], mean, rtol=1e-12)
    transform.load_normalization(out)


def test_errors(tmp_path):
    recordings = make_recordings(seed=5)
    out = _build(tmp_path, recordings)
    with pytest.raises(DataError, match="no transform.json"):
        transform.load_normalization(out)
    bad = [
        dataclasses.replace(r, visual=np.full_like(r.visual, np.nan)) if r.name == "train_01" else r for r in recordings
    ]
    out = _build(tmp_path / "nan", bad)
    with pytest.raises(DataError, match="NaN/Inf visual values in the train partition"):
        transform.run(out)
