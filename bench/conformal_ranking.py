"""Ranking and intervals of COLD's reliability signals against MC dropout and a 5-member deep ensemble,
each calibrated the same way, clean and under each corruption kind held out of the calibration.

The setting of `bench/conformal_study.py` (COLD fusion as a user trains it, both synthetic variants,
seeds, test partition, fused output, 50% of the visual frames corrupted in blocks; calibration on the
validation partition plus corrupted copies of it by the other kinds, leave-one-kind-out). Methods:

* `COLD`: one model; score = the difficulty s of the default conformal fit
  (`pipelines.evaluation.conformal.fit`, the trainer's fit less the held-out kind);
* `COLD native`: the same model's native sigma score (no calibration set involved);
* `MC dropout`: the same model, `--mc-passes` stochastic passes; score = the spread of the passes;
* `ensemble`: 5 COLD runs of the same configuration (the run above plus 4 more seeds); prediction =
  their mean, score = their spread.

For every method the 90% interval is calibrated the same way on the same calibration set: 3 Mondrian
bins of the method's score (COLD: its difficulty s, the default fit; MC dropout and the ensemble: their
spread), per bin the split-conformal quantile of |y - mu| taken group-robustly (the conformal
2/3-quantile of the (kind, recording) units' own quantiles). AUSE (RMSE sparsification minus oracle,
lower is better) depends on the score's ranking only, so the calibration does not change it.

    python bench/conformal_ranking.py [--seeds 0,1,2] [--members 5] [--out /tmp/conformal_study]

Runs are shared with `bench/conformal_study.py` (same --out and --epochs); the extra members are
`<run>_member<k>` (training seed seed + 100 k); predictions are cached beside each run.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import conformal_study as study  # noqa: E402

METHODS = ("COLD", "COLD native", "MC dropout", "ensemble", "random")
SPREAD_KEEP = ("valence", "arousal", "valence_spread", "arousal_spread")


def _conditions():
    """[(partition, kind, corruption seed)]: what `conformal_study.predictions_of` predicts."""
    out = [("validation", "clean", None)] + [
        ("validation", k, 1 + study.CALIBRATION_KINDS.index(k)) for k in study.CALIBRATION_KINDS
    ]
    return out + [("test", "clean", None)] + [("test", k, 0) for k in study.HELD_OUT[1:]]


def _recordings_by_condition(config):
    from pipelines.components import input_pipeline
    from pipelines.data import corrupt

    artifact_dir = config.runtime["artifact_dir"]
    cache = {}
    for partition, kind, seed in _conditions():
        name = config.training.validation_partition if partition == "validation" else "test"
        if name not in cache:
            cache[name] = list(input_pipeline.iter_recordings(artifact_dir, name))
        recordings = cache[name]
        if kind != "clean":
            hop = float(recordings[0].get("hop") or 0.1)
            recordings = corrupt.corrupt_recordings(recordings, "visual", study.FRACTION, mode=kind, seed=seed, hop=hop)
        yield partition, kind, recordings


def _slim_spread(predictions):
    return [
        {
            "name": r["name"],
            "valence": np.asarray(r["valence"]),
            "arousal": np.asarray(r["arousal"]),
            "outputs": {k: np.asarray(r["outputs"][k]) for k in SPREAD_KEEP},
        }
        for r in predictions
    ]


def spread_predictions(run_dirs, cache: Path, passes=None) -> dict:
    """{partition: {kind: predictions with *_spread}} of MC dropout (`passes`, first run) or of the
    ensemble of `run_dirs` (cached)."""
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    import keras

    from pipelines.evaluation import uncertainty_scores
    from pipelines.runs import folders as runs

    models, config = [], None
    for run_dir in run_dirs:
        model, config_of = runs.load_inference_model(run_dir)
        models.append(model)
        config = config or config_of
    result = {"validation": {}, "test": {}}
    for partition, kind, recordings in _recordings_by_condition(config):
        if passes:
            predicted = uncertainty_scores.predict_mc_dropout(models[0], recordings, passes)
        else:
            predicted = uncertainty_scores.predict_ensemble(models, recordings)
        result[partition][kind] = _slim_spread(predicted)
    keras.backend.clear_session()
    cache.write_bytes(pickle.dumps(result))
    return result


def _calibration_set(validation, held_out):
    recordings, groups = list(validation["clean"]), [f"clean/{r['name']}" for r in validation["clean"]]
    for kind in study.CALIBRATION_KINDS:
        if kind != held_out:
            recordings += validation[kind]
            groups += [f"{kind}/{r['name']}" for r in validation[kind]]
    return recordings, groups


def _spread_half_widths(predictions, held_out, test):
    """{dim: [half-width per test recording]} of the spread calibrated as COLD's difficulty is: 3
    Mondrian bins of the spread (terciles of the calibration frames), per bin the group-robust
    split-conformal quantile of |y - mu| (the conformal 2/3-quantile of the units' own quantiles)."""
    from pipelines.evaluation import conformal

    recordings, groups = _calibration_set(predictions["validation"], held_out)
    out = [{} for _ in test]
    for dim in conformal.DIMENSIONS:
        spread = np.concatenate([r["outputs"][f"{dim}_spread"] for r in recordings]).astype(np.float64)
        error = np.concatenate([np.abs(r[dim] - r["outputs"][dim]) for r in recordings])
        frame_groups = np.concatenate([np.full(len(r[dim]), g) for r, g in zip(recordings, groups)])
        edges = np.asarray(conformal._edges(spread, conformal.NUM_BINS), np.float64)
        bins = np.searchsorted(edges, spread, side="left")
        q = np.array(
            [
                conformal._robust_quantile(
                    error[bins == j],
                    frame_groups[bins == j],
                    study.LEVEL,
                    conformal.MIN_GROUP_FRAMES,
                    conformal.GROUP_LEVEL,
                )
                for j in range(len(edges) + 1)
            ]
        )
        for r, o in zip(test, out):
            o[dim] = q[np.searchsorted(edges, r["outputs"][f"{dim}_spread"].astype(np.float64), side="left")]
    return out


def evaluate(data, mc, ensemble) -> dict:
    """{held-out kind: {method: {"ause", "picp", "worst", "width"}}} of one (corpus, seed)."""
    from cold_keras import metrics as cmetrics
    from pipelines.evaluation import conformal, uncertainty_scores

    convention = data["config"]["weight_convention"]
    table = {}
    for held_out in study.HELD_OUT:
        recordings, groups = _calibration_set(data["validation"], held_out)
        fitted = conformal.fit(recordings, groups=groups)
        test = data["test"][held_out]
        cold_halves = []
        for r in test:
            halves = fitted.half_widths(conformal.with_presence(r))
            cold_halves.append({d: halves[f"av_{d}"] for d in conformal.DIMENSIONS})
        rows = {}
        for method, preds, halves in (
            ("COLD", test, cold_halves),
            ("MC dropout", mc["test"][held_out], _spread_half_widths(mc, held_out, mc["test"][held_out])),
            (
                "ensemble",
                ensemble["test"][held_out],
                _spread_half_widths(ensemble, held_out, ensemble["test"][held_out]),
            ),
        ):
            rows[method] = study.score(preds, halves)
        ause = {m: [] for m in METHODS}
        for dim in conformal.DIMENSIONS:
            y = np.concatenate([r[dim] for r in test])
            mu = np.concatenate([r["outputs"][dim] for r in test])
            difficulty = np.concatenate([fitted.difficulty(conformal.with_presence(r), f"av_{dim}") for r in test])
            native = np.concatenate(
                [uncertainty_scores.uncertainty_scores(r["outputs"], "native", convention)[f"av_{dim}"] for r in test]
            )
            ause["COLD"].append(cmetrics.ause(y, mu, difficulty))
            ause["COLD native"].append(cmetrics.ause(y, mu, native))
            ause["random"].append(cmetrics.ause(y, mu, np.random.default_rng(0).permutation(y.size)))
            for method, source in (("MC dropout", mc), ("ensemble", ensemble)):
                preds = source["test"][held_out]
                ause[method].append(
                    cmetrics.ause(
                        np.concatenate([r[dim] for r in preds]),
                        np.concatenate([r["outputs"][dim] for r in preds]),
                        np.concatenate([r["outputs"][f"{dim}_spread"] for r in preds]),
                    )
                )
        table[held_out] = {m: {**rows.get(m, {}), "ause": float(np.mean(v))} for m, v in ause.items()}
    return table


def format_table(results, seeds) -> str:
    lines = [
        f"test partition, fused output, mean of seeds {seeds} (worst: lowest over seeds); AUSE mean of valence "
        "and arousal; PICP@90 mean of both dimensions; width = mean 90% interval width",
    ]
    for corpus, rows in results.items():
        lines += ["", f"[{corpus}]"]
        header = f"{'held out':<10}{'method':<14}{'AUSE':>8}{'PICP@90':>9}{'worst':>8}{'width':>8}"
        lines += [header, "-" * len(header)]
        for kind in study.HELD_OUT:
            for method in METHODS:
                got = [r[kind][method] for r in rows]
                line = (
                    f"{kind if method == METHODS[0] else '':<10}{method:<14}{np.mean([g['ause'] for g in got]):>8.4f}"
                )
                if "width" in got[0]:
                    picp = np.mean([(g["picp_valence"] + g["picp_arousal"]) / 2 for g in got])
                    line += (
                        f"{picp:>9.3f}{min(g['worst'] for g in got):>8.3f}{np.mean([g['width'] for g in got]):>8.3f}"
                    )
                lines.append(line)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--corpora", default=",".join(study.CORPORA))
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--mc-passes", type=int, default=20)
    parser.add_argument("--out", default="/tmp/conformal_study")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    from _common import train_synthetic

    results = {}
    for corpus, seed, run_dir, overrides in study.training_plan(
        seeds, Path(args.out), args.epochs, args.corpora.split(",")
    ):
        members = [run_dir] + [run_dir.with_name(f"{run_dir.name}_member{k}") for k in range(1, args.members)]
        for k, member in enumerate(members):
            if not (member / "model.keras").is_file() or not (member / "metrics.json").is_file():
                print(f"training {corpus} seed {seed} member {k} -> {member}", flush=True)
                train_synthetic(overrides, seed + 100 * k, args.epochs, member)
        data = study.predictions_of(run_dir)
        mc = spread_predictions([run_dir], run_dir / f"ranking_mc{args.mc_passes}.pkl", args.mc_passes)
        ensemble = spread_predictions(members, run_dir / f"ranking_ensemble{args.members}.pkl")
        results.setdefault(corpus, []).append(evaluate(data, mc, ensemble))
        print(f"{corpus} seed {seed}: done", flush=True)
    print()
    print(format_table(results, seeds))


if __name__ == "__main__":
    main()
