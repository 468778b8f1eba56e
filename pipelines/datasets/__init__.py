"""Corpus adapters: each turns a corpus on disk into `Recording` objects.

`open_corpus(dataset, data_dir, **options)` picks the adapter by name. The adapters are imported
when first used, so importing this package stays cheap (and none of them imports TensorFlow).
"""

from __future__ import annotations

import importlib
import inspect

from pipelines.core.errors import ConfigError
from pipelines.datasets.base import Corpus, Recording

# dataset name -> (module, function)
ADAPTERS = {
    "avec": ("pipelines.datasets.avec", "open_avec"),
    "iemocap": ("pipelines.datasets.iemocap", "open_iemocap"),
    "synthetic": ("pipelines.datasets.synthetic", "open_synthetic"),
    "recordings": ("pipelines.datasets.recordings", "open_recordings"),
}


def open_corpus(dataset: str, data_dir, **options) -> Corpus:
    """Opens a corpus folder with the adapter named `dataset`.

    Args:
        dataset: str. One of `avec`, `iemocap`, `synthetic`, `recordings` (own recordings in raw
            mode, as `pipelines.extract` writes them).
        data_dir: str or Path. The corpus folder.
        **options: the adapter's keyword options: `audio_features`, `visual_features` and
            `allow_missing_modality` for all three; `features_dir`, `validation_speaker` and
            `hop` for IEMOCAP.

    Returns:
        `Corpus`.

    Raises:
        ConfigError: an unknown dataset or option, or no `data_dir`.
        DataError: bad corpus files (from the adapter).

    >>> corpus = open_corpus("synthetic", "/tmp/synthetic")  # doctest: +SKIP
    >>> corpus.audio_feature_names[:2]  # doctest: +SKIP
    ['audio_0', 'audio_1']
    """
    if dataset not in ADAPTERS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(ADAPTERS)}")
    if data_dir is None or str(data_dir) == "":
        raise ConfigError(f"dataset {dataset!r} needs a data folder (data_dir)")
    module_name, function_name = ADAPTERS[dataset]
    adapter = getattr(importlib.import_module(module_name), function_name)
    accepted = [name for name, p in inspect.signature(adapter).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"dataset {dataset!r} does not take the option(s) {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return adapter(data_dir, **options)


__all__ = ["ADAPTERS", "Corpus", "Recording", "open_corpus"]
