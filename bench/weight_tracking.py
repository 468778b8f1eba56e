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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
RELIABLE_CONFIG = ROOT / "configs" / "cold_reliable.yaml"


def _cold(**model):
    return {"model": {"name": "cold_fusion", **model}}


def _corrupt_augment():
    return {"training": {"augment": {"corrupt_prob": 0.5}}}


def variants() -> dict:
    """name -> config overrides. Non-COLD baselines first, then COLD from the paper outwards."""
    from pipelines import config as config_lib

    out = {name: {"model": {"name": name}}
           for name in ("audio", "feature_fusion", "prediction_fusion", "context_fusion")}
    out["cold_paper"] = _cold()
    out["cold_uncertainty"] = _cold(weight_convention="uncertainty")
    out["cold_uncertainty_std"] = _cold(weight_convention="uncertainty", calibration_standardize=True,
                                        lambda_co_visual=1.0, lambda_co_audio=1.0, lambda_co_cross=1.0)
    out["cold_weight_term"] = _cold(lambda_weight=1.0)
    uncertainty_std = dict(weight_convention="uncertainty", calibration_standardize=True,
                           lambda_co_visual=1.0, lambda_co_audio=1.0, lambda_co_cross=1.0)
    out["cold_uncertainty_std_augment"] = config_lib.deep_update(_cold(**uncertainty_std), _corrupt_augment())
    out["cold_uncertainty_std_weight_term10_augment"] = config_lib.deep_update(
        _cold(**uncertainty_std, lambda_weight=10.0), _corrupt_augment())
    out["cold_paper_augment"] = config_lib.deep_update(_cold(), _corrupt_augment())
    out["cold_weight_term_augment"] = config_lib.deep_update(_cold(lambda_weight=1.0), _corrupt_augment())
    out["cold_weight_term10_augment"] = config_lib.deep_update(_cold(lambda_weight=10.0), _corrupt_augment())
    out["cold_uncertainty_weight_term_augment"] = config_lib.deep_update(
        _cold(weight_convention="uncertainty", lambda_weight=1.0), _corrupt_augment())
    out["cold_uncertainty_weight_term10_augment"] = config_lib.deep_update(
        _cold(weight_convention="uncertainty", lambda_weight=10.0), _corrupt_augment())
    out["cold_weight_term30_augment"] = config_lib.deep_update(_cold(lambda_weight=30.0), _corrupt_augment())
    out["cold_weight_term10_augment_dropout"] = config_lib.deep_update(
        _cold(lambda_weight=10.0), {"training": {"augment": {"corrupt_prob": 0.5, "modality_dropout_prob": 0.25}}})
    out["cold_weight_term10_augment_p1"] = config_lib.deep_update(
        _cold(lambda_weight=10.0), {"training": {"augment": {"corrupt_prob": 1.0}}})
    out["prediction_fusion_augment"] = config_lib.deep_update({"model": {"name": "prediction_fusion"}},
                                                              _corrupt_augment())
    out["context_fusion_augment"] = config_lib.deep_update({"model": {"name": "context_fusion"}},
                                                           _corrupt_augment())
    if RELIABLE_CONFIG.is_file():
        out["cold_reliable"] = config_lib.load_file(RELIABLE_CONFIG)
        out["cold_reliable_dropout"] = config_lib.deep_update(
            out["cold_reliable"], {"training": {"augment": {"modality_dropout_prob": 0.25}}})
    return out


# The README's table: the fusion baselines (with and without the corruption augmentation for the
# strongest one) and the COLD variants from the paper's formulation to the recommended setting.
DEFAULT_VARIANTS = ("audio", "feature_fusion", "prediction_fusion", "context_fusion", "prediction_fusion_augment",
                    "cold_paper", "cold_uncertainty", "cold_uncertainty_std", "cold_weight_term",
                    "cold_paper_augment", "cold_reliable", "cold_reliable_dropout")


