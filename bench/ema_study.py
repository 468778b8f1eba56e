"""Averaged weights (`training.ema_momentum`) against today's default, seeds paired, both synthetic variants.

    python bench/ema_study.py [--momentum 0.95] [--seeds 0,1,2] [--epochs 8] [--variants simple,realistic]
                              [--out DIR]

Every (variant, seed) trains COLD fusion twice with the trainer itself (`pipelines.training.train.run`,
default model size): once as today (no average) and once with `training.ema_momentum` set; both runs
see the same corpus, seed and budget. It prints per variant and arm, as mean ± std over the seeds:

- the fused output's test CCC (mean of valence and arousal), and each branch's;
- the swing of the validation CCC: the mean |val_ccc_mean(e) - val_ccc_mean(e-1)| over consecutive
  epochs (`history.csv`); its mean fall (the same with rises counted 0: the swing without the
  learning's own rise) and its largest drop;
- how many runs end with the fused output below the better of its own branches on test;

and paired t-tests over the seeds (`pipelines.experiments.compare.paired_test`) of the test CCC and
the swing, average minus default. Run directories are kept under --out, so the same command resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = {"simple": {}, "realistic": "configs/synthetic_realistic.yaml"}
REPO = Path(__file__).resolve().parents[1]


def overrides_of(variant, momentum):
    from pipelines.config import files as config_lib

    config = {} if not VARIANTS[variant] else config_lib.load_file(REPO / VARIANTS[variant])
    config.setdefault("training", {})["ema_momentum"] = float(momentum)
    config.setdefault("model", {})["name"] = "cold_fusion"
    return config


def validation_history(run_dir: Path) -> list:
    with open(run_dir / "history.csv") as handle:
        return [float(row["val_ccc_mean"]) for row in csv.DictReader(handle)]


def swing(values) -> float:
    """Mean absolute change of the validation CCC between consecutive epochs."""
    return float(np.mean(np.abs(np.diff(values)))) if len(values) > 1 else float("nan")


def fall(values) -> float:
    """Mean fall of the validation CCC between consecutive epochs (rises count 0): the swing without the learning."""
    return float(np.mean(np.maximum(0.0, -np.diff(values)))) if len(values) > 1 else float("nan")


def largest_drop(values) -> float:
    return float(max(0.0, -np.min(np.diff(values)))) if len(values) > 1 else float("nan")


def summary(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    history = validation_history(run_dir)
    branches = {name: metrics[name]["ccc_mean"] for name in ("av", "audio", "visual") if name in metrics}
    return {
        "test": branches["av"],
        "audio": branches.get("audio", float("nan")),
        "visual": branches.get("visual", float("nan")),
        "swing": swing(history),
        "fall": fall(history),
        "drop": largest_drop(history),
        "validation": history,
    }


def spread(values) -> str:
    values = np.asarray(values, np.float64)
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return f"{np.mean(values):.3f} ± {std:.3f}"


def report(results, seeds) -> str:
    from pipelines.experiments.compare import paired_test

    lines = [
        f"COLD fusion, seeds {seeds}, mean ± std over seeds; swing: mean |Δ val CCC| between epochs",
        f"{'variant':<10} {'arm':<16} {'test CCC':>14} {'audio':>14} {'visual':>14} {'swing':>14} "
        f"{'mean fall':>14} {'largest drop':>14} {'fused<branch':>12}",
    ]
    for variant, arms in results.items():
        for arm, runs in arms.items():
            below = sum(r["test"] < max(r["audio"], r["visual"]) for r in runs)
            cells = [spread([r[k] for r in runs]) for k in ("test", "audio", "visual", "swing", "fall", "drop")]
            lines.append(f"{variant:<10} {arm:<16} " + " ".join(f"{c:>14}" for c in cells) + f" {below:>8}/{len(runs)}")
        default, averaged = list(arms.values())
        for key in ("test", "swing", "fall"):
            test = paired_test([r[key] for r in averaged], [r[key] for r in default])
            lines.append(
                f"{variant:<10} paired t-test {key}: mean(average - default) {test['mean_difference']:+.4f}, "
                f"t {test['t']:.2f}, p {test['p']:.3f} (n={test['n']})"
            )
        for arm, runs in arms.items():
            for seed, run in zip(seeds, runs):
                history = ", ".join(f"{v:.3f}" for v in run["validation"])
                lines.append(f"  {variant} {arm} seed {seed}: val CCC per epoch {history}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--momentum", type=float, default=0.95, help="training.ema_momentum of the averaged arm")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--variants", default="simple,realistic")
    parser.add_argument("--out", default="/tmp/ema_study", help="folder of the run directories")
    args = parser.parse_args(argv)
    import keras

    from bench._common import train_synthetic

    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    for variant in args.variants.split(","):
        arms = {"default": 0.0, f"ema {args.momentum:g}": args.momentum}
        results[variant] = {}
        for arm, momentum in arms.items():
            runs = []
            for seed in seeds:
                run_dir = Path(args.out) / variant / f"ema{momentum:g}" / f"seed{seed}"
                train_synthetic(overrides_of(variant, momentum), seed, args.epochs, run_dir)
                keras.backend.clear_session()
                runs.append(summary(run_dir))
            results[variant][arm] = runs
    print(report(results, seeds))


if __name__ == "__main__":
    main()
