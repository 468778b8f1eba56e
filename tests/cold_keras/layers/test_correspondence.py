"""AudioVisualCorrespondence: scores and self-supervised loss against NumPy, the dyad rule, a model
with `reliability_correspondence` (fit, save, load) and a short fit that tells aligned from swapped."""

import numpy as np
import pytest

from cold_keras.layers.correspondence import AudioVisualCorrespondence, prefit_correspondence
from cold_keras.models import build_model, inference_model
from tests.test_case import run_layer_test, run_model_saving_test

B, T, DA, DV = 2, 9, 3, 2
SMALL = dict(units=5, window_radius=4, dilation=2, smoothing_radius=2, seed=0)


def _np_windows(x, kernel, radius, dilation):
    """[B, T, U] projection of the windows of x [B, T, D] (zeros outside), kernel [taps, D, U]."""
    b, t, _ = x.shape
    out = np.zeros((b, t, kernel.shape[-1]))
    for i in range(t):
        for k, offset in enumerate(range(-radius, radius + 1, dilation)):
            if 0 <= i + offset < t:
                out[:, i] += x[:, i + offset] @ kernel[k]
    return out


def _np_center(x, mask):
    """x minus its mean over each sequence's real frames, zero elsewhere."""
    m = mask[..., None]
    return (x - (x * m).sum(1, keepdims=True) / m.sum(1, keepdims=True)) * m


def _np_logits(layer, pa, pv):
    hidden = np.maximum(pa + pv + np.asarray(layer.hidden_bias), 0)
    return (hidden @ np.asarray(layer.output_kernel))[..., 0] + float(np.asarray(layer.output_bias))


def _np_smooth(x, mask, radius):
    out = np.zeros_like(x)
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            lo, hi = max(0, i - radius), min(x.shape[1], i + radius + 1)
            out[b, i] = (x[b, lo:hi] * mask[b, lo:hi]).sum() / max(mask[b, lo:hi].sum(), 1)
    return out


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(B, T, DA)).astype("float32")
    visual = rng.normal(size=(B, T, DV)).astype("float32")
    mask = np.ones((B, T), "float32")
    mask[1, 7:] = 0
    return audio, visual, mask


def _bce(logits, target):
    return np.log1p(np.exp(-logits)) if target else np.log1p(np.exp(logits))


def test_layer_contract():
    audio, visual, mask = _inputs()
    run_layer_test(
        AudioVisualCorrespondence,
        SMALL,
        audio,
        call_kwargs={"visual": visual, "frame_mask": mask},
        expected_output_shape=((B, T, 1), (B, T)),
        expected_output_dtype="float32",
    )


def test_scores_match_numpy():
    audio, visual, mask = _inputs(1)
    layer = AudioVisualCorrespondence(**SMALL)
    mismatch, logit = (np.asarray(x) for x in layer(audio, visual, mask))
    pa = _np_windows(_np_center(audio, mask), np.asarray(layer.audio_window.kernel), 4, 2)
    pv = _np_windows(_np_center(visual, mask), np.asarray(layer.visual_window.kernel), 4, 2)
    expected = _np_logits(layer, pa, pv)
    np.testing.assert_allclose(logit, expected * mask, rtol=1e-4, atol=1e-5)
    smoothed = _np_smooth(expected, mask, 2)
    np.testing.assert_allclose(mismatch[..., 0], np.maximum(-smoothed, 0) * mask, rtol=1e-4, atol=1e-5)


