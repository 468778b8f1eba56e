"""Is COLD's per-frame uncertainty calibrated and ordinal, compared with the standard
uncertainty baselines? Synthetic corpus, several seeds, test partition, fused output
(valence and arousal pooled per column by averaging the two dimensions):

* COLD as in the paper (configs/synthetic.yaml), with configs/cold_reliable.yaml and with
  `model.reliability_atypicality` (`cold_atypical`, not in the default --methods), std from the
  validation-fitted map of the fusion weights / sigmas (pipelines/evaluation/uncertainty.py);
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
    from pipelines.config import files as config_lib

    return {
        "cold_paper": {"model": {"name": "cold_fusion"}},
        "cold_reliable": config_lib.load_file(RELIABLE_CONFIG),
        "cold_atypical": {"model": {"name": "cold_fusion", "reliability_atypicality": True}},
        "context_fusion": {"model": {"name": "context_fusion"}},
    }


def run_dir_for(out: Path, name: str, overrides: dict, seed: int, epochs) -> Path:
    key = json.dumps({"overrides": overrides, "epochs": epochs}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return out / f"{name}_{digest}_seed{seed}"


def training_plan(seeds, out: Path, epochs, methods=None, ensemble_size=ENSEMBLE_SIZE) -> list:
    """(name, overrides, seed, run_dir) of every run the `methods` (default: all) need, seed by seed
    so that the first seed's table can be computed as soon as its runs are done."""
    variants = training_variants()
    methods = list(METHODS) if methods is None else list(methods)
    plan, done = [], set()
    for seed in seeds:
        # The baselines' members before COLD's second configuration: the first seed's comparison
        # of COLD with MC dropout and the ensemble is ready earliest.
        wanted = [("cold_paper", seed)] if "cold_paper" in methods else []
        members = 0
        if "context_fusion_ensemble" in methods:
            members = ensemble_size
        elif "context_fusion_mc_dropout" in methods:
            members = 1
        wanted += [("context_fusion", seed + k) for k in range(min(members, 3))]
        wanted += [("cold_reliable", seed)] if "cold_reliable" in methods else []
        wanted += [("cold_atypical", seed)] if "cold_atypical" in methods else []
        wanted += [("context_fusion", seed + k) for k in range(3, members)]
        for name, run_seed in wanted:
            if (name, run_seed) in done:
                continue
            done.add((name, run_seed))
            plan.append((name, variants[name], run_seed, run_dir_for(out, name, variants[name], run_seed, epochs)))
    return plan


def train_all(seeds, out: Path, epochs, methods=None, ensemble_size=ENSEMBLE_SIZE):
    from _common import train_synthetic

    for name, overrides, seed, run_dir in training_plan(seeds, out, epochs, methods, ensemble_size):
        print(f"training {name} seed {seed} -> {run_dir}", flush=True)
        train_synthetic(overrides, seed, epochs, run_dir)


COLUMNS = (
    ("ccc", "CCC"),
    ("nll", "NLL"),
    ("picp_90", "PICP@90"),
    ("width_90", "width@90"),
    ("miscalibration_area", "miscal. area"),
    ("ause", "AUSE"),
    ("ause_random", "AUSE random"),
    ("reject_ccc_50", "CCC 50% kept"),
)
METHODS = {
    "cold_paper": ("COLD (paper)", "native"),
    "cold_reliable": ("COLD (cold_reliable.yaml)", "native"),
    "cold_atypical": ("COLD + reliability_atypicality", "native"),
    "context_fusion_mc_dropout": ("context fusion + MC dropout", "mc_dropout"),
    "context_fusion_ensemble": ("context fusion, 5-member ensemble", "ensemble"),
}


def members_of(method: str, seed: int, out: Path, epochs, ensemble_size: int) -> list:
    variants = training_variants()
    if method in ("cold_paper", "cold_reliable", "cold_atypical"):
        return [run_dir_for(out, method, variants[method], seed, epochs)]
    count = 1 if method == "context_fusion_mc_dropout" else ensemble_size
    return [run_dir_for(out, "context_fusion", variants["context_fusion"], seed + k, epochs) for k in range(count)]


