"""The realistic synthetic variant (`synthetic.variant: realistic`): features that behave like real ones.

Where the simple variant maps the labels through a random network to wide features and corrupts
them with heavy noise or a constant far from the data, this variant imitates per-frame emotion
features of a real corpus:

* Labels: conversations of two speakers (recordings 1+2, 3+4, ... of a partition form a dyad;
  an odd last recording is alone). Each speaker's valence and arousal mix a smooth trajectory
  shared by the conversation (weight 0.6) with their own (weight 0.8), standardised and squashed
  by 0.9 tanh, as in the simple variant.
* Features: each modality has `SYSTEMS` imperfect "systems" (think of pre-trained recognisers),
  each giving a two-dimensional estimate (valence, arousal) of the speaker's state: the labels
  scaled by the speaker's expressivity, lagged (audio 0.2-1 s, visual 0.5-2 s), smoothed
  (0.3-1.5 s), leaking a little of the other dimension, plus slowly varying (AR(1)) and white
  noise of `noise_std`, squashed by tanh. Audio is weak on valence (gain 0.2) and good on
  arousal; visual good on valence and moderate on arousal (gain 0.6). The remaining feature
  columns (`<modality>_dim` beyond 2 x SYSTEMS) are smooth nuisance signals (pose, pitch
  baseline) unrelated to the labels; with fewer columns the last systems are dropped.
* Shifts between partitions: every recording is its own speaker (an offset on every feature and
  an expressivity gain); the training partition is in one "language", devel and test in another,
  which changes the audio systems' bias and arousal gain.
* Corruption: stretches of 2-8 s covering `corruption_fraction` of each modality's frames (visual
  stretches share at most 20% of their frames with corrupted audio, as in the simple variant),
  every kind staying inside the clean data's range:

  - `noise`: Gaussian noise with the recording's own mean and spread;
  - `swap`: the same frames of the dyad partner (a tracker locked onto the wrong face);
  - `frozen`: the stretch's first frame repeated;
  - `drift`: an offset growing linearly to about 1.5 standard deviations, clipped to the
    recording's range;
  - `desync`: the features of 2-5 s earlier (later, at the start of a recording);
  - `dropout`: a constant, the recording's mean.

The layout, the corruption file and the reader are the simple variant's
(`pipelines.datasets.synthetic`); `corruption.csv` names the kinds above.
"""

from __future__ import annotations

import numpy as np

from pipelines.data import features
from pipelines.datasets.synthetic_signals import SEGMENT_SECONDS, corruption_segments, smooth_signals

VARIANTS = ("simple", "realistic")
SYSTEMS = 3
KINDS = ("noise", "swap", "frozen", "drift", "desync", "dropout")
# (valence gain, arousal gain) of the systems of each modality.
GAINS = {features.AUDIO: (0.2, 1.0), features.VISUAL: (1.0, 0.6)}
LAG_SECONDS = {features.AUDIO: (0.2, 1.0), features.VISUAL: (0.5, 2.0)}
SMOOTH_SECONDS = (0.3, 1.5)
DESYNC_SECONDS = (2.0, 5.0)
DRIFT_STD = 1.5
CONVERSATION_WEIGHT, OWN_WEIGHT = 0.6, 0.8


def _smooth_signal(rng, n, sigma_frames, count):
    return smooth_signals(rng, n, sigma_frames, count)


def _blur(values, sigma_frames):
    """Gaussian smoothing along time of [N] `values` (edges padded with the end values)."""
    if sigma_frames < 0.5:
        return values
    radius = int(np.ceil(3 * sigma_frames))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(radius, values[0]), values, np.full(radius, values[-1])])
    return np.convolve(padded, kernel, mode="valid")


def _lag(values, frames):
    """`values` delayed by `frames` (the first value repeated at the start)."""
    if frames <= 0:
        return values
    return np.concatenate([np.full(frames, values[0]), values[:-frames]])


def _ar1(rng, n, rho, std):
    """A stationary AR(1) noise of length n, coefficient rho and standard deviation std."""
    out = np.empty(n)
    out[0] = rng.standard_normal()
    innovation = np.sqrt(1 - rho**2)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + innovation * rng.standard_normal()
    return out * std


def systems(rng, params) -> dict:
    """The fixed properties of every system of both modalities (shared by all recordings)."""
    hop = params["hop"]
    out = {}
    for modality in features.MODALITIES:
        low, high = LAG_SECONDS[modality]
        out[modality] = [
            {
                "lag": int(round(rng.uniform(low, high) / hop)),
                "smooth": rng.uniform(*SMOOTH_SECONDS) / hop,
                "gain": np.array(GAINS[modality]) * rng.uniform(0.7, 1.1, 2),
                "leak": rng.uniform(-0.25, 0.25, 2),
                "noise": rng.uniform(0.8, 1.5),
                "bias": rng.normal(0.0, 0.2, 2),
            }
            for _ in range(SYSTEMS)
        ]
        out[f"{modality}_language"] = {"bias": rng.normal(0.0, 0.3, 2 * SYSTEMS), "arousal_gain": 0.7}
    return out


