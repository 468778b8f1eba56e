"""A calibrated per-frame standard deviation (label units) from a model's sigma norms and fusion weights."""

import keras
import numpy as np
from keras import ops

from cold_keras import names

BRANCH_PREFIXES = names.BRANCH_PREFIXES
STD_SUFFIX = "_std"


def interpolate(x, knots_x, knots_y):
    """`numpy.interp` in Keras ops: piecewise-linear through the knots, constant outside their range.

    Args:
        x: tensor of any shape.
        knots_x: increasing list of floats.
        knots_y: list of floats of the same length.

    Returns:
        tensor of the shape and dtype of `x`.
    """
    kx = ops.convert_to_tensor(np.asarray(knots_x), dtype=x.dtype)
    ky = ops.convert_to_tensor(np.asarray(knots_y), dtype=x.dtype)
    if len(knots_x) == 1:
        return ops.ones_like(x) * ky[0]
    flat = ops.reshape(x, (-1,))
    index = ops.clip(ops.searchsorted(kx, flat, side="right"), 1, len(knots_x) - 1)
    x0, x1 = ops.take(kx, index - 1), ops.take(kx, index)
    y0, y1 = ops.take(ky, index - 1), ops.take(ky, index)
    t = ops.clip((flat - x0) / (x1 - x0), 0.0, 1.0)
    return ops.reshape(y0 + t * (y1 - y0), ops.shape(x))


@keras.saving.register_keras_serializable(package="cold_keras")
class CalibratedStd(keras.layers.Layer):
    """Per-frame std of every calibrated output: `std = scale * g(u)` of the frame's uncertainty score u.

    The score of modality m is 1/||sigma_m|| under the `informativeness` convention and ||sigma_m||
    under `uncertainty`; the fused output's score is the fusion-weighted mean w_A u_A + w_V u_V (the
    plain mean without fusion weights), and a model without sigma norms has the constant score 1.
    g is piecewise-linear through the map's knots (constant beyond them), as `numpy.interp`. The
    scores and the map are computed in float64, the std returned in float32.

    Args:
        maps: dict `{"<branch>_<dimension>": {"x": knots, "y": knots, "scale": float}}` with branch
            `av`, `audio` or `visual` (e.g. the `maps` of an uncertainty calibration; other entries
            of a map are ignored). Knots `x` increasing.
        convention: "informativeness" or "uncertainty": how ||sigma|| is read. Defaults to
            "informativeness".
        **kwargs: base layer arguments.

    Call arguments:
        outputs: dict of a model's outputs: `<modality>_sigma_norm`, `<modality>_weight` and the
            predictions (`valence`, `audio_valence`, ...), each `[B, T]`.

    Output: dict `{"<prediction>_std": [B, T] float32}` for every map whose prediction is in `outputs`.

    >>> layer = CalibratedStd({"av_valence": {"x": [0.0, 1.0], "y": [0.1, 0.3], "scale": 2.0}})
    >>> std = layer({"valence": np.zeros((1, 2), "float32"), "audio_sigma_norm": np.full((1, 2), 2.0, "float32"),
    ...              "visual_sigma_norm": np.full((1, 2), 2.0, "float32")})["valence_std"]
    >>> [round(float(v), 4) for v in std[0]]
    [0.4, 0.4]
    """

    def __init__(self, maps, convention="informativeness", **kwargs):
        super().__init__(**kwargs)
        if convention not in names.WEIGHT_CONVENTIONS:
            raise ValueError(f"convention must be one of {names.WEIGHT_CONVENTIONS}, got {convention!r}.")
        self.maps = {
            key: {
                "x": [float(v) for v in entry["x"]],
                "y": [float(v) for v in entry["y"]],
                "scale": float(entry["scale"]),
            }
            for key, entry in maps.items()
        }
        self.convention = convention

    def call(self, outputs):
        modalities = (names.AUDIO, names.VISUAL)
        inverse = self.convention == "informativeness"
        scores = {}
        norms = {m: outputs.get(f"{m}_sigma_norm") for m in modalities}
        if all(v is not None for v in norms.values()):
            for m, norm in norms.items():
                # float64 as the NumPy map: near a steep knot float32 rounding of the score shows.
                norm = ops.maximum(ops.cast(norm, "float64"), 1e-12)
                scores[m] = 1.0 / norm if inverse else norm
            weights = [outputs.get(f"{m}_weight") for m in modalities]
            if all(w is not None for w in weights):
                scores["av"] = sum(ops.cast(w, "float64") * scores[m] for w, m in zip(weights, modalities))
            else:
                scores["av"] = (scores[names.AUDIO] + scores[names.VISUAL]) / 2.0
        result = {}
        for key, entry in self.maps.items():
            branch, dim = key.split("_", 1)
            name = f"{BRANCH_PREFIXES[branch]}{dim}"
            if name not in outputs:
                continue
            reference = ops.cast(outputs[name], "float64")
            score = scores.get(branch, ops.ones_like(reference))
            value = entry["scale"] * interpolate(score, entry["x"], entry["y"])
            result[name + STD_SUFFIX] = ops.cast(value, "float32")
        return result

    def get_config(self):
        return {**super().get_config(), "maps": self.maps, "convention": self.convention}
