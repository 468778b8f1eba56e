"""Do the fusion weights track modality reliability? Fusion models and COLD variants on the
synthetic corpus, several seeds, test partition:

* clean CCC (mean of valence and arousal, fused output);
* CCC with 50% of the visual frames corrupted in consecutive blocks (`--corrupt-mode`);
* AUC of (1 - w_m) as a detector of the frames where modality m is corrupted: on the corpus's
  own ground-truth corruption (audio and visual, clean run) and on the evaluator's corruption
  (visual, corrupted run);
* the mean visual weight on corrupted versus clean frames (evaluator's corruption);
* "audio on corr.": the CCC of the model's fused output on the clean frames and its audio branch
  on the corrupted ones (models with unimodal branches): the ceiling of any weighting, reached
  when w_V is exactly 0 on every corrupted frame;
* "50% V absent": CCC when the same frames are marked absent (`visual_present` = 0) instead.

    python bench/weight_tracking.py [--variants all] [--seeds 0,1,2] [--corrupt-mode noise]

With `--held-out-kinds`, corruption kinds held out of training instead (`run_kinds`): COLD
settings (`kind_settings`) on a clean simple and a clean realistic corpus; a setting that trains
with the corruption augmentation is trained once per held-out kind on the other five
(leave-one-kind-out, `--folds loo`, the default; `--folds 2` is the compact split of `FOLDS`), the
evaluator corrupting 50% of the visual frames with the held-out kind; per kind the AUC of
(1 - w_V), the fused CCC, the perfect-weighting ceiling (fused output on clean frames, the audio
branch on corrupted ones) and the best unimodal branch:

    python bench/weight_tracking.py --held-out-kinds [--settings paper,atypical] [--seeds 0,1,2]

Variants are config overrides of `configs/synthetic.yaml` (see VARIANTS); each (variant, seed)
is one `pipelines.train` run directory under --out (named with a hash of its overrides), so an
interrupted benchmark resumes where it stopped and a changed variant is retrained.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

from pipelines.config import merging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
RELIABLE_CONFIG = ROOT / "configs" / "cold_reliable.yaml"


def _cold(**model):
    return {"model": {"name": "cold_fusion", **model}}


def _corrupt_augment():
    return {"training": {"augment": {"corrupt_prob": 0.5}}}


def variants() -> dict:
    """name -> config overrides. Non-COLD baselines first, then COLD from the paper outwards."""
    from pipelines.config import files as config_lib

    out = {
        name: {"model": {"name": name}} for name in ("audio", "feature_fusion", "prediction_fusion", "context_fusion")
    }
    out["cold_paper"] = _cold()
    out["cold_uncertainty"] = _cold(weight_convention="uncertainty")
    out["cold_uncertainty_std"] = _cold(
        weight_convention="uncertainty",
        calibration_standardize=True,
        lambda_co_visual=1.0,
        lambda_co_audio=1.0,
        lambda_co_cross=1.0,
    )
    out["cold_weight_term"] = _cold(lambda_weight=1.0)
    uncertainty_std = dict(
        weight_convention="uncertainty",
        calibration_standardize=True,
        lambda_co_visual=1.0,
        lambda_co_audio=1.0,
        lambda_co_cross=1.0,
    )
    out["cold_uncertainty_std_augment"] = merging.deep_update(_cold(**uncertainty_std), _corrupt_augment())
    out["cold_uncertainty_std_weight_term10_augment"] = merging.deep_update(
        _cold(**uncertainty_std, lambda_weight=10.0), _corrupt_augment()
    )
    out["cold_paper_augment"] = merging.deep_update(_cold(), _corrupt_augment())
    out["cold_weight_term_augment"] = merging.deep_update(_cold(lambda_weight=1.0), _corrupt_augment())
    out["cold_weight_term10_augment"] = merging.deep_update(_cold(lambda_weight=10.0), _corrupt_augment())
    out["cold_uncertainty_weight_term_augment"] = merging.deep_update(
        _cold(weight_convention="uncertainty", lambda_weight=1.0), _corrupt_augment()
    )
    out["cold_uncertainty_weight_term10_augment"] = merging.deep_update(
        _cold(weight_convention="uncertainty", lambda_weight=10.0), _corrupt_augment()
    )
    out["cold_weight_term30_augment"] = merging.deep_update(_cold(lambda_weight=30.0), _corrupt_augment())
    out["cold_weight_term10_augment_dropout"] = merging.deep_update(
        _cold(lambda_weight=10.0), {"training": {"augment": {"corrupt_prob": 0.5, "modality_dropout_prob": 0.25}}}
    )
    out["cold_weight_term10_augment_p1"] = merging.deep_update(
        _cold(lambda_weight=10.0), {"training": {"augment": {"corrupt_prob": 1.0}}}
    )
    out["prediction_fusion_augment"] = merging.deep_update({"model": {"name": "prediction_fusion"}}, _corrupt_augment())
    out["context_fusion_augment"] = merging.deep_update({"model": {"name": "context_fusion"}}, _corrupt_augment())
    # The setting bench/README.md's table calls cold_reliable (lambda_weight 10 + corruption augmentation);
    # configs/cold_reliable.yaml now holds the setting chosen on the realistic corpus (`cold_recommended`).
    out["cold_reliable"] = merging.deep_update(_cold(lambda_weight=10.0), _corrupt_augment())
    out["cold_reliable_dropout"] = merging.deep_update(
        out["cold_reliable"], {"training": {"augment": {"modality_dropout_prob": 0.25}}}
    )
    if RELIABLE_CONFIG.is_file():
        out["cold_recommended"] = config_lib.load_file(RELIABLE_CONFIG)
    return out


# bench/README.md's table: the fusion baselines (with and without the corruption augmentation for the
# strongest one) and the COLD variants from the paper's formulation to the recommended setting.
DEFAULT_VARIANTS = (
    "audio",
    "feature_fusion",
    "prediction_fusion",
    "context_fusion",
    "prediction_fusion_augment",
    "cold_paper",
    "cold_uncertainty",
    "cold_uncertainty_std",
    "cold_weight_term",
    "cold_paper_augment",
    "cold_reliable",
    "cold_reliable_dropout",
)


def run_dir_for(out: Path, name: str, overrides: dict, seed: int, epochs) -> Path:
    key = json.dumps({"overrides": overrides, "epochs": epochs}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return out / f"{name}_{digest}_seed{seed}"


def evaluate_run(run_dir: Path, partition: str, fraction: float, mode: str) -> dict:
    import keras
    import numpy as np
    from _common import load_run

    from pipelines.data import corrupt
    from pipelines.evaluation import diagnostics
    from pipelines.evaluation import scoring as evaluation

    infer, recordings = load_run(run_dir, partition)
    result = {}
    clean = evaluation.predict_recordings(infer, recordings)
    result["clean"] = evaluation.score_partition(clean, task="regression")[0]["av"]["ccc_mean"]
    corpus = diagnostics.weight_diagnostics(clean).get("corpus", {})
    for modality in ("audio", "visual"):
        if modality in corpus:
            result[f"auc_{modality}_corpus"] = corpus[modality]["auc"]
    corrupted_recordings = corrupt.corrupt_recordings(recordings, "visual", fraction, mode=mode, seed=0)
    corrupted = evaluation.predict_recordings(infer, corrupted_recordings)
    result["corrupt"] = evaluation.score_partition(corrupted, task="regression")[0]["av"]["ccc_mean"]
    if "audio_valence" in corrupted[0]["outputs"]:
        oracle = perfect_weighting(corrupted)
        result["oracle"] = evaluation.score_partition(oracle, task="regression")[0]["av"]["ccc_mean"]
    # The same frames marked absent instead (visual_present = 0, features zeroed).
    absent_recordings = []
    for recording in corrupted_recordings:
        flags = recording["visual_corrupted_eval"]
        absent_recordings.append(
            {
                **recording,
                "visual": np.where(flags[:, None], 0.0, recording["visual"]),
                "visual_present": (~flags).astype(np.float32),
            }
        )
    absent = evaluation.predict_recordings(infer, absent_recordings)
    result["absent"] = evaluation.score_partition(absent, task="regression")[0]["av"]["ccc_mean"]
    entry = diagnostics.weight_diagnostics(corrupted).get("evaluator", {}).get("visual")
    if entry:
        result["auc_visual_eval"] = entry["auc"]
        result["w_v_corrupt"] = entry["mean_weight_corrupted"]
        result["w_v_clean"] = entry["mean_weight_clean"]
    keras.backend.clear_session()
    return {key: float(value) for key, value in result.items() if np.isfinite(value)}


COLUMNS = (
    ("clean", "clean CCC"),
    ("corrupt", "50% visual"),
    ("oracle", "audio on corr."),
    ("absent", "50% V absent"),
    ("auc_audio_corpus", "AUC A (corpus)"),
    ("auc_visual_corpus", "AUC V (corpus)"),
    ("auc_visual_eval", "AUC V (eval)"),
    ("w_v_corrupt", "w_V corrupt"),
    ("w_v_clean", "w_V clean"),
)


def perfect_weighting(corrupted):
    """Ceiling of any weighting: the audio branch alone on the visually corrupted frames and the fused
    output elsewhere (what w_V = 0 exactly on those frames and nothing else would give)."""
    import numpy as np

    oracle = []
    for recording in corrupted:
        flags = recording["visual_corrupted_eval"]
        outputs = dict(recording["outputs"])
        for dimension in ("valence", "arousal"):
            outputs[dimension] = np.where(flags, outputs[f"audio_{dimension}"], outputs[dimension])
        oracle.append({**recording, "outputs": outputs})
    return oracle


def format_table(table: dict, seeds, mode: str, partition: str) -> str:
    import numpy as np

    lines = [
        f"{partition} partition, seeds {seeds}, mean ± std; visual corrupted 50% ({mode}); "
        "AUC of (1 - w_m) as a detector of modality m's corrupted frames"
    ]
    header = f"{'variant':<26}" + "".join(f"{title:>17}" for _, title in COLUMNS)
    lines += [header, "-" * len(header)]
    for name, rows in table.items():
        cells = []
        for key, _ in COLUMNS:
            values = np.array([row[key] for row in rows if key in row])
            cells.append(f"{values.mean():>8.3f} ± {values.std():.3f}" if values.size else f"{'-':>16}")
        lines.append(f"{name:<26}" + "".join(f"{cell:>17}" for cell in cells))
    return "\n".join(lines)


# --------------------------------------------------------------------------- held-out corruption kinds

KINDS = ("noise", "swap", "frozen", "drift", "desync", "dropout")
# A compact 2-fold split over the kinds (a full leave-one-kind-out would need six trainings per
# setting and seed): each fold trains on three kinds and is evaluated on the other three.
FOLDS = (("noise", "frozen", "drift"), ("swap", "desync", "dropout"))
# The benchmark corpora: clean (corruption_fraction 0, so that no kind is seen through the data),
# smaller than the default corpus to fit the CPU budget; the model is the synthetic config's with
# fewer units (the same for every setting).
_SIZE = {"num_train": 8, "num_devel": 3, "num_test": 3, "duration_seconds": 60.0, "corruption_fraction": 0.0}
CORPORA = {
    "simple": {"synthetic": dict(_SIZE)},
    "realistic": {"synthetic": {**_SIZE, "variant": "realistic", "audio_dim": 8, "visual_dim": 8, "noise_std": 0.5}},
}
_SMALL_MODEL = {"model": {"name": "cold_fusion", "gru_units": 32, "latent_dim": 16}}
RELIABLE = {"lambda_reliability": 1.0, "reliability_novelty": True, "reliability_agreement": True, "fusion_guard": True}
ATYPICAL = {"reliability_atypicality": True, "fusion_guard": True}


def kind_settings() -> dict:
    """name -> (model overrides, whether the setting trains with the corruption augmentation)."""
    return {
        "paper": ({}, False),
        "augment": ({}, True),
        "reliable": (dict(RELIABLE), True),
        "supervised": ({"lambda_reliability": 1.0}, True),
        "signals": ({"reliability_novelty": True, "reliability_agreement": True}, True),
        # Two-sided atypicality with its monotone weighting: untrained (its prior alone, clean
        # training data) and trained on the other kinds with the supervised reliability loss.
        "atypical_prior": (dict(ATYPICAL), False),
        "atypical": ({**ATYPICAL, "lambda_reliability": 1.0}, True),
        # + the self-supervised audio-visual correspondence (`reliability_correspondence`), no augmentation.
        "correspondence": ({**ATYPICAL, "reliability_correspondence": True}, False),
    }


def folds_of(name: str) -> tuple:
    """The held-out groups of kinds: one per kind (`loo`) or the compact 2-fold split (`2`)."""
    return tuple((kind,) for kind in KINDS) if name == "loo" else FOLDS


def kind_overrides(corpus: str, setting: str, train_kinds) -> dict:

    model, augment = kind_settings()[setting]
    overrides = merging.deep_update(CORPORA[corpus], _SMALL_MODEL)
    overrides = merging.deep_update(overrides, {"model": model})
    if augment:
        overrides = merging.deep_update(
            overrides, {"training": {"augment": {"corrupt_prob": 0.5, "corrupt_kinds": list(train_kinds)}}}
        )
    return overrides


def evaluate_kinds(run_dir: Path, partition: str, fraction: float, kinds, guard_off=False) -> dict:
    """Clean and per-kind figures of one run (visual corrupted in consecutive blocks); with
    `guard_off`, the model's fusion guard is set back to the fused output for every dimension."""
    import keras
    from _common import load_run

    from pipelines.data import corrupt
    from pipelines.evaluation import diagnostics
    from pipelines.evaluation import scoring as evaluation

    infer, recordings = load_run(run_dir, partition)
    if guard_off:
        guard = infer.get_layer("fusion_guard")
        guard.choose(["fused"] * guard.num_dimensions)
    hop = float(recordings[0].get("hop") or 0.1)

    def scores(predictions):
        return evaluation.score_partition(predictions, task="regression")[0]

    clean = scores(evaluation.predict_recordings(infer, recordings))
    result = {
        "clean": clean["av"]["ccc_mean"],
        "audio": clean["audio"]["ccc_mean"],
        "visual": clean["visual"]["ccc_mean"],
        "kinds": {},
    }
    for kind in kinds:
        corrupted = evaluation.predict_recordings(
            infer, corrupt.corrupt_recordings(recordings, "visual", fraction, mode=kind, seed=0, hop=hop)
        )
        table = scores(corrupted)
        oracle = perfect_weighting(corrupted)
        entry = diagnostics.weight_diagnostics(corrupted).get("evaluator", {}).get("visual", {})
        result["kinds"][kind] = {
            "fused": table["av"]["ccc_mean"],
            "ceiling": scores(oracle)["av"]["ccc_mean"],
            "audio": table["audio"]["ccc_mean"],
            "visual": table["visual"]["ccc_mean"],
            "auc": entry.get("auc", float("nan")),
        }
    keras.backend.clear_session()
    return result


