"""The realistic synthetic variant: layout, dyads, in-range corruptions and their ground truth."""

import csv
import json

import numpy as np
import pytest

from pipelines.core.errors import ConfigError
from pipelines.datasets import open_corpus, synthetic, synthetic_realistic

SMALL = {
    "seed": 3,
    "num_train": 4,
    "num_devel": 2,
    "num_test": 1,
    "duration_seconds": 60.0,
    "audio_dim": 8,
    "visual_dim": 8,
    "noise_std": 0.5,
    "variant": "realistic",
}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("realistic"), **SMALL)


@pytest.fixture(scope="module")
def recordings(corpus_dir):
    return {r.name: r for r in open_corpus("synthetic", corpus_dir).recordings()}


def read_rows(root):
    with open(root / "corruption.csv", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0] == ["name", "modality", "start_frame", "end_frame", "kind"]
    return [(name, modality, int(start), int(end), kind) for name, modality, start, end, kind in rows[1:]]


def ccc(x, y):
    return 2 * np.cov(x, y, bias=True)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_parameters_carry_the_variant_and_the_simple_corpus_does_not(corpus_dir, tmp_path):
    params = json.loads((corpus_dir / "synthetic.json").read_text())["parameters"]
    assert params["variant"] == "realistic"
    simple = {key: value for key, value in SMALL.items() if key != "variant"}
    assert "variant" not in synthetic._parameters(**{**_defaults(), **simple})
    with pytest.raises(ConfigError, match="variant must be one of"):
        synthetic.generate(tmp_path / "bad", **{**SMALL, "variant": "hard"})
    with pytest.raises(ConfigError, match="does not combine with raw"):
        synthetic.generate(tmp_path / "bad", **{**SMALL, "raw": True})


def _defaults():
    import inspect

    signature = inspect.signature(synthetic.generate)
    return {name: p.default for name, p in signature.parameters.items() if name not in ("output_dir", "progress")}


def test_every_kind_is_written_and_matches_the_flags(corpus_dir, recordings):
    rows = read_rows(corpus_dir)
    kinds = {kind for *_, kind in rows}
    assert kinds == set(synthetic_realistic.KINDS)
    for recording in recordings.values():
        for modality in ("audio", "visual"):
            expected = np.zeros(recording.num_frames, bool)
            for name, mod, start, end, _ in rows:
                if name == recording.name and mod == modality:
                    expected[start:end] = True
            np.testing.assert_array_equal(getattr(recording, f"{modality}_corrupted"), expected)
            assert 0.25 <= expected.mean() <= 0.35
        assert recording.audio.shape[1] == 8 and recording.visual.shape[1] == 8


def test_corruptions_stay_inside_the_clean_range_and_have_their_form():
    rng = np.random.default_rng(0)
    n, hop = 600, 0.1
    clean = np.cumsum(rng.standard_normal((n, 4)), axis=0) * 0.05 + rng.standard_normal(4)
    donor = rng.standard_normal((n, 4))
    segments = [
        (10, 60, "noise"),
        (80, 120, "swap"),
        (130, 180, "frozen"),
        (200, 300, "drift"),
        (320, 380, "desync"),
        (400, 450, "dropout"),
        (0, 5, "desync"),
    ]
    out = synthetic_realistic._corrupt(rng, clean, donor, segments, hop)
    low, high, mean, spread = clean.min(0), clean.max(0), clean.mean(0), clean.std(0)
    untouched = np.ones(n, bool)
    for start, end, _ in segments:
        untouched[start:end] = False
    np.testing.assert_array_equal(out[untouched], clean[untouched])
    noise = out[10:60]
    assert np.abs(noise.mean(0) - mean).max() < 0.6 * spread.max() and np.all(noise.std(0) < 1.6 * spread)
    np.testing.assert_array_equal(out[80:120], donor[80:120])
    np.testing.assert_array_equal(out[130:180], np.repeat(clean[130:131], 50, axis=0))
    drift = out[200:300]
    assert np.all(drift >= low) and np.all(drift <= high)
    offset = np.abs(drift - clean[200:300]).mean(1)
    assert offset[:10].mean() < 0.1 * spread.mean() < offset[-10:].mean()
    shifts = [k for k in range(20, 51) if np.array_equal(out[320:380], clean[320 - k : 380 - k])]
    assert len(shifts) == 1  # 2-5 s earlier
    later = [k for k in range(20, 51) if np.array_equal(out[0:5], clean[k : 5 + k])]
    assert len(later) == 1  # at the start: later instead
    np.testing.assert_allclose(out[400:450], np.repeat(mean[None], 50, axis=0))


