"""Is COLD's per-frame uncertainty calibrated and ordinal, compared with the standard
uncertainty baselines? Synthetic corpus, several seeds, test partition, fused output
(valence and arousal pooled per column by averaging the two dimensions):

* COLD as in the paper (configs/synthetic.yaml) and with configs/cold_reliable.yaml, std from
  the validation-fitted map of the fusion weights / sigmas (pipelines/uncertainty.py);
* context fusion with MC dropout (N stochastic passes, dropout on);
* a deep ensemble of 5 context-fusion runs (mean and spread of the members).

Columns: CCC, Gaussian NLL, PICP@90, miscalibration area, AUSE (RMSE sparsification vs the
oracle), reject-option CCC at 50% kept; once on the clean test partition and once with 50% of
the visual frames corrupted (noise, consecutive blocks). Every std (COLD, MC dropout, ensemble)
goes through the same validation-partition calibration before it is scored.

    python bench/uncertainty_quality.py [--seeds 0,1,2] [--mc-passes 20] [--train-only]

Each training run is one `pipelines.train` run directory under --out named with a hash of its
overrides, so an interrupted benchmark resumes and finished runs are reused. The ensemble of
seed s takes the context-fusion runs of seeds s .. s+4 (members shared between seeds); the MC
dropout model of seed s is the ensemble's first member.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
RELIABLE_CONFIG = ROOT / "configs" / "cold_reliable.yaml"
ENSEMBLE_SIZE = 5


def training_variants() -> dict:
    """name -> config overrides of configs/synthetic.yaml for the trained models."""
    from pipelines import config as config_lib

    return {"cold_paper": {"model": {"name": "cold_fusion"}},
            "cold_reliable": config_lib.load_file(RELIABLE_CONFIG),
            "context_fusion": {"model": {"name": "context_fusion"}}}


def run_dir_for(out: Path, name: str, overrides: dict, seed: int, epochs) -> Path:
    key = json.dumps({"overrides": overrides, "epochs": epochs}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return out / f"{name}_{digest}_seed{seed}"


def training_plan(seeds, out: Path, epochs) -> list:
    """(name, overrides, seed, run_dir) of every run, seed by seed so that the first seed's
    table can be computed as soon as its runs are done."""
    variants = training_variants()
    plan, done = [], set()
    for seed in seeds:
        wanted = [("cold_paper", seed), ("cold_reliable", seed)]
        wanted += [("context_fusion", seed + k) for k in range(ENSEMBLE_SIZE)]
        for name, run_seed in wanted:
            if (name, run_seed) in done:
                continue
            done.add((name, run_seed))
            plan.append((name, variants[name], run_seed,
                         run_dir_for(out, name, variants[name], run_seed, epochs)))
    return plan


def train_all(seeds, out: Path, epochs):
    from _common import train_synthetic

    for name, overrides, seed, run_dir in training_plan(seeds, out, epochs):
        print(f"training {name} seed {seed} -> {run_dir}", flush=True)
        train_synthetic(overrides, seed, epochs, run_dir)


if __name__ == "__main__" and "--train-only" in sys.argv:
    _parser = argparse.ArgumentParser()
    _parser.add_argument("--train-only", action="store_true")
    _parser.add_argument("--seeds", default="0,1,2")
    _parser.add_argument("--epochs", type=int, default=None)
    _parser.add_argument("--out", default="bench_runs/uncertainty_quality")
    _args = _parser.parse_args()
    train_all([int(s) for s in _args.seeds.split(",")], Path(_args.out), _args.epochs)
