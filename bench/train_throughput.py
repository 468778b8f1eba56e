"""Training throughput (frames per second) of COLD fusion against context fusion.

At the paper's sizes by default: batch 4, 300-frame windows (30 s at 0.1 s), 128-d audio,
512-d visual, 2-layer bidirectional GRU with 256 units per direction, latent size 128.
The COLD machinery (Gaussian heads, sampling, four calibration/regulariser terms) should cost
at most 10% over context fusion.

    python bench/train_throughput.py [--steps 30] [--models cold_fusion,context_fusion]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(name, args):
    import keras
    import numpy as np

    from _common import random_batch, training_frames_per_second
    from cold_keras.models import build_model

    keras.mixed_precision.set_global_policy(args.policy)
    keras.utils.set_random_seed(0)
    b, t = args.batch_size, args.frames
    batch = random_batch(b, t, args.audio_dim, args.visual_dim)
    model = build_model(name, audio_dim=args.audio_dim, visual_dim=args.visual_dim,
                        gru_units=args.units, latent_dim=args.latent_dim)
    model.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=1e-4))
    fps = training_frames_per_second(model, batch, args.steps, args.repeats)
    keras.backend.clear_session()
    return float(np.median(fps)), float(np.min(fps)), float(np.max(fps))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cold_fusion,context_fusion")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (the median is reported)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--audio-dim", type=int, default=128)
    parser.add_argument("--visual-dim", type=int, default=512)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--latent-dim", type=int, default=128)
    parser.add_argument("--policy", default="float32", help="keras dtype policy, e.g. mixed_bfloat16")
    args = parser.parse_args()

    results = {}
    for name in args.models.split(","):
        results[name] = measure(name, args)
        print(f"{name:<16} {results[name][0]:>10.0f} frames/s  (min {results[name][1]:.0f}, max {results[name][2]:.0f})",
              flush=True)
    if "cold_fusion" in results and "context_fusion" in results:
        overhead = results["context_fusion"][0] / results["cold_fusion"][0] - 1.0
        print(f"COLD overhead over context fusion: {overhead * 100:+.1f}% time per frame (target <= +10%)")


if __name__ == "__main__":
    main()
