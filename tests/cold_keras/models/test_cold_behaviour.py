"""Behaviour of COLD fusion on a toy problem: a modality that is pure noise gets a lower weight.

Per frame, valence and arousal are independent random signs (+-0.9), so no frame can be inferred from
its neighbours. Audio carries them with moderate noise on every frame; visual carries them almost
cleanly, except on a random block of 8 frames per sequence where it is pure Gaussian noise. With
the calibration terms weighted enough to matter (lambda_CO = 1), the frames where the visual
prediction errs must end up with a lower visual fusion weight than the clean frames, in either
weight convention (the calibration loss and the fusion layer read sigma the same way).
"""

import keras
import numpy as np
import pytest

from cold_keras.models import build_model, inference_model

T, D, CORRUPTED = 16, 4, 8


def _toy_data(num_sequences, seed):
    rng = np.random.default_rng(seed)
    labels = 0.9 * np.sign(rng.normal(size=(num_sequences, T, 2)))
    audio = np.concatenate([labels, labels], -1) + 0.5 * rng.normal(size=(num_sequences, T, D))
    visual = np.concatenate([labels, -labels], -1) + 0.05 * rng.normal(size=(num_sequences, T, D))
    corrupted = np.zeros((num_sequences, T), bool)
    for i in range(num_sequences):
        start = rng.integers(0, T - CORRUPTED + 1)
        corrupted[i, start : start + CORRUPTED] = True
    visual[corrupted] = rng.normal(size=(corrupted.sum(), D))
    data = {
        "audio": audio.astype("float32"),
        "visual": visual.astype("float32"),
        "mask": np.ones((num_sequences, T), "float32"),
        "valence": labels[..., 0].astype("float32"),
        "arousal": labels[..., 1].astype("float32"),
    }
    return data, corrupted


@pytest.mark.parametrize("convention", ["informativeness", "uncertainty"])
def test_cold_fusion_down_weights_the_corrupted_modality(convention):
    keras.utils.set_random_seed(0)
    model = build_model(
        "cold_fusion",
        audio_dim=D,
        visual_dim=D,
        gru_units=8,
        gru_layers=1,
        latent_dim=4,
        dropout=0.0,
        lambda_co_visual=1.0,
        lambda_co_audio=1.0,
        lambda_co_cross=1.0,
        lambda_regu=1e-3,
        weight_convention=convention,
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    train, _ = _toy_data(64, seed=0)
    model.fit(train, epochs=30, batch_size=8, verbose=0)

    test, corrupted = _toy_data(32, seed=1)
    outputs = inference_model(model).predict({k: test[k] for k in ("audio", "visual", "mask")}, verbose=0)
    w_visual = outputs["visual_weight"]
    np.testing.assert_allclose(w_visual + outputs["audio_weight"], 1.0, rtol=1e-6)
    corrupted_mean = w_visual[corrupted].mean()
    clean_mean = w_visual[~corrupted].mean()
    assert corrupted_mean < clean_mean - 0.03, (corrupted_mean, clean_mean)
    per_sequence = np.array(
        [w_visual[i][corrupted[i]].mean() < w_visual[i][~corrupted[i]].mean() for i in range(len(w_visual))]
    )
    assert per_sequence.mean() >= 0.8
    # The visual branch itself is worse on the corrupted frames (the premise of the test).
    error = (outputs["visual_valence"] - test["valence"]) ** 2
    assert error[corrupted].mean() > 2.0 * error[~corrupted].mean()
