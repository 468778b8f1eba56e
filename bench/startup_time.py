"""Start-up time of training and prediction: how long the first `fit` and the first `predict` take.

The first call of `fit` traces the training step into a TensorFlow graph (and `predict` its own
step); for small models and short runs (the tests, a tuning trial, `--find-lr`) this tracing is
most of the time. Each model is built in a fresh process, compiled with AdamW, and timed:

  build        build_model + compile
  first fit    the first `fit` of 2 steps (tracing the training step, then 2 steps)
  second fit   another 2-step `fit` (no tracing: what a step costs)
  first predict the first `predict_on_batch` of the inference model (tracing the prediction step)

    python bench/startup_time.py [--models cold_fusion,context_fusion] [--repeats 3]
                                 [--units 4] [--frames 30]

Models run alternately (A B A B ...), one process each, and the median over `--repeats` is printed.
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


def measure(model_name, units, frames):
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    import keras
    import tensorflow as tf
    from _common import random_batch

    from cold_keras.models import build_model, inference_model

    times = {}
    start = time.perf_counter()
    model = build_model(model_name, audio_dim=8, visual_dim=8, gru_units=units, latent_dim=units)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    times["build"] = time.perf_counter() - start
    batch = random_batch(4, frames, 8, 8)
    dataset = tf.data.Dataset.from_tensors((batch,)).repeat()
    for key in ("first fit", "second fit"):
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
        times[key] = time.perf_counter() - start
    infer = inference_model(model)
    start = time.perf_counter()
    infer.predict_on_batch({k: batch[k] for k in ("audio", "visual", "mask")})
    times["first predict"] = time.perf_counter() - start
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cold_fusion,context_fusion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", type=int, default=4, help="GRU units and latent size (default 4, the tests')")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.units, args.frames)))
        return

    import numpy as np

    models = args.models.split(",")
    results = {m: [] for m in models}
    for _ in range(args.repeats):
        for model in models:
            out = subprocess.run(
                [sys.executable, __file__, "--child", model, "--units", str(args.units), "--frames", str(args.frames)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[model].append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = ("build", "first fit", "second fit", "first predict")
    print(f"{'model':<16}" + "".join(f"{k:>15}" for k in keys) + f"   (seconds, median of {args.repeats})")
    for model in models:
        row = [float(np.median([r[k] for r in results[model]])) for k in keys]
        print(f"{model:<16}" + "".join(f"{v:>15.2f}" for v in row))


if __name__ == "__main__":
    main()
