"""The robustness table (as the COLD paper's Table 7): every model on the test partition, clean and
with 25/50/75% of one modality's frames corrupted by each kind of `pipelines.evaluate --corrupt`,
CCC mean ± std over the seeds, and the relative gain of COLD's recommended setting over the best
baseline in each column.

    python bench/robustness_table.py [--variants realistic,simple] [--seeds 0,1,2] [--models all]
                                     [--kinds noise,zeros,swap,frozen,drift,desync,dropout]
                                     [--levels 0.25,0.5,0.75] [--modality visual] [--epochs N] [--out DIR]

Models: the baselines (`audio`, `visual`, `feature_fusion`, `prediction_fusion`, `context_fusion`,
`transformer`), COLD as in the paper (`cold_paper`: `cold_fusion` at its defaults) and COLD's
recommended setting (`cold_recommended`: `cold_fusion` + `configs/cold_reliable.yaml`). Corpora:
the clean synthetic corpora of `bench/weight_tracking.py --held-out-kinds` (`CORPORA`, no
corruption in training, so every kind is unseen), with its small model for every architecture.

Each (variant, model, seed) is trained once (a run directory under --out named by a hash of its
overrides, so an interrupted benchmark resumes and a changed setting is retrained); the trained
model predicts the test partition clean and under every (kind, level) in-process
(`pipelines.data.corrupt.corrupt_recordings`, seed 0: the same frames for every model), and the
scores are kept beside the run. Per variant it prints the CCC (mean of valence and arousal, fused
output) per model and condition, the row "gain": (cold_recommended - best) / |best|, where best is
the non-COLD baseline with the highest mean CCC in that column (named in the row below), and a `*`
on each cell where a model's fused output (mean over the seeds) is below its own better unimodal
branch. It writes robustness_<modality>.json (every variant so far), and per variant
robustness_<variant>_<modality>.csv, .md and .png (CCC against level per kind) under --out. The
scores are cached per corrupted modality, so `--modality audio` on trained runs only predicts.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
RECOMMENDED_CONFIG = REPO / "configs" / "cold_reliable.yaml"
BASELINES = ("audio", "visual", "feature_fusion", "prediction_fusion", "context_fusion", "transformer")
RECOMMENDED = "cold_recommended"
MODELS = BASELINES + ("cold_paper", RECOMMENDED)
KINDS = ("noise", "zeros", "swap", "frozen", "drift", "desync", "dropout")
LEVELS = (0.25, 0.5, 0.75)
SHORT = {"feature_fusion": "feature", "prediction_fusion": "prediction", "context_fusion": "context"}


def model_overrides(name: str) -> dict:
    """The model section of one table row: an architecture of `ARCHITECTURES` or a COLD setting."""
    if name == "cold_paper":
        return {"model": {"name": "cold_fusion"}}
    if name == RECOMMENDED:
        from pipelines.config import files as config_lib
        from pipelines.config.merging import deep_update

        return deep_update({"model": {"name": "cold_fusion"}}, config_lib.load_file(RECOMMENDED_CONFIG))
    return {"model": {"name": name}}


def overrides_of(variant: str, name: str) -> dict:
    """The corpus and the small model of `weight_tracking.py --held-out-kinds`, then the row's model."""
    import weight_tracking

    from pipelines.config.merging import deep_update

    return deep_update(weight_tracking.kind_overrides(variant, "paper", ()), model_overrides(name))


def conditions(kinds, levels) -> list:
    """[(column name, kind, level)]: clean first, then every kind at each level (level by level)."""
    return [("clean", None, 0.0)] + [(f"{kind} {level:.0%}", kind, level) for level in levels for kind in kinds]


