"""Raw-mode training throughput (frames per second) on CPU: float32 against mixed_bfloat16.

The model is the default raw-mode COLD fusion of `configs/synthetic_raw.yaml` (48x48 face crops,
1 s log-mel patches of 50 frames x 32 mel bins, FaceCNN with 16-32-64-128 filters and batch
normalisation, VGGish with 16-32-64 filters, 128-unit dense layers, 32 GRU units) on batches of
4 windows of 100 frames (10 s), the trainer's raw-mode window. Random inputs, fed from memory, so
the figure is the model's training speed, not the input pipeline's. Each policy runs in its own
process (a dtype policy is global).

    python bench/raw_throughput.py [--steps 10] [--repeats 3] [--policies float32,mixed_bfloat16]
        [--face-size 48] [--face-filters 16,32,64,128] [--audio-filters 16,32,64] [--dense-units 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent


def _ints(text):
    return tuple(int(x) for x in text.split(","))


def measure(args) -> dict:
    import keras
    import numpy as np

    sys.path.insert(0, str(HERE))
    from _common import random_raw_batch, training_frames_per_second

    from cold_keras.models import build_raw_model

    keras.mixed_precision.set_global_policy(args.policy)
    keras.utils.set_random_seed(0)
    face_shape, patch_shape = (args.face_size, args.face_size, 3), (args.patch_frames, args.mel_bins)
    batch = random_raw_batch(args.batch_size, args.frames, face_shape, patch_shape)
    model = build_raw_model(
        args.model,
        face_shape=face_shape,
        patch_shape=patch_shape,
        visual_backbone={"filters": _ints(args.face_filters), "batch_norm": True, "dense_units": args.dense_units},
        audio_backbone={"filters": _ints(args.audio_filters), "dense_units": args.dense_units},
        gru_units=32,
        gru_layers=1,
        latent_dim=16,
        visual_norm=([120.0] * 3, [3000.0] * 3),
        audio_norm=([0.0] * args.mel_bins, [1.0] * args.mel_bins),
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4))

    fps = training_frames_per_second(model, batch, args.steps, args.repeats)
    return {"median": float(np.median(fps)), "min": float(np.min(fps)), "max": float(np.max(fps))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", default="float32,mixed_bfloat16")
    parser.add_argument("--model", default="cold_fusion")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (the median is reported)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--face-size", type=int, default=48)
    parser.add_argument("--patch-frames", type=int, default=50)
    parser.add_argument("--mel-bins", type=int, default=32)
    parser.add_argument("--face-filters", default="16,32,64,128")
    parser.add_argument("--audio-filters", default="16,32,64")
    parser.add_argument("--dense-units", type=int, default=128)
    parser.add_argument("--policy", help=argparse.SUPPRESS)  # set in the child process
    args = parser.parse_args()

    if args.policy:
        print(json.dumps(measure(args)))
        return
    results = {}
    for policy in args.policies.split(","):
        child = [arg for arg in sys.argv[1:]] + ["--policy", policy]
        out = subprocess.run([sys.executable, __file__, *child], capture_output=True, text=True, check=True)
        results[policy] = json.loads(out.stdout.strip().splitlines()[-1])
        row = results[policy]
        print(f"{policy:<16} {row['median']:>8.0f} frames/s  (min {row['min']:.0f}, max {row['max']:.0f})", flush=True)
    if "float32" in results and "mixed_bfloat16" in results:
        ratio = results["mixed_bfloat16"]["median"] / results["float32"]["median"]
        print(f"mixed_bfloat16 / float32: {ratio:.2f}x")


if __name__ == "__main__":
    main()
