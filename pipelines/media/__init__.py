"""From media files to per-frame features: the library behind `python -m pipelines.extract`.

* `decode`: PyAV decoding (audio resampled to mono, video sampled on the 0.1 s frame grid).
* `audio_features`: the AVEC 2019 audio sets `egemaps` and `mfcc` with openSMILE.
* `functionals`: AVEC 2019's windowed mean/std functionals of LLD streams.
* `faces`: face crops per 0.1 s frame with OpenCV's Haar cascade (raw mode).
* `openface`: importing the CSV files OpenFace 2 writes.
* `layout`: finding the inputs, reading label files, writing the corpus folder.
* `for_run`: what a trained run was trained on, as feature sets to extract.

Nothing here imports TensorFlow; the extraction packages (`opensmile`, `av`, `cv2`) are the
optional `extract` extra and are imported only when used (`require_extra` checks them first).
"""

from __future__ import annotations

from pipelines.core.errors import ConfigError

EXTRA_PACKAGES = ("opensmile", "av", "cv2")
EXTRA_MESSAGE = 'pipelines.extract needs the extract extra: pip install -e ".[extract]"'


def load_opensmile():
    """Imports `opensmile` with its native library bound to its own symbols; returns the module.

    openSMILE's `libSMILEapi.so` and TensorFlow's `libtensorflow_framework.so` both export Ooura's FFT
    routines (`rdft`, `cdft`, `makewt`, ...; openSMILE's in single precision). TensorFlow loads its
    library with global symbols, so once TensorFlow is in a process openSMILE's calls land in
    TensorFlow's double-precision FFT and corrupt the heap (`malloc(): invalid size`, abort). Loading
    the library first with RTLD_DEEPBIND makes it use its own routines, whatever else the process
    holds; `opensmile` then finds it loaded. (`pipelines.extract` itself never imports TensorFlow;
    this keeps openSMILE safe next to it, e.g. under the test suite.)
    """
    import ctypes
    import importlib.util
    import os
    import sys

    if "opensmile" not in sys.modules and hasattr(os, "RTLD_DEEPBIND"):
        spec = importlib.util.find_spec("opensmile")
        if spec is not None and spec.origin:
            folder = os.path.join(os.path.dirname(spec.origin), "core", "bin")
            for root, _, files in os.walk(folder):
                for name in files:
                    if name.startswith("libSMILEapi."):
                        ctypes.CDLL(os.path.join(root, name), mode=os.RTLD_LOCAL | os.RTLD_DEEPBIND)
    import opensmile

    return opensmile


def require_extra() -> dict:
    """Imports the extraction packages; {name: version}. ConfigError (one line) when one is missing."""
    import importlib

    versions = {}
    for name in EXTRA_PACKAGES:
        try:
            module = load_opensmile() if name == "opensmile" else importlib.import_module(name)
        except (ImportError, OSError) as error:
            raise ConfigError(f"{EXTRA_MESSAGE} (cannot import {name}: {error})") from None
        versions[name] = str(getattr(module, "__version__", "unknown"))
    import numpy

    versions["numpy"] = numpy.__version__
    return versions
