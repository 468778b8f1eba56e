"""Training stability of every model at its defaults: per-epoch training CCC, global gradient
norm, prediction spread and tanh saturation, over seeds.

    python bench/stability.py [--models all] [--seeds 0,1,2] [--epochs 3] [--config FILE]
                              [--set model.gru_units=256 --set training.clipnorm=0] [--out FILE.jsonl]

Each (model, seed) trains with the trainer's own model-building function
(`pipelines.training.setup.build_compiled_model`) and data (`make_training_inputs`), with
`pipelines.training.stability.GradientDiagnostics` measuring one fixed training batch after every epoch.
A model "rises" for a seed when its training CCC at the last epoch is above epoch 1's and the
collapse detector stayed quiet. Results are appended to --out (one JSON line per model and seed),
so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pipelines.config import merging

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def make_config(config_file, overrides, model, seed, epochs):
    from pipelines.config import files as config_lib

    config = config_lib.load_file(config_lib.default_config_path("synthetic"))
    if config_file:
        config = merging.deep_update(config, config_lib.load_file(config_file))
    for item in overrides:
        key, _, value = item.partition("=")
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = parse_value(value)
    config["model"]["name"] = model
    config["training"]["seed"] = seed
    config["training"]["epochs"] = epochs
    return config_lib.validate(config)


def train_one(config):
    import keras

    from pipelines.runs import prepare
    from pipelines.training import setup as training_setup
    from pipelines.training.stability import CollapseGuard, GradientDiagnostics

    keras.utils.set_random_seed(int(config.training.seed))
    artifact_dir = prepare.prepare_artifacts(config, progress=False)
    inputs = training_setup.make_training_inputs(config, artifact_dir)
    model = training_setup.build_compiled_model(config, inputs.manifest, artifact_dir, inputs.steps_per_epoch)
    (batch,) = next(iter(inputs.train_ds.take(1)))
    diagnostics = GradientDiagnostics(batch, print_fn=lambda line: print(line, flush=True))
    guard = CollapseGuard(print_fn=lambda line: None)
    model.fit(inputs.train_ds, epochs=int(config.training.epochs), callbacks=[diagnostics, guard], verbose=0)
    keras.backend.clear_session()
    return diagnostics.records, guard.message


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--config", help="YAML over configs/synthetic.yaml (e.g. a corpus variant)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. model.gru_units=256 (repeatable)",
    )
    parser.add_argument("--out", default="bench_runs/stability.jsonl")
    args = parser.parse_args()

    import numpy as np

    from pipelines.data import features

    models = features.MODEL_NAMES if args.models == "all" else args.models.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    setting = {"config": args.config, "set": sorted(args.set), "epochs": args.epochs}
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            row = json.loads(line)
            if row["setting"] == setting:
                done[(row["model"], row["seed"])] = row
    for name in models:
        for seed in seeds:
            if (name, seed) in done:
                continue
            records, message = train_one(make_config(args.config, args.set, name, seed, args.epochs))
            row = {"setting": setting, "model": name, "seed": seed, "records": records, "collapse": message}
            with open(out, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            done[(name, seed)] = row
            print(f"done: {name} seed {seed}", flush=True)

    print(f"\nsetting: {setting}")
    print(
        f"{'model':<18} {'seed':>4}  training CCC per epoch{'':<10} {'grad norm per epoch':<28} "
        f"{'pred std (last)':>15} {'saturated (last)':>16} rises"
    )
    all_rise = True
    for name in models:
        for seed in seeds:
            row = done[(name, seed)]
            cccs = [r["ccc_mean"] for r in row["records"]]
            norms = [r["grad_norm"] for r in row["records"]]
            rises = bool(cccs[-1] > cccs[0] and row["collapse"] is None)
            all_rise &= rises
            print(
                f"{name:<18} {seed:>4}  {' '.join(f'{c:6.3f}' for c in cccs):<32} "
                f"{' '.join(f'{n:8.2f}' for n in norms):<28} {row['records'][-1]['pred_std']:>15.3f} "
                f"{row['records'][-1]['saturated']:>16.3f} {'yes' if rises else 'NO'}"
            )
    print(f"\nevery model and seed rises: {'yes' if all_rise else 'NO'}")
    mean_last = {name: float(np.mean([done[(name, s)]["records"][-1]["ccc_mean"] for s in seeds])) for name in models}
    print("mean training CCC at the last epoch: " + ", ".join(f"{k} {v:.3f}" for k, v in mean_last.items()))


if __name__ == "__main__":
    main()
