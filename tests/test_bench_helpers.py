"""Helpers of the benchmark scripts: which kinds the reliability signals see, the held-out folds."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_reliability_signals_see_noise_frozen_and_dropout_and_not_swap():
    signals = _load("reliability_signals")
    table = signals.measure("realistic", seed=0, prefit_steps=10)  # the correspondence scorer barely fitted
    assert all(0.0 <= table[kind]["corresp"] <= 1.0 for kind in signals.KINDS)
    for kind in ("noise", "frozen", "dropout"):
        assert table[kind]["atypical"] > 0.95, (kind, table[kind])
    assert table["noise"]["motion"] < 0.05  # one-sided motion points the wrong way for noise
    assert table["swap"]["atypical"] < 0.6


def test_weight_tracking_leaves_one_kind_out_by_default():
    tracking = _load("weight_tracking")
    assert tracking.folds_of("loo") == tuple((kind,) for kind in tracking.KINDS)
    assert tracking.folds_of("2") == tracking.FOLDS
    assert sorted(k for fold in tracking.FOLDS for k in fold) == sorted(tracking.KINDS)


def _robustness_runs():
    # Two seeds; "prediction_fusion" has branches, its fused output below its visual branch on "noise 50%".
    return {
        "audio": [
            {"clean": {"fused": 0.30}, "noise 50%": {"fused": 0.30}},
            {"clean": {"fused": 0.26}, "noise 50%": {"fused": 0.26}},
        ],
        "prediction_fusion": [
            {
                "clean": {"fused": 0.60, "audio": 0.30, "visual": 0.50},
                "noise 50%": {"fused": 0.35, "audio": 0.30, "visual": 0.40},
            },
            {
                "clean": {"fused": 0.56, "audio": 0.26, "visual": 0.52},
                "noise 50%": {"fused": 0.41, "audio": 0.26, "visual": 0.38},
            },
        ],
        "cold_recommended": [
            {
                "clean": {"fused": 0.64, "audio": 0.3, "visual": 0.5},
                "noise 50%": {"fused": 0.44, "audio": 0.3, "visual": 0.2, "ceiling": 0.47},
            },
            {
                "clean": {"fused": 0.62, "audio": 0.3, "visual": 0.5},
                "noise 50%": {"fused": 0.40, "audio": 0.3, "visual": 0.2, "ceiling": 0.45},
            },
        ],
    }


def test_robustness_relative_gain_matches_numpy():
    table = _load("robustness_table")
    for value, reference in ((0.44, 0.40), (0.30, 0.40), (0.1, -0.2), (-0.3, -0.2)):
        expected = (np.float64(value) - reference) / np.abs(reference)
        assert abs(table.relative_gain(value, reference) - expected) < 1e-12
    assert np.isnan(table.relative_gain(0.5, 0.0))
    assert np.isnan(table.relative_gain(float("nan"), 0.4))


def test_robustness_summary_best_baseline_gain_and_marks():
    table = _load("robustness_table")
    runs = _robustness_runs()
    columns = ["clean", "noise 50%"]
    summary = table.summarize(runs, columns, baselines=("audio", "prediction_fusion"))
    for model, seeds in runs.items():
        for column in columns:
            fused = np.array([seed[column]["fused"] for seed in seeds])
            cell = summary["models"][model][column]
            assert abs(cell["mean"] - fused.mean()) < 1e-12 and abs(cell["std"] - fused.std()) < 1e-12
    assert summary["best_baseline"] == {"clean": "prediction_fusion", "noise 50%": "prediction_fusion"}
    assert abs(summary["gain"]["clean"] - (0.63 - 0.58) / 0.58) < 1e-12
    assert abs(summary["gain"]["noise 50%"] - (0.42 - 0.38) / 0.38) < 1e-12
    # prediction_fusion: noise 50% fused mean 0.38 < better-branch mean (0.40 + 0.38) / 2 = 0.39; one seed below.
    noisy = summary["models"]["prediction_fusion"]["noise 50%"]
    assert noisy["below"] and noisy["below_seeds"] == 1 and abs(noisy["best_branch"] - 0.39) < 1e-12
    assert not summary["models"]["prediction_fusion"]["clean"]["below"]
    assert "below" not in summary["models"]["audio"]["clean"]  # no branches
    assert abs(summary["models"]["cold_recommended"]["noise 50%"]["ceiling"] - 0.46) < 1e-12
    text = table.format_table(summary, columns)
    assert "0.380±0.030*" in text and "+8.6%" in text and "+10.5%" in text
    assert text.splitlines()[-3].split() == ["ceiling", "of", "cold_recommended", "-", "0.460"]
    assert "prediction_fusion 1/2 (seed-cells 1)" in text and "cold_recommended 0/2" in text
    markdown = table.format_table(summary, columns, markdown=True).splitlines()
    assert markdown[0] == "| model | clean | noise 50% |"
    assert all(line.count("|") == 4 for line in markdown if line.startswith("|"))
    assert "| 0.380±0.030\\* |" in markdown[3] and markdown[-1].startswith("\\* fused output below")


def test_robustness_conditions_are_clean_then_level_by_level():
    table = _load("robustness_table")
    names = [name for name, _, _ in table.conditions(("noise", "swap"), (0.25, 0.5))]
    assert names == ["clean", "noise 25%", "swap 25%", "noise 50%", "swap 50%"]
    assert table._blocks(names) == [["clean", "noise 25%", "swap 25%"], ["noise 50%", "swap 50%"]]


def test_robustness_perfect_weighting_takes_the_other_branch_on_corrupted_frames():
    table = _load("robustness_table")
    rng = np.random.default_rng(0)
    flags = rng.random(50) < 0.5
    outputs = {f"{p}{d}": rng.standard_normal(50) for p in ("", "audio_", "visual_") for d in ("valence", "arousal")}
    [visual] = table.perfect_weighting([{"visual_corrupted_eval": flags, "outputs": outputs}], "visual")
    [audio] = table.perfect_weighting([{"audio_corrupted_eval": flags, "outputs": outputs}], "audio")
    for d in ("valence", "arousal"):
        expected = outputs[d].copy()
        expected[flags] = outputs[f"audio_{d}"][flags]
        np.testing.assert_array_equal(visual["outputs"][d], expected)
        expected[flags] = outputs[f"visual_{d}"][flags]
        np.testing.assert_array_equal(audio["outputs"][d], expected)
        np.testing.assert_array_equal(visual["outputs"][f"audio_{d}"], outputs[f"audio_{d}"])
