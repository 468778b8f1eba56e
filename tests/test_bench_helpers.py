"""Helpers of the benchmark scripts: which kinds the reliability signals see, the held-out folds."""

import importlib.util
import sys
from pathlib import Path

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
    table = signals.measure("realistic", seed=0)
    for kind in ("noise", "frozen", "dropout"):
        assert table[kind]["atypical"] > 0.95, (kind, table[kind])
    assert table["noise"]["motion"] < 0.05  # one-sided motion points the wrong way for noise
    assert table["swap"]["atypical"] < 0.6


def test_weight_tracking_leaves_one_kind_out_by_default():
    tracking = _load("weight_tracking")
    assert tracking.folds_of("loo") == tuple((kind,) for kind in tracking.KINDS)
    assert tracking.folds_of("2") == tracking.FOLDS
    assert sorted(k for fold in tracking.FOLDS for k in fold) == sorted(tracking.KINDS)
