"""The audio feature sets of AVEC 2019, computed as its baseline computes them, with openSMILE.

* `egemaps`: the eGeMAPSv02 low-level descriptors (25 LLDs at 100 Hz) of the `opensmile` package
  (`opensmile.FeatureSet.eGeMAPSv02`, `FeatureLevel.LowLevelDescriptors`), SMILExtract's own code
  and configs; AVEC 2019 ran openSMILE 2.3's eGeMAPS config the same way.
* `mfcc`: MFCC 0-12 with deltas and accelerations (39 LLDs at 100 Hz) from `MFCC12_0_D_A.conf`
  beside this module: openSMILE's standard config of that name (the `opensmile` package has no
  MFCC feature set), run through `opensmile.Smile(feature_set=<the .conf>, feature_level="lld")`.

Each LLD stream becomes AVEC's functionals (`pipelines.media.functionals`): a row every 0.1 s, the
mean and standard deviation of every LLD over a 4 s window. The signal reaches openSMILE as mono
16 kHz (the package scales it to 16-bit integers, as SMILExtract reads a WAV file).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipelines.media import functionals as functionals_lib

EGEMAPS = "egemaps"
MFCC = "mfcc"
AUDIO_SETS = (EGEMAPS, MFCC)
SAMPLE_RATE = 16000  # what openSMILE is given
LLD_FPS = 100  # LLD rows per second (10 ms frame step) of both sets
MFCC_CONFIG = Path(__file__).with_name("MFCC12_0_D_A.conf")
# Shorter signals give openSMILE no complete frame (eGeMAPS frames are up to 60 ms long).
MIN_SECONDS = 0.1

_LOCK = threading.Lock()
_SMILES = {}


def smile(name: str):
    """The (cached) `opensmile.Smile` of feature set `name`."""
    from pipelines.media import load_opensmile

    opensmile = load_opensmile()

    with _LOCK:
        if name not in _SMILES:
            if name == EGEMAPS:
                _SMILES[name] = opensmile.Smile(
                    feature_set=opensmile.FeatureSet.eGeMAPSv02,
                    feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
                )
            elif name == MFCC:
                _SMILES[name] = opensmile.Smile(feature_set=str(MFCC_CONFIG), feature_level="lld")
            else:
                raise ValueError(f"unknown audio feature set {name!r}")
        return _SMILES[name]


def lld_names(name: str) -> list:
    """The LLD names openSMILE gives set `name`."""
    return list(smile(name).feature_names)


def feature_names(name: str) -> list:
    """The names of set `name`'s functionals: `<lld>_mean` ..., then `<lld>_std` ..."""
    return functionals_lib.names(lld_names(name))


def describe(name: str) -> dict:
    """Where set `name` comes from, for the manifest."""
    if name == EGEMAPS:
        source = "opensmile.FeatureSet.eGeMAPSv02, FeatureLevel.LowLevelDescriptors"
    else:
        source = f"openSMILE {MFCC_CONFIG.name} (pipelines/media), feature_level lld"
    return {
        "modality": "audio",
        "llds": source,
        "lld_fps": LLD_FPS,
        "sample_rate": SAMPLE_RATE,
        "functionals": "AVEC 2019 generate_functionals.py: mean, std (ddof 0) over 4 s windows every 0.1 s",
    }


def llds(name: str, signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """openSMILE's LLDs [frames, D] (float64) of a mono signal in [-1, 1]; [0, D] when it is too short."""
    extractor = smile(name)
    signal = np.clip(np.asarray(signal, np.float32), -1.0, 32767.0 / 32768.0)
    if len(signal) < MIN_SECONDS * sample_rate:
        return np.zeros((0, len(extractor.feature_names)), np.float64)
    frame = extractor.process_signal(signal, sample_rate)
    return frame.to_numpy(dtype=np.float64)


def extract(names, signal: np.ndarray, sample_rate: int = SAMPLE_RATE, parallel: bool = True) -> dict:
    """{set: (timestamps [T], functionals [T, 2D], LLD rows)} of the audio sets `names`.

    The sets run in parallel threads (openSMILE's native code runs outside the GIL).
    """

    def one(name):
        values = llds(name, signal, sample_rate)
        times, feats = functionals_lib.functionals(values, LLD_FPS)
        return name, (times, feats, len(values))

    names = list(names)
    if parallel and len(names) > 1:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return dict(pool.map(one, names))
    return dict(one(name) for name in names)
