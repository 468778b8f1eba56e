"""Corruption kinds (augmentation and evaluator) and the fusion guard's choice."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import input_pipeline, transform
from pipelines.config import files as config_lib
from pipelines.config.merging import deep_update
from pipelines.core.errors import ConfigError
from pipelines.data import augment, corrupt, records
from pipelines.evaluation import fusion_guard as reliability
from pipelines.evaluation.fusion_guard import fused_losses
from pipelines.training import setup as training_setup
from tests.cold_keras.layers.reliability_references import atypicality_signals as np_atypicality_signals
from tests.pipelines.data.test_augment import _artifacts, _window
from tests.pipelines.evaluation_helpers import tiny_config


def _smooth_window(frames, real, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(frames) < real).astype(np.float32)
    t = np.arange(frames)[:, None]
    values = {
        m: (np.sin(t / (7.0 + d) + rng.uniform(0, 6, d)) + 0.01 * rng.standard_normal((frames, d))).astype(np.float32)
        * mask[:, None]
        for m, d in (("audio", 3), ("visual", 4))
    }
    return {**values, "mask": mask}


def _kind_of(before, after, stretch, real):
    """Classifies a corrupted stretch by its form, from the clean window (independent of the code)."""
    rows, clean = after[stretch], before
    if np.all(rows == 0):
        return "zeros"
    if np.ptp(rows, axis=0).max() < 1e-6 and np.allclose(rows[0], clean[stretch[0]]):
        return "frozen"
    if np.array_equal(rows, clean[(stretch + real // 2) % real]):
        return "swap"
    for shift in range(20, 51):
        source = stretch - shift if stretch[0] - shift >= 0 else stretch + shift
        if np.array_equal(rows, clean[np.clip(source, 0, real - 1)]):
            return "desync"
    if np.abs(rows).max() < 0.2:
        return "dropout"  # the centre (0 here) plus 1% noise
    diff = np.abs(rows - clean[stretch]).mean(axis=1)
    if diff[0] < 1e-6 and diff[-1] > 0.1:
        return "drift"
    return "noise"


def test_each_augmentation_kind_has_its_form_and_held_out_kinds_never_occur():
    tf.random.set_seed(0)
    window = _smooth_window(frames=220, real=200)
    tensors = {k: tf.constant(v) for k, v in window.items()}
    real = int(window["mask"].sum())
    for kinds in (["frozen", "desync", "zeros"], ["swap", "drift", "dropout", "noise"]):
        config = augment.validate_config({"corrupt_prob": 1.0, "corrupt_frames": 15, "corrupt_kinds": kinds})
        seen = set()
        for _ in range(14):
            out = augment.augment_window(tensors, config, targets=True, hop=0.1)
            for modality in ("audio", "visual"):
                flags = out[f"{modality}_corruption_target"].numpy()
                after = out[modality].numpy()
                changed = np.flatnonzero((after != window[modality]).any(axis=1))
                assert set(changed) <= set(np.flatnonzero(flags))  # every change is flagged
                assert not flags[window["mask"] == 0].any()
                stretch = np.flatnonzero(flags)
                assert len(stretch) >= 1 and (np.diff(stretch) == 1).all()
                if len(stretch) >= 4:  # shorter stretches of different kinds can look alike
                    seen.add(_kind_of(window[modality], after, stretch, real))
        assert seen == set(kinds), (kinds, seen)


def test_corruption_targets_are_all_false_without_corruption():
    window = _window()
    tensors = {k: tf.constant(v) for k, v in window.items()}
    out = augment.augment_window(tensors, augment.validate_config({"noise_std": 0.1}), targets=True)
    for modality in ("audio", "visual"):
        assert not out[f"{modality}_corruption_target"].numpy().any()
    assert "audio_corruption_target" not in augment.augment_window(tensors, augment.validate_config(None))


def test_corrupt_kinds_config_is_checked():
    assert augment.validate_config({"corrupt_kinds": "noise, swap"})["corrupt_kinds"] == ["noise", "swap"]
    for bad in ([], ["noise", "melt"], 3):
        with pytest.raises(ConfigError, match="corrupt_kinds must be a non-empty list"):
            augment.validate_config({"corrupt_kinds": bad})


def test_training_batches_carry_the_corruption_targets(tmp_path):
    out = _artifacts(tmp_path, seed=4)
    kwargs = dict(training=True, batch_size=2, window_seconds=3.0, seed=3)
    dataset = input_pipeline.make_dataset(
        out, "train", augment={"corrupt_prob": 1.0, "corrupt_kinds": ["noise"]}, corruption_targets=True, **kwargs
    )
    flagged = 0
    for x, y in dataset.as_numpy_iterator():
        assert "audio_corruption_target" not in x and "visual_corruption_target" not in x
        for key in ("audio_corruption_target", "visual_corruption_target"):
            assert y[key].shape == x["mask"].shape and set(np.unique(y[key])) <= {0.0, 1.0}
            assert (y[key] <= x["mask"]).all()
            flagged += int(y[key].sum())
    assert flagged > 0
    plain = next(iter(input_pipeline.make_dataset(out, "train", **kwargs).as_numpy_iterator()))
    assert "audio_corruption_target" not in plain[1]


@pytest.mark.parametrize("mode", corrupt.IN_RANGE_MODES)
def test_in_range_evaluator_corruptions(mode):
    rng = np.random.default_rng(1)
    n = 400
    t = np.arange(n)[:, None]
    recordings = [
        {
            "name": f"r{i}",
            "audio": rng.standard_normal((n, 2)).astype(np.float32),
            "visual": (np.sin(t / 9.0 + i) + 0.1 * t / n).astype(np.float32).repeat(3, axis=1),
        }
        for i in range(2)
    ]
    out = corrupt.corrupt_recordings(recordings, "visual", 0.4, mode=mode, seed=2, hop=0.1)
    for before, after in zip(recordings, out):
        mask = after["visual_corrupted_eval"]
        clean = before["visual"]
        np.testing.assert_array_equal(after["visual"][~mask], clean[~mask])
        np.testing.assert_array_equal(after["audio"], before["audio"])
        low, high = clean.min(0), clean.max(0)
        assert np.all(after["visual"] >= low - 1e-6) and np.all(after["visual"] <= high + 1e-6)
        edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            rows = after["visual"][start:end]
            if mode == "frozen":
                np.testing.assert_array_equal(rows, np.repeat(clean[start : start + 1], end - start, axis=0))
            elif mode == "dropout":
                np.testing.assert_allclose(
                    rows, np.repeat(clean.mean(0, keepdims=True), end - start, axis=0), rtol=1e-5
                )
            elif mode == "desync":
                shifts = [
                    k
                    for k in range(20, 51)
                    if np.array_equal(rows, clean[np.clip(np.arange(start, end) + (-k if start >= k else k), 0, n - 1)])
                ]
                assert shifts
            else:  # drift: the offset grows along the stretch
                offset = np.abs(rows - clean[start:end]).mean(axis=1)
                assert offset[0] < 1e-6 and offset[-5:].mean() > 0.05
    with pytest.raises(ConfigError, match="works on feature inputs"):
        corrupt.corrupt_recordings([{"visual": np.zeros((10, 4, 4, 3), np.float32)}], "visual", 0.5, mode=mode)


def test_fused_losses_names_the_branch_that_beats_the_fused_output():
    scores = {
        "av": {"ccc_valence": 0.50, "ccc_arousal": 0.60},
        "audio": {"ccc_valence": 0.20, "ccc_arousal": 0.70},
        "visual": {"ccc_valence": 0.503, "ccc_arousal": 0.30},
    }
    assert fused_losses(scores, "regression") == [("valence", "visual", 0.50, 0.503), ("arousal", "audio", 0.60, 0.70)]
    assert fused_losses(scores, "regression", margin=0.005) == [("arousal", "audio", 0.60, 0.70)]


def test_atypicality_reference_is_taken_from_the_training_frames_and_baked_into_the_model(tmp_path):
    out = _artifacts(tmp_path, seed=5)
    norms = transform.load_normalization(out)
    references = reliability.atypicality_references(out, norms)
    for modality in ("audio", "visual"):
        signals = []
        for recording in records.iter_recordings(out, "train"):
            mean, variance = norms[modality]
            present = recording[f"{modality}_present"] > 0.5  # absent frames: zero, left out
            z = (recording[modality].astype(np.float64) - mean) / np.sqrt(variance) * present[:, None]
            signals.append(np_atypicality_signals(z[None], present[None].astype(np.float64))[0][present])
        q25, q50, q75 = np.percentile(np.concatenate(signals), [25, 50, 75], axis=0)
        np.testing.assert_allclose(references[f"{modality}_atypicality"]["center"], q50, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(references[f"{modality}_atypicality"]["scale"], q75 - q25, rtol=1e-3, atol=1e-4)

    config = deep_update(tiny_config(), {"model": {"reliability_atypicality": True}})
    model = training_setup.build_compiled_model(config_lib.validate(config), records.load_manifest(out), out, 1)
    for modality in ("audio", "visual"):
        layer = model.get_layer(f"{modality}_atypicality")
        assert layer.center == references[f"{modality}_atypicality"]["center"]
        assert layer.scale == references[f"{modality}_atypicality"]["scale"]
    raw = deep_update(config, {"mode": "raw"})
    with pytest.raises(ConfigError, match="reliability_atypicality works on feature inputs"):
        training_setup.build_compiled_model(raw, records.load_manifest(out), out, 1)


def test_correspondence_is_prefitted_on_the_standardised_training_frames_the_same_way_every_time(
    tmp_path, capsys, monkeypatch
):
    from cold_keras.layers import correspondence

    # 20 of the pre-fit's steps: enough to show that two builds give the same weights.
    monkeypatch.setattr(
        correspondence, "prefit_correspondence", functools.partial(correspondence.prefit_correspondence, steps=20)
    )
    out = _artifacts(tmp_path, seed=5)
    norms = transform.load_normalization(out)
    data = reliability.standardised_features(out, norms)
    for modality in ("audio", "visual"):
        mean, variance = norms[modality]
        for recording, z in zip(records.iter_recordings(out, "train"), data[modality]):
            present = recording[f"{modality}_present"] > 0.5
            expected = (recording[modality].astype(np.float64) - mean) / np.sqrt(variance) * present[:, None]
            np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)

    config = config_lib.validate(deep_update(tiny_config(), {"model": {"reliability_correspondence": True}}))
    manifest = records.load_manifest(out)
    weights = [
        training_setup.build_compiled_model(config, manifest, out, 1)
        .get_layer("audio_visual_correspondence")
        .get_weights()
        for _ in range(2)
    ]
    assert capsys.readouterr().out.count("audio-visual correspondence: pre-fitted on the training partition") == 2
    fresh = training_setup.build_compiled_model(config_lib.validate(tiny_config()), manifest, out, 1)
    assert "audio_visual_correspondence" not in {layer.name for layer in fresh.layers}
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)  # a resumed run rebuilds the same scorer


@pytest.mark.parametrize(
    "model, key",
    [
        ({"reliability_correspondence": "yes"}, "model.reliability_correspondence"),
        ({"lambda_correspondence": -1}, "model.lambda_correspondence"),
    ],
)
def test_bad_correspondence_settings_name_the_key(model, key):
    with pytest.raises(ConfigError, match=key):
        config_lib.validate(deep_update(tiny_config(), {"model": model}))
