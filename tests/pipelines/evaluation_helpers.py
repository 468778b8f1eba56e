"""Tiny trained runs shared by the evaluator, comparison and ablation tests, and NumPy references.

Training happens once per test session: `tiny_run` and `tiny_ablation` cache their run
directories at module level, so every test module's session fixture gets the same runs.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipelines.config import merging

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "synthetic": {
        "seed": 3,
        "num_train": 3,
        "num_devel": 2,
        "num_test": 2,
        "duration_seconds": 24.0,
        "audio_dim": 6,
        "visual_dim": 8,
    },
    "model": {"gru_units": 4, "gru_layers": 1, "latent_dim": 4},
    "training": {
        "epochs": 2,
        "window_seconds": 6.0,
        "window_hop_seconds": 3.0,
        "batch_size": 4,
        "mixed_precision": "off",
    },
}
ABLATION_VARIANTS = ("all", "none")

_CACHE: dict = {}


@contextlib.contextmanager
def _data_cache(root: Path):
    old = os.environ.get("COLD_KERAS_CACHE")
    os.environ["COLD_KERAS_CACHE"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLD_KERAS_CACHE", None)
        else:
            os.environ["COLD_KERAS_CACHE"] = old


def _root(tmp_path_factory) -> Path:
    if "root" not in _CACHE:
        _CACHE["root"] = tmp_path_factory.mktemp("evaluation_runs")
    return _CACHE["root"]


def tiny_config(task="regression", epochs=2) -> dict:
    """The tiny run's resolved configuration, as a plain dict (`RunConfig.to_dict()`) a test may change."""
    from pipelines.config import files as config_lib

    config = merging.deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), TINY)
    config["dataset"] = "synthetic"
    config["task"] = task
    config["model"]["name"] = "cold_fusion"
    config["training"]["epochs"] = epochs
    return config_lib.validate(config).to_dict()


def tiny_run(tmp_path_factory, task: str) -> Path:
    """A 2-epoch COLD fusion run on the tiny synthetic corpus (trained once per session)."""
    key = ("run", task)
    if key not in _CACHE:
        import keras

        from pipelines.training import train

        root = _root(tmp_path_factory)
        run_dir = root / f"cold_fusion_{task}"
        with _data_cache(root / "cache"):
            train.run(tiny_config(task), run_dir, progress=False)
        keras.backend.clear_session(free_memory=False)
        _CACHE[key] = run_dir
    return _CACHE[key]


def tiny_ablation(tmp_path_factory):
    """`pipelines.experiments.ablate.run` of two variants, 1 epoch each: (output_dir, table)."""
    if "ablation" not in _CACHE:
        from pipelines.experiments import ablate

        root = _root(tmp_path_factory)
        with _data_cache(root / "cache"):
            table = ablate.run(
                tiny_config("regression", epochs=1),
                root / "ablation",
                seeds=[0],
                variants=ABLATION_VARIANTS,
                verbose=False,
            )
        _CACHE["ablation"] = (root / "ablation", table)
    return _CACHE["ablation"]


# --------------------------------------------------------------------------- references


def numpy_ccc(x, y):
    """AVEC 2019 calc_scores.py's CCC: covariance / n, variances / (n - 1)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var(ddof=1) + y.var(ddof=1) + (x.mean() - y.mean()) ** 2)


def pairwise_auc(scores, positives):
    """Fraction of (positive, negative) pairs with the positive scoring higher, ties counting 1/2."""
    scores = np.asarray(scores, np.float64)
    positives = np.asarray(positives, bool)
    pos, neg = scores[positives][:, None], scores[~positives][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def rank_correlation(x, y):
    """Spearman's rho as the Pearson correlation of the ranks (continuous values, no ties)."""
    rx = np.argsort(np.argsort(np.asarray(x, np.float64))).astype(np.float64)
    ry = np.argsort(np.argsort(np.asarray(y, np.float64))).astype(np.float64)
    return float(np.corrcoef(rx, ry)[0, 1])


def softmax(logits):
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_ece(probs, labels, num_bins=10):
    """Top-label ECE with equal-width bins, the last one closed, written out bin by bin."""
    confidence = probs.max(axis=-1)
    correct = probs.argmax(axis=-1) == labels
    total = 0.0
    for b in range(num_bins):
        low, high = b / num_bins, (b + 1) / num_bins
        inside = (confidence >= low) & ((confidence < high) if b < num_bins - 1 else (confidence <= high))
        if inside.any():
            total += inside.sum() / len(labels) * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def bins_of(values):
    """The paper's three bins, written out: 0 below -0.05, 2 above 0.05, 1 in between."""
    values = np.asarray(values, np.float64)
    out = np.ones(values.shape, np.int64)
    out[values < -0.05] = 0
    out[values > 0.05] = 2
    return out


def predict(run_dir: Path, partition: str, recordings=None):
    """The run's own inference outputs per recording (Keras called directly), with the recordings."""
    import keras

    import cold_keras  # noqa: F401 - registers the layers of model.keras
    from cold_keras.models import inference_model
    from pipelines.components import input_pipeline

    config = json.loads((run_dir / "config.json").read_text())
    if recordings is None:
        recordings = list(input_pipeline.iter_recordings(config["runtime"]["artifact_dir"], partition))
    model = inference_model(keras.saving.load_model(run_dir / "model.keras", compile=False))
    outputs = []
    for recording in recordings:
        batch = {
            "audio": recording["audio"][None].astype(np.float32),
            "visual": recording["visual"][None].astype(np.float32),
            "mask": np.ones((1, len(recording["audio"])), np.float32),
        }
        outputs.append({k: np.asarray(v, np.float64)[0] for k, v in model.predict_on_batch(batch).items()})
    return recordings, outputs


def read_avec_labels(path: Path):
    """name;timestamp;arousal;valence;... label file -> {"arousal": [N], "valence": [N]}."""
    rows = list(csv.reader(open(path), delimiter=";"))
    header = [h.strip() for h in rows[0]]
    data = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    return {name: data[:, header.index(name) - 1] for name in ("arousal", "valence")}


def cli(module: str, args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
