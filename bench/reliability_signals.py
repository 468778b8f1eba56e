"""How visible is each corruption kind to a reliability signal, before any model is trained?

The fusion weights can only track a corrupted modality if something they see tells the
corrupted frames from the clean ones. This benchmark measures that ceiling per corruption kind
without training a network: on the synthetic corpus (realistic or simple variant, generated
clean), the evaluator corrupts 50% of the visual frames of the test recordings in consecutive
blocks (`pipelines.corrupt`, every kind), and each per-frame signal is scored by the ROC AUC with
which it separates the corrupted frames from the clean ones:

* `level`: log(1 + mean_d z^2), z the features standardised with the training statistics (the
  diagonal-Gaussian novelty of `model.reliability_novelty`);
* `motion`: log(0.01 + mean_d (z_t - z_{t-1})^2) (the same option's second column), read
  one-sided: small = suspicious;
* `atypical`: two-sided atypicality of (level, motion, local spread): each standardised by its
  median and interquartile range over the clean training frames, absolute, the largest of the
  three;
* `disagree`: |y_A - y_V| of two ridge regressions (audio features -> labels, visual features ->
  labels, fitted on the training partition), summed over valence and arousal, the cross-modal
  agreement of `model.reliability_agreement` with linear branches.

Every signal is smoothed over +-10 frames (1 s), as in the model. Higher AUC = more visible;
0.5 = invisible; a signal whose AUC is below 0.5 points the wrong way for that kind.

    python bench/reliability_signals.py [--variant realistic] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RADIUS = 10
SIGNALS = ("level", "motion", "atypical", "disagree")
KINDS = ("noise", "swap", "frozen", "drift", "desync", "dropout")
# The held-out kinds benchmark's corpora (bench/weight_tracking.py), generated clean.
SIZE = {"num_train": 8, "num_devel": 3, "num_test": 3, "duration_seconds": 60.0, "corruption_fraction": 0.0}
VARIANTS = {
    "simple": dict(SIZE, audio_dim=24, visual_dim=48, noise_std=0.3),
    "realistic": dict(SIZE, variant="realistic", audio_dim=8, visual_dim=8, noise_std=0.5),
}


def corpus(variant: str, seed: int) -> dict:
    """{partition: [recording dicts with audio, visual, valence, arousal]} of a clean corpus."""
    from pipelines.datasets import synthetic, synthetic_realistic

    settings = {k: v for k, v in VARIANTS[variant].items() if k != "variant"}
    params = synthetic._parameters(
        seed=seed, hop=0.1, smoothness_seconds=3.0, variant=VARIANTS[variant].get("variant", "simple"), **settings
    )
    names = synthetic.recording_names(params)
    n = int(round(params["duration_seconds"] / params["hop"]))
    if variant == "realistic":
        data = synthetic_realistic.recordings(np.random.SeedSequence(seed), params, names, n)
    else:
        rng = np.random.default_rng(seed)
        mappings = synthetic._mappings(rng, params)
        data = [synthetic._recording(rng, params, mappings, n) for _ in names]
    out = {}
    for (partition, name), recording in zip(names, data):
        out.setdefault(partition, []).append({"name": name, "hop": params["hop"], **recording})
    return out


def smooth(x: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """Moving average over +-radius frames (fewer at the edges)."""
    kernel = np.ones(2 * radius + 1)
    return np.convolve(x, kernel, "same") / np.convolve(np.ones_like(x), kernel, "same")


def raw_signals(z: np.ndarray) -> dict:
    """Per-frame level, motion and local spread of standardised features z [N, D]."""
    previous = np.concatenate([z[:1], z[:-1]])
    level = np.log1p(np.mean(z**2, axis=1))
    motion = np.log(0.01 + np.mean((z - previous) ** 2, axis=1))
    mean = np.stack([smooth(column) for column in z.T], axis=1)
    spread = np.log(0.01 + np.mean(np.stack([smooth(c) for c in ((z - mean) ** 2).T], axis=1), axis=1))
    return {"level": level, "motion": motion, "spread": spread}


def auc(score: np.ndarray, flags: np.ndarray) -> float:
    """ROC AUC of `score` as a detector of `flags` (ties count half), by ranks."""
    from scipy.stats import rankdata

    flags = np.asarray(flags, bool)
    positives, negatives = int(flags.sum()), int((~flags).sum())
    ranks = rankdata(score)
    return float((ranks[flags].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    x1 = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    return np.linalg.solve(x1.T @ x1 + alpha * np.eye(x1.shape[1]), x1.T @ y)


def predict(weights, x):
    return np.concatenate([x, np.ones((len(x), 1))], axis=1) @ weights


def measure(variant: str, seed: int, fraction: float = 0.5) -> dict:
    """{kind: {signal: AUC}} on the test partition of one corpus."""
    from pipelines import corrupt

    data = corpus(variant, seed)
    train = data["Train"]
    stats = {}
    for modality in ("audio", "visual"):
        values = np.concatenate([r[modality] for r in train])
        stats[modality] = (values.mean(0), values.std(0) + 1e-6)
    labels = np.concatenate([np.stack([r["valence"], r["arousal"]], 1) for r in train])
    probes = {
        m: ridge(np.concatenate([(r[m] - stats[m][0]) / stats[m][1] for r in train]), labels)
        for m in ("audio", "visual")
    }
    # The clean training distribution of the raw signals: median and interquartile range.
    clean = [raw_signals((r["visual"] - stats["visual"][0]) / stats["visual"][1]) for r in train]
    reference = {}
    for name in ("level", "motion", "spread"):
        values = np.concatenate([smooth(c[name]) for c in clean])
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        reference[name] = (q50, max(q75 - q25, 1e-6))
    test = data["Test"]
    out = {}
    for kind in KINDS:
        corrupted = corrupt.corrupt_recordings(test, "visual", fraction, mode=kind, seed=0, hop=0.1)
        scores = {s: [] for s in SIGNALS}
        flags = []
        for recording in corrupted:
            z = (recording["visual"] - stats["visual"][0]) / stats["visual"][1]
            za = (recording["audio"] - stats["audio"][0]) / stats["audio"][1]
            raw = {name: smooth(value) for name, value in raw_signals(z).items()}
            scores["level"].append(raw["level"])
            scores["motion"].append(-raw["motion"])
            scores["atypical"].append(
                np.max([np.abs(raw[n] - reference[n][0]) / reference[n][1] for n in reference], axis=0)
            )
            disagreement = np.abs(predict(probes["audio"], za) - predict(probes["visual"], z)).sum(1)
            scores["disagree"].append(smooth(disagreement))
            flags.append(recording["visual_corrupted_eval"])
        flags = np.concatenate(flags)
        out[kind] = {s: auc(np.concatenate(v), flags) for s, v in scores.items()}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="realistic,simple", help="comma-separated: realistic, simple")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the visual frames corrupted")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        rows = [measure(variant, seed, args.fraction) for seed in seeds]
        print(f"\n[{variant}] test partition, visual corrupted {args.fraction:.0%} in blocks, seeds {seeds}:")
        print("AUC of each signal as a detector of the corrupted frames, mean ± std over seeds")
        header = f"  {'kind':<9}" + "".join(f"{s:>14}" for s in SIGNALS)
        print(header)
        print("  " + "-" * (len(header) - 2))
        for kind in KINDS:
            cells = []
            for signal in SIGNALS:
                values = np.array([row[kind][signal] for row in rows])
                cells.append(f"{values.mean():.3f}±{values.std():.3f}")
            print(f"  {kind:<9}" + "".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
