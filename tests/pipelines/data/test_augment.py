"""Augmentation: each kind changes the window only where it should."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import example_gen, input_pipeline, transform
from pipelines.core.errors import ConfigError
from pipelines.data import augment
from tests.pipelines.example_gen_helpers import make_corpus, make_recordings


def _window(frames=40, real=30, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(frames) < real).astype(np.float32)
    audio = (rng.normal(size=(frames, 3)) + 2).astype(np.float32) * mask[:, None]
    visual = (rng.normal(size=(frames, 4)) - 2).astype(np.float32) * mask[:, None]
    return {"audio": audio, "visual": visual, "mask": mask}


def _apply(window, config, scale=None):
    tensors = {k: tf.constant(v) for k, v in window.items()}
    return {k: v.numpy() for k, v in augment.augment_window(tensors, augment.validate_config(config), scale).items()}


def _zeroed_rows(before, after):
    changed = (before != after).any(axis=1)
    zero = (after == 0).all(axis=1)
    return changed, zero


def test_noise_only_on_real_frames_and_scaled():
    window = _window(frames=3000, real=2500)
    scale = {"audio": np.array([1.0, 10.0, 0.1], np.float32), "visual": np.ones(4, np.float32)}
    out = _apply(window, {"noise_std": 0.5}, scale)
    np.testing.assert_array_equal(out["mask"], window["mask"])
    real = window["mask"] > 0
    for key in ("audio", "visual"):
        diff = out[key] - window[key]
        assert not diff[~real].any()  # padding untouched
        assert (diff[real] != 0).all()
        np.testing.assert_allclose(diff[real].std(axis=0), 0.5 * scale[key], rtol=0.06)
        np.testing.assert_allclose(diff[real].mean(axis=0), 0.0, atol=0.1 * 0.5 * scale[key].max())


@pytest.mark.parametrize("mask_fn", [augment.time_mask, augment.fallback_time_mask])
def test_time_mask_zeroes_one_short_stretch_of_whole_frames(mask_fn):
    values = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32) + 5
    lengths = []
    for _ in range(300):
        out = mask_fn(tf.constant(values), 4).numpy()
        changed, zero = _zeroed_rows(values, out)
        assert (changed == zero).all()  # a frame is either untouched or zero in every feature
        frames = np.flatnonzero(changed)
        if len(frames):
            assert (np.diff(frames) == 1).all()  # one contiguous stretch
        lengths.append(len(frames))
    assert set(lengths) == {0, 1, 2, 3}  # t ~ U[0, param)


def test_tensorflow_io_and_fallback_masks_have_the_same_form():
    tfio = pytest.importorskip("tensorflow_io")
    ones = tf.ones((12, 5))
    forms = {}
    for name, fn in (
        ("tfio", lambda x: tfio.audio.time_mask(x, param=6)),
        ("fallback", lambda x: augment.fallback_time_mask(x, 6)),
    ):
        starts, lengths = set(), set()
        for _ in range(400):
            out = fn(ones)
            assert out.shape == ones.shape and out.dtype == ones.dtype
            rows = np.flatnonzero((out.numpy() == 0).all(axis=1))
            assert ((out.numpy() == 0) | (out.numpy() == 1)).all()
            if len(rows):
                assert (np.diff(rows) == 1).all()
                starts.add(int(rows[0]))
            lengths.add(len(rows))
        forms[name] = (lengths, min(starts), max(starts))
    # t ~ U[0, 6), t0 ~ U[0, 12 - t): a stretch starts at frame 12 - 1 - 1 = 10 at the latest.
    assert forms["tfio"] == forms["fallback"] == ({0, 1, 2, 3, 4, 5}, 0, 10)


def test_modality_dropout_zeroes_one_modality_and_keeps_the_mask():
    window = _window()
    dropped = {"audio": 0, "visual": 0}
    for _ in range(60):
        out = _apply(window, {"modality_dropout_prob": 1.0, "modality_dropout_frames": 8})
        np.testing.assert_array_equal(out["mask"], window["mask"])
        hit = []
        for key in ("audio", "visual"):
            changed, zero = _zeroed_rows(window[key], out[key])
            assert (zero[changed]).all()
            frames = np.flatnonzero(changed)
            if len(frames):
                assert (np.diff(frames) == 1).all() and len(frames) <= 8
                hit.append(key)
        assert len(hit) <= 1  # never both modalities
        for key in hit:
            dropped[key] += 1
            # The dropped stretch is marked absent, and only it.
            changed, _ = _zeroed_rows(window[key], out[key])
            present = out[f"{key}_present"]
            assert (present[changed] == 0).all()
            np.testing.assert_array_equal(present[~changed & (window["mask"] > 0)], 1.0)
        for key in ("audio", "visual"):
            if key not in hit:
                np.testing.assert_array_equal(out[f"{key}_present"], window["mask"])
    assert dropped["audio"] > 0 and dropped["visual"] > 0
    unchanged = _apply(window, {"modality_dropout_prob": 0.0})
    for key in ("audio", "visual"):
        np.testing.assert_array_equal(unchanged[key], window[key])


def test_validate_config():
    assert augment.validate_config(None) == dict.fromkeys(augment.KEYS)
    assert not augment.is_active({"noise_std": None, "time_mask_frames": None})
    with pytest.raises(ConfigError, match="unknown key.*noise"):
        augment.validate_config({"noise": 0.1})
    with pytest.raises(ConfigError, match="noise_std must be a number >= 0"):
        augment.validate_config({"noise_std": -1})
    with pytest.raises(ConfigError, match="modality_dropout_prob must be a number in"):
        augment.validate_config({"modality_dropout_prob": 1.5})
    with pytest.raises(ConfigError, match="time_mask_frames must be an integer"):
        augment.validate_config({"time_mask_frames": 2.5})


def _artifacts(tmp_path, seed):
    """ExampleGen and Transform artefacts of a small feature corpus."""
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(make_recordings(seed=seed)), out, progress=False)
    transform.run(out)
    return out


def test_training_pipeline_augments_features_only(tmp_path):
    out = _artifacts(tmp_path, seed=8)
    kwargs = dict(training=True, batch_size=2, window_seconds=3.0, seed=3)
    plain = list(input_pipeline.make_dataset(out, "train", **kwargs).as_numpy_iterator())
    noisy = list(input_pipeline.make_dataset(out, "train", augment={"noise_std": 0.3}, **kwargs).as_numpy_iterator())
    assert len(plain) == len(noisy)
    for (x0, y0), (x1, y1) in zip(plain, noisy):
        np.testing.assert_array_equal(x0["mask"], x1["mask"])
        for key in ("valence", "arousal"):
            np.testing.assert_array_equal(y0[key], y1[key])
        real = x0["mask"] > 0
        for key in ("audio", "visual"):
            assert (x0[key][real] != x1[key][real]).all()
            np.testing.assert_array_equal(x0[key][~real], x1[key][~real])


def test_corruption_replaces_one_stretch_per_modality_and_keeps_presence():
    window = _window(frames=60, real=50)
    scale = {"audio": np.array([1.0, 10.0, 0.1], np.float32), "visual": np.full(4, 2.0, np.float32)}
    center = {"audio": np.array([5.0, -5.0, 0.0], np.float32), "visual": np.zeros(4, np.float32)}
    tensors = {k: tf.constant(v) for k, v in window.items()}
    config = augment.validate_config({"corrupt_prob": 1.0, "corrupt_frames": 12, "corrupt_scale": 3.0})
    kinds = set()
    for _ in range(40):
        out = {k: v.numpy() for k, v in augment.augment_window(tensors, config, scale, center).items()}
        np.testing.assert_array_equal(out["mask"], window["mask"])
        for key in ("audio", "visual"):
            np.testing.assert_array_equal(out[f"{key}_present"], window["mask"])  # corrupted, not absent
            changed = (out[key] != window[key]).any(axis=1)
            frames = np.flatnonzero(changed)
            assert 1 <= len(frames) <= 12 and (np.diff(frames) == 1).all()
            assert not changed[window["mask"] == 0].any()  # padding untouched
            spread = (out[key][frames] - center[key]) / scale[key]
            if np.abs(spread).max() < 0.1:
                kinds.add("flat")
            else:
                kinds.add("noise")
                assert np.abs(spread).max() < 3.0 * 6  # noise of corrupt_scale standard deviations
    assert kinds == {"flat", "noise"}
    off = _apply(window, {"corrupt_prob": 0.0})
    for key in ("audio", "visual"):
        np.testing.assert_array_equal(off[key], window[key])


def test_corruption_config_is_checked():
    with pytest.raises(ConfigError, match="corrupt_prob must be a number in"):
        augment.validate_config({"corrupt_prob": 2})
    with pytest.raises(ConfigError, match="corrupt_scale must be > 0"):
        augment.validate_config({"corrupt_scale": 0})
    assert augment.is_active({"corrupt_prob": 0.5})


def test_training_batches_carry_presence_flags(tmp_path):
    out = _artifacts(tmp_path, seed=9)
    kwargs = dict(training=True, batch_size=2, window_seconds=3.0, seed=3)

    def absent_frames(dataset):
        count = 0
        for x, _ in dataset.as_numpy_iterator():
            for key in ("audio_present", "visual_present"):
                assert set(np.unique(x[key])) <= {0.0, 1.0}
                assert (x[key] <= x["mask"]).all()  # padding is never present
                count += int((x[key] < x["mask"]).sum())
        return count

    plain = absent_frames(input_pipeline.make_dataset(out, "train", **kwargs))
    dropped = absent_frames(
        input_pipeline.make_dataset(
            out, "train", augment={"modality_dropout_prob": 1.0, "modality_dropout_frames": 5}, **kwargs
        )
    )
    assert dropped > plain
    # Evaluation batches carry the corpus's own flags, recording by recording.
    stored = list(input_pipeline.iter_recordings(out, "devel"))
    batches = list(input_pipeline.make_dataset(out, "devel", training=False, batch_size=1).as_numpy_iterator())
    assert len(stored) == len(batches)
    for recording, (x, _) in zip(stored, batches):
        for key in ("audio_present", "visual_present"):
            np.testing.assert_array_equal(x[key][0], recording[key])
