"""Experiments over several runs: comparison, deep ensembles, ablations and equal-budget benchmarks."""
