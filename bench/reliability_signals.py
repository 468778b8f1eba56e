"""How visible is each corruption kind to a reliability signal, before any model is trained?

The fusion weights can only track a corrupted modality if something they see tells the
corrupted frames from the clean ones. This benchmark measures that ceiling per corruption kind
without training a network: on the synthetic corpus (realistic or simple variant, generated
clean), the evaluator corrupts 50% of the visual frames of the test recordings in consecutive
blocks (`pipelines.data.corrupt`, every kind), and each per-frame signal is scored by the ROC AUC with
which it separates the corrupted frames from the clean ones:

* `level`: log(1 + mean_d z^2), z the features standardised with the training statistics (the
  diagonal-Gaussian novelty of `model.reliability_novelty`);
* `motion`: log(0.01 + mean_d (z_t - z_{t-1})^2) (the same option's second column), read
  one-sided: small = suspicious;
* `atypical`: the two-sided atypicality score of `reliability_atypicality` (`Atypicality`,
  before its margin): level, motion and local spread, each standardised by its median and
  interquartile range over the clean training frames, absolute, the largest of the three;
* `disagree`: |y_A - y_V| of two ridge regressions (audio features -> labels, visual features ->
  labels, fitted on the training partition), summed over valence and arousal, the cross-modal
  agreement of `model.reliability_agreement` with linear branches;
* `corresp`: minus the smoothed logit of the model's own `AudioVisualCorrespondence` (the scorer of
  `model.reliability_correspondence`), pre-fitted on the training partition's clean recordings
  with its self-supervised loss as the trainer pre-fits it (`prefit_correspondence`): no labels,
  no corruption;
* `oracle` (with `--label-oracle`, slower): the same self-supervised task (aligned windows of +-10
  frames against the visual stream shifted by 2 s or more, twice, and another training recording's),
  learned by a small MLP that is given the true valence and arousal in place of the audio features.
  The realistic generator makes each modality's features from the labels and that modality's own
  noise, so there the audio can tell no more about the visual moment than the labels do: `oracle` is
  the ceiling of any correspondence score on that corpus. (The simple generator also feeds one
  nuisance signal to both modalities, so there the audio knows more than the labels.)

Every signal is smoothed over +-10 frames (1 s); level, motion and spread are the model's own
`atypicality_signals`. Higher AUC = more visible;
0.5 = invisible; a signal whose AUC is below 0.5 points the wrong way for that kind.

    python bench/reliability_signals.py [--variants realistic] [--seeds 0,1,2] [--label-oracle]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RADIUS = 10
SIGNALS = ("level", "motion", "atypical", "disagree", "corresp")
KINDS = ("noise", "swap", "frozen", "drift", "desync", "dropout")
# The held-out kinds benchmark's corpora (bench/weight_tracking.py), generated clean.
SIZE = {"num_train": 8, "num_devel": 3, "num_test": 3, "duration_seconds": 60.0, "corruption_fraction": 0.0}
VARIANTS = {
    "simple": dict(SIZE, audio_dim=24, visual_dim=48, noise_std=0.3),
    "realistic": dict(SIZE, variant="realistic", audio_dim=8, visual_dim=8, noise_std=0.5),
}


def corpus(variant: str, seed: int) -> dict:
    """{partition: [recording dicts with audio, visual, valence, arousal]} of a clean corpus."""
    from pipelines.datasets import synthetic, synthetic_realistic, synthetic_simple

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
        mappings = synthetic_simple.draw_mappings(rng, params)
        data = [synthetic_simple.feature_recording(rng, params, mappings, n) for _ in names]
    out = {}
    for (partition, name), recording in zip(names, data):
        out.setdefault(partition, []).append({"name": name, "hop": params["hop"], **recording})
    return out


def signals_of(z: np.ndarray) -> np.ndarray:
    """[N, 3] smoothed level, motion and spread of standardised features z [N, D]: the model's own
    `atypicality_signals`."""
    from keras import ops

    from cold_keras.layers.reliability import atypicality_signals

    return ops.convert_to_numpy(atypicality_signals(z[None].astype(np.float32), np.ones((1, len(z)), np.float32)))[0]


def smooth(x: np.ndarray) -> np.ndarray:
    """[N] moving average over +-RADIUS frames, as the model smooths its signals."""
    from keras import ops

    from cold_keras.layers.reliability import masked_moving_average

    ones = np.ones((1, len(x)), np.float32)
    return ops.convert_to_numpy(masked_moving_average(x[None, :, None].astype(np.float32), ones, RADIUS))[0, :, 0]


def correspondence_scorer(audio, visual, seed: int, steps=None):
    """The model's `AudioVisualCorrespondence` pre-fitted on standardised training recordings (lists
    of `[N, D]`) as `model.reliability_correspondence` pre-fits it (`prefit_correspondence`);
    returns a function of (audio [N, Da], visual [N, Dv]) -> [N] smoothed logit of "aligned"."""
    from keras import ops

    from cold_keras.layers.correspondence import AudioVisualCorrespondence, prefit_correspondence
    from cold_keras.layers.reliability import masked_moving_average

    layer = AudioVisualCorrespondence(seed=seed, smoothing_radius=RADIUS)
    ones = np.ones((1, len(audio[0])), np.float32)
    layer(audio[0][None].astype(np.float32), visual[0][None].astype(np.float32), ones)  # build
    prefit_correspondence(layer, audio, visual, seed=seed, **({} if steps is None else {"steps": steps}))

    def score(a, v):
        ones = np.ones((1, len(a)), np.float32)
        logit = layer(a[None].astype(np.float32), v[None].astype(np.float32), ones)[1]
        return ops.convert_to_numpy(masked_moving_average(ops.expand_dims(logit, -1), ones, RADIUS))[0, :, 0]

    return score


ORACLE_OFFSETS = np.arange(-RADIUS, RADIUS + 1, 2)


def _windows(x):
    """[N, D] -> [N, len(ORACLE_OFFSETS) * D]: each frame with its neighbours (edges repeated)."""
    index = np.clip(np.arange(len(x))[:, None] + ORACLE_OFFSETS[None], 0, len(x) - 1)
    return x[index].reshape(len(x), -1)


def label_oracle_scorer(labels, visual, seed: int):
    """An MLP told aligned from misaligned windows of (labels, visual) on the training recordings
    (lists of `[N, 2]` labels and `[N, Dv]` standardised visual features); returns a function of
    (labels, visual) -> [N] smoothed -log p(aligned)."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(seed)
    inputs, aligned = [], []
    for i, (y, v) in enumerate(zip(labels, visual)):
        n = len(y)
        others = [np.roll(v, int(rng.integers(20, n // 2) * rng.choice([-1, 1])), 0) for _ in range(2)]
        others.append(visual[(i + int(rng.integers(1, len(visual)))) % len(visual)][:n])
        for candidate, target in [(v, 1.0)] + [(o, 0.0) for o in others]:
            inputs.append(np.concatenate([_windows(y), _windows(candidate)], 1))
            aligned.append(np.full(len(candidate), target))
    classifier = MLPClassifier((64,), alpha=1e-3, max_iter=60, random_state=seed)
    classifier.fit(np.concatenate(inputs), np.concatenate(aligned))

    def score(y, v):
        p = classifier.predict_proba(np.concatenate([_windows(y), _windows(v)], 1))[:, 1]
        return smooth(-np.log(p + 1e-4))

    return score


def measure(variant: str, seed: int, fraction: float = 0.5, label_oracle: bool = False, prefit_steps=None) -> dict:
    """{kind: {signal: AUC}} on the test partition of one corpus (`prefit_steps`: the correspondence
    scorer's pre-fit steps, the trainer's by default)."""
    from sklearn.linear_model import Ridge

    from cold_keras.layers.reliability import atypicality_reference
    from cold_keras.metrics import roc_auc
    from pipelines.data import corrupt

    data = corpus(variant, seed)
    train = data["Train"]
    stats = {}
    for modality in ("audio", "visual"):
        values = np.concatenate([r[modality] for r in train])
        stats[modality] = (values.mean(0), values.std(0) + 1e-6)
    labels = np.concatenate([np.stack([r["valence"], r["arousal"]], 1) for r in train])
    probes = {
        m: Ridge(alpha=1.0).fit(np.concatenate([(r[m] - stats[m][0]) / stats[m][1] for r in train]), labels)
        for m in ("audio", "visual")
    }
    # The reference of `Atypicality`: median and interquartile range over the clean training frames.
    reference = atypicality_reference(
        np.concatenate([signals_of((r["visual"] - stats["visual"][0]) / stats["visual"][1]) for r in train])
    )
    scorer = correspondence_scorer(
        [(r["audio"] - stats["audio"][0]) / stats["audio"][1] for r in train],
        [(r["visual"] - stats["visual"][0]) / stats["visual"][1] for r in train],
        seed,
        prefit_steps,
    )
    oracle = None
    if label_oracle:
        oracle = label_oracle_scorer(
            [np.stack([r["valence"], r["arousal"]], 1) for r in train],
            [(r["visual"] - stats["visual"][0]) / stats["visual"][1] for r in train],
            seed,
        )
    test = data["Test"]
    out = {}
    for kind in KINDS:
        corrupted = corrupt.corrupt_recordings(test, "visual", fraction, mode=kind, seed=0, hop=0.1)
        scores = {s: [] for s in SIGNALS + (("oracle",) if oracle is not None else ())}
        flags = []
        for recording in corrupted:
            z = (recording["visual"] - stats["visual"][0]) / stats["visual"][1]
            za = (recording["audio"] - stats["audio"][0]) / stats["audio"][1]
            r = signals_of(z)
            scores["level"].append(r[:, 0])
            scores["motion"].append(-r[:, 1])
            # The score of `Atypicality` before its margin (the margin only ties the typical frames at 0).
            scores["atypical"].append(np.max(np.abs(r - reference["center"]) / reference["scale"], axis=1))
            disagreement = np.abs(probes["audio"].predict(za) - probes["visual"].predict(z)).sum(1)
            scores["disagree"].append(smooth(disagreement))
            scores["corresp"].append(-scorer(za, z))
            if oracle is not None:
                scores["oracle"].append(oracle(np.stack([recording["valence"], recording["arousal"]], 1), z))
            flags.append(recording["visual_corrupted_eval"])
        flags = np.concatenate(flags)
        out[kind] = {s: roc_auc(np.concatenate(v), flags) for s, v in scores.items()}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="realistic,simple", help="comma-separated: realistic, simple")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the visual frames corrupted")
    parser.add_argument(
        "--label-oracle",
        action="store_true",
        help="add the `oracle` column: the ceiling of an audio-visual correspondence score (about 1 min per seed)",
    )
    args = parser.parse_args(argv)
    signals = SIGNALS + (("oracle",) if args.label_oracle else ())
    seeds = [int(s) for s in args.seeds.split(",")]
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        rows = [measure(variant, seed, args.fraction, args.label_oracle) for seed in seeds]
        print(f"\n[{variant}] test partition, visual corrupted {args.fraction:.0%} in blocks, seeds {seeds}:")
        print("AUC of each signal as a detector of the corrupted frames, mean ± std over seeds")
        header = f"  {'kind':<9}" + "".join(f"{s:>14}" for s in signals)
        print(header)
        print("  " + "-" * (len(header) - 2))
        for kind in KINDS:
            cells = []
            for signal in signals:
                values = np.array([row[kind][signal] for row in rows])
                cells.append(f"{values.mean():.3f}±{values.std():.3f}")
            print(f"  {kind:<9}" + "".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
