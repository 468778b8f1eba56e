"""Merging configuration mappings: a file over the dataset's, hparams and flags over both, a change
over a resolved configuration (`RunConfig.updated`)."""

from __future__ import annotations

import copy


def deep_update(base: dict, update: dict) -> dict:
    """Returns a copy of `base` with `update` merged in, recursively for nested dicts."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
