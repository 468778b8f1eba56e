"""Corpus adapters: each turns a corpus on disk into `Recording` objects."""

from pipelines.datasets.base import Recording

__all__ = ["Recording"]
