"""Every model on the synthetic corpus: CCC (mean over valence and arousal) on the test
partition, clean and with 50% of the visual frames corrupted in consecutive blocks; mean and
spread over seeds.

    python bench/synthetic_quality.py [--models all] [--seeds 0,1,2] [--epochs N] [--out bench_runs]

Each (model, seed) is one `pipelines.train` run directory under --out, so an interrupted
benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def evaluate_run(run_dir: Path, partition: str, corrupt_fraction: float, mode: str):
    import keras
    import numpy as np
    from _common import load_run

    from pipelines.data import corrupt
    from pipelines.evaluation import scoring as evaluation

    infer, recordings = load_run(run_dir, partition)
    results = {}
    for label, fraction in (("clean", 0.0), ("corrupt", corrupt_fraction)):
        data = corrupt.corrupt_recordings(recordings, "visual", fraction, mode=mode, seed=0) if fraction else recordings
        predictions = evaluation.predict_recordings(infer, data)
        scores, _ = evaluation.score_partition(predictions, task="regression")
        results[label] = scores["av"]["ccc_mean"]
        if "visual_weight" in predictions[0]["outputs"] and fraction:
            weights = np.concatenate([p["outputs"]["visual_weight"] for p in predictions])
            flags = np.concatenate([p["visual_corrupted_eval"] for p in predictions])
            results["w_v_corrupt"] = float(weights[flags].mean())
            results["w_v_clean"] = float(weights[~flags].mean())
    keras.backend.clear_session()
    return results


def main():
    from _common import train_synthetic

    from pipelines.data import features

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the synthetic config's")
    parser.add_argument("--partition", default="test")
    parser.add_argument("--corrupt-mode", default="noise", choices=("noise", "zeros", "swap"))
    parser.add_argument("--out", default="bench_runs/synthetic_quality")
    args = parser.parse_args()

    import numpy as np

    models = features.MODEL_NAMES if args.models == "all" else args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    table = {}
    for name in models:
        rows = []
        for seed in seeds:
            run_dir = Path(args.out) / f"{name}_seed{seed}"
            train_synthetic({"model": {"name": name}}, seed, args.epochs, run_dir)
            rows.append(evaluate_run(run_dir, args.partition, 0.5, args.corrupt_mode))
        table[name] = rows
        print(f"done: {name}", flush=True)

    print(f"\nCCC mean on {args.partition} over seeds {seeds} (mean ± std); visual corrupted 50% ({args.corrupt_mode})")
    print(f"{'model':<18} {'clean':>16} {'50% visual':>16} {'w_V corrupt':>12} {'w_V clean':>10}")
    for name, rows in table.items():
        clean = np.array([r["clean"] for r in rows])
        corrupted = np.array([r["corrupt"] for r in rows])
        wc = [r["w_v_corrupt"] for r in rows if "w_v_corrupt" in r]
        wk = [r["w_v_clean"] for r in rows if "w_v_clean" in r]
        weights = f"{np.mean(wc):>12.3f} {np.mean(wk):>10.3f}" if wc else f"{'-':>12} {'-':>10}"
        print(
            f"{name:<18} {clean.mean():>8.3f} ± {clean.std():.3f} {corrupted.mean():>8.3f} ± {corrupted.std():.3f} "
            f"{weights}"
        )


if __name__ == "__main__":
    main()