def run_dir_for(out: Path, name: str, overrides: dict, seed: int, epochs) -> Path:
    key = json.dumps({"overrides": overrides, "epochs": epochs}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return out / f"{name}_{digest}_seed{seed}"


def evaluate_run(run_dir: Path, partition: str, fraction: float, mode: str) -> dict:
    import keras
    import numpy as np

    from _common import load_run
    from pipelines import corrupt, evaluate, evaluation

    infer, recordings = load_run(run_dir, partition)
    result = {}
    clean = evaluation.predict_recordings(infer, recordings)
    result["clean"] = evaluation.score_partition(clean, task="regression")[0]["av"]["ccc_mean"]
    corpus = evaluate.weight_diagnostics(clean).get("corpus", {})
    for modality in ("audio", "visual"):
        if modality in corpus:
            result[f"auc_{modality}_corpus"] = corpus[modality]["auc"]
    corrupted_recordings = corrupt.corrupt_recordings(recordings, "visual", fraction, mode=mode, seed=0)
    corrupted = evaluation.predict_recordings(infer, corrupted_recordings)
    result["corrupt"] = evaluation.score_partition(corrupted, task="regression")[0]["av"]["ccc_mean"]
    if "audio_valence" in corrupted[0]["outputs"]:
        # Ceiling of any weighting: the audio branch alone on the corrupted frames, the fused
        # output elsewhere (what w_V = 0 exactly on those frames and nothing else would give).
        oracle = []
        for recording in corrupted:
            flags = recording["visual_corrupted_eval"]
            outputs = dict(recording["outputs"])
            for dimension in ("valence", "arousal"):
                outputs[dimension] = np.where(flags, outputs[f"audio_{dimension}"], outputs[dimension])
            oracle.append({**recording, "outputs": outputs})
        result["oracle"] = evaluation.score_partition(oracle, task="regression")[0]["av"]["ccc_mean"]
    # The same frames marked absent instead (visual_present = 0, features zeroed).
    absent_recordings = []
    for recording in corrupted_recordings:
        flags = recording["visual_corrupted_eval"]
        absent_recordings.append({**recording, "visual": np.where(flags[:, None], 0.0, recording["visual"]),
                                  "visual_present": (~flags).astype(np.float32)})
    absent = evaluation.predict_recordings(infer, absent_recordings)
    result["absent"] = evaluation.score_partition(absent, task="regression")[0]["av"]["ccc_mean"]
    entry = evaluate.weight_diagnostics(corrupted).get("evaluator", {}).get("visual")
    if entry:
        result["auc_visual_eval"] = entry["auc"]
        result["w_v_corrupt"] = entry["mean_weight_corrupted"]
        result["w_v_clean"] = entry["mean_weight_clean"]
    keras.backend.clear_session()
    return {key: float(value) for key, value in result.items() if np.isfinite(value)}


COLUMNS = (("clean", "clean CCC"), ("corrupt", "50% visual"), ("oracle", "audio on corr."), ("absent", "50% V absent"),
           ("auc_audio_corpus", "AUC A (corpus)"),
           ("auc_visual_corpus", "AUC V (corpus)"), ("auc_visual_eval", "AUC V (eval)"),
           ("w_v_corrupt", "w_V corrupt"), ("w_v_clean", "w_V clean"))


def format_table(table: dict, seeds, mode: str, partition: str) -> str:
    import numpy as np

    lines = [f"{partition} partition, seeds {seeds}, mean ± std; visual corrupted 50% ({mode}); "
             "AUC of (1 - w_m) as a detector of modality m's corrupted frames"]
    header = f"{'variant':<26}" + "".join(f"{title:>17}" for _, title in COLUMNS)
    lines += [header, "-" * len(header)]
    for name, rows in table.items():
        cells = []
        for key, _ in COLUMNS:
            values = np.array([row[key] for row in rows if key in row])
            cells.append(f"{values.mean():>8.3f} ± {values.std():.3f}" if values.size else f"{'-':>16}")
        lines.append(f"{name:<26}" + "".join(f"{cell:>17}" for cell in cells))
    return "\n".join(lines)


def main():
    from _common import train_synthetic

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated names of VARIANTS, or all (default: the table in the README)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the synthetic config's")
    parser.add_argument("--partition", default="test")
    parser.add_argument("--corrupt-mode", default="noise", choices=("noise", "zeros", "swap"))
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--out", default="bench_runs/weight_tracking")
    parser.add_argument("--json", help="also write the per-seed figures to this JSON file")
    args = parser.parse_args()

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
