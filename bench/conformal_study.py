"""Do reliability-aware conformal intervals hold when a modality breaks in a way the calibration has
not seen? COLD fusion (configs/synthetic.yaml, as a user trains it) on both synthetic variants
(simple, and realistic: configs/synthetic_realistic.yaml), several seeds, fused output, test partition.

For each method and each held-out condition (clean; 50% of the visual frames corrupted in blocks by
noise, frozen, dropout or swap) the intervals are calibrated on the validation partition plus
corrupted copies of it by the OTHER kinds (visual, 50%, `CALIBRATION_KINDS` less the held-out one;
all of them for clean) and scored on the test partition under the held-out condition
(leave-one-kind-out). Methods (`methods`):

* `isotonic (today)`: `pipelines.uncertainty`'s pooled isotonic map of the fused sigma score, fitted on
  the clean validation partition (what the trainer fits today); `isotonic + copies`: the same map
  fitted on the calibration set above;
* `pipelines.evaluation.conformal.fit`: standard split-conformal (one quantile), normalised by the difficulty
  model of the sigma signals, of the model's outputs only, or of every signal (the outputs plus the
  atypicality of each modality's inputs, `atypicality`), Mondrian over 3 difficulty bins, and the
  quantile pooled over the calibration frames, the largest over the kinds, or the conformal quantile
  at q50 / q67 / q75 of the (kind, recording) units' own quantiles (`... = default`: the fit's
  defaults);
* ceilings no deployable fit reaches: a boosted-trees difficulty model of the same signals
  (cross-fitted), and Mondrian bins given by the true damage mask.

Columns: PICP@90 of valence and arousal (frames of all test recordings, mean over seeds), the worst
single recording's PICP@90 (lowest over seeds, recordings and both dimensions), the mean width of
the 90% interval and its ratio to today's clean width (same corpus and seed); under each method, how
many of the targets it meets (PICP@90 in 0.87-0.93, worst recording >= 0.80, clean ratio <= 1.15).
With --ause, the AUSE of the fused output's ranking: today's native score, the default fit's
difficulty, MC dropout of the same model (--mc-passes) and a random ranking.

    python bench/conformal_study.py [--seeds 0,1,2] [--epochs 3] [--out /tmp/conformal_study] [--ause]

Each (corpus, seed) is one `pipelines.train` run directory under --out named with a hash of its
overrides (reused when finished); the predictions of a run are cached next to it
(`conformal_predictions.pkl`, `conformal_mc<passes>.pkl`), so a second call only refits the
calibrations.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

CORPORA = ("simple", "realistic")
HELD_OUT = ("clean", "noise", "frozen", "dropout", "swap")
CALIBRATION_KINDS = ("noise", "swap", "frozen", "drift", "desync", "dropout", "zeros")
FRACTION = 0.5
LEVEL = 0.9
TARGET = (0.87, 0.93)
WORST_TARGET = 0.80
KEEP_OUTPUTS = (
    "valence",
    "arousal",
    "audio_valence",
    "audio_arousal",
    "visual_valence",
    "visual_arousal",
    "audio_weight",
    "visual_weight",
    "audio_sigma_norm",
    "visual_sigma_norm",
    "audio_atypicality",
    "visual_atypicality",
)
SIGMA_ONLY = ("log_sigma_audio", "log_sigma_visual", "visual_weight")


def methods() -> dict:
    """name -> ("isotonic" | "conformal" | "ceiling", options). Conformal options go to
    `pipelines.evaluation.conformal.fit`; groups "kind" = the calibration kind of each recording, "unit" = its
    (kind, recording) pair."""

    from pipelines.evaluation.conformal import SIGNAL_NAMES

    outputs_only = tuple(name for name in SIGNAL_NAMES if not name.endswith("_atypicality"))

    def conformal(normalized, num_bins, **extra):
        return ("conformal", {"normalized": normalized, "num_bins": num_bins, **extra})

    def units(level):
        return {"groups": "unit", "group_level": level}

    return {
        "isotonic (today)": ("isotonic", {"copies": False}),
        "isotonic + copies": ("isotonic", {"copies": True}),
        "standard conformal": conformal(False, 1),
        "normalised (sigma signals)": conformal(True, 1, names=SIGMA_ONLY),
        "normalised (outputs only)": conformal(True, 1, names=outputs_only),
        "normalised (all signals)": conformal(True, 1),
        "Mondrian 3": conformal(False, 3),
        "normalised + Mondrian 3": conformal(True, 3),
        "norm. + Mondrian 3 (worst kind)": conformal(True, 3, groups="kind", group_level=1.0),
        "norm. + Mondrian 3 (kinds q67)": conformal(True, 3, groups="kind", group_level=2 / 3),
        "Mondrian 3 (kinds q67)": conformal(False, 3, groups="kind", group_level=2 / 3),
        "standard (units q75)": conformal(False, 1, **units(0.75)),
        "normalised (units q75)": conformal(True, 1, **units(0.75)),
        "Mondrian 3 (units q50)": conformal(False, 3, **units(0.5)),
        "Mondrian 3 (units q67) = default": conformal(False, 3, **units(2 / 3)),
        "Mondrian 3 (units q75)": conformal(False, 3, **units(0.75)),
        "norm. + Mondrian 3 (units q75)": conformal(True, 3, **units(0.75)),
        "ceiling: boosted difficulty": ("ceiling", {"difficulty": "boosted", "damage": False}),
        "ceiling: true damage bins": ("ceiling", {"difficulty": None, "damage": True}),
        "ceiling: true damage (worst)": ("ceiling", {"difficulty": None, "damage": True, "worst": True}),
    }


def corpus_overrides(corpus: str) -> dict:
    from pipelines.config import files as config_lib

    if corpus == "simple":
        return {}
    return config_lib.load_file(ROOT / "configs" / "synthetic_realistic.yaml")


def run_dir_for(out: Path, name: str, overrides: dict, seed: int, epochs) -> Path:
    key = json.dumps({"overrides": overrides, "epochs": epochs}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return out / f"{name}_{digest}_seed{seed}"


def training_plan(seeds, out: Path, epochs, corpora=CORPORA) -> list:
    plan = []
    for seed in seeds:
        for corpus in corpora:
            overrides = corpus_overrides(corpus)
            plan.append((corpus, seed, run_dir_for(out, corpus, overrides, seed, epochs), overrides))
    return plan


def _slim(predictions) -> list:
    keep = []
    for r in predictions:
        item = {"name": r["name"], "outputs": {k: v for k, v in r["outputs"].items() if k in KEEP_OUTPUTS}}
        for key in ("valence", "arousal", "audio_present", "visual_present", "visual_corrupted_eval"):
            if r.get(key) is not None:
                item[key] = np.asarray(r[key])
        keep.append(item)
    return keep


def atypicality(recordings, artifact_dir) -> list:
    """Per recording {"audio_atypicality", "visual_atypicality"} [N]: the score of
    `cold_keras.layers.reliability.Atypicality` with margin 0 (max over level, motion and spread of
    |r - median| / IQR under the training frames' reference), on the run's standardised inputs:
    label-free, what a model with `model.reliability_atypicality` computes inside."""
    from keras import ops

    from cold_keras.layers.reliability import atypicality_signals
    from pipelines.components import transform
    from pipelines.evaluation import fusion_guard as reliability

    norms = transform.load_normalization(artifact_dir)
    references = reliability.atypicality_references(artifact_dir, norms)
    out = []
    for recording in recordings:
        row = {}
        for modality in ("audio", "visual"):
            mean, variance = norms[modality]
            present = (np.asarray(recording[f"{modality}_present"], np.float32) > 0.5).astype(np.float32)
            z = (np.asarray(recording[modality], np.float32) - mean) / np.maximum(np.sqrt(variance), 1e-7)
            r = ops.convert_to_numpy(atypicality_signals((z * present[:, None])[None], present[None]))[0]
            reference = references[f"{modality}_atypicality"]
            score = np.max(np.abs(r - np.asarray(reference["center"])) / np.asarray(reference["scale"]), axis=-1)
            row[f"{modality}_atypicality"] = score.astype(np.float32)
        out.append(row)
    return out


def _predict(infer, recordings, artifact_dir) -> list:
    from pipelines.evaluation import scoring as evaluation

    predictions = evaluation.predict_recordings(infer, recordings)
    for prediction, extra in zip(predictions, atypicality(recordings, artifact_dir)):
        prediction["outputs"].update(extra)
    return _slim(predictions)


def predictions_of(run_dir: Path) -> dict:
    """{"config", "validation": {kind: predictions}, "test": {kind: predictions}} of one run (cached)."""
    cache = run_dir / "conformal_predictions.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    import keras

    from pipelines.components import input_pipeline
    from pipelines.data import corrupt
    from pipelines.runs import folders as runs

    infer, config = runs.load_inference_model(run_dir)
    artifact_dir = config.runtime["artifact_dir"]
    result = {"config": {"weight_convention": config.model.weight_convention}}
    for partition, kinds, seed_of in (
        (config.training.validation_partition, CALIBRATION_KINDS, lambda k: 1 + CALIBRATION_KINDS.index(k)),
        ("test", HELD_OUT[1:], lambda k: 0),
    ):
        recordings = list(input_pipeline.iter_recordings(artifact_dir, partition))
        hop = float(recordings[0].get("hop") or 0.1)
        by_kind = {"clean": _predict(infer, recordings, artifact_dir)}
        for kind in kinds:
            corrupted = corrupt.corrupt_recordings(
                recordings, "visual", FRACTION, mode=kind, seed=seed_of(kind), hop=hop
            )
            by_kind[kind] = _predict(infer, corrupted, artifact_dir)
        result["test" if partition == "test" else "validation"] = by_kind
    keras.backend.clear_session()
    cache.write_bytes(pickle.dumps(result))
    return result


def mc_dropout_of(run_dir: Path, passes: int) -> dict:
    """{kind: [per test recording {"valence", "arousal", "valence_spread", "arousal_spread"}]}: MC
    dropout (the same COLD model, `passes` stochastic passes) under every held-out condition (cached)."""
    cache = run_dir / f"conformal_mc{passes}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    import keras

    from pipelines.components import input_pipeline
    from pipelines.data import corrupt
    from pipelines.evaluation import uncertainty_scores
    from pipelines.runs import folders as runs

    infer, config = runs.load_inference_model(run_dir)
    recordings = list(input_pipeline.iter_recordings(config.runtime["artifact_dir"], "test"))
    hop = float(recordings[0].get("hop") or 0.1)
    result = {}
    for kind in HELD_OUT:
        inputs = recordings
        if kind != "clean":
            inputs = corrupt.corrupt_recordings(recordings, "visual", FRACTION, mode=kind, seed=0, hop=hop)
        keep = ("valence", "arousal", "valence_spread", "arousal_spread")
        result[kind] = [
            {k: np.asarray(r["outputs"][k]) for k in keep}
            for r in uncertainty_scores.predict_mc_dropout(infer, inputs, passes)
        ]
    keras.backend.clear_session()
    cache.write_bytes(pickle.dumps(result))
    return result


def ause_run(data, mc) -> dict:
    """{kind: {ranking: AUSE}} of the fused output (mean of valence and arousal): today's native score,
    the recommended conformal fit's difficulty (calibrated without the held-out kind), MC dropout's
    spread (around its own mean) and a random ranking."""
    from cold_keras import metrics as cmetrics
    from pipelines.evaluation import conformal, uncertainty_scores

    convention = data["config"]["weight_convention"]
    table = {}
    for held_out in HELD_OUT:
        calibration_set, kinds = list(data["validation"]["clean"]), []
        for kind in CALIBRATION_KINDS:
            if kind != held_out:
                calibration_set += data["validation"][kind]
        kinds = ["clean"] * len(data["validation"]["clean"]) + [
            k for k in CALIBRATION_KINDS if k != held_out for _ in data["validation"][k]
        ]
        fitted = conformal.fit(calibration_set, groups=[f"{k}/{r['name']}" for k, r in zip(kinds, calibration_set)])
        test = data["test"][held_out]
        row = {"native": [], "conformal": [], "mc_dropout": [], "random": []}
        for dim in conformal.DIMENSIONS:
            y = np.concatenate([r[dim] for r in test])
            mu = np.concatenate([r["outputs"][dim] for r in test])
            native = np.concatenate(
                [uncertainty_scores.uncertainty_scores(r["outputs"], "native", convention)[f"av_{dim}"] for r in test]
            )
            difficulty = np.concatenate([fitted.difficulty(conformal.with_presence(r), f"av_{dim}") for r in test])
            row["native"].append(cmetrics.ause(y, mu, native))
            row["conformal"].append(cmetrics.ause(y, mu, difficulty))
            row["random"].append(cmetrics.ause(y, mu, np.random.default_rng(0).permutation(y.size)))
            mc_mu = np.concatenate([r[dim] for r in mc[held_out]])
            spread = np.concatenate([r[f"{dim}_spread"] for r in mc[held_out]])
            row["mc_dropout"].append(cmetrics.ause(y, mc_mu, spread))
        table[held_out] = {k: float(np.mean(v)) for k, v in row.items()}
    return table


def format_ause(results, seeds) -> str:
    lines = [
        "",
        f"AUSE (RMSE sparsification minus oracle; lower = better ranking), fused output, mean of valence and "
        f"arousal and of seeds {seeds}; conformal = the difficulty s of the recommended fit "
        "(without the held-out kind)",
    ]
    for corpus, rows in results.items():
        lines += ["", f"[{corpus}]", f"{'held out':<10}" + "".join(f"{k:>12}" for k in rows[0]["clean"])]
        for kind in HELD_OUT:
            lines.append(
                f"{kind:<10}" + "".join(f"{np.mean([r[kind][k] for r in rows]):>12.4f}" for k in rows[0][kind])
            )
    return "\n".join(lines)


def half_widths(method, calibration_set, clean_validation, test, convention, kinds=None):
    """Per test recording {dim: half-width [N]} of the 90% interval of the fused output."""
    from pipelines.evaluation import conformal
    from pipelines.evaluation import uncertainty as unc

    kind, options = method
    if kind == "isotonic":
        fit_on = calibration_set if options["copies"] else clean_validation
        calibration = unc.fit_calibration(fit_on, convention=convention)
        z = unc._z(LEVEL)
        return [
            {d: z * np.asarray(calibration.std(r["outputs"])[f"{d}_std"], np.float64) for d in conformal.DIMENSIONS}
            for r in test
        ]
    if kind == "ceiling":
        return ceiling_half_widths(calibration_set, test, kinds, **options)
    options = dict(options)
    if options.get("groups") == "kind":
        options["groups"] = kinds
    elif options.get("groups") == "unit":
        options["groups"] = [f"{k}/{r['name']}" for k, r in zip(kinds, calibration_set)]
    elif options.get("groups") == "recording":
        options["groups"] = [r["name"] for r in calibration_set]
    calibration = conformal.fit(calibration_set, level=LEVEL, **options)
    out = []
    for r in test:
        halves = calibration.half_widths(conformal.with_presence(r), LEVEL)
        out.append({d: halves[f"av_{d}"] for d in conformal.DIMENSIONS})
    return out


def ceiling_half_widths(calibration_set, test, kinds, difficulty=None, damage=False, worst=False):
    """Reference points that no deployable fit reaches: a boosted-trees difficulty model of all the
    signals (normalised, 3 Mondrian bins), or Mondrian bins given by the true damage mask of the
    visual frames (pooled over the calibration kinds, or the largest of the kinds' quantiles)."""
    from pipelines.evaluation import conformal

    out = [{} for _ in test]
    for dim in conformal.DIMENSIONS:

        def stack(recordings):
            x = np.concatenate([conformal.signals(conformal.with_presence(r), dim) for r in recordings])
            e = np.concatenate([np.abs(r[dim] - r["outputs"][dim]) for r in recordings])
            mask = np.concatenate(
                [np.asarray(r.get("visual_corrupted_eval", np.zeros(len(r[dim]), bool))) for r in recordings]
            )
            return x, e, mask.astype(int)

        x, e, mask = stack(calibration_set)
        groups = np.concatenate([np.full(len(r[dim]), k) for r, k in zip(calibration_set, kinds)])
        if difficulty == "boosted":
            from sklearn.ensemble import HistGradientBoostingRegressor

            # Cross-fitted over the base recordings (a copy goes with its recording): each frame's
            # difficulty comes from the model fitted on the other half, as split conformal requires.
            names = sorted({r["name"] for r in calibration_set})
            fold = np.concatenate([np.full(len(r[dim]), names.index(r["name"]) % 2) for r in calibration_set])
            models = [
                HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(
                    x[fold != k], np.log(e[fold != k] + 0.01)
                )
                for k in (0, 1)
            ]
            s = np.where(fold == 0, np.exp(models[0].predict(x)), np.exp(models[1].predict(x)))
            predict = lambda x: np.exp((models[0].predict(x) + models[1].predict(x)) / 2)  # noqa: E731
            edges = conformal._edges(s, 3)
            bins = np.searchsorted(edges, s)
        else:
            predict, s, bins = None, np.ones(len(e)), mask
        q = {}
        for j in np.unique(bins):
            scores = e[bins == j] / s[bins == j]
            if worst:
                q[j] = conformal._robust_quantile(scores, groups[bins == j], LEVEL, conformal.MIN_GROUP_FRAMES)
            else:
                q[j] = conformal.conformal_quantile(scores, LEVEL)
        for r, o in zip(test, out):
            xt, _, mt = stack([r])
            st = predict(xt) if predict else np.ones(len(xt))
            bt = np.searchsorted(edges, st) if predict else mt
            o[dim] = np.array([q[j] for j in bt]) * st
    return out


def score(test, halves) -> dict:
    row, worst, widths = {}, 1.0, []
    for dim in ("valence", "arousal"):
        inside = []
        for r, h in zip(test, halves):
            covered = np.abs(np.asarray(r[dim], np.float64) - np.asarray(r["outputs"][dim], np.float64)) <= h[dim]
            inside.append(covered)
            worst = min(worst, float(covered.mean()))
            widths.append(2.0 * h[dim])
        row[f"picp_{dim}"] = float(np.concatenate(inside).mean())
    row["worst"] = worst
    row["width"] = float(np.concatenate(widths).mean())
    return row


def evaluate_run(data, selected) -> dict:
    """{method: {held-out kind: row}} of one run's cached predictions."""
    convention = data["config"]["weight_convention"]
    validation, test = data["validation"], data["test"]
    table = {}
    for name, method in selected.items():
        table[name] = {}
        for held_out in HELD_OUT:
            calibration_set = list(validation["clean"])
            kinds = ["clean"] * len(calibration_set)
            for kind in CALIBRATION_KINDS:
                if kind != held_out:
                    calibration_set += validation[kind]
                    kinds += [kind] * len(validation[kind])
            halves = half_widths(method, calibration_set, validation["clean"], test[held_out], convention, kinds)
            table[name][held_out] = score(test[held_out], halves)
    return table


def format_tables(results, seeds) -> str:
    """results: {corpus: [per-seed {method: {kind: row}}]}."""
    lines = [
        f"test partition, fused output, seeds {seeds}; held-out kind: 50% of the visual frames in blocks, "
        f"calibrated on validation + visual {FRACTION:.0%} copies of the other kinds of {', '.join(CALIBRATION_KINDS)}",
        "PICP@90 mean over seeds; worst = lowest single recording PICP@90 over seeds and both dimensions; "
        "width = mean 90% interval width (mean of both dimensions); ratio = width / isotonic (today) clean width",
    ]
    for corpus, rows in results.items():
        lines += ["", f"[{corpus}]"]
        header = f"{'method':<34}{'held out':<10}{'PICP val':>9}{'PICP aro':>9}{'worst':>8}{'width':>8}{'ratio':>8}"
        lines += [header, "-" * len(header)]
        for name in rows[0]:
            hits, worst_ok, clean_ratio = 0, 0, None
            for kind in HELD_OUT:
                got = [seed_rows[name][kind] for seed_rows in rows]
                reference = [seed_rows["isotonic (today)"]["clean"]["width"] for seed_rows in rows]
                ratio = np.mean([g["width"] / ref for g, ref in zip(got, reference)])
                picps = [np.mean([g[f"picp_{d}"] for g in got]) for d in ("valence", "arousal")]
                hits += sum(TARGET[0] <= p <= TARGET[1] for p in picps)
                worst_ok += min(g["worst"] for g in got) >= WORST_TARGET
                clean_ratio = ratio if kind == "clean" else clean_ratio
                lines.append(
                    f"{name if kind == 'clean' else '':<34}{kind:<10}"
                    f"{np.mean([g['picp_valence'] for g in got]):>9.3f}"
                    f"{np.mean([g['picp_arousal'] for g in got]):>9.3f}"
                    f"{min(g['worst'] for g in got):>8.3f}{np.mean([g['width'] for g in got]):>8.3f}{ratio:>8.2f}"
                )
            lines.append(
                f"{'':<34}targets: {hits}/10 PICP in {TARGET[0]}-{TARGET[1]}, worst >= {WORST_TARGET} in "
                f"{worst_ok}/5, clean ratio {clean_ratio:.2f} {'<=' if clean_ratio <= 1.15 else '>'} 1.15"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--corpora", default=",".join(CORPORA))
    parser.add_argument("--methods", default="all", help="comma-separated names of methods(), or all")
    parser.add_argument("--out", default="/tmp/conformal_study")
    parser.add_argument("--json", help="also write the per-seed figures to this JSON file")
    parser.add_argument("--ause", action="store_true", help="also the AUSE table (MC dropout: --mc-passes passes)")
    parser.add_argument("--mc-passes", type=int, default=20)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    corpora = args.corpora.split(",")
    all_methods = methods()
    selected = all_methods if args.methods == "all" else {m: all_methods[m] for m in args.methods.split(",")}
    if "isotonic (today)" not in selected:
        selected = {"isotonic (today)": all_methods["isotonic (today)"], **selected}
    results, ause = {}, {}
    from _common import train_synthetic

    for corpus, seed, run_dir, overrides in training_plan(seeds, Path(args.out), args.epochs, corpora):
        if not (run_dir / "conformal_predictions.pkl").is_file():
            print(f"training {corpus} seed {seed} -> {run_dir}", flush=True)
            train_synthetic(overrides, seed, args.epochs, run_dir)
        data = predictions_of(run_dir)
        table = evaluate_run(data, selected)
        results.setdefault(corpus, []).append(table)
        if args.ause:
            ause.setdefault(corpus, []).append(ause_run(data, mc_dropout_of(run_dir, args.mc_passes)))
        print(f"{corpus} seed {seed}: done", flush=True)
    print()
    print(format_tables(results, seeds))
    if ause:
        print(format_ause(ause, seeds))
    if args.json:
        Path(args.json).write_text(json.dumps({"intervals": results, "ause": ause}, indent=2))


if __name__ == "__main__":
    main()