def _clean_features(rng, params, system_set, modality, valence, arousal, expressivity, language):
    """[N, <modality>_dim] clean features of one speaker."""
    n = len(valence)
    noise_std = params["noise_std"]
    columns = []
    for index, system in enumerate(system_set[modality]):
        g_v, g_a = system["gain"]
        if language and modality == features.AUDIO:
            g_a = g_a * system_set[f"{modality}_language"]["arousal_gain"]
        truth = np.stack([g_v * valence, g_a * arousal]) * expressivity
        for dim in range(2):
            signal = truth[dim] + system["leak"][dim] * truth[1 - dim]
            signal = _blur(_lag(signal, system["lag"]), system["smooth"])
            drift = _ar1(rng, n, 0.98, noise_std * system["noise"])
            white = 0.5 * noise_std * system["noise"] * rng.standard_normal(n)
            bias = system["bias"][dim]
            if language and modality == features.AUDIO:
                bias = bias + system_set[f"{modality}_language"]["bias"][2 * index + dim]
            columns.append(np.tanh(signal + drift + white + bias))
    dim = params[f"{modality}_dim"]
    columns = columns[:dim]
    extra = dim - len(columns)
    if extra > 0:
        nuisance = _smooth_signal(rng, n, 2.0 / params["hop"], extra)
        columns += list(0.5 * nuisance + 0.1 * noise_std * rng.standard_normal((extra, n)))
    values = np.stack(columns, axis=1)
    return values + rng.normal(0.0, 0.3, dim)  # the speaker's offset


def _corrupt(rng, values, donor, segments, hop):
    """Applies the corruption `segments` [(start, end, kind)] to a copy of [N, D] `values`."""
    clean = values
    values = values.copy()
    n = len(values)
    mean, spread = clean.mean(axis=0), clean.std(axis=0)
    low, high = clean.min(axis=0), clean.max(axis=0)
    for start, end, kind in segments:
        length = end - start
        if kind == "noise":
            values[start:end] = mean + spread * rng.standard_normal((length, values.shape[1]))
        elif kind == "swap":
            values[start:end] = donor[start:end]
        elif kind == "frozen":
            values[start:end] = clean[start]
        elif kind == "drift":
            direction = rng.choice([-1.0, 1.0], values.shape[1]) * rng.uniform(0.5, 1.0, values.shape[1])
            ramp = np.linspace(0.0, 1.0, length)[:, None]
            values[start:end] = np.clip(clean[start:end] + ramp * DRIFT_STD * spread * direction, low, high)
        elif kind == "desync":
            shift = int(round(rng.uniform(*DESYNC_SECONDS) / hop))
            source = np.arange(start, end) - shift
            if source[0] < 0:
                source = np.arange(start, end) + shift
            values[start:end] = clean[np.clip(source, 0, n - 1)]
        elif kind == "dropout":
            values[start:end] = mean
        else:  # pragma: no cover - the kinds are this module's own
            raise ValueError(f"unknown corruption kind {kind!r}")
    return values


def recordings(seed_sequence, params, names, n) -> list:
    """The data of every recording (same keys as the simple variant's `_recording`), in `names` order.

    Args:
        seed_sequence: np.random.SeedSequence of the recordings.
        params: the corpus parameters (`synthetic._parameters`).
        names: [(partition, name)] of `synthetic.recording_names`.
        n: frames per recording.
    """
    hop = params["hop"]
    systems_seed, conversations_seed = seed_sequence.spawn(2)
    system_set = systems(np.random.default_rng(systems_seed), params)
    target = int(round(params["corruption_fraction"] * n))
    min_len = max(1, int(round(SEGMENT_SECONDS[0] / hop)))
    max_len = max(min_len, int(round(SEGMENT_SECONDS[1] / hop)))
    # Dyads: consecutive recordings of a partition.
    groups, by_partition = [], {}
    for index, (partition, _) in enumerate(names):
        by_partition.setdefault(partition, []).append(index)
    for partition in by_partition:
        indices = by_partition[partition]
        groups += [(partition, indices[i : i + 2]) for i in range(0, len(indices), 2)]
    out = [None] * len(names)
    for (partition, members), child in zip(groups, conversations_seed.spawn(len(groups))):
        rng = np.random.default_rng(child)
        sigma = params["smoothness_seconds"] / hop
        shared = _smooth_signal(rng, n, sigma, 2)
        language = partition != "Train"
        speakers = []
        for _ in members:
            own = _smooth_signal(rng, n, sigma, 2)
            mixed = CONVERSATION_WEIGHT * shared + OWN_WEIGHT * own
            mixed = (mixed - mixed.mean(axis=1, keepdims=True)) / mixed.std(axis=1, keepdims=True)
            valence, arousal = 0.9 * np.tanh(mixed)
            expressivity = rng.uniform(0.6, 1.3)
            clean = {
                modality: _clean_features(rng, params, system_set, modality, valence, arousal, expressivity, language)
                for modality in features.MODALITIES
            }
            speakers.append({"valence": valence, "arousal": arousal, "clean": clean})
        for position, index in enumerate(members):
            speaker = speakers[position]
            partner = speakers[1 - position] if len(members) == 2 else None
            data = {"valence": speaker["valence"], "arousal": speaker["arousal"]}
            avoid = None
            for modality in features.MODALITIES:
                clean = speaker["clean"][modality]
                if partner is not None:
                    donor = partner["clean"][modality]
                else:  # alone: another stretch of the speaker's own recording stands in for a partner
                    donor = np.roll(clean, n // 2, axis=0)
                segments, flags = corruption_segments(rng, n, target, min_len, max_len, KINDS, avoid)
                data[modality] = _corrupt(rng, clean, donor, segments, hop)
                data[f"{modality}_segments"], data[f"{modality}_flags"] = segments, flags
                avoid = flags
            out[index] = data
    return out
