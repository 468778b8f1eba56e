"""Draws the documentation's explanatory figures into docs/figures/ (run by hand, not by the build).

    python docs/_scripts/make_figures.py                       # the diagrams and the benchmark chart
    python docs/_scripts/make_figures.py --run-dir RUN         # also the calibration figure of a run

* `layers.png`: the packages and what may import what (the rules of `tests/test_structure.py`);
* `data_path.png`: corpus -> ExampleGen -> StatisticsGen -> Transform -> input pipeline -> model;
* `held_out_kinds_auc.png`: the visual-weight AUC per held-out corruption kind, from the table of
  `bench/weight_tracking.py --held-out-kinds` quoted in bench/README.md (realistic corpus, 3 seeds);
* `uncertainty_calibration.png` (with `--run-dir`): the run's validation frames, |error| against the
  uncertainty score of the fused valence, the isotonic map and the 90% interval half-width.

`docs/figures/predict_timeline.png` is a `pipelines.predict --plot` figure of a synthetic test recording
renamed `kitchen interview` whose visual `present` column is 0 from 30 s to 45 s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIGURES = REPO / "docs" / "figures"


def _box(ax, x, y, w, h, title, body="", color="#e8eaf6", edge="#3f51b5", body_offset=0.055):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.015", fc=color, ec=edge, lw=1.2))
    ax.text(x + 0.012, y + h - 0.012, title, ha="left", va="top", fontsize=10, fontweight="bold")
    if body:
        ax.text(
            x + 0.012,
            y + h - body_offset,
            body,
            ha="left",
            va="top",
            fontsize=7.6,
            family="monospace",
            linespacing=1.35,
        )


def _arrow(ax, start, end, text="", color="#333333", style="-|>"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color, lw=1.2))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.008, (start[1] + end[1]) / 2, text, fontsize=7.5, color=color, va="center")


def layers():
    fig, ax = plt.subplots(figsize=(11, 9.4))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    rows = [
        (
            "8  commands: python -m pipelines.<name>, cold-keras <name>",
            "pipelines/<name>.py: a thin module that runs its main(); flags are parsed before TensorFlow is imported",
            "#fff3e0",
            "#ef6c00",
            0.07,
        ),
        (
            "7  serving/ and experiments/",
            "serving: export  predict  client          experiments: compare  ensemble  ablate  benchmark",
            "#fbe9e7",
            "#bf360c",
            0.06,
        ),
        ("6  training/", "setup  train  tune  lr_finder  callbacks  stability", "#e3f2fd", "#1565c0", 0.06),
        (
            "5  evaluation/",
            "scoring  evaluate  uncertainty  conformal  figures  fusion_guard",
            "#e1f5fe",
            "#0277bd",
            0.06,
        ),
        ("4  runs/", "prepare  folders  checks  backup", "#f3e5f5", "#6a1b9a", 0.06),
        (
            "3  components/ (TFX-style)",
            "example_gen  statistics_gen  transform  input_pipeline  extract",
            "#ede7f6",
            "#4527a0",
            0.06,
        ),
        (
            "2  data: config/  data/  datasets/  media/",
            "config: settings (RunConfig)  files  flags  augmentation     data: features  records  labels  corrupt\n"
            "augment  raw_augment  raw_inputs  label_delay     datasets: open_corpus, avec, iemocap, synthetic*\n"
            "media: decoding, openSMILE feature sets, face crops, OpenFace import (behind extract)",
            "#e8f5e9",
            "#2e7d32",
            0.1,
        ),
        ("1  core/", "errors  cli  io_utils  pause  quiet", "#fffde7", "#f9a825", 0.06),
        (
            "0  cold_keras: the library (no files; never imports pipelines)",
            "names hyperparameters layers/ losses metrics models/ (build_model, inference_model, ARCHITECTURES) "
            "backbones/",
            "#eceff1",
            "#455a64",
            0.06,
        ),
    ]
    y = 0.97
    gap = 0.035
    for i, (title, body, color, edge, height) in enumerate(rows):
        y -= height
        _box(ax, 0.02, y, 0.96, height, title, body, color=color, edge=edge)
        if i < len(rows) - 1:
            _arrow(ax, (0.9, y), (0.9, y - gap), "imports")
        y -= gap
    ax.text(
        0.02,
        y + 0.01,
        "A module imports only from its own layer or the ones below (every pipelines module may use cold_keras).\n"
        "tests/test_structure.py checks, from the source, function-level imports included: no import cycle anywhere,\n"
        "no import points to a higher layer (LAYERS), nothing imports a command, cold_keras imports no pipelines,\n"
        "no module uses another's _private names; tests/test_docs.py checks docs/architecture.md against LAYERS.",
        ha="left",
        va="top",
        fontsize=8.5,
    )
    fig.savefig(FIGURES / "layers.png", dpi=90, bbox_inches="tight")
    plt.close(fig)


def data_path():
    fig, ax = plt.subplots(figsize=(12, 2.8))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    steps = [
        ("corpus folder", "labels/\naudio/ visual/\n(AVEC, IEMOCAP,\nsynthetic, yours)", "#eceff1"),
        ("ExampleGen", "field checks\nTFRecord shards\nmanifest.json", "#e8f5e9"),
        ("StatisticsGen", "statistics.json\nschema.json\nanomalies.json", "#e8f5e9"),
        ("Transform", "transform.json\n(mean, variance\nof train)", "#e8f5e9"),
        ("input pipeline", "30 s windows\naugmentation\nbatches + mask\n+ presence flags", "#e3f2fd"),
        ("trainer", "model.keras\nmetrics.json\ncalibration\npredictions/", "#fff3e0"),
    ]
    width, gap = 0.13, 0.04
    for i, (title, body, color) in enumerate(steps):
        x = 0.01 + i * (width + gap)
        _box(ax, x, 0.34, width, 0.6, title, body, color=color, body_offset=0.17)
        if i:
            _arrow(ax, (x - gap, 0.64), (x, 0.64))
    ax.text(
        0.01,
        0.2,
        "$COLD_KERAS_CACHE/artifacts/<dataset>-<key>/ holds the middle three; each step reuses what is up to date\n"
        "and can be run alone (python -m pipelines.example_gen / statistics_gen / transform / prepare).",
        fontsize=8.5,
    )
    fig.savefig(FIGURES / "data_path.png", dpi=90, bbox_inches="tight")
    plt.close(fig)


# bench/README.md, "weight_tracking.py --held-out-kinds", realistic corpus: AUC w_V, mean over 3 seeds.
HELD_OUT_AUC = {
    "paper": [0.503, 0.508, 0.495, 0.485, 0.494, 0.611],
    "atypicality, untrained (cold_reliable.yaml)": [0.999, 0.502, 0.999, 0.480, 0.497, 0.999],
    "atypicality, trained on the other kinds": [0.999, 0.480, 0.999, 0.486, 0.467, 0.999],
}
KINDS = ("noise", "swap", "frozen", "drift", "desync", "dropout")


def held_out_kinds():
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.26
    for i, (label, values) in enumerate(HELD_OUT_AUC.items()):
        ax.bar([k + (i - 1) * width for k in range(len(KINDS))], values, width, label=label)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.text(-0.45, 0.51, "chance", fontsize=8, color="grey", ha="left", va="bottom")
    ax.set_xticks(range(len(KINDS)), KINDS)
    ax.set_ylim(0.3, 1.05)
    ax.set_ylabel("AUC of (1 - w_V)")
    ax.set_xlabel("corruption kind held out of training (50% of the visual frames, test partition)")
    ax.legend(fontsize=8, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.18), frameon=False)
    fig.savefig(FIGURES / "held_out_kinds_auc.png", dpi=90, bbox_inches="tight")
    plt.close(fig)


def calibration(run_dir):
    import numpy as np

    sys.path.insert(0, str(REPO))
    from pipelines.components import input_pipeline
    from pipelines.evaluation import uncertainty, uncertainty_scores
    from pipelines.runs import folders as runs

    config, artifact_dir, _ = runs.open_run(run_dir)
    model, _ = runs.load_inference_model(run_dir)
    recordings = list(input_pipeline.iter_recordings(artifact_dir, config.training.validation_partition))
    predictions = uncertainty_scores.predictor("native")(model, recordings)
    calibration = uncertainty.Calibration.load(run_dir)
    key = "av_valence"
    errors, _, _ = uncertainty.abs_errors(predictions, key)
    scores = np.concatenate([uncertainty_scores.uncertainty_scores(p["outputs"])[key] for p in predictions])
    table = calibration.to_json()["maps"][key]
    knots_x, knots_y, scale = np.asarray(table["x"]), np.asarray(table["y"]), table["scale"]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.scatter(scores, errors, s=3, alpha=0.25, color="tab:blue", label="validation frames: |label - prediction|")
    ax.plot(knots_x, knots_y, color="tab:orange", lw=2, label="isotonic map g(u): mean |error| at score u")
    ax.plot(
        knots_x,
        1.645 * scale * knots_y,
        color="tab:green",
        lw=2,
        ls="--",
        label=f"90% half-width 1.645 x std, std = {scale:.2f} g(u)",
    )
    ax.set_xlabel("uncertainty score u of the fused output (w_A/||sigma_A|| + w_V/||sigma_V||)")
    ax.set_ylabel("valence, label units")
    ax.set_ylim(0, max(0.8, float(np.quantile(errors, 0.995))))
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(FIGURES / "uncertainty_calibration.png", dpi=90, bbox_inches="tight")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="a finished synthetic run: also draw its calibration figure")
    args = parser.parse_args()
    layers()
    data_path()
    held_out_kinds()
    if args.run_dir:
        calibration(args.run_dir)


if __name__ == "__main__":
    main()
