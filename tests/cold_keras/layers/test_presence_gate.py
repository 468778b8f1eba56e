"""Tests of PresenceGate: absent frames are exactly zero, None means present, float32 flags."""

import keras
import numpy as np

from cold_keras.layers import PresenceGate
from tests.test_case import run_model_saving_test


def _data(seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(2, 5, 3)).astype("float32")
    presence = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 1, 1]], "float32")
    return features, presence


def test_absent_frames_are_zero_and_present_frames_unchanged():
    features, presence = _data()
    gated, flags = PresenceGate()(features, presence)
    gated, flags = np.asarray(gated), np.asarray(flags)
    np.testing.assert_array_equal(gated, features * presence[..., None])
    np.testing.assert_array_equal(flags, presence)
    assert flags.dtype == np.float32


def test_none_means_every_frame_present():
    features, _ = _data()
    gated, flags = PresenceGate()(features, None)
    np.testing.assert_array_equal(np.asarray(gated), features)
    np.testing.assert_array_equal(np.asarray(flags), np.ones((2, 5), "float32"))


def test_flags_are_binarised_at_one_half():
    features, _ = _data()
    gated, flags = PresenceGate()(features, np.array([[0.2, 0.7, 1.0, 0.0, 0.51]] * 2, "float32"))
    np.testing.assert_array_equal(np.asarray(flags)[0], [0.0, 1.0, 1.0, 0.0, 1.0])
    assert np.all(np.asarray(gated)[:, 0] == 0.0)


def test_absent_features_cannot_leak_even_when_not_finite():
    features, presence = _data()
    features[presence == 0] = np.nan
    gated, _ = PresenceGate()(np.nan_to_num(features, nan=1e30), presence)
    assert np.all(np.asarray(gated)[presence == 0] == 0.0)


def test_saving_round_trip(tmp_path):
    features = keras.Input((None, 3), name="audio")
    presence = keras.Input((None,), name="audio_present")
    gated, flags = PresenceGate(name="gate")(features, presence)
    model = keras.Model({"audio": features, "audio_present": presence}, [gated, flags])
    data_features, data_presence = _data()
    run_model_saving_test(model, {"audio": data_features, "audio_present": data_presence}, tmp_path)
