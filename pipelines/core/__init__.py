"""The core every other folder stands on: one-line errors, atomic file writes, command-line helpers,
quiet start-up and named pause points. Imports nothing else of `pipelines`."""
