"""TFX-style components of cold-keras, each runnable as `python -m pipelines.<component>`."""
