"""Equal-budget comparison: `python -m pipelines.benchmark --dataset synthetic --models all --trials 3 --seeds 0,1,2`.

For every model of `--models` the protocol spends the same budget:

1. its default configuration trained with every seed (`runs/<model>/default/seed<S>`);
2. a random search (`pipelines.tune`, KerasTuner) of `--trials` trials over the same space for every
   model: the learning rate (log-uniform in [1e-4, 1e-2]) for all, plus COLD fusion's four loss
   weights (log-uniform in [1e-5, 1e5]), with the first seed (`tuning/<model>/`);
3. the best configuration, chosen on the validation partition among the trials *and the default*
   (so the protocol can never pick something that scored worse than the default there), trained
   with every seed (`runs/<model>/tuned/seed<S>`; the default runs are reused when the default wins).

It then prints, per model, the test CCC (mean over valence and arousal) of the default and the best
configuration as mean ± std over the seeds, and paired t-tests over the seeds of each model's best
configuration against COLD fusion's (`pipelines.experiments.compare.paired_test`, the paper's Table 10), and
writes `results.json` and `comparison.png` (mean ± std bars). Every step is a trainer run or a tuner
search with its own directory, so running the same command again resumes where it stopped.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from pipelines.config import files as config_lib
from pipelines.config.settings import RunConfig, as_run_config
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import finite_or_none, read_json, save_figure_atomic, write_json_atomic
from pipelines.data import features
from pipelines.training import search_space, train, tune
from pipelines.training import setup as training_setup

REFERENCE = "cold_fusion"


def model_config(config, model: str, seed: int, hparams=None) -> RunConfig:
    """A new resolved config with the model, the seed and (optionally) tuned values in place."""
    out = as_run_config(config).updated({"model": {"name": model}, "training": {"seed": int(seed)}})
    if hparams:
        out = search_space.trial_config(out, hparams)
    return out


def best_validation(run_dir: Path, monitor: str) -> float:
    """The best per-epoch validation score of a finished run (what the tuner scores a trial by)."""
    best = train.best_so_far(run_dir / "history.csv", monitor)
    if best is None:
        raise DataError(f"no finite {monitor} in the run's history", run_dir / "history.csv")
    return float(best)


def training_ccc_history(run_dir: Path) -> list:
    """Per-epoch training `ccc_mean` of a run (empty for classification)."""
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    with open(path) as handle:
        return [float(row["ccc_mean"]) for row in csv.DictReader(handle) if row.get("ccc_mean") not in (None, "")]


def test_score(run_dir: Path, partition: str, metric: str) -> float:
    metrics = read_json(run_dir / "metrics.json")
    if partition not in metrics:
        raise DataError(f"the run has no scores for partition {partition!r}", run_dir / "metrics.json")
    return float(metrics[partition]["av"][metric])


def _train(config, run_dir, progress):
    import keras

    train.run(config, run_dir, progress=progress)
    keras.backend.clear_session()


def run(config, output_dir, *, models, trials=3, seeds=(0, 1, 2), partition=features.TEST, progress=True) -> dict:
    """Runs (or resumes) the protocol (`config`: a RunConfig, or a mapping parsed into one); returns the
    results written to `results.json`."""
    from tqdm import tqdm

    config = as_run_config(config)
    output_dir = Path(output_dir)
    models = list(dict.fromkeys(models))
    unknown = [m for m in models if m not in features.MODEL_NAMES]
    if unknown:
        raise ConfigError(
            f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(features.MODEL_NAMES)}"
        )
    seeds = [int(s) for s in seeds]
    if int(trials) < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    task = config.task
    monitor = training_setup.monitor_name(task)
    metric = "ccc_mean" if task == "regression" else "f1_macro"
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "models": models,
        "trials": int(trials),
        "seeds": seeds,
        "partition": partition,
        "config": config_lib.comparable_settings(config),
    }
    saved = output_dir / "protocol.json"
    if saved.exists() and read_json(saved) != settings:
        old = read_json(saved)
        changed = config_lib.first_difference(old, settings)
        raise ConfigError(
            f"holds a protocol with different settings ({changed}); pass another --output-dir", output_dir
        )
    write_json_atomic(saved, settings)

    results = {"settings": settings, "metric": metric, "partition": partition, "models": {}}
    bar = tqdm(total=len(models) * (2 * len(seeds) + 1), desc="benchmark", unit="job", disable=not progress)
    for model in models:
        entry = {}
        default_dirs = [output_dir / "runs" / model / "default" / f"seed{seed}" for seed in seeds]
        for seed, run_dir in zip(seeds, default_dirs):
            bar.set_postfix_str(f"{model} default seed {seed}")
            _train(model_config(config, model, seed), run_dir, progress=False)
            bar.update(1)
        bar.set_postfix_str(f"{model} search")
        search = tune.run(
            model_config(config, model, seeds[0]),
            output_dir / "tuning" / model,
            tuner="random",
            max_trials=int(trials),
            tune_learning_rate=True,
            progress=False,
        )
        import keras

        keras.backend.clear_session()
        bar.update(1)
        default_val = best_validation(default_dirs[0], monitor)
        best = search["best"]
        tuned_wins = best is not None and best["score"] > default_val
        entry["default_validation"] = default_val
        entry["search_best_validation"] = None if best is None else best["score"]
        entry["chosen"] = "tuned" if tuned_wins else "default"
        entry["hparams"] = best["hyperparameters"] if tuned_wins else {}
        tuned_dirs = default_dirs
        if tuned_wins:
            tuned_dirs = [output_dir / "runs" / model / "tuned" / f"seed{seed}" for seed in seeds]
            for seed, run_dir in zip(seeds, tuned_dirs):
                bar.set_postfix_str(f"{model} tuned seed {seed}")
                _train(model_config(config, model, seed, best["hyperparameters"]), run_dir, progress=False)
                bar.update(1)
        else:
            bar.update(len(seeds))
        entry["default"] = [test_score(d, partition, metric) for d in default_dirs]
        entry["best"] = [test_score(d, partition, metric) for d in tuned_dirs]
        entry["default_training_ccc"] = [training_ccc_history(d) for d in default_dirs]
        entry["best_training_ccc"] = [training_ccc_history(d) for d in tuned_dirs]
        results["models"][model] = entry
        add_tests(results)
        write_json_atomic(output_dir / "results.json", finite_or_none(results))  # the models so far
    bar.close()

    add_tests(results)
    write_json_atomic(output_dir / "results.json", finite_or_none(results))
    plot(results, output_dir / "comparison.png")
    print(format_results(results))
    print(f"\nwritten: {output_dir / 'results.json'}, {output_dir / 'comparison.png'}")
    return results


def add_tests(results) -> None:
    """Paired t-tests over seeds of every model's best configuration against COLD fusion's."""
    from pipelines.experiments.compare import paired_test

    reference = results["models"].get(REFERENCE)
    for model, entry in results["models"].items():
        entry["test_vs_reference"] = (
            None if reference is None or model == REFERENCE else paired_test(entry["best"], reference["best"])
        )


def _spread(values):
    values = np.asarray(values, np.float64)
    std = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return f"{np.mean(values):.3f} ± {std:.3f}"


def format_results(results) -> str:
    """The comparison table: default and best configuration per model, and the tests against COLD."""
    settings = results["settings"]
    lines = [
        f"{results['metric']} on {results['partition']} over seeds {settings['seeds']} (mean ± std); "
        f"{settings['trials']} random-search trials per model; paired t-tests over seeds against {REFERENCE}",
        f"{'model':<18} {'default':>15} {'best config':>15} {'chosen':>8} {'mean(A-COLD)':>13} {'t':>8} "
        f"{'p':>8}  tuned values",
    ]
    for model, entry in results["models"].items():
        test = entry.get("test_vs_reference") or {}
        cells = [
            f"{test.get(k):>{w}.{d}f}"
            if isinstance(test.get(k), float) and math.isfinite(test.get(k))
            else f"{'-':>{w}}"
            for k, w, d in (("mean_difference", 13, 3), ("t", 8, 2), ("p", 8, 3))
        ]
        values = ", ".join(f"{k}={v:.3g}" for k, v in entry["hparams"].items()) or "-"
        lines.append(
            f"{model:<18} {_spread(entry['default']):>15} {_spread(entry['best']):>15} "
            f"{entry['chosen']:>8} {' '.join(cells)}  {values}"
        )
    return "\n".join(lines)


def plot(results, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["models"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 3.8))
    for offset, key, color in ((-0.2, "default", "0.7"), (0.2, "best", "tab:blue")):
        values = [np.asarray(results["models"][n][key], np.float64) for n in names]
        means = [v.mean() for v in values]
        stds = [v.std(ddof=1) if v.size > 1 else 0.0 for v in values]
        ax.bar(
            x + offset,
            means,
            0.4,
            yerr=stds,
            capsize=3,
            color=color,
            label="default config" if key == "default" else "best config (equal budget)",
        )
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel(f"{results['metric']} ({results['partition']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=90)
