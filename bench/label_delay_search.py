"""Does the tuner's label-delay search recover a known annotation delay?

    python bench/label_delay_search.py [--true-delay 2] [--choices 0,1,2,3,4] [--epochs 4] [--out bench_runs]

Generates the synthetic corpus with its labels lagging the features by --true-delay seconds
(`synthetic.label_delay_seconds`), then runs `pipelines.tune` with `--search label_delay` over
--choices (one trial per choice) and prints the validation CCC of every trial and the delay with the
best one. A NumPy check comes first: a ridge regression of the labels at t + k on the features at t,
for every shift k, peaks at the true delay (the generator's own alignment, independent of training).
The search folder is under --out, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipelines.config import merging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CORPUS = {
    "seed": 0,
    "num_train": 8,
    "num_devel": 3,
    "num_test": 0,
    "duration_seconds": 60.0,
    "audio_dim": 12,
    "visual_dim": 16,
    "corruption_fraction": 0.0,
    "smoothness_seconds": 1.0,
}


def probe_r2(corpus_dir, max_shift: int):
    """R^2 of a ridge regression of the train labels at t + k on [audio, visual] at t, per shift k
    (fitted on train, scored on devel)."""
    import numpy as np

    from pipelines.datasets.avec import open_avec

    corpus = open_avec(corpus_dir, audio_features=["audio"], visual_features=["visual"])
    recordings = list(corpus.recordings())
    scores = []
    for k in range(max_shift + 1):
        data = {}
        for r in recordings:
            n = r.num_frames - k
            x = np.concatenate([r.audio[:n], r.visual[:n], np.ones((n, 1))], axis=1)
            y = np.stack([r.valence[k:], r.arousal[k:]], axis=1)
            xs, ys = data.setdefault(r.partition, ([], []))
            xs.append(x)
            ys.append(y)
        x_train, y_train = (np.concatenate(v) for v in data["train"])
        x_devel, y_devel = (np.concatenate(v) for v in data["devel"])
        weights = np.linalg.solve(x_train.T @ x_train + 1e-3 * np.eye(x_train.shape[1]), x_train.T @ y_train)
        residual = ((y_devel - x_devel @ weights) ** 2).sum()
        scores.append(1.0 - residual / ((y_devel - y_devel.mean(axis=0)) ** 2).sum())
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--true-delay", type=float, default=2.0, help="seconds the synthetic labels lag")
    parser.add_argument("--choices", default="0,1,2,3,4", help="delays the search picks from (seconds)")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per trial")
    parser.add_argument("--out", default="bench_runs", help="folder for the corpus cache and the search")
    args = parser.parse_args()

    from pipelines.config import files as config_lib
    from pipelines.runs import prepare
    from pipelines.training import search_space, tune

    out = Path(args.out) / f"label_delay_{args.true_delay:g}"
    os.environ["COLD_KERAS_CACHE"] = str(out / "cache")
    config = config_lib.load_file(config_lib.default_config_path("synthetic"))
    config = merging.deep_update(
        config,
        {
            "synthetic": {**CORPUS, "label_delay_seconds": args.true_delay},
            "model": {"name": "cold_fusion", "gru_units": 16, "gru_layers": 1, "latent_dim": 8},
            "training": {
                "epochs": args.epochs,
                "window_seconds": 10.0,
                "window_hop_seconds": 5.0,
                "mixed_precision": "off",
            },
        },
    )
    config["dataset"] = "synthetic"
    config = config_lib.validate(config)

    corpus_dir = prepare.resolve_data_dir(config, progress=False)
    hop = 0.1
    scores = probe_r2(corpus_dir, int(round(max(search_space.parse_delay_choices(args.choices)) / hop)))
    best_shift = max(range(len(scores)), key=scores.__getitem__)
    print("NumPy probe (ridge regression of labels at t + k on features at t, devel R^2):")
    for k, score in enumerate(scores):
        if k % 5 == 0 or k == best_shift:
            print(f"  shift {k * hop:4.1f} s  R^2 {score:.4f}{'  <- best' if k == best_shift else ''}")

    choices = search_space.parse_delay_choices(args.choices)
    result = tune.run(
        config,
        out / "search",
        tuner="random",
        max_trials=len(choices),
        search=("label_delay",),
        label_delay_choices=args.choices,
        progress=False,
    )
    found = result["best"]["hyperparameters"][search_space.LABEL_DELAY]
    print(
        f"\ntrue delay {args.true_delay:g} s; NumPy probe peaks at {best_shift * hop:g} s; "
        f"the search picked {found:g} s (val_ccc_mean {result['best']['score']:.4f})"
        f" -> {'recovered' if abs(found - args.true_delay) < 1e-9 else 'NOT recovered'}"
    )


if __name__ == "__main__":
    main()