def scores_of(run_dir: Path, modality: str, kinds, levels) -> dict:
    """{column: {"fused", and where the model has branches "audio", "visual" and "ceiling": CCC
    mean}} of one run on its test partition; kept in run_dir (only the missing figures are predicted).
    "ceiling": the fused output on the intact frames and the other modality's branch on the
    corrupted ones, what a weight of exactly 0 on every corrupted frame and nothing else would give."""
    from pipelines.core.io_utils import read_json, write_json_atomic

    path = run_dir / f"robustness_{modality}.json"
    done = read_json(path) if path.is_file() else {}
    todo = [
        c
        for c in conditions(kinds, levels)
        if c[0] not in done or (c[1] is not None and "audio" in done[c[0]] and "ceiling" not in done[c[0]])
    ]
    if not todo:
        return done
    import keras
    from _common import load_run

    from pipelines.data import corrupt
    from pipelines.evaluation import scoring

    infer, recordings = load_run(run_dir, "test")
    hop = float(recordings[0].get("hop") or 0.1)
    for column, kind, level in todo:
        inputs = (
            recordings
            if kind is None
            else corrupt.corrupt_recordings(recordings, modality, level, mode=kind, seed=0, hop=hop)
        )
        predictions = scoring.predict_recordings(infer, inputs)
        scores, _ = scoring.score_partition(predictions, task="regression")
        done[column] = {("fused" if branch == "av" else branch): row["ccc_mean"] for branch, row in scores.items()}
        if kind is not None and "audio" in done[column]:
            ceiling, _ = scoring.score_partition(perfect_weighting(predictions, modality), task="regression")
            done[column]["ceiling"] = ceiling["av"]["ccc_mean"]
    keras.backend.clear_session()
    write_json_atomic(path, done)
    return done


def perfect_weighting(predictions, modality: str) -> list:
    """The predictions with the fused output replaced by the other modality's branch on the frames
    where `modality` is corrupted (`<modality>_corrupted_eval`)."""
    other = "audio" if modality == "visual" else "visual"
    out = []
    for recording in predictions:
        flags = np.asarray(recording[f"{modality}_corrupted_eval"], bool)
        outputs = dict(recording["outputs"])
        for dimension in ("valence", "arousal"):
            outputs[dimension] = np.where(flags, outputs[f"{other}_{dimension}"], outputs[dimension])
        out.append({**recording, "outputs": outputs})
    return out


# --------------------------------------------------------------------------- the table (pure helpers)


def relative_gain(value: float, reference: float) -> float:
    """(value - reference) / |reference|; NaN when the reference is 0 or not finite."""
    if not np.isfinite(reference) or reference == 0 or not np.isfinite(value):
        return float("nan")
    return float((value - reference) / abs(reference))


def summarize(runs: dict, columns, baselines=BASELINES, recommended=RECOMMENDED) -> dict:
    """runs: {model: [per-seed {column: {"fused", "audio"?, "visual"?}}]} -> per column and model the
    mean and std (ddof 0) of the fused CCC over the seeds, whether the mean fused CCC is below the
    mean of the model's better branch ("below"), how many seeds have fused < better branch
    ("below_seeds"); per column the best baseline (highest mean) and the recommended setting's gain."""
    out = {"models": {}, "best_baseline": {}, "gain": {}}
    for model, seeds in runs.items():
        cells = {}
        for column in columns:
            rows = [seed[column] for seed in seeds if column in seed]
            if not rows:
                continue
            fused = np.array([row["fused"] for row in rows])
            cell = {"mean": float(fused.mean()), "std": float(fused.std()), "seeds": len(rows)}
            if all("audio" in row and "visual" in row for row in rows):
                branch = np.array([max(row["audio"], row["visual"]) for row in rows])
                cell["best_branch"] = float(branch.mean())
                cell["below"] = bool(fused.mean() < branch.mean())
                cell["below_seeds"] = int((fused < branch).sum())
            if all("ceiling" in row for row in rows):
                cell["ceiling"] = float(np.mean([row["ceiling"] for row in rows]))
            cells[column] = cell
        out["models"][model] = cells
    for column in columns:
        candidates = {m: out["models"][m][column]["mean"] for m in baselines if column in out["models"].get(m, {})}
        if not candidates:
            continue
        best = max(candidates, key=candidates.get)
        out["best_baseline"][column] = best
        cold = out["models"].get(recommended, {}).get(column)
        if cold:
            out["gain"][column] = relative_gain(cold["mean"], candidates[best])
    return out


def _blocks(columns):
    """The columns in one block per level ("noise 50%" -> "50%"), clean with the first."""
    blocks = {}
    for column in columns:
        blocks.setdefault(column.split()[-1], []).append(column)
    parts = [part for key, part in blocks.items() if key != "clean"] or [[]]
    return [blocks.get("clean", []) + parts[0], *parts[1:]]


