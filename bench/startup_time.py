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

    python bench/startup_time.py [--models cold_fusion,context_fusion] [--repeats 3]
                                 [--units 4] [--frames 30] [--before DIR] [--optimizer trainer]

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cold_fusion,context_fusion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", type=int, default=4, help="GRU units and latent size (default 4, the tests')")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--before", metavar="DIR", help="another checkout, run alternately with this one")
    parser.add_argument("--optimizer", choices=("trainer", "constant"), default="trainer")
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


if __name__ == "__main__":
    main()
