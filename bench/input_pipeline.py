"""Benchmark of the data components on an AVEC-sized synthetic corpus (prints figures; not a test).

Builds the recordings in memory one at a time (NumPy random features and labels, AVEC's split
68/28/104 scaled to --recordings), then measures:

* ExampleGen conversion time (serialisation, sharded TFRecord writing, checksums, manifest);
* Transform fitting time (one pass over train);
* frames per second the training pipeline delivers (parse, window, augment, shuffle, batch),
  counting real (unmasked) frames, over --batches batches after --warmup batches.

    python -m bench.input_pipeline                     # 200 x 1768 frames, 128-d audio, 512-d visual
    python -m bench.input_pipeline --recordings 20 --frames 500 --batches 50
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

AVEC_SPLIT = {"train": 68, "devel": 28, "test": 104}


def make_corpus(num_recordings, frames, audio_dim, visual_dim, hop, seed=0):
    from pipelines.datasets.base import Corpus, Recording

    total = sum(AVEC_SPLIT.values())
    counts = {p: max(1, round(num_recordings * n / total)) for p, n in AVEC_SPLIT.items()}
    counts["test"] = max(1, num_recordings - counts["train"] - counts["devel"])

    def recordings():
        rng = np.random.default_rng(seed)
        for partition, count in counts.items():
            for index in range(count):
                labelled = partition != "test"
                walk = np.cumsum(rng.normal(size=(frames, 2)) * 0.02, axis=0)
                labels = np.tanh(walk).astype(np.float32)
                yield Recording(
                    name=f"{partition.capitalize()}_{index:03d}",
                    partition=partition,
                    hop=hop,
                    audio=rng.standard_normal((frames, audio_dim), np.float32),
                    visual=rng.standard_normal((frames, visual_dim), np.float32),
                    valence=labels[:, 0] if labelled else None,
                    arousal=labels[:, 1] if labelled else None,
                    timestamps=(np.arange(frames) * hop).astype(np.float32),
                )

    return Corpus(
        dataset="synthetic",
        root="<in memory>",
        hop=hop,
        audio_feature_names=[f"a{i}" for i in range(audio_dim)],
        visual_feature_names=[f"v{i}" for i in range(visual_dim)],
        recordings=recordings,
        fingerprint=f"bench-{num_recordings}-{frames}-{audio_dim}-{visual_dim}-{seed}",
    ), counts


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.input_pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--frames", type=int, default=1768, help="frames per recording")
    parser.add_argument("--audio-dim", type=int, default=128)
    parser.add_argument("--visual-dim", type=int, default=512)
    parser.add_argument("--hop", type=float, default=0.1, help="seconds per frame")
    parser.add_argument("--window-frames", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=150, help="timed batches")
    parser.add_argument("--warmup", type=int, default=20, help="untimed batches first")
    parser.add_argument("--no-augment", action="store_true", help="measure without augmentation")
    parser.add_argument("--output-dir", default=None, help="artefact folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from pipelines.components import example_gen, input_pipeline, transform

    out = Path(args.output_dir) if args.output_dir else Path(tempfile.mkdtemp(prefix="bench_input_"))
    try:
        corpus, counts = make_corpus(args.recordings, args.frames, args.audio_dim, args.visual_dim, args.hop)
        print(
            f"corpus: {sum(counts.values())} recordings x {args.frames} frames ({counts}), "
            f"audio {args.audio_dim}-d, visual {args.visual_dim}-d; TensorFlow {tf.__version__}, "
            f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'} inter-op threads"
        )
        started = time.perf_counter()
        manifest = example_gen.run(corpus, out, progress=False)
        seconds = time.perf_counter() - started
        frames = sum(p["num_frames"] for p in manifest["partitions"].values())
        size = sum(s["bytes"] for p in manifest["partitions"].values() for s in p["shards"])
        shards = sum(len(p["shards"]) for p in manifest["partitions"].values())
        print(
            f"ExampleGen: {seconds:.1f} s ({frames / seconds:,.0f} frames/s, "
            f"{sum(counts.values()) / seconds:.1f} recordings/s), {size / 2**20:,.0f} MiB in {shards} shards"
        )
        started = time.perf_counter()
        example_gen.run(corpus, out, progress=False)
        print(f"ExampleGen re-run (checksums verified, shards reused): {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        transform.run(out)
        print(f"Transform (one pass over train): {time.perf_counter() - started:.1f} s")

        augment = (
            None
            if args.no_augment
            else {
                "noise_std": 0.1,
                "time_mask_frames": 30,
                "modality_dropout_prob": 0.3,
                "modality_dropout_frames": 100,
            }
        )
        window_seconds = args.window_frames * args.hop
        dataset = input_pipeline.make_dataset(
            out,
            "train",
            training=True,
            batch_size=args.batch_size,
            window_seconds=window_seconds,
            augment=augment,
            seed=0,
        ).repeat()
        iterator = iter(dataset)
        started = time.perf_counter()
        for _ in range(args.warmup):
            next(iterator)
        warmup = time.perf_counter() - started
        real = 0.0
        started = time.perf_counter()
        for _ in range(args.batches):
            inputs, _ = next(iterator)
            real += float(tf.reduce_sum(inputs["mask"]))
        seconds = time.perf_counter() - started
        print(
            f"training pipeline ({'augmented' if augment else 'no augmentation'}, batch {args.batch_size}, "
            f"{args.window_frames}-frame windows, hop {args.window_frames // 2}): warm-up {args.warmup} batches "
            f"{warmup:.2f} s; {args.batches} batches in {seconds:.2f} s = {args.batches / seconds:,.1f} batches/s, "
            f"{real / seconds:,.0f} frames/s"
        )
    finally:
        if not args.output_dir:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
