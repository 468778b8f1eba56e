"""Latency of the exported SavedModel against in-process Keras prediction, one sequence per call.

One 30-second sequence (300 frames at 0.1 s) per call, batch 1: p50/p99 over `--repeats` calls of
the SavedModel's `serving_default` signature (loaded with `tf.saved_model.load`, what TF Serving
runs minus the RPC) and of the Keras inference model's `predict_on_batch`. The model comes from
`--run-dir` (a run of `pipelines.train`), or is built at the given sizes and trained for a few
steps on random data.

    python bench/serving_latency.py [--run-dir RUN] [--frames 300] [--repeats 50]
        [--units 64] [--layers 2] [--latent-dim 32] [--audio-dim 88] [--visual-dim 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def trained_briefly(args):
    import keras
    import tensorflow as tf
    from _common import random_batch

    from cold_keras.models import build_model, inference_model

    keras.utils.set_random_seed(0)
    batch = random_batch(4, args.frames, args.audio_dim, args.visual_dim)
    model = build_model(
        args.model,
        audio_dim=args.audio_dim,
        visual_dim=args.visual_dim,
        gru_units=args.units,
        gru_layers=args.layers,
        latent_dim=args.latent_dim,
    )
    model.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=1e-4))
    model.fit(tf.data.Dataset.from_tensors((batch,)).repeat(), epochs=1, steps_per_epoch=args.train_steps, verbose=0)
    return inference_model(model)


def percentiles(seconds):
    import numpy as np

    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(np.mean(ms))


def time_calls(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", help="take the model of this run directory instead of training one")
    parser.add_argument("--model", default="cold_fusion")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--audio-dim", type=int, default=88)
    parser.add_argument("--visual-dim", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from pipelines.runs import folders as runs
    from pipelines.serving import servable

    if args.run_dir:
        model, config = runs.load_inference_model(args.run_dir)
        source = f"{config.model.name} from {args.run_dir}"
    else:
        model = trained_briefly(args)
        source = (
            f"{args.model}, {args.layers}x{args.units} GRU units, latent {args.latent_dim}, "
            f"trained {args.train_steps} steps on random data"
        )
    dims = servable.feature_dims(model)
    rng = np.random.default_rng(1)
    audio = rng.standard_normal((1, args.frames, dims["audio"])).astype("float32")
    visual = rng.standard_normal((1, args.frames, dims["visual"])).astype("float32")
    mask = np.ones((1, args.frames), "float32")

    with tempfile.TemporaryDirectory(prefix="cold-keras-bench-") as tmp:
        servable.save_saved_model(model, tmp)
        loaded = tf.saved_model.load(tmp)
        serving = loaded.signatures["serving_default"]
        tensors = {"audio": tf.constant(audio), "visual": tf.constant(visual), "mask": tf.constant(mask)}
        served = serving(**tensors)
        expected = servable.keras_outputs(model, audio, visual, mask)
        worst = max(float(np.max(np.abs(served[k].numpy() - expected[k]))) for k in expected)
        rows = {
            "SavedModel serving_default": time_calls(lambda: serving(**tensors), args.repeats, args.warmup),
            "Keras predict_on_batch": time_calls(
                lambda: model.predict_on_batch({"audio": audio, "visual": visual, "mask": mask}),
                args.repeats,
                args.warmup,
            ),
        }

    print(f"model: {source}; inputs audio {dims['audio']}-d, visual {dims['visual']}-d")
    print(
        f"one sequence of {args.frames} frames per call, {args.repeats} calls after {args.warmup} warm-up; "
        f"max |SavedModel - Keras| = {worst:.1e}; TensorFlow {tf.__version__}, {os.cpu_count()} CPUs"
    )
    print(f"{'path':<28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, seconds in rows.items():
        p50, p99, mean = percentiles(seconds)
        print(f"{name:<28} {p50:8.2f} {p99:8.2f} {mean:8.2f}")


if __name__ == "__main__":
    main()
