"""The simple synthetic variant's recordings, made from the seed (`pipelines.datasets.synthetic`).

How the data are made (all from `seed`):

* Valence and arousal: Gaussian-smoothed white noise (width `smoothness_seconds`), standardised,
  squashed by 0.9 tanh, so smooth trajectories inside (-0.9, 0.9). A third smooth nuisance signal
  unrelated to the labels also enters the features.
* Each modality: a random two-layer tanh projection of (g_v * valence, g_a * arousal, nuisance) to
  its feature dimension, plus a per-recording offset and Gaussian noise (`noise_std`). Audio
  weighs arousal fully and valence by 0.25; visual the other way round.
* Corruption: stretches of 2-8 s covering `corruption_fraction` of each modality's frames, placed
  so that a visual stretch shares at most 20% of its frames with corrupted audio. Inside a stretch
  the features carry no label information: heavy noise (twice the clean spread) or a constant
  (silence / an occluded face). Which modality is informative thus changes over time.
* Annotation delay (`label_delay_seconds` = d, D = round(d / hop) frames; default 0): the label
  files lag the features as raters lag what they perceive. The features of frame t are made from
  the emotion at frame t + D, whose value the label file holds at frame t + D; the label file's
  first D frames hold the emotion before the recording's first feature frame.

The raw variant (`raw=True`) draws faces and synthesises a voice from the same kind of label
trajectories (`pipelines.datasets.synthetic_raw`), with corrupted stretches placed the same way.
"""

from __future__ import annotations

import numpy as np

from pipelines.data import features
from pipelines.datasets import synthetic_raw
from pipelines.datasets.synthetic_signals import SEGMENT_SECONDS, corruption_segments, smooth_signals

# (valence gain, arousal gain) per modality.
GAINS = {features.AUDIO: (0.25, 1.0), features.VISUAL: (1.0, 0.25)}
CORRUPTION_KINDS = {features.AUDIO: ("noise", "silence"), features.VISUAL: ("noise", "occlusion")}
HIDDEN_UNITS = 32


def draw_mappings(rng, params) -> dict:
    """The random two-layer projection of each modality, shared by every recording of the corpus."""
    out = {}
    for modality in features.MODALITIES:
        dim = params[f"{modality}_dim"]
        out[modality] = {
            "w1": rng.standard_normal((3, HIDDEN_UNITS)) * 1.5,
            "b1": rng.standard_normal(HIDDEN_UNITS) * 0.3,
            "w2": rng.standard_normal((HIDDEN_UNITS, dim)) / np.sqrt(HIDDEN_UNITS),
            "constant": rng.standard_normal(dim) * 0.5,
        }
    return out


def feature_recording(rng, params, mappings, n: int) -> dict:
    """Labels, features and corrupted stretches of one recording of the simple variant (module docstring)."""
    hop = params["hop"]
    delay = int(round(params.get("label_delay_seconds", 0.0) / hop))
    valence, arousal, nuisance = smooth_signals(rng, n + delay, params["smoothness_seconds"] / hop, 3)
    valence, arousal = 0.9 * np.tanh(valence), 0.9 * np.tanh(arousal)
    # Labels: the emotion at frames 0 .. n-1; features: at frames D .. n+D-1 (with D = 0, the same frames).
    data = {"valence": valence[:n], "arousal": arousal[:n]}
    valence, arousal, nuisance = valence[delay:], arousal[delay:], nuisance[delay:]
    target = int(round(params["corruption_fraction"] * n))
    min_len = max(1, int(round(SEGMENT_SECONDS[0] / hop)))
    max_len = max(min_len, int(round(SEGMENT_SECONDS[1] / hop)))
    avoid = None
    for modality in features.MODALITIES:
        mapping = mappings[modality]
        g_v, g_a = GAINS[modality]
        inputs = np.stack([g_v * valence, g_a * arousal, 0.5 * nuisance], axis=1)
        clean = np.tanh(inputs @ mapping["w1"] + mapping["b1"]) @ mapping["w2"]
        clean = clean + rng.standard_normal(clean.shape[1]) * 0.2  # per-recording offset
        values = clean + params["noise_std"] * rng.standard_normal(clean.shape)
        segments, flags = corruption_segments(rng, n, target, min_len, max_len, CORRUPTION_KINDS[modality], avoid)
        spread = values.std(axis=0)
        for start, end, kind in segments:
            if kind == "noise":
                values[start:end] = values.mean(axis=0) + 2.0 * spread * rng.standard_normal((end - start, len(spread)))
            else:
                values[start:end] = mapping["constant"] + 0.01 * rng.standard_normal((end - start, len(spread)))
        data[modality], data[f"{modality}_segments"], data[f"{modality}_flags"] = values, segments, flags
        avoid = flags
    return data


def corrupted_stretches(rng, params, n: int) -> dict:
    """Corrupted stretches of both modalities, placed as in `feature_recording` (visual avoiding audio)."""
    hop = params["hop"]
    target = int(round(params["corruption_fraction"] * n))
    min_len = max(1, int(round(SEGMENT_SECONDS[0] / hop)))
    max_len = max(min_len, int(round(SEGMENT_SECONDS[1] / hop)))
    out, avoid = {}, None
    for modality in features.MODALITIES:
        segments, flags = corruption_segments(rng, n, target, min_len, max_len, CORRUPTION_KINDS[modality], avoid)
        out[f"{modality}_segments"], out[f"{modality}_flags"] = segments, flags
        avoid = flags
    return out


def raw_recording(rng, params, n: int) -> dict:
    """Labels, drawn faces and a synthetic voice of one recording (`synthetic_raw`)."""
    hop = params["hop"]
    valence, arousal = smooth_signals(rng, n, params["smoothness_seconds"] / hop, 2)
    valence, arousal = 0.9 * np.tanh(valence), 0.9 * np.tanh(arousal)
    person = synthetic_raw.identity(rng)
    data = {"valence": valence, "arousal": arousal, **corrupted_stretches(rng, params, n)}
    faces = synthetic_raw.draw_faces(valence, arousal, params["face_size"], person, rng)
    data["faces"] = synthetic_raw.corrupt_faces(faces, data["visual_segments"], rng)
    waveform = synthetic_raw.synthesize_voice(valence, arousal, hop, params["sample_rate"], person, rng)
    data["waveform"] = synthetic_raw.corrupt_voice(waveform, data["audio_segments"], hop, params["sample_rate"], rng)
    return data
