"""Writes the `.keras` files of `tests/cold_keras/models/test_saved_files.py`: one tiny training model
per model name and its inference outputs on a fixed batch.

    python tests/data/saved_models/make.py [--repo CHECKOUT]

Run once with the checkout whose files the test must keep loading (these were written at commit
f8a15c8, before the builders were split into one function per model).
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=str(HERE.parents[2]), help="checkout whose code saves the files")
    args = parser.parse_args()
    sys.path.insert(0, args.repo)
    import keras
    import numpy as np

    from cold_keras.models import MODEL_NAMES, build_model, inference_model

    rng = np.random.default_rng(0)
    mask = np.ones((2, 8), "float32")
    mask[1, 5:] = 0.0
    batch = {
        "audio": rng.normal(size=(2, 8, 5)).astype("float32"),
        "visual": rng.normal(size=(2, 8, 4)).astype("float32"),
        "mask": mask,
    }
    np.savez(HERE / "batch.npz", **batch)
    for name in MODEL_NAMES:
        keras.utils.set_random_seed(0)
        model = build_model(
            name,
            audio_dim=5,
            visual_dim=4,
            gru_units=4,
            gru_layers=1,
            latent_dim=4,
            num_heads=2,
            transformer_dim=4,
            num_transformer_layers=1,
            seed=0,
        )
        model.save(HERE / f"{name}.keras")
        outputs = inference_model(model)(batch, training=False)
        np.savez(HERE / f"{name}_outputs.npz", **{k: np.asarray(v) for k, v in outputs.items()})
        print(name, sorted(outputs))


if __name__ == "__main__":
    main()
