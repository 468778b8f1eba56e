"""Reliability-aware conformal interval bounds computed in the graph from a model's outputs."""

import keras
import numpy as np
from keras import ops

from cold_keras.names import BRANCH_PREFIXES, DIMENSIONS


def moving_mean(values, mask, frames):
    """Centred moving mean over `frames` frames of `values` [B, T], over the frames where `mask` is 1
    (a recording's ends shorten the window, as a 'same' average pool divided by its count)."""
    half = frames // 2
    length = ops.shape(values)[1]
    zero = ops.zeros_like(values[:, :1])
    total = ops.concatenate([zero, ops.cumsum(values * mask, axis=1)], axis=1)
    count = ops.concatenate([zero, ops.cumsum(mask, axis=1)], axis=1)
    index = ops.arange(length, dtype="int32")
    lo = ops.clip(index - half, 0, length)
    hi = ops.clip(index + frames - half, 0, length)
    window_sum = ops.take(total, hi, axis=1) - ops.take(total, lo, axis=1)
    window_count = ops.take(count, hi, axis=1) - ops.take(count, lo, axis=1)
    return window_sum / ops.maximum(window_count, 1.0)


@keras.saving.register_keras_serializable(package="cold_keras")
class ConformalBounds(keras.layers.Layer):
    """Lower and upper bounds of reliability-aware conformal intervals, per frame and output.

    For each calibrated output `<branch>_<dim>` the layer computes the label-free signal row x of
    every frame from the model's outputs (log sigma norms, the visual fusion weight, the branches'
    disagreement and gaps, its moving mean over `smooth_frames` frames, the absence of each
    modality, the inputs' atypicality; see `pipelines.evaluation.conformal`), then

        s = exp(coef[0] + ((x - mean) / scale) . coef[1:]),   j = #(edges < s),
        half = quantiles[j] * (s if normalized else 1),       bounds = mu -+ half,

    in float64, returned as float32. These are the numbers of a `conformal_calibration.json` at one
    level (`from_calibration`).

    Args:
        signals: `{dim: {"names": [...], "mean": [...], "scale": [...]}}`.
        keys: `{"<branch>_<dim>": {"coef": [1 + F], "edges": [...], "quantiles": [len(edges) + 1]}}`.
        normalized: half-widths scaled by s (else one per bin).
        smooth_frames: window of the `disagreement_smooth` signal.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: dict of the model's outputs `[B, T]` (`valence`, `audio_valence`, ...,
            `<modality>_sigma_norm`, `visual_weight`, `<modality>_atypicality` as the signals need),
            optionally `mask` (1 = real frame; the moving mean skips padding) and `audio_present` /
            `visual_present`.

    Output: dict `{"<prediction>_lower": [B, T], "<prediction>_upper": [B, T]}` (float32) for every key
    whose prediction is in `inputs`.
    """

    def __init__(self, signals, keys, normalized=False, smooth_frames=21, **kwargs):
        super().__init__(**kwargs)
        self.signals = {
            dim: {
                "names": [str(n) for n in spec["names"]],
                "mean": [float(v) for v in spec["mean"]],
                "scale": [float(v) for v in spec["scale"]],
            }
            for dim, spec in signals.items()
        }
        self.keys = {
            key: {
                "coef": [float(v) for v in entry["coef"]],
                "edges": [float(v) for v in entry["edges"]],
                "quantiles": [float(v) for v in entry["quantiles"]],
            }
            for key, entry in keys.items()
        }
        for key, entry in self.keys.items():
            dim = key.split("_", 1)[1]
            if len(entry["coef"]) != 1 + len(self.signals[dim]["names"]):
                raise ValueError(
                    f"{key}: {len(entry['coef'])} coefficients for {len(self.signals[dim]['names'])} signals"
                )
            if len(entry["quantiles"]) != len(entry["edges"]) + 1:
                raise ValueError(f"{key}: {len(entry['quantiles'])} quantiles for {len(entry['edges'])} edges")
        self.normalized = bool(normalized)
        self.smooth_frames = int(smooth_frames)

    @classmethod
    def from_calibration(cls, data, level=None, **kwargs):
        """The layer of a `ConformalCalibration.to_json()` dict at `level` (default: its own level)."""
        level = data["level"] if level is None else level
        matches = [i for i, value in enumerate(data["levels"]) if abs(value - level) < 1e-9]
        if not matches:
            raise ValueError(f"level {level!r} was not fitted; the calibration holds {data['levels']}")
        keys = {
            key: {"coef": entry["coef"], "edges": entry["edges"], "quantiles": entry["quantiles"][matches[0]]}
            for key, entry in data["keys"].items()
        }
        return cls(data["signals"], keys, data.get("normalized", False), data.get("smooth_frames", 21), **kwargs)

    def _signal(self, name, inputs, dim, reference, mask):
        def get(key):
            return ops.cast(inputs[key], "float64")

        other = DIMENSIONS[1 - DIMENSIONS.index(dim)]
        if name.startswith("log_sigma_"):
            return ops.log(ops.maximum(get(f"{name[10:]}_sigma_norm"), 1e-12))
        if name == "visual_weight":
            return get("visual_weight")
        if name == "disagreement":
            return ops.abs(get(f"audio_{dim}") - get(f"visual_{dim}"))
        if name == "disagreement_other":
            return ops.abs(get(f"audio_{other}") - get(f"visual_{other}"))
        if name in ("gap_audio", "gap_visual"):
            return ops.abs(get(dim) - get(f"{name[4:]}_{dim}"))
        if name == "disagreement_smooth":
            both = sum(ops.abs(get(f"audio_{d}") - get(f"visual_{d}")) for d in DIMENSIONS) / 2.0
            return moving_mean(both, mask, self.smooth_frames)
        if name.endswith("_absent"):
            key = f"{name[: -len('_absent')]}_present"
            return 1.0 - get(key) if inputs.get(key) is not None else ops.zeros_like(reference)
        if name.endswith("_atypicality"):
            return ops.log1p(ops.maximum(get(name), 0.0))
        raise ValueError(f"unknown conformal signal {name!r}")

    def call(self, inputs):
        result = {}
        for key, entry in self.keys.items():
            branch, dim = key.split("_", 1)
            name = f"{BRANCH_PREFIXES[branch]}{dim}"
            if name not in inputs:
                continue
            mu = ops.cast(inputs[name], "float64")
            mask = ops.cast(inputs["mask"], "float64") if inputs.get("mask") is not None else ops.ones_like(mu)
            spec = self.signals[dim]
            log_s = ops.full_like(mu, entry["coef"][0])
            for k, signal in enumerate(spec["names"]):
                z = (self._signal(signal, inputs, dim, mu, mask) - spec["mean"][k]) / spec["scale"][k]
                log_s = log_s + entry["coef"][k + 1] * z
            s = ops.exp(log_s)
            quantiles = ops.convert_to_tensor(np.asarray(entry["quantiles"], np.float64))
            if entry["edges"]:
                edges = ops.convert_to_tensor(np.asarray(entry["edges"], np.float64))
                bins = ops.reshape(ops.searchsorted(edges, ops.reshape(s, (-1,)), side="left"), ops.shape(s))
                q = ops.take(quantiles, bins)
            else:
                q = ops.ones_like(s) * quantiles[0]
            half = q * s if self.normalized else q
            result[f"{name}_lower"] = ops.cast(mu - half, "float32")
            result[f"{name}_upper"] = ops.cast(mu + half, "float32")
        return result

    def get_config(self):
        return {
            **super().get_config(),
            "signals": self.signals,
            "keys": self.keys,
            "normalized": self.normalized,
            "smooth_frames": self.smooth_frames,
        }