def format_table(summary: dict, columns, *, markdown=False, recommended=RECOMMENDED) -> str:
    """The summary as text or as Markdown, one block of columns per level; below the models the
    recommended setting's gain, the best baseline and the recommended setting's perfect-weighting
    ceiling."""
    models = list(summary["models"])
    mark = "\\*" if markdown else "*"  # a bare * could open emphasis in Markdown

    def cell(model, column):
        entry = summary["models"][model].get(column)
        if entry is None:
            return "-"
        return f"{entry['mean']:.3f}±{entry['std']:.3f}" + (mark if entry.get("below") else "")

    def gain(column):
        value = summary["gain"].get(column, float("nan"))
        return f"{value:+.1%}" if np.isfinite(value) else "-"

    def best(column):
        name = summary["best_baseline"].get(column, "-")
        return SHORT.get(name, name)

    def ceiling(column):
        entry = summary["models"].get(recommended, {}).get(column, {})
        return f"{entry['ceiling']:.3f}" if "ceiling" in entry else "-"

    extra = [(f"gain of {recommended}", gain), ("best baseline", best), (f"ceiling of {recommended}", ceiling)]
    lines = []
    for part in _blocks(list(columns)):
        rows = [[model] + [cell(model, c) for c in part] for model in models]
        rows += [[title] + [fn(c) for c in part] for title, fn in extra]
        if markdown:
            lines.append("| model | " + " | ".join(part) + " |")
            lines.append("| --- |" + " --- |" * len(part))
            lines += ["| " + " | ".join(row) + " |" for row in rows]
        else:
            width = max(len(r[0]) for r in rows)
            lines.append(f"{'model':<{width}}" + "".join(f"{c:>15}" for c in part))
            lines.append("-" * (width + 15 * len(part)))
            lines += [f"{row[0]:<{width}}" + "".join(f"{c:>15}" for c in row[1:]) for row in rows]
        lines.append("")
    marked = {
        model: (
            sum(e.get("below", False) for e in cells.values()),
            sum(e.get("below_seeds", 0) for e in cells.values()),
        )
        for model, cells in summary["models"].items()
        if any("below" in e for e in cells.values())
    }
    n = len(columns)
    lines.append(
        f"{mark} fused output below the model's own better unimodal branch (means over the seeds); cells marked: "
        + ", ".join(f"{m} {cells}/{n} (seed-cells {seeds})" for m, (cells, seeds) in marked.items())
    )
    return "\n".join(lines)


def write_csv(summary: dict, columns, path: Path) -> None:
    from pipelines.core.io_utils import write_text_atomic

    lines = ["model,condition,mean,std,seeds,best_branch,below"]
    for model, cells in summary["models"].items():
        for column in columns:
            e = cells.get(column)
            if e:
                lines.append(
                    f"{model},{column},{e['mean']:.4f},{e['std']:.4f},{e['seeds']},"
                    f"{e.get('best_branch', float('nan')):.4f},{int(e.get('below', False))}"
                )
    write_text_atomic(path, "\n".join(lines) + "\n")