def test_loss_matches_numpy_and_leaves_out_a_partner_with_the_same_audio():
    # T = 2 * window_radius + 1 leaves one possible shift (window_radius) and B = 2 one other sequence,
    # so the negatives are known: the loss is checked exactly.
    rng = np.random.default_rng(2)
    audio = rng.normal(size=(2, 9, DA)).astype("float32")
    visual = rng.normal(size=(2, 9, DV)).astype("float32")
    mask = np.ones((2, 9), "float32")
    mask[1, 8] = 0
    layer = AudioVisualCorrespondence(**SMALL, loss_weight=0.5)
    layer(audio, visual, mask)  # build
    pa = _np_windows(_np_center(audio, mask), np.asarray(layer.audio_window.kernel), 4, 2)
    pv = _np_windows(_np_center(visual, mask), np.asarray(layer.visual_window.kernel), 4, 2)
    positions = (np.arange(9) - 4) % 9
    shifted, shifted_mask = pv[:, positions], mask * mask[:, positions]
    other, other_mask = pv[::-1], mask * mask[::-1]

    def mean(x, m):
        return (x * m).sum() / m.sum()

    positive = mean(_bce(_np_logits(layer, pa, pv), 1), mask)
    negative_shift = mean(_bce(_np_logits(layer, pa, shifted), 0), shifted_mask)
    negative_other = mean(_bce(_np_logits(layer, pa, other), 0), other_mask)
    layer(audio, visual, mask, training=True)
    expected = positive + 0.5 * (negative_shift + negative_other)
    assert float(layer.losses[-1]) == pytest.approx(0.5 * expected, rel=1e-4)

    # Dyad: both sequences carry the same audio, so the other sequence's visual stream is no negative.
    shared = np.repeat(audio[:1], 2, axis=0)
    pa = _np_windows(_np_center(shared, mask), np.asarray(layer.audio_window.kernel), 4, 2)
    positive = mean(_bce(_np_logits(layer, pa, pv), 1), mask)
    negative_shift = mean(_bce(_np_logits(layer, pa, shifted), 0), shifted_mask)
    layer(shared, visual, mask, training=True)
    assert float(layer.losses[-1]) == pytest.approx(0.5 * (positive + 0.5 * negative_shift), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units must be an integer >= 1"),
        ({"window_radius": 5, "dilation": 2}, "must be a multiple of dilation"),
        ({"smoothing_radius": -1}, "smoothing_radius must be >= 0"),
        ({"loss_weight": -1.0}, "loss_weight must be >= 0"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AudioVisualCorrespondence(**kwargs)


TINY = dict(gru_units=4, gru_layers=1, latent_dim=4, seed=0)


def _batch(seed=0, frames=48):
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.normal(size=(2, frames, DA)).astype("float32"),
        "visual": rng.normal(size=(2, frames, DV)).astype("float32"),
        "mask": np.ones((2, frames), "float32"),
        "valence": rng.uniform(-1, 1, (2, frames)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (2, frames)).astype("float32"),
    }


def test_off_by_default_and_a_model_with_it_fits_saves_and_loads(tmp_path):
    paper = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY)
    assert "audio_visual_correspondence" not in {layer.name for layer in paper.layers}
    model = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY, reliability_correspondence=True)
    model.compile(optimizer="adam")
    history = model.fit(_batch(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss_correspondence"][0]) and history.history["loss_correspondence"][0] > 0
    infer = inference_model(model)
    features = {k: v for k, v in _batch(1).items() if k in ("audio", "visual", "mask")}
    run_model_saving_test(infer, features, tmp_path)
    # The visual weight is the paper's moved down by alpha_C * mismatch (alpha_C = softplus(beta_C)).
    out = infer(features)
    paper_weight = np.asarray(out["visual_sigma_norm"]) / (
        np.asarray(out["visual_sigma_norm"]) + np.asarray(out["audio_sigma_norm"])
    )
    mismatch = np.asarray(
        model.get_layer("audio_visual_correspondence")(features["audio"], features["visual"], features["mask"])[0]
    )
    alpha = np.log1p(np.exp(float(np.asarray(model.get_layer("reliability_weighting").correspondence_beta))))
    logit = np.log(paper_weight / (1 - paper_weight)) - alpha * mismatch[..., 0]
    np.testing.assert_allclose(np.asarray(out["visual_weight"]), 1 / (1 + np.exp(-logit)), rtol=1e-4, atol=1e-5)


def test_the_prefit_tells_aligned_from_swapped_windows():
    """Visual = a lagged, noisy function of the audio: after the pre-fit on six recordings the scorer
    gives the two held-out recordings' aligned pairs a higher logit than each one's audio with the
    other's visual stream."""
    rng = np.random.default_rng(0)
    frames, sequences = 120, 8
    latent = np.cumsum(rng.normal(size=(sequences, frames + 3, 2)), axis=1) * 0.3
    latent = np.tanh(latent - latent.mean(axis=1, keepdims=True))
    audio = np.concatenate([latent[:, 3:], rng.normal(size=(sequences, frames, 1))], -1).astype("float32")
    visual = (latent[:, :-3] @ rng.normal(size=(2, DV)) + 0.3 * rng.normal(size=(sequences, frames, DV))).astype(
        "float32"
    )
    mask = np.ones((2, frames), "float32")
    layer = AudioVisualCorrespondence(units=16, window_radius=6, dilation=2, seed=0)
    untrained = np.asarray(layer(audio[6:], visual[6:], mask)[1])
    loss = prefit_correspondence(layer, list(audio[:6]), list(visual[:6]), steps=120, seed=0)
    assert np.isfinite(loss)
    aligned = np.asarray(layer(audio[6:], visual[6:], mask)[1])
    swapped = np.asarray(layer(audio[6:], visual[6:][::-1], mask)[1])
    assert not np.allclose(aligned, untrained)
    assert aligned.mean() > swapped.mean() + 1.0
    assert (aligned[:, 20:-20].mean(1) > swapped[:, 20:-20].mean(1)).all()
