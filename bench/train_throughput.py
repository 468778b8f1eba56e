"""Training throughput (frames per second) of COLD fusion against context fusion.

At the paper's sizes by default: batch 4, 300-frame windows (30 s at 0.1 s), 128-d audio,
512-d visual, 2-layer bidirectional GRU with 256 units per direction, latent size 128.
The COLD machinery (Gaussian heads, sampling, four calibration/regulariser terms) should cost
at most 10% over context fusion.

    python bench/train_throughput.py [--steps 20] [--models cold_fusion,context_fusion]
    python bench/train_throughput.py --vs-torch [--pairs 3]

`--vs-torch` runs ours (cold_fusion) and the PyTorch peer `bench/peers/torch_cold.py` (the same
network and objective, written from the paper's equations) alternately in separate processes,
A B A B ..., and prints the frames/s of each, the ratio of each pair and the median ratio.
PyTorch comes with the `bench` extra: `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

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
    model = build_model(
        name, audio_dim=args.audio_dim, visual_dim=args.visual_dim, gru_units=args.units, latent_dim=args.latent_dim
    )
    model.compile(optimizer=keras.optimizers.AdamW(5e-3, weight_decay=1e-4))
    fps = training_frames_per_second(model, batch, args.steps, args.repeats)
    keras.backend.clear_session()
    return float(np.median(fps)), float(np.min(fps)), float(np.max(fps))


def _child(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["frames_per_second"]


def versus_torch(args):
    """Ours and the PyTorch peer alternately, each in a fresh process; a table of the pairs."""
    import numpy as np

    here = Path(__file__).resolve().parent
    sizes = [
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
        "--batch-size",
        str(args.batch_size),
        "--frames",
        str(args.frames),
        "--audio-dim",
        str(args.audio_dim),
        "--visual-dim",
        str(args.visual_dim),
        "--units",
        str(args.units),
        "--latent-dim",
        str(args.latent_dim),
    ]
    ours = [
        sys.executable,
        str(here / "train_throughput.py"),
        "--models",
        "cold_fusion",
        "--policy",
        args.policy,
        "--json",
        *sizes,
    ]
    peer = [sys.executable, str(here / "peers" / "torch_cold.py"), "--json", *sizes]
    print(f"{'pair':>4} {'cold-keras':>12} {'PyTorch':>12} {'ratio':>7}   (training frames/s, cold_fusion)", flush=True)
    ratios = []
    for pair in range(1, args.pairs + 1):
        a = _child(ours)
        b = _child(peer)
        ratios.append(a / b)
        print(f"{pair:>4} {a:>12.0f} {b:>12.0f} {a / b:>7.2f}", flush=True)
    print(f"median ratio cold-keras / PyTorch: {float(np.median(ratios)):.2f} over {len(ratios)} pairs (target >= 1.3)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        default="cold_fusion,context_fusion",
        help="comma-separated model names (default cold_fusion,context_fusion)",
    )
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed epoch (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs, the median is reported (default 3)")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per batch (default 4)")
    parser.add_argument("--frames", type=int, default=300, help="frames per window (default 300)")
    parser.add_argument("--audio-dim", type=int, default=128, help="audio features per frame (default 128)")
    parser.add_argument("--visual-dim", type=int, default=512, help="visual features per frame (default 512)")
    parser.add_argument("--units", type=int, default=256, help="GRU units per direction (default 256)")
    parser.add_argument("--latent-dim", type=int, default=128, help="latent size (default 128)")
    parser.add_argument("--policy", default="float32", help="Keras dtype policy, e.g. mixed_bfloat16 (default float32)")
    parser.add_argument(
        "--vs-torch", action="store_true", help="cold_fusion against the PyTorch peer, alternating processes"
    )
    parser.add_argument("--pairs", type=int, default=3, help="with --vs-torch: A/B pairs (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per model (for scripts)")
    args = parser.parse_args()
    if args.vs_torch:
        versus_torch(args)
        return

    results = {}
    for name in args.models.split(","):
        results[name] = measure(name, args)
        if args.json:
            print(json.dumps({"model": name, "frames_per_second": results[name][0]}), flush=True)
            continue
        print(
            f"{name:<16} {results[name][0]:>10.0f} frames/s  (min {results[name][1]:.0f}, max {results[name][2]:.0f})",
            flush=True,
        )
    if "cold_fusion" in results and "context_fusion" in results and not args.json:
        overhead = results["context_fusion"][0] / results["cold_fusion"][0] - 1.0
        print(f"COLD overhead over context fusion: {overhead * 100:+.1f}% time per frame (target <= +5%)")


if __name__ == "__main__":
    main()
