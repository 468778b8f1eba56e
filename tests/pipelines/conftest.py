"""Session-scoped data shared by the pipeline tests: a tiny raw synthetic corpus and its artefacts,
the tiny 2-epoch COLD regression run of the evaluation tests
(`regression_run`), and the tiny COLD run of the serving tests (`root`, `run_dir`) with its export (`exported`)."""

import pytest

from tests.pipelines import evaluation_helpers
from tests.pipelines.serving_helpers import tiny_export, tiny_run

TINY_RAW = {
    "seed": 4,
    "num_train": 3,
    "num_devel": 1,
    "num_test": 1,
    "duration_seconds": 12.0,
    "raw": True,
    "face_size": 16,
    "sample_rate": 8000,
}
TINY_LOGMEL = {"mel_bins": 8, "hop_seconds": 0.02, "patch_seconds": 0.5}


@pytest.fixture(scope="session")
def raw_corpus_dir(tmp_path_factory):
    from pipelines.datasets import synthetic

    return synthetic.generate(tmp_path_factory.mktemp("raw_corpus"), **TINY_RAW)


@pytest.fixture(scope="session")
def raw_artifacts(raw_corpus_dir, tmp_path_factory):
    from pipelines.components import example_gen, statistics_gen, transform
    from pipelines.datasets import open_corpus

    out = tmp_path_factory.mktemp("raw_artifacts")
    example_gen.run(open_corpus("synthetic", raw_corpus_dir), out, progress=False, logmel=TINY_LOGMEL)
    statistics_gen.run(out)
    transform.run(out)
    return out


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    """Folder of the serving tests' tiny run and export."""
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="session")
def run_dir(root):
    """The tiny 1-epoch COLD run of the export, predict and serving tests (trained once)."""
    return tiny_run(root)


@pytest.fixture(scope="session")
def exported(root, run_dir):
    """Its SavedModel export."""
    return tiny_export(root)


@pytest.fixture(scope="session")
def regression_run(tmp_path_factory):
    """The tiny 2-epoch COLD regression run of the evaluator and uncertainty tests (trained once)."""
    return evaluation_helpers.tiny_run(tmp_path_factory, "regression")