def format_kinds_table(results: dict, seeds, partition: str, folds=FOLDS) -> str:
    """results: {(corpus, setting): [per-seed dicts of held-out kinds]} -> the printed table."""
    import numpy as np

    def cell(values):
        values = np.array([v for v in values if np.isfinite(v)])
        return f"{values.mean():.3f}±{values.std():.3f}" if values.size else "-"

    lines = [
        f"{partition} partition, seeds {seeds}, mean±std; visual corrupted 50% in blocks by a kind held out "
        f"of training (folds {' | '.join('+'.join(f) for f in folds)}); AUC of (1 - w_V) as a detector of "
        f"the corrupted frames; ceiling = fused output on clean frames, audio branch on corrupted ones"
    ]
    for (corpus, setting), rows in results.items():
        lines.append("")
        lines.append(
            f"[{corpus}] {setting}: clean CCC {cell([r['clean'] for r in rows])}, audio branch "
            f"{cell([r['audio'] for r in rows])}, visual branch {cell([r['visual'] for r in rows])}, "
            f"best unimodal {cell([max(r['audio'], r['visual']) for r in rows])}"
        )
        header = f"  {'kind':<9}{'AUC w_V':>14}{'fused CCC':>14}{'ceiling':>14}{'gap':>14}{'best branch':>14}"
        lines += [header, "  " + "-" * (len(header) - 2)]
        for kind in KINDS:
            got = [r["kinds"][kind] for r in rows if kind in r["kinds"]]
            if not got:
                continue
            lines.append(
                f"  {kind:<9}{cell([g['auc'] for g in got]):>14}{cell([g['fused'] for g in got]):>14}"
                f"{cell([g['ceiling'] for g in got]):>14}"
                f"{cell([g['ceiling'] - g['fused'] for g in got]):>14}"
                f"{cell([max(g['audio'], g['visual']) for g in got]):>14}"
            )
    return "\n".join(lines)