def evaluate_method(
    method: str,
    run_dirs: list,
    store: Path,
    partition: str,
    fraction: float,
    mode: str,
    passes: int,
    figures_dir=None,
    scale_by="frames",
    fit_corruptions=(),
) -> dict:
    """{condition: {column: fused-output figure averaged over valence and arousal}}; the calibration
    is fitted on the validation partition and saved to `store`."""
    import keras
    import numpy as np

    from pipelines.components import input_pipeline
    from pipelines.data import corrupt
    from pipelines.evaluation import uncertainty as unc
    from pipelines.evaluation import uncertainty_report, uncertainty_scores
    from pipelines.runs import folders as runs

    kind = METHODS[method][1]
    models, config = [], None
    for run_dir in run_dirs:
        model, config_of = runs.load_inference_model(run_dir)
        models.append(model)
        config = config or config_of
    artifact_dir = config.runtime["artifact_dir"]
    if kind == "ensemble":
        predict = lambda recordings: uncertainty_scores.predict_ensemble(models, recordings)  # noqa: E731
    elif kind == "mc_dropout":
        predict = lambda recordings: uncertainty_scores.predict_mc_dropout(models[0], recordings, passes, seed=0)  # noqa: E731
    else:
        from pipelines.evaluation import scoring as evaluation

        predict = lambda recordings: evaluation.predict_recordings(models[0], recordings)  # noqa: E731
    validation = config.training.validation_partition
    convention = config.model.weight_convention
    validation_recordings = list(input_pipeline.iter_recordings(artifact_dir, validation))
    parsed = [corrupt.parse_corruption(spec) for spec in fit_corruptions]
    calibration = unc.fit_calibration(
        predict(unc.with_corrupted_copies(validation_recordings, parsed)),
        method=kind,
        convention=convention,
        fitted_on=validation,
        passes=passes if kind == "mc_dropout" else None,
        members=[str(r) for r in run_dirs] if kind == "ensemble" else None,
        scale_by=scale_by,
        fit_corruptions=fit_corruptions,
    )
    calibration.save(store)
    recordings = list(input_pipeline.iter_recordings(artifact_dir, partition))
    conditions = {
        "clean": recordings,
        "corrupt": corrupt.corrupt_recordings(recordings, "visual", fraction, mode=mode, seed=0),
    }
    result = {}
    for condition, inputs in conditions.items():
        section = uncertainty_report.uncertainty_metrics(unc.attach_std(predict(inputs), calibration), calibration)
        fused = [section[f"av_{dim}"] for dim in ("valence", "arousal")]
        result[condition] = {key: float(np.mean([row[key] for row in fused])) for key, _ in COLUMNS}
        if figures_dir is not None:
            for name, data in uncertainty_report.figures(
                section, f"{METHODS[method][0]}, {partition} {condition}"
            ).items():
                path = Path(figures_dir) / f"{method}_{condition}_{name}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    keras.backend.clear_session()
    return result


