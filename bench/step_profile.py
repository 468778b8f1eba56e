"""Where the time of a training step goes, and inference throughput on a whole recording.

At the paper's sizes (batch 4, 300-frame windows, 128-d audio, 512-d visual, 2-layer BiGRU with
256 units per direction, latent 128), each variant below trains on one repeated batch; the variants
run alternately (A B C ... A B C ...) and the median milliseconds per step is printed, so the
difference between two rows is what the part added between them costs:

  keras_gru        two bidirectional 2-layer BiGRU blocks with keras.layers.GRU (masked), a dense
                   output per modality and an MSE loss: the bare network as Keras builds it
  projected_gru    the same with cold_keras's ProjectedGRU (input projection out of the loop)
  projected_nomask the same without a mask (what a right-padded mask now costs)
  context_fusion   the project's context fusion: heads, shared predictor, CCC + MSE on three
                   outputs, streaming CCC metrics per branch, AdamW with weight decay
  cold_fusion      COLD fusion: Gaussian heads and sampling, variance-norm fusion, the three
                   calibration terms and the KL prior on top of context fusion
  cold_fusion_bf16 COLD fusion under mixed_bfloat16

`--inference` adds frames/s of a whole 1,768-frame recording through `predict_on_batch` and through
the exported SavedModel's `serving_default` (COLD fusion). `--trace DIR` writes a TensorBoard
profiler trace of five COLD fusion steps (open with `tensorboard --logdir DIR`, Profile tab).

    python bench/step_profile.py [--steps 10] [--rounds 3] [--inference] [--trace DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

B, T, DA, DV, UNITS, LATENT = 4, 300, 128, 512, 256, 128


def _bare(gru_cls, masked):
    import keras

    inputs = {
        "audio": keras.Input((None, DA), name="audio"),
        "visual": keras.Input((None, DV), name="visual"),
        "mask": keras.Input((None,), name="mask"),
    }
    mask = keras.ops.greater(inputs["mask"], 0.5) if masked else None
    outputs = []
    for name in ("audio", "visual"):
        h = inputs[name]
        for i in range(2):
            h = keras.layers.Bidirectional(
                gru_cls(UNITS, return_sequences=True),
                backward_layer=gru_cls(UNITS, return_sequences=True, go_backwards=True),
            )(h, mask=mask)
            if i == 0:
                h = keras.layers.Dropout(0.5)(h)
        outputs.append(keras.layers.Dense(2)(h))
    y = keras.layers.Add()(outputs)
    model = keras.Model(inputs, y)
    model.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=1e-4), loss="mse")
    return model


def build(variant):
    import keras

    from cold_keras.layers.projected_gru import ProjectedGRU
    from cold_keras.models import build_model

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if variant.endswith("bf16") else "float32")
    keras.utils.set_random_seed(0)
    if variant == "keras_gru":
        return _bare(keras.layers.GRU, True), True
    if variant == "projected_gru":
        return _bare(ProjectedGRU, True), True
    if variant == "projected_nomask":
        return _bare(ProjectedGRU, False), True
    name = variant.replace("_bf16", "")
    model = build_model(name, audio_dim=DA, visual_dim=DV, gru_units=UNITS, latent_dim=LATENT)
    model.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=1e-4))
    return model, False


def _dataset(bare):
    import tensorflow as tf
    from _common import random_batch

    batch = random_batch(B, T, DA, DV)
    if bare:
        x = {k: batch[k] for k in ("audio", "visual", "mask")}
        y = batch["valence"][..., None].repeat(2, axis=-1)
        return tf.data.Dataset.from_tensors((x, y)).repeat()
    return tf.data.Dataset.from_tensors((batch,)).repeat()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant, alternating (default 3)")
    parser.add_argument(
        "--variants",
        default="keras_gru,projected_gru,projected_nomask,context_fusion,cold_fusion,cold_fusion_bf16",
        help="comma-separated variants (default: all)",
    )
    parser.add_argument(
        "--inference",
        action="store_true",
        help="also frames/s of a 1,768-frame recording: predict_on_batch and SavedModel",
    )
    parser.add_argument("--trace", metavar="DIR", help="write a TensorBoard profiler trace of COLD fusion steps")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    variants = args.variants.split(",")
    models = {}
    for variant in variants:
        model, bare = build(variant)
        dataset = _dataset(bare)
        model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # tracing and allocation
        models[variant] = (model, dataset)
    times = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            model, dataset = models[variant]
            start = time.perf_counter()
            model.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
            times[variant].append((time.perf_counter() - start) / args.steps * 1000)
    print(f"{'variant':<18} {'ms/step':>8} {'frames/s':>9}   (batch {B} x {T} frames, median of {args.rounds})")
    for variant in variants:
        ms = float(np.median(times[variant]))
        print(f"{variant:<18} {ms:>8.0f} {B * T / ms * 1000:>9.0f}")
    if "cold_fusion" in times and "context_fusion" in times:
        overhead = np.median(times["cold_fusion"]) / np.median(times["context_fusion"]) - 1
        print(f"COLD machinery over context fusion: {overhead * 100:+.1f}% time per frame (target <= +5%)")
    if "cold_fusion_bf16" in times and "cold_fusion" in times:
        print(
            "mixed_bfloat16 / float32 speed: "
            f"{np.median(times['cold_fusion']) / np.median(times['cold_fusion_bf16']):.2f}x"
        )

    if args.trace:
        model, dataset = models.get("cold_fusion") or (build("cold_fusion")[0], _dataset(False))
        tf.profiler.experimental.start(args.trace)
        model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        print(f"profiler trace in {args.trace} (tensorboard --logdir {args.trace}, Profile tab)")

    if args.inference:
        import tempfile

        import keras

        from cold_keras.models import inference_model
        from pipelines import export

        keras.mixed_precision.set_global_policy("float32")
        model = models["cold_fusion"][0] if "cold_fusion" in models else build("cold_fusion")[0]
        infer = inference_model(model)
        rng = np.random.default_rng(0)
        n = 1768
        inputs = {
            "audio": rng.standard_normal((1, n, DA)).astype("float32"),
            "visual": rng.standard_normal((1, n, DV)).astype("float32"),
            "mask": np.ones((1, n), "float32"),
        }
        with tempfile.TemporaryDirectory() as tmp:
            export.save_saved_model(infer, Path(tmp) / "1")
            serve = tf.saved_model.load(str(Path(tmp) / "1")).signatures["serving_default"]
            # A signature called from Python takes every input (TF Serving fills the defaults itself).
            feeds = {k: tf.constant(v) for k, v in inputs.items()}
            feeds.update({k: tf.constant(np.ones((1, n), "float32")) for k in ("audio_present", "visual_present")})
            infer.predict_on_batch(inputs)
            serve(**feeds)
            keras_s, served_s = [], []
            for _ in range(args.rounds):
                start = time.perf_counter()
                infer.predict_on_batch(inputs)
                keras_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                serve(**feeds)
                served_s.append(time.perf_counter() - start)
        print(
            f"inference, one {n}-frame recording (cold_fusion, float32): predict_on_batch "
            f"{n / np.median(keras_s):.0f} frames/s, SavedModel serving_default {n / np.median(served_s):.0f} frames/s"
        )


if __name__ == "__main__":
    main()