def _with_guard_off(settings):
    """(setting, guard_off) pairs: every setting as trained, and a setting with a fusion guard once
    more with the guard set back to the fused output (the weighting alone)."""
    out = []
    for setting in settings:
        out.append((setting, False))
        if kind_settings()[setting][0].get("fusion_guard"):
            out.append((setting, True))
    return out


def run_kinds(args) -> None:
    from _common import train_synthetic

    seeds = [int(s) for s in args.seeds.split(",")]
    corpora = args.corpora.split(",")
    settings = args.settings.split(",")
    unknown = [c for c in corpora if c not in CORPORA] + [s for s in settings if s not in kind_settings()]
    if unknown:
        raise SystemExit(
            f"unknown corpus or setting {unknown}; corpora {list(CORPORA)}, settings {list(kind_settings())}"
        )
    results, cache = {}, Path(args.out) / "results"
    cache.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for corpus in corpora:
            for setting, guard_off in _with_guard_off(settings):
                trains_on_kinds = kind_settings()[setting][1]
                folds = folds_of(args.folds) if trains_on_kinds else (KINDS,)
                merged = {"kinds": {}}
                for held_out in folds:
                    train_kinds = [k for k in KINDS if k not in held_out]
                    overrides = kind_overrides(corpus, setting, train_kinds)
                    name = f"{corpus}_{setting}" + (f"_without_{'-'.join(held_out)}" if trains_on_kinds else "")
                    run_dir = run_dir_for(Path(args.out), name, overrides, seed, args.epochs)
                    done = cache / f"{run_dir.name}{'_guard_off' if guard_off else ''}.json"
                    if done.is_file():
                        row = json.loads(done.read_text())
                    elif args.cached_only:
                        print(f"{name} seed {seed}: not run yet (--cached-only)", flush=True)
                        continue
                    else:
                        train_synthetic(overrides, seed, args.epochs, run_dir)
                        row = evaluate_kinds(run_dir, args.partition, args.fraction, held_out, guard_off)
                        from pipelines.core.io_utils import write_json_atomic

                        write_json_atomic(done, row)
                    # Clean figures: mean over the folds' models.
                    for key in ("clean", "audio", "visual"):
                        merged.setdefault(f"_{key}", []).append(row[key])
                    merged["kinds"].update(row["kinds"])
                    print(
                        f"{name}{' (guard off)' if guard_off else ''} seed {seed}: clean {row['clean']:.3f}; "
                        + ", ".join(
                            f"{k} AUC {v['auc']:.2f} CCC {v['fused']:.3f} (ceiling {v['ceiling']:.3f})"
                            for k, v in row["kinds"].items()
                        ),
                        flush=True,
                    )
                if not merged["kinds"]:
                    continue
                for key in ("clean", "audio", "visual"):
                    merged[key] = float(sum(merged[f"_{key}"]) / len(merged[f"_{key}"]))
                    del merged[f"_{key}"]
                label = f"{setting} (guard off)" if guard_off else setting
                results.setdefault((corpus, label), []).append(merged)
    print()
    print(format_kinds_table(results, seeds, args.partition, folds_of(args.folds)))
    if args.json:
        Path(args.json).write_text(json.dumps({f"{c}/{s}": rows for (c, s), rows in results.items()}, indent=2))


