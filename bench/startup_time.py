"""Start-up time of training and prediction: how long the first `fit` and the first `predict` take.

The first call of `fit` traces the training step into a TensorFlow graph (and `predict` its own
step), and TensorFlow optimises that graph before it first runs it; for small models and short runs
(the tests, a tuning trial, `--find-lr`) this is most of the time. Each model is built in a fresh
process, compiled with the trainer's optimiser (AdamW, cold_keras's when the checkout has one, with
weight decay 1e-4, global clipping at 1.0 and cosine decay with warm restarts; `--optimizer
constant` for Keras' AdamW at a constant 1e-3) and timed:

  import        importing TensorFlow, Keras and cold_keras.models
  build         build_model + compile
  first fit     the first `fit` of 2 steps (tracing the training step, optimising its graph, 2 steps)
  second fit    another 2-step `fit` (no tracing: what a step costs)
  first predict the first `predict_on_batch` of the inference model (tracing the prediction step)

`--predict-cli` also times what a user waits for: `python -m pipelines.predict` on one recording of a
tiny trained run, from a cold process (start to exit, wall seconds). The run is trained once into
`--work` (default /tmp/cold_keras_startup) and reused.

    python bench/startup_time.py [--models cold_fusion,context_fusion] [--repeats 3]
                                 [--units 4] [--frames 30] [--before DIR] [--optimizer trainer]
                                 [--predict-cli] [--work DIR]

Every figure is given as wall seconds and as process CPU seconds (what a shared machine disturbs
least). Models run alternately (A B A B ...), one process each, and the median over `--repeats` is
printed. `--before DIR` names another checkout (e.g. `git worktree add /tmp/before <commit>`) that
runs alternately with this one, model by model, so that both see the same machine load.
`python bench/step_profile.py --ops` splits the first fit into tracing and the first call.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
KEYS = ("import", "build", "first fit", "second fit", "first predict")


class _Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, times, key):
        times[key] = time.perf_counter() - self.wall
        times[f"{key} cpu"] = time.process_time() - self.cpu


def _optimizer(kind):
    import keras  # noqa: F401  (timed with the rest of the imports)

    if kind == "constant":
        return keras.optimizers.AdamW(1e-3)
    import cold_keras

    # A checkout from before cold_keras.optimizers has Keras' AdamW only (check the file: an editable
    # install of another checkout would otherwise supply the module).
    AdamW = keras.optimizers.AdamW
    if (Path(cold_keras.__file__).parent / "optimizers.py").is_file():
        from cold_keras.optimizers import AdamW
    schedule = keras.optimizers.schedules.CosineDecayRestarts(5e-3, first_decay_steps=100, t_mul=2.0)
    return AdamW(learning_rate=schedule, weight_decay=1e-4, global_clipnorm=1.0)


def measure(model_name, units, frames, repo, optimizer):
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(repo))
    times = {}
    clock = _Clock()
    import keras  # noqa: F401  (timed with the rest of the imports)
    import tensorflow as tf

    from cold_keras.models import build_model, inference_model

    clock.lap(times, "import")
    from _common import random_batch

    clock = _Clock()
    model = build_model(model_name, audio_dim=8, visual_dim=8, gru_units=units, latent_dim=units)
    model.compile(optimizer=_optimizer(optimizer))
    clock.lap(times, "build")
    batch = random_batch(4, frames, 8, 8)
    dataset = tf.data.Dataset.from_tensors((batch,)).repeat()
    for key in ("first fit", "second fit"):
        clock = _Clock()
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
        clock.lap(times, key)
    infer = inference_model(model)
    clock = _Clock()
    infer.predict_on_batch({k: batch[k] for k in ("audio", "visual", "mask")})
    clock.lap(times, "first predict")
    import cold_keras

    times["repo"] = str(Path(cold_keras.__file__).resolve().parents[1])
    times["optimizer"] = type(model.optimizer).__module__
    return times


TINY_RUN = {
    "synthetic": {"seed": 3, "num_train": 2, "num_devel": 1, "num_test": 1, "duration_seconds": 24.0},
    "model": {"gru_units": 4, "gru_layers": 1, "latent_dim": 4},
    "training": {"epochs": 1, "window_seconds": 6.0, "window_hop_seconds": 3.0, "batch_size": 4},
}


def predict_cli_times(work, repos, repeats):
    """{label: [wall seconds]} of `python -m pipelines.predict` on the one test recording of a tiny run."""
    import yaml

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "COLD_KERAS_CACHE": str(work / "cache")}
    run = work / "run"
    if not (run / "metrics.json").is_file():
        config = work / "tiny.yaml"
        config.write_text(yaml.safe_dump(TINY_RUN))
        command = [sys.executable, "-m", "pipelines.train", "--dataset", "synthetic", "--config", str(config)]
        command += ["--output-dir", str(run), "--quiet"]
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    corpus = next((work / "cache" / "synthetic").glob("*/synthetic.json")).parent
    times = {label: [] for label in repos}
    for index in range(repeats):
        for label, repo in repos.items():
            out = work / f"predictions_{label}_{index}"
            command = [sys.executable, "-m", "pipelines.predict", "--run-dir", str(run), "--data-dir", str(corpus)]
            command += ["--partition", "test", "--output-dir", str(out), "--overwrite", "--quiet"]
            start = time.perf_counter()
            subprocess.run(command, cwd=repo, env={**env, "PYTHONPATH": repo}, check=True, capture_output=True)
            times[label].append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cold_fusion,context_fusion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", type=int, default=4, help="GRU units and latent size (default 4, the tests')")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--before", metavar="DIR", help="another checkout, run alternately with this one")
    parser.add_argument("--optimizer", choices=("trainer", "constant"), default="trainer")
    parser.add_argument(
        "--predict-cli", action="store_true", help="also time python -m pipelines.predict on one recording"
    )
    parser.add_argument("--work", default="/tmp/cold_keras_startup", help="--predict-cli's tiny run and outputs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--repo", default=str(REPO), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.units, args.frames, args.repo, args.optimizer)))
        return

    import numpy as np

    models = args.models.split(",")
    repos = (
        {"after": str(REPO)} if not args.before else {"before": str(Path(args.before).resolve()), "after": str(REPO)}
    )
    results = {(m, label): [] for m in models for label in repos}
    for _ in range(args.repeats):
        for model in models:
            for label, repo in repos.items():
                command = [sys.executable, __file__, "--child", model, "--repo", repo, "--optimizer", args.optimizer]
                command += ["--units", str(args.units), "--frames", str(args.frames)]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                results[(model, label)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"median of {args.repeats} fresh processes; wall seconds / process CPU seconds")
    print(f"{'model':<16}{'code':<8}" + "".join(f"{k:>16}" for k in KEYS))
    for (model, label), runs in results.items():
        cells = ""
        for key in KEYS:
            wall = float(np.median([r[key] for r in runs]))
            cpu = float(np.median([r[f"{key} cpu"] for r in runs]))
            cells += f"{f'{wall:.2f} / {cpu:.2f}':>16}"
        print(f"{model:<16}{label:<8}{cells}")
    print("each run, first fit (wall / CPU s):")
    for (model, label), runs in results.items():
        values = ", ".join(f"{r['first fit']:.2f} / {r['first fit cpu']:.2f}" for r in runs)
        print(f"  {model} {label} ({runs[0]['repo']}, {runs[0]['optimizer']}): {values}")
    if args.predict_cli:
        print("python -m pipelines.predict, one recording, from a cold process (wall seconds):")
        for label, values in predict_cli_times(args.work, repos, args.repeats).items():
            each = ", ".join(f"{v:.2f}" for v in values)
            print(f"  {label}: median {float(np.median(values)):.2f} ({each})")


if __name__ == "__main__":
    main()