def test_dyads_share_a_conversation_and_swap_takes_the_partner(corpus_dir, recordings):
    def agreement(x, y):
        return (np.corrcoef(x.valence, y.valence)[0, 1] + np.corrcoef(x.arousal, y.arousal)[0, 1]) / 2

    dyads = [("Train_SY_01", "Train_SY_02"), ("Train_SY_03", "Train_SY_04"), ("Devel_SY_01", "Devel_SY_02")]
    strangers = [
        ("Train_SY_01", "Train_SY_03"),
        ("Train_SY_02", "Train_SY_04"),
        ("Train_SY_01", "Devel_SY_01"),
        ("Train_SY_04", "Devel_SY_02"),
        ("Train_SY_03", "Test_SY_01"),
    ]
    shared = np.mean([agreement(recordings[x], recordings[y]) for x, y in dyads])
    other = np.mean([agreement(recordings[x], recordings[y]) for x, y in strangers])
    assert shared > other + 0.15, (shared, other)
    a, b = recordings["Train_SY_01"], recordings["Train_SY_02"]
    swaps = [
        (start, end)
        for name, modality, start, end, kind in read_rows(corpus_dir)
        if name == "Train_SY_01" and modality == "visual" and kind == "swap"
    ]
    for start, end in swaps:
        partner = b.visual[start:end]
        partner_clean = ~b.visual_corrupted[start:end]
        np.testing.assert_allclose(a.visual[start:end][partner_clean], partner[partner_clean], atol=2e-6)


def test_audio_is_weak_on_valence_and_corruption_removes_information(recordings):
    train = [r for r in recordings.values() if r.partition == "train"]
    held_out = [r for r in recordings.values() if r.partition != "train"]

    def fit_score(modality, label, clean):
        def pick(items):
            x = np.concatenate([getattr(r, modality)[getattr(r, f"{modality}_corrupted") != clean] for r in items])
            y = np.concatenate([getattr(r, label)[getattr(r, f"{modality}_corrupted") != clean] for r in items])
            return np.c_[x, np.ones(len(x))], y

        x, y = pick(train)
        weights = np.linalg.lstsq(x, y, rcond=None)[0]
        x, y = pick(held_out)
        return ccc(x @ weights, y)

    assert fit_score("visual", "valence", True) > 0.6
    assert fit_score("audio", "arousal", True) > 0.4
    assert fit_score("audio", "valence", True) < fit_score("visual", "valence", True) - 0.3
    assert fit_score("visual", "valence", False) < fit_score("visual", "valence", True) - 0.1


def test_the_cache_folder_depends_on_the_variant(tmp_path, monkeypatch):
    from pipelines.runs import prepare

    monkeypatch.setenv("COLD_KERAS_CACHE", str(tmp_path))
    tiny = {"seed": 1, "num_train": 1, "num_devel": 1, "num_test": 0, "duration_seconds": 12.0}
    folders = {}
    for variant in (None, "simple", "realistic"):
        options = tiny if variant is None else {**tiny, "variant": variant}
        folders[variant] = prepare.resolve_data_dir({"dataset": "synthetic", "synthetic": options})
    assert folders[None] == folders["simple"] != folders["realistic"]
    assert json.loads((folders["realistic"] / "synthetic.json").read_text())["parameters"]["variant"] == "realistic"
    with pytest.raises(ConfigError, match="variant must be one of"):
        prepare.resolve_data_dir({"dataset": "synthetic", "synthetic": {**tiny, "variant": "hard"}})