def main():
    from _common import train_synthetic

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help="comma-separated names of VARIANTS, or all (default: the table in bench/README.md)",
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the synthetic config's")
    parser.add_argument("--partition", default="test")
    parser.add_argument(
        "--corrupt-mode", default="noise", choices=("noise", "zeros", "swap", "frozen", "drift", "desync", "dropout")
    )
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--out", default="bench_runs/weight_tracking")
    parser.add_argument("--json", help="also write the per-seed figures to this JSON file")
    parser.add_argument(
        "--held-out-kinds",
        action="store_true",
        help="the held-out corruption kinds benchmark instead: settings trained on some kinds "
        "of noise, swap, frozen, drift, desync, dropout (--folds), evaluated on the others, "
        "on the simple and the realistic corpus",
    )
    parser.add_argument(
        "--settings",
        default="paper,reliable",
        help="--held-out-kinds: comma-separated settings of kind_settings() (default paper,reliable)",
    )
    parser.add_argument(
        "--folds",
        default="loo",
        choices=("loo", "2"),
        help="--held-out-kinds: leave one kind out (6 trainings per setting that trains on kinds) "
        "or the compact 2-fold split",
    )
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="--held-out-kinds: print the table of the finished runs only, train nothing",
    )
    parser.add_argument(
        "--corpora",
        default="realistic,simple",
        help="--held-out-kinds: comma-separated corpora (default realistic,simple)",
    )
    args = parser.parse_args()
    if args.held_out_kinds:
        if args.out == "bench_runs/weight_tracking":
            args.out = "bench_runs/weight_tracking_kinds"
        run_kinds(args)
        return

    all_variants = variants()
    names = list(all_variants) if args.variants == "all" else args.variants.split(",")
    unknown = [name for name in names if name not in all_variants]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(all_variants)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    table = {}
    for name in names:
        rows = []
        for seed in seeds:
            run_dir = run_dir_for(Path(args.out), name, all_variants[name], seed, args.epochs)
            train_synthetic(all_variants[name], seed, args.epochs, run_dir)
            row = evaluate_run(run_dir, args.partition, args.fraction, args.corrupt_mode)
            rows.append({"seed": seed, **row})
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
        table[name] = rows
    print()
    print(format_table(table, seeds, args.corrupt_mode, args.partition))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
