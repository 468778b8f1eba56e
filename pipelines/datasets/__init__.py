"""Corpus adapters: each turns a corpus on disk into `Recording` objects."""

from pipelines.datasets.base import Corpus, Recording

__all__ = ["Corpus", "Recording"]
