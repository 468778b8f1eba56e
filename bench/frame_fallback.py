"""The per-frame fallback (`model.fallback_threshold`, `cold_keras.layers.FrameFallback`): is the fused
output ever below the best unimodal branch, clean and under the evaluator's corruptions?

    python bench/frame_fallback.py [--settings paper,atypical] [--variants simple,realistic] [--seeds 0,1,2]
                                   [--thresholds 0.6,0.7,0.8,0.9] [--fraction 0.5] [--out DIR]

Every (variant, setting, seed) trains COLD fusion with the trainer at the config's defaults (`paper`:
the paper's weights; `atypical`: `configs/cold_reliable.yaml`, whose weights see corrupted frames).
The fallback has no weights and acts at inference only, so one trained run serves every threshold:
the test partition is predicted clean and with `--fraction` of one modality's frames corrupted by
each kind of `pipelines.evaluate --corrupt` (`pipelines.data.corrupt.corrupt_recordings`, seed 0),
and `FrameFallback(threshold)` is applied to the predicted fused output, branches and weights. It
prints per variant, setting and condition the fused CCC (mean of valence and arousal, mean over the
seeds) without the fallback and at each threshold, the best branch's, and how many (seed, condition)
pairs end with the fused output below the best branch. Runs are kept under --out (resumable).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SETTINGS = {"paper": None, "atypical": "configs/cold_reliable.yaml"}
VARIANTS = {"simple": None, "realistic": "configs/synthetic_realistic.yaml"}
KINDS = ("noise", "zeros", "swap", "frozen", "drift", "desync", "dropout")
REPO = Path(__file__).resolve().parents[1]


def overrides_of(variant, setting):
    from pipelines.config import files as config_lib
    from pipelines.config.merging import deep_update

    config = {"model": {"name": "cold_fusion"}}
    for path in (VARIANTS[variant], SETTINGS[setting]):
        if path:
            config = deep_update(config, config_lib.load_file(REPO / path))
    return config


def with_fallback(predictions, threshold):
    """The predictions with `FrameFallback(threshold)` applied to the fused outputs (0: unchanged)."""
    if not threshold:
        return predictions
    from cold_keras.layers import FrameFallback

    layer = FrameFallback(threshold)
    out = []
    for recording in predictions:
        o = dict(recording["outputs"])
        triples = [[o[d][None], o[f"audio_{d}"][None], o[f"visual_{d}"][None]] for d in ("valence", "arousal")]
        fused = layer(triples, [o["audio_weight"][None], o["visual_weight"][None]])
        o["valence"], o["arousal"] = (np.asarray(f)[0] for f in fused)
        out.append({**recording, "outputs": o})
    return out


def scores_of(run_dir, thresholds, fraction):
    """{condition: {"audio", "visual", threshold: fused CCC mean}} of one run on its test partition."""
    from bench._common import load_run
    from pipelines.data import corrupt
    from pipelines.evaluation import scoring

    infer, recordings = load_run(run_dir, "test")
    conditions = {"clean": recordings}
    for modality in ("visual", "audio"):
        for kind in KINDS:
            conditions[f"{modality} {kind}"] = corrupt.corrupt_recordings(
                recordings, modality, fraction, mode=kind, seed=0
            )
    out = {}
    for name, inputs in conditions.items():
        predictions = scoring.predict_recordings(infer, inputs)
        row = {}
        for threshold in [0.0, *thresholds]:
            scores, _ = scoring.score_partition(
                with_fallback(predictions, threshold), task="regression", sequence_level=False
            )
            row[threshold] = scores["av"]["ccc_mean"]
            row["audio"], row["visual"] = scores["audio"]["ccc_mean"], scores["visual"]["ccc_mean"]
        out[name] = row
    return out


def report(results, thresholds) -> str:
    columns = [0.0, *thresholds]
    head = " ".join(f"{'off' if t == 0 else f'tau {t:g}':>9}" for t in columns)
    lines = []
    for (variant, setting), runs in results.items():
        lines.append(f"\n{variant}, {setting} weights: fused CCC mean over {len(runs)} seeds; best branch")
        lines.append(f"{'condition':<16} {head} {'best branch':>12}")
        below = {t: 0 for t in columns}
        for condition in runs[0]:
            rows = [run[condition] for run in runs]
            best = [max(r["audio"], r["visual"]) for r in rows]
            cells = " ".join(f"{np.mean([r[t] for r in rows]):>9.3f}" for t in columns)
            lines.append(f"{condition:<16} {cells} {np.mean(best):>12.3f}")
            for t in columns:
                below[t] += sum(r[t] < b for r, b in zip(rows, best))
        pairs = len(runs) * len(runs[0])
        lines.append(
            f"{'fused < best':<16} " + " ".join(f"{f'{below[t]}/{pairs}':>9}" for t in columns) + "  (seed, condition)"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="paper,atypical")
    parser.add_argument("--variants", default="simple,realistic")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--thresholds", default="0.6,0.7,0.8,0.9")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the frames corrupted")
    parser.add_argument("--out", default="/tmp/frame_fallback", help="folder of the run directories")
    args = parser.parse_args(argv)
    import keras

    from bench._common import train_synthetic

    thresholds = [float(t) for t in args.thresholds.split(",")]
    results = {}
    for variant in args.variants.split(","):
        for setting in args.settings.split(","):
            runs = []
            for seed in (int(s) for s in args.seeds.split(",")):
                run_dir = Path(args.out) / variant / setting / f"seed{seed}"
                train_synthetic(overrides_of(variant, setting), seed, None, run_dir)
                keras.backend.clear_session()
                runs.append(scores_of(run_dir, thresholds, args.fraction))
                keras.backend.clear_session()
            results[(variant, setting)] = runs
    print(report(results, thresholds))


if __name__ == "__main__":
    main()
