"""Raw-mode augmentation: the paper's face geometry and SpecAugment, training only."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import input_pipeline
from pipelines.core.errors import ConfigError
from pipelines.data import augment, raw_augment

PAPER = raw_augment.PAPER


def _faces(frames=4, size=16, seed=0, same=False):
    rng = np.random.default_rng(seed)
    faces = rng.uniform(0, 255, (1 if same else frames, size, size, 3)).astype(np.float32)
    return np.repeat(faces, frames, axis=0) if same else faces


def _augmenter(**config):
    return raw_augment.FaceAugmenter(raw_augment.validate_config(config), (16, 16, 3), seed=None)


@pytest.mark.parametrize(
    "key,value", [("flip", True), ("zoom", 0.25), ("translate_pixels", 30.0), ("rotate_degrees", 30.0)]
)
def test_each_face_augmentation_changes_the_window_and_keeps_shape_and_range(key, value):
    augmenter = _augmenter(**{key: value})
    faces = _faces()
    changed = 0
    for _ in range(8):
        out = augmenter(tf.constant(faces)).numpy()
        assert out.shape == faces.shape and out.dtype == np.float32
        assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
        changed += not np.allclose(out, faces)
    assert changed >= 1 if key == "flip" else changed == 8


def test_flip_is_the_mirror_image_of_every_frame_at_once():
    augmenter = _augmenter(flip=True)
    faces = _faces(frames=5)
    outcomes = set()
    for _ in range(20):
        out = augmenter(tf.constant(faces)).numpy()
        if np.array_equal(out, faces):
            outcomes.add("kept")
        else:
            np.testing.assert_array_equal(out, faces[:, :, ::-1])  # all frames flipped together
            outcomes.add("flipped")
    assert outcomes == {"kept", "flipped"}  # p = 0.5


def test_one_geometric_transformation_per_window():
    augmenter = _augmenter(zoom=0.25, translate_pixels=30.0, rotate_degrees=30.0)
    faces = _faces(frames=6, same=True)
    out = augmenter(tf.constant(faces)).numpy()
    assert not np.allclose(out[0], faces[0])
    for frame in out[1:]:
        np.testing.assert_allclose(frame, out[0], atol=1e-4)  # the same transformation on every frame


def _band(before, after, axis):
    """Indices along `axis` (0 time, 1 frequency) where the patch changed."""
    changed = (before != after).any(axis=1 - axis)
    return np.flatnonzero(changed)


@pytest.mark.parametrize(
    "mask_fn,axis", [(raw_augment.freq_mask, 1), (augment.fallback_freq_mask, 1), (raw_augment.time_mask, 0)]
)
def test_spec_masks_match_a_numpy_reference(mask_fn, axis):
    rng = np.random.default_rng(1)
    patch = rng.normal(size=(20, 12)).astype(np.float32) + 3.0
    param = 6
    widths = set()
    for _ in range(300):
        out = raw_augment._mask_to_mean(tf.constant(patch), mask_fn, param).numpy()
        band = _band(patch, out, axis)
        widths.add(len(band))
        expected = patch.copy()
        if len(band):
            assert (np.diff(band) == 1).all()  # one contiguous band
            if axis == 1:
                expected[:, band] = patch.mean()
            else:
                expected[band, :] = patch.mean()
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert widths == set(range(param))  # width ~ U[0, param)


def test_spec_parameters_scale_the_papers_values_to_the_patch():
    # On VGGish's own 96 x 64 patch F and T are the paper's; W = 50 is clipped so that the warp
    # point fits between two parts of at least one frame.
    assert raw_augment.spec_parameters(PAPER, raw_augment.REFERENCE_PATCH) == ((96 - 3) // 2, 27, 40)
    frames, bins = 50, 32
    warp, freq, time = raw_augment.spec_parameters(PAPER, (frames, bins))
    assert freq == round(27 * bins / 64) and time == round(40 * frames / 96)
    assert warp == min(round(50 * frames / 96), (frames - 3) // 2)
    # A tiny patch: W clipped to (6 - 3) // 2, F to bins - 1; T = round(40 * 6 / 96) fits.
    assert raw_augment.spec_parameters(PAPER, (6, 2)) == (1, 1, round(40 * 6 / 96))


def test_time_warp_resamples_time_monotonically():
    ramp = np.tile(np.arange(30, dtype=np.float32)[:, None], (1, 4))
    np.testing.assert_array_equal(raw_augment.time_warp(tf.constant(ramp), 0).numpy(), ramp)
    differs = 0
    for _ in range(30):
        out = raw_augment.time_warp(tf.constant(ramp), 8).numpy()
        assert out.shape == ramp.shape
        assert (np.diff(out[:, 0]) >= -1e-4).all()  # time still runs forwards
        assert out.min() >= -1e-4 and out.max() <= 29 + 1e-4
        np.testing.assert_allclose(out, out[:, :1].repeat(4, axis=1))  # frequencies are not mixed
        differs += not np.allclose(out, ramp)
    assert differs > 20  # the warp point moves in almost every draw (w = 0 is one value of 17)


def test_spec_augment_draws_every_patch_independently():
    patches = np.random.default_rng(2).normal(size=(8, 24, 10)).astype(np.float32)
    same = np.repeat(patches[:1], 8, axis=0)
    out = raw_augment.spec_augment(tf.constant(same), 3, 4, 5).numpy()
    assert out.shape == same.shape
    assert len({out[i].tobytes() for i in range(8)}) > 1
    np.testing.assert_array_equal(raw_augment.spec_augment(tf.constant(patches), 0, 0, 0).numpy(), patches)


def test_validate_config():
    assert raw_augment.validate_config(None) == dict.fromkeys(raw_augment.KEYS)
    assert raw_augment.validate_config({"flip": False, "zoom": 0})["zoom"] is None
    with pytest.raises(ConfigError, match="unknown key.*rotation"):
        raw_augment.validate_config({"rotation": 30})
    with pytest.raises(ConfigError, match="freq_mask must be an integer"):
        raw_augment.validate_config({"freq_mask": 2.5})
    with pytest.raises(ConfigError, match="zoom must be a number in"):
        raw_augment.validate_config({"zoom": 1.5})


def test_training_pipeline_augments_and_evaluation_never_does(raw_artifacts):
    recordings = list(input_pipeline.iter_recordings(raw_artifacts, "devel"))
    evaluation = list(
        input_pipeline.make_dataset(
            raw_artifacts, "devel", training=False, batch_size=1, raw_augment=PAPER
        ).as_numpy_iterator()
    )
    for (inputs, _), recording in zip(evaluation, recordings):
        np.testing.assert_array_equal(inputs["visual"][0], recording["visual"].astype(np.float32))
        np.testing.assert_array_equal(inputs["audio"][0], recording["audio"])

    kwargs = dict(training=True, batch_size=2, window_seconds=4.0, window_hop_seconds=2.0, seed=3)
    plain = list(input_pipeline.make_dataset(raw_artifacts, "train", **kwargs).as_numpy_iterator())
    augmented = list(
        input_pipeline.make_dataset(raw_artifacts, "train", raw_augment=PAPER, **kwargs).as_numpy_iterator()
    )
    assert len(plain) == len(augmented)
    for (x0, y0), (x1, y1) in zip(plain, augmented):
        np.testing.assert_array_equal(x0["mask"], x1["mask"])
        np.testing.assert_array_equal(y0["valence"], y1["valence"])
        assert x1["visual"].shape == x0["visual"].shape and x1["audio"].shape == x0["audio"].shape
        real = x0["mask"] > 0
        assert not np.allclose(x0["audio"][real], x1["audio"][real])
        assert x1["visual"].min() >= -1e-3 and x1["visual"].max() <= 255 + 1e-3
    assert any(not np.allclose(x0["visual"], x1["visual"]) for (x0, _), (x1, _) in zip(plain, augmented))
    with pytest.raises(ConfigError, match="raw mode augments with raw.augment"):
        input_pipeline.make_dataset(raw_artifacts, "train", augment={"noise_std": 0.1}, **kwargs)


def test_face_augmentation_stays_float32_under_a_mixed_policy():
    from tests.test_case import dtype_policy

    with dtype_policy("mixed_bfloat16"):
        augmenter = _augmenter(**{key: PAPER[key] for key in ("flip", "zoom", "translate_pixels", "rotate_degrees")})
        out = augmenter(tf.constant(_faces()))
    assert out.dtype == tf.float32
