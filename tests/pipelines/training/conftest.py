"""The training tests' session fixtures."""

from tests.pipelines.training.stopped_runs import stopped_everywhere  # noqa: F401