def format_table(table: dict, partition: str, fraction: float, mode: str, ensemble_size=ENSEMBLE_SIZE) -> str:
    import numpy as np

    lines = []
    for condition, title in (
        ("clean", "clean"),
        ("corrupt", f"{fraction:.0%} of the visual frames corrupted ({mode})"),
    ):
        lines += [
            "",
            f"{partition} partition, {title}; fused output, mean of valence and arousal; mean ± std over seeds",
        ]
        header = f"{'method':<36}{'seeds':>6}" + "".join(f"{t:>16}" for _, t in COLUMNS)
        lines += [header, "-" * len(header)]
        for method, rows in table.items():
            cells = []
            for key, _ in COLUMNS:
                values = np.array([row[condition][key] for row in rows])
                cells.append(f"{values.mean():>7.3f} ± {values.std():.3f}")
            title = METHODS[method][0].replace(f"{ENSEMBLE_SIZE}-member", f"{ensemble_size}-member")
            lines.append(f"{title:<36}{len(rows):>6}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--methods",
        default=",".join(m for m in METHODS if m != "cold_atypical"),
        help=f"comma-separated, of {', '.join(METHODS)}",
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the synthetic config's")
    parser.add_argument("--partition", default="test")
    parser.add_argument("--corrupt-mode", default="noise", choices=("noise", "zeros", "swap"))
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the visual frames corrupted")
    parser.add_argument("--mc-passes", type=int, default=20, help="stochastic passes of MC dropout")
    parser.add_argument("--ensemble-size", type=int, default=ENSEMBLE_SIZE, help="members of the ensemble")
    parser.add_argument("--train-only", action="store_true", help="train (or resume) the runs and stop")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="score only the (method, seed) pairs whose runs have finished, train nothing",
    )
    parser.add_argument("--figures", help="write the first seed's curves of every method and condition to this folder")
    parser.add_argument(
        "--scale-by",
        default="frames",
        choices=("frames", "recordings"),
        help="interval scale fitted over the pooled validation frames or per validation recording",
    )
    parser.add_argument(
        "--fit-corrupt",
        default="",
        metavar="SPEC[,SPEC]",
        help="also fit the calibration on corrupted copies of the validation partition "
        "(MODALITY:FRACTION[:MODE], e.g. visual:0.5:dropout,visual:0.5:frozen)",
    )
    parser.add_argument("--out", default="bench_runs/uncertainty_quality")
    parser.add_argument("--json", help="also write the per-seed figures to this JSON file")
    args = parser.parse_args()

    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    if args.ensemble_size < 2:
        parser.error("--ensemble-size must be >= 2")
    from pipelines.core.errors import ConfigError
    from pipelines.data import corrupt

    fit_corruptions = [spec for spec in args.fit_corrupt.split(",") if spec.strip()]
    try:
        for spec in fit_corruptions:
            corrupt.parse_corruption(spec)
    except ConfigError as error:
        parser.error(str(error))
    if not args.skip_missing:
        train_all(seeds, out, args.epochs, methods, args.ensemble_size)
    if args.train_only:
        return
    table = {}
    for method in methods:
        rows = []
        for seed in seeds:
            run_dirs = members_of(method, seed, out, args.epochs, args.ensemble_size)
            if not all((r / "model.keras").is_file() for r in run_dirs):
                print(f"{method} seed {seed}: runs not finished, skipped", flush=True)
                continue
            store = run_dirs[0]
            if METHODS[method][1] == "ensemble":
                store = out / f"ensemble{args.ensemble_size}_seed{seed}"
            store.mkdir(parents=True, exist_ok=True)
            figures_dir = args.figures if args.figures and seed == seeds[0] else None
            cache = store / (
                f"bench_{method}_{args.partition}_{args.corrupt_mode}{args.fraction:g}_passes{args.mc_passes}"
                + ("" if args.scale_by == "frames" else f"_{args.scale_by}")
                + ("" if not fit_corruptions else "_fit-" + "-".join(s.replace(":", "") for s in fit_corruptions))
                + ".json"
            )
            if cache.is_file() and not figures_dir:
                row = json.loads(cache.read_text())
            else:
                row = evaluate_method(
                    method,
                    run_dirs,
                    store,
                    args.partition,
                    args.fraction,
                    args.corrupt_mode,
                    args.mc_passes,
                    figures_dir,
                    scale_by=args.scale_by,
                    fit_corruptions=fit_corruptions,
                )
                cache.write_text(json.dumps(row, indent=2))
            rows.append({"seed": seed, **row})
            print(
                f"{method} seed {seed}: "
                + "; ".join(f"{c} " + ", ".join(f"{k} {v:.3f}" for k, v in row[c].items()) for c in row),
                flush=True,
            )
        if rows:
            table[method] = rows
    print(format_table(table, args.partition, args.fraction, args.corrupt_mode, args.ensemble_size))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
