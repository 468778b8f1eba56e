"""Ablation of the COLD loss terms (paper Table 8): `python -m pipelines.ablate --dataset synthetic`.

Trains COLD fusion once per variant, each the same model with some loss weights set to 0:

    all             the config's lambdas (all constraints)
    no_intramodal   lambda_co_visual = lambda_co_audio = 0
    no_crossmodal   lambda_co_cross = 0
    no_regulariser  lambda_regu = 0
    none            all four lambdas 0

Each (variant, seed) is its own `pipelines.train` run directory under `--output-dir`, so running the
same command again resumes where it stopped and reuses finished runs. Prints CCC per dimension and
their mean on devel and test (macro F1 for classification) and writes `ablation.json`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipelines.config.settings import RunConfig, as_run_config
from pipelines.core.errors import ConfigError
from pipelines.core.io_utils import finite_or_none, write_json_atomic
from pipelines.data import features

LAMBDAS = ("lambda_co_visual", "lambda_co_audio", "lambda_co_cross", "lambda_regu")
# name -> (row title, lambdas set to 0)
VARIANTS = {
    "all": ("all constraints", ()),
    "no_intramodal": ("no intramodal", ("lambda_co_visual", "lambda_co_audio")),
    "no_crossmodal": ("no crossmodal", ("lambda_co_cross",)),
    "no_regulariser": ("no regulariser", ("lambda_regu",)),
    "none": ("none", LAMBDAS),
}
COLUMNS = {
    "regression": ("ccc_valence", "ccc_arousal", "ccc_mean"),
    "classification": ("f1_valence", "f1_arousal", "f1_macro"),
}


def variant_config(config, variant: str, seed: int) -> RunConfig:
    """The run config of one variant (a new RunConfig; `config` may be a mapping): COLD fusion with the
    variant's lambdas at 0 and the given seed."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown ablation variant {variant!r}; choose from {', '.join(VARIANTS)}")
    model = {"name": "cold_fusion", **{key: 0.0 for key in VARIANTS[variant][1]}}
    return as_run_config(config).updated({"model": model, "training": {"seed": int(seed)}})


def run(config, output_dir, *, seeds=(0,), variants=tuple(VARIANTS), progress=False, verbose=True) -> dict:
    """Trains (or reuses) every variant and seed; returns the table written to `ablation.json`.

    Args:
        config: RunConfig (as `pipelines.config.flags.build_config` makes it, or a mapping parsed into
            one); its lambdas are the "all constraints" row.
        output_dir: folder holding one run directory per variant and seed (`<variant>_seed<seed>`).
        seeds: iterable of ints. Defaults to (0,).
        variants: names from `VARIANTS`. Defaults to all five, in the paper's order.
        progress: bool. Progress bars while training. Defaults to False.
        verbose: bool. Print the table. Defaults to True.

    Returns:
        dict: `task`, `seeds`, and `variants`: {name: {title, lambdas, runs, scores}} with scores
        {partition: {metric: mean over seeds}} (+ `<metric>_std` with more than one seed).
    """
    from pipelines.training import train

    output_dir = Path(output_dir)
    variants = list(variants)
    for name in variants:
        if name not in VARIANTS:
            raise ConfigError(f"unknown ablation variant {name!r}; choose from {', '.join(VARIANTS)}")
    seeds = [int(seed) for seed in seeds]
    if not seeds or not variants:
        raise ConfigError("the ablation needs at least one seed and one variant")
    config = as_run_config(config)
    task = config.task
    table = {"task": task, "seeds": seeds, "variants": {}}
    for name in variants:
        runs, metrics = [], []
        for seed in seeds:
            run_config = variant_config(config, name, seed)
            run_dir = output_dir / f"{name}_seed{seed}"
            if verbose:
                lambdas = ", ".join(f"{k}={getattr(run_config.model, k, 0.0):g}" for k in LAMBDAS)
                print(f"\n== {VARIANTS[name][0]} (seed {seed}): {lambdas} -> {run_dir}", flush=True)
            metrics.append(train.run(run_config, run_dir, progress=progress))
            runs.append(str(run_dir))
            import keras

            keras.backend.clear_session()
        table["variants"][name] = {
            "title": VARIANTS[name][0],
            "lambdas": {k: float(getattr(variant_config(config, name, seeds[0]).model, k, 0.0)) for k in LAMBDAS},
            "runs": runs,
            "scores": _average(metrics, task),
        }
    write_json_atomic(output_dir / "ablation.json", finite_or_none(table))
    if verbose:
        print("\n" + format_table(table))
    return table


def _average(metrics_list, task) -> dict:
    """Mean (and std over seeds) of the fused branch's scores per partition."""
    scores = {}
    for partition in (features.DEVEL, features.TEST):
        rows = [m[partition]["av"] for m in metrics_list if partition in m and "av" in m[partition]]
        if not rows:
            continue
        entry = {}
        for key in COLUMNS[task]:
            values = np.array([row[key] for row in rows if key in row], np.float64)
            if values.size == 0:
                continue
            entry[key] = float(values.mean())
            if len(metrics_list) > 1:
                entry[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else float("nan")
        scores[partition] = entry
    return scores


def format_table(table) -> str:
    """Paper Table 8: one row per variant, the fused scores on devel and test."""
    columns = COLUMNS[table["task"]]
    partitions = [
        p for p in (features.DEVEL, features.TEST) if any(p in v["scores"] for v in table["variants"].values())
    ]
    short = {key: key.split("_", 1)[1] for key in columns}
    header = f"{'variant':<16} " + "  ".join(
        " ".join(f"{partition + ' ' + short[key]:>15}" for key in columns) for partition in partitions
    )
    seeds = table["seeds"]
    lines = [
        f"COLD fusion ablation ({'CCC' if table['task'] == 'regression' else 'macro F1'}, fused output; "
        f"{'seed' if len(seeds) == 1 else 'mean ± std over seeds'} {', '.join(map(str, seeds))})",
        header,
        "-" * len(header),
    ]
    for variant in table["variants"].values():
        cells = []
        for partition in partitions:
            row = variant["scores"].get(partition, {})
            for key in columns:
                value, spread = row.get(key), row.get(f"{key}_std")
                if value is None or not math.isfinite(value):
                    text = "-"
                elif spread is not None and math.isfinite(spread):
                    text = f"{value:.3f} ± {spread:.3f}"
                else:
                    text = f"{value:.4f}"
                cells.append(f"{text:>15}")
            cells.append("")
        lines.append(f"{variant['title']:<16} " + " ".join(cells).rstrip())
    return "\n".join(lines)
