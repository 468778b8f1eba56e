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

`--ops` instead counts the operations of the traced steps and times their tracing, each model in a
fresh process: the training step (`model.train_step` in a `tf.function`, as `fit` traces it) and the
prediction step of `inference_model`, for COLD fusion at the tests' tiny sizes (`cold_fusion_tiny`:
4 GRU units and latent 4, batch 4 x 30 frames, 8-d features) and at the paper's sizes
(`cold_fusion`). The optimiser is the trainer's: AdamW (cold_keras's when the checkout has one)
with weight decay 1e-4, global clipping at 1.0 and cosine decay with warm restarts. "top" counts
the ops of the step's graph, "all" adds those of every function it calls (loop bodies,
conditionals and their gradients). `--before DIR` runs a second checkout alternately with this
one (`git worktree add /tmp/before <commit>`), `--rounds` times each:

    python bench/step_profile.py --ops [--variants cold_fusion_tiny,cold_fusion] [--before DIR]
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
DEFAULT_VARIANTS = "keras_gru,projected_gru,projected_nomask,context_fusion,cold_fusion,cold_fusion_bf16"


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


TINY = dict(batch=4, frames=30, audio_dim=8, visual_dim=8, units=4, latent=4)
PAPER = dict(batch=B, frames=T, audio_dim=DA, visual_dim=DV, units=UNITS, latent=LATENT)
OPS_VARIANTS = {"cold_fusion_tiny": ("cold_fusion", TINY), "cold_fusion": ("cold_fusion", PAPER)}


def trainer_optimizer():
    """The trainer's optimiser: AdamW (cold_keras's, else Keras'), weight decay, clipping, cosine restarts."""
    import keras

    import cold_keras

    # A checkout from before cold_keras.optimizers has Keras' AdamW only (check the file: an editable
    # install of another checkout would otherwise supply the module).
    AdamW = keras.optimizers.AdamW
    if (Path(cold_keras.__file__).parent / "optimizers.py").is_file():
        from cold_keras.optimizers import AdamW
    schedule = keras.optimizers.schedules.CosineDecayRestarts(5e-3, first_decay_steps=100, t_mul=2.0)
    return AdamW(learning_rate=schedule, weight_decay=1e-4, global_clipnorm=1.0)


def count_ops(concrete):
    """(ops of the function's own graph, ops including every function it calls) of a ConcreteFunction."""
    graph_def = concrete.graph.as_graph_def()
    top = len(graph_def.node)
    return top, top + sum(len(function.node_def) for function in graph_def.library.function)


def measure_ops(variant):
    """Op counts and tracing seconds of the training and prediction steps of one variant (this process)."""
    import keras
    import tensorflow as tf
    from _common import random_batch

    import cold_keras
    from cold_keras.models import build_model, inference_model

    name, size = OPS_VARIANTS[variant]
    keras.utils.set_random_seed(0)
    model = build_model(
        name,
        audio_dim=size["audio_dim"],
        visual_dim=size["visual_dim"],
        gru_units=size["units"],
        latent_dim=size["latent"],
    )
    optimizer = trainer_optimizer()
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    batch = random_batch(size["batch"], size["frames"], size["audio_dim"], size["visual_dim"])
    batch = {k: tf.constant(v) for k, v in batch.items()}
    result = {"repo": str(Path(cold_keras.__file__).resolve().parents[1]), "optimizer": type(optimizer).__module__}
    clock = _Clock()
    train = tf.function(model.train_step).get_concrete_function((batch,))
    clock.lap(result, "train trace")
    result["train ops top"], result["train ops all"] = count_ops(train)
    clock = _Clock()
    train((batch,))
    clock.lap(result, "train first call")
    infer = inference_model(model)
    features = {k: batch[k] for k in ("audio", "visual", "mask")}
    clock = _Clock()
    predict = tf.function(infer.predict_step).get_concrete_function(features)
    clock.lap(result, "predict trace")
    result["predict ops top"], result["predict ops all"] = count_ops(predict)
    return result


class _Clock:
    """Wall and process CPU time since creation (CPU time is what a shared machine disturbs least)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, result, key):
        result[f"{key} s"] = time.perf_counter() - self.wall
        result[f"{key} cpu s"] = time.process_time() - self.cpu


def ops_table(variants, before, rounds):
    """Runs `measure_ops` in fresh processes (this checkout and `before` alternating); prints medians."""
    import json
    import subprocess

    import numpy as np

    repos = {"after": str(Path(__file__).resolve().parent.parent)}
    if before:
        repos = {"before": str(Path(before).resolve()), **repos}
    results = {(v, r): [] for v in variants for r in repos}
    for _ in range(rounds):
        for variant in variants:
            for label, repo in repos.items():
                out = subprocess.run(
                    [sys.executable, __file__, "--ops-child", variant, "--repo", repo],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[(variant, label)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = (
        "train ops top",
        "train ops all",
        "train trace s",
        "train trace cpu s",
        "train first call s",
        "train first call cpu s",
        "predict ops top",
        "predict ops all",
        "predict trace s",
        "predict trace cpu s",
    )
    print(f"median of {rounds} fresh processes per row (s: wall seconds, cpu s: process CPU seconds)")
    for (variant, label), runs in results.items():
        print(f"{variant} / {label}: {runs[0]['repo']} ({runs[0]['optimizer']})")
        for key in keys:
            values = [r[key] for r in runs]
            cell = f"{np.median(values):,.2f}" if key.endswith(" s") else f"{np.median(values):,.0f}"
            print(
                f"    {key:<24}{cell:>10}   ({', '.join(f'{v:.2f}' if key.endswith(' s') else str(v) for v in values)})"
            )


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
        default=DEFAULT_VARIANTS,
        help="comma-separated variants (default: all; with --ops cold_fusion_tiny,cold_fusion)",
    )
    parser.add_argument(
        "--inference",
        action="store_true",
        help="also frames/s of a 1,768-frame recording: predict_on_batch and SavedModel",
    )
    parser.add_argument("--trace", metavar="DIR", help="write a TensorBoard profiler trace of COLD fusion steps")
    parser.add_argument("--ops", action="store_true", help="count the ops of the traced steps and time tracing")
    parser.add_argument("--before", metavar="DIR", help="with --ops: another checkout, run alternately")
    parser.add_argument("--ops-child", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ops_child:
        import json

        sys.path.insert(0, args.repo)
        print(json.dumps(measure_ops(args.ops_child)))
        return
    if args.ops:
        variants = args.variants.split(",") if args.variants != DEFAULT_VARIANTS else list(OPS_VARIANTS)
        ops_table(variants, args.before, args.rounds)
        return

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
        from pipelines.serving import servable

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
            servable.save_saved_model(infer, Path(tmp) / "1")
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
