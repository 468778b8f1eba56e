"""Submission and scoring checks: run vs SavedModel predictions, and CCC vs AVEC 2019's formula.

    python bench/predict_and_score.py --run-dir RUN --saved-model saved_models/NAME/VERSION \
        --data-dir CORPUS_WITHOUT_TEST_LABELS [--out bench_runs/predict]

1. `pipelines.predict` from the run directory and from its SavedModel into two folders; prints the
   number of files and the largest absolute difference between them (predictions and extra files).
2. `cold_keras.metrics.ccc` against AVEC 2019 calc_scores.py's formula (written out below) on 2,000
   random series of 2 to 5,000 values, half of them with NaNs; prints the largest absolute difference.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def avec_ccc(x, y):
    x_mean = np.nanmean(x)
    y_mean = np.nanmean(y)
    covariance = np.nanmean((x - x_mean) * (y - y_mean))
    x_var = 1.0 / (len(x) - 1) * np.nansum((x - x_mean) ** 2)
    y_var = 1.0 / (len(y) - 1) * np.nansum((y - y_mean) ** 2)
    return (2 * covariance) / (x_var + y_var + (x_mean - y_mean) ** 2)


def table(path: Path):
    rows = list(csv.reader(open(path), delimiter=";"))
    return np.array([[float(cell) for cell in row[1:]] for row in rows[1:]])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--saved-model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--partition", default="test")
    parser.add_argument("--out", default="bench_runs/predict")
    args = parser.parse_args()

    from cold_keras import metrics
    from pipelines import predict as predict_command
    from pipelines.serving import predict

    out = Path(args.out)
    common = ["--data-dir", args.data_dir, "--partition", args.partition, "--quiet"]
    predict.run(predict_command.parse_args(["--run-dir", args.run_dir, "--output-dir", str(out / "run"), *common]))
    predict.run(
        predict_command.parse_args(
            ["--saved-model", args.saved_model, "--output-dir", str(out / "saved_model"), *common]
        )
    )
    files = sorted(p.relative_to(out / "run") for p in (out / "run").rglob("*.csv"))
    worst = {"predictions": 0.0, "extra": 0.0}
    for name in files:
        a, b = table(out / "run" / name), table(out / "saved_model" / name)
        assert a.shape == b.shape, name
        key = "extra" if name.parts[0] == "extra" else "predictions"
        worst[key] = max(worst[key], float(np.abs(a - b).max()))
    print(
        f"{len(files)} files from each source; max |run - SavedModel|: predictions {worst['predictions']:.2e}, "
        f"extra outputs {worst['extra']:.2e}"
    )

    rng = np.random.default_rng(0)
    diffs, with_nan = [], 0
    for i in range(2000):
        n = int(rng.integers(2, 5000))
        x = rng.uniform(-1, 1, n)
        y = rng.uniform(0.3, 1.0) * x + rng.normal(0, rng.uniform(0.05, 1.0), n) + rng.normal(0, 0.2)
        if i % 2 and n > 4:
            x[rng.choice(n, n // 10 + 1, replace=False)] = np.nan
            y[rng.choice(n, n // 10 + 1, replace=False)] = np.nan
            with_nan += 1
        expected = avec_ccc(x, y)
        if np.isfinite(expected):
            diffs.append(abs(metrics.ccc(x, y) - expected))
    print(f"ccc vs AVEC calc_scores.py on {len(diffs)} series ({with_nan} with NaNs): max |diff| {max(diffs):.2e}")


if __name__ == "__main__":
    main()