def plot(summary: dict, kinds, levels, title: str, path: Path, recommended=RECOMMENDED) -> None:
    """CCC against the corrupted share per kind: COLD's two settings and the best baseline per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines.core.io_utils import save_figure_atomic

    x = [0.0, *levels]
    fig, axes = plt.subplots(1, len(kinds), figsize=(2.6 * len(kinds), 2.8), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        columns = ["clean"] + [f"{kind} {level:.0%}" for level in levels]
        for model, style in ((recommended, "o-"), ("cold_paper", "s--")):
            cells = summary["models"].get(model)
            if cells and all(c in cells for c in columns):
                ax.errorbar(
                    x, [cells[c]["mean"] for c in columns], [cells[c]["std"] for c in columns], fmt=style, label=model
                )
        best = [summary["best_baseline"].get(c) for c in columns]
        if all(best):
            values = [summary["models"][b][c]["mean"] for b, c in zip(best, columns)]
            ax.plot(x, values, "k:", marker="^", label="best baseline")
        ax.set_title(kind)
        ax.set_xlabel("share corrupted")
    axes[0][0].set_ylabel("CCC (test)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variants",
        default="realistic,simple",
        help="comma-separated of realistic, simple (default both, realistic first)",
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    parser.add_argument("--models", default="all", help=f"comma-separated of {', '.join(MODELS)}, or all (default)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated corruption kinds (default all)")
    parser.add_argument(
        "--levels",
        default=",".join(f"{x:g}" for x in LEVELS),
        help="comma-separated shares of frames corrupted (default 0.25,0.5,0.75)",
    )
    parser.add_argument(
        "--modality", default="visual", choices=("visual", "audio"), help="the corrupted modality (default visual)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: the synthetic config's")
    parser.add_argument(
        "--out",
        default="bench_runs/robustness_table",
        help="run directories and results (default bench_runs/robustness_table)",
    )
    parser.add_argument("--no-train", action="store_true", help="tabulate the finished runs only, train nothing")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.variants = args.variants.split(",")
    args.models = list(MODELS) if args.models == "all" else args.models.split(",")
    args.kinds = args.kinds.split(",")
    args.levels = [float(x) for x in args.levels.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    for values, known, what in (
        (args.variants, ("realistic", "simple"), "variant"),
        (args.models, MODELS, "model"),
        (args.kinds, KINDS, "kind"),
    ):
        unknown = [v for v in values if v not in known]
        if unknown:
            parser.error(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not all(0.0 < level <= 1.0 for level in args.levels):
        parser.error(f"--levels must be in (0, 1], got {args.levels}")
    return args


def main(argv=None):
    args = parse_args(argv)
    import time

    import weight_tracking
    from _common import train_synthetic

    from pipelines.core.io_utils import write_json_atomic

    out = Path(args.out)
    columns = [c[0] for c in conditions(args.kinds, args.levels)]
    results = {}
    for variant in args.variants:
        runs = {}
        for model in args.models:
            overrides = overrides_of(variant, model)
            for seed in args.seeds:
                run_dir = weight_tracking.run_dir_for(out / variant, model, overrides, seed, args.epochs)
                if not (run_dir / "model.keras").is_file():
                    if args.no_train:
                        continue
                    start = time.perf_counter()
                    train_synthetic(overrides, seed, args.epochs, run_dir)
                    print(f"{variant} {model} seed {seed}: trained in {time.perf_counter() - start:.0f} s", flush=True)
                scores = scores_of(run_dir, args.modality, args.kinds, args.levels)
                runs.setdefault(model, []).append({c: scores[c] for c in columns})
                print(
                    f"{variant} {model} seed {seed}: clean {scores['clean']['fused']:.3f}, "
                    + ", ".join(f"{c} {scores[c]['fused']:.3f}" for c in columns[1:4])
                    + ", ...",
                    flush=True,
                )
        if not runs:
            continue
        summary = summarize(runs, columns)
        seeds = sorted({len(v) for v in runs.values()})
        title = (
            f"{variant} corpus, test partition, {args.modality} corrupted; CCC (mean of valence and arousal, fused "
            f"output), mean±std over {'/'.join(map(str, seeds))} seeds"
        )
        print(f"\n{title}\n\n{format_table(summary, columns)}\n", flush=True)
        from pipelines.core.io_utils import write_text_atomic

        stem = out / f"robustness_{variant}_{args.modality}"
        write_text_atomic(stem.with_suffix(".md"), f"{title}\n\n{format_table(summary, columns, markdown=True)}\n")
        write_csv(summary, columns, stem.with_suffix(".csv"))
        plot(summary, args.kinds, args.levels, title, stem.with_suffix(".png"))
        results[variant] = {"runs": runs, "summary": summary}
    # Variants tabulated by an earlier invocation stay in the file unless this one replaced them.
    path = out / f"robustness_{args.modality}.json"
    previous = json.loads(path.read_text())["variants"] if path.is_file() else {}
    payload = {"modality": args.modality, "columns": columns, "variants": {**previous, **results}}
    write_json_atomic(path, payload)


if __name__ == "__main__":
    main()
