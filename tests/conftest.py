"""Test session setup: quiet TensorFlow logs, a fixed Keras seed for every test, and how the test
files are shared between pytest-xdist workers.

Under the README's `-n 2 --dist loadgroup --no-loadscope-reorder` every test file runs whole in one
worker (its module fixtures are built once); the files of a `SHARED_FIXTURES` group run in the same
worker, so the session fixtures they share (tiny trained runs and their export) are trained once per
suite run, not once per worker; and the costliest groups (`COSTLIEST_FIRST`, measured with
`--durations`) start first, so that both workers finish at about the same time.
"""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_FIXTURES = {
    # evaluation_helpers.tiny_run / tiny_ablation (conftest `regression_run`)
    "tiny_runs": (
        "tests/pipelines/test_interruptions.py",
        "tests/pipelines/evaluation/test_uncertainty.py",
        "tests/pipelines/evaluation/test_evaluate.py",
        "tests/pipelines/experiments/test_ablate.py",
        "tests/pipelines/experiments/test_compare.py",
    ),
    # serving_helpers.tiny_run / tiny_export (conftest `run_dir`, `exported`)
    "tiny_export": (
        "tests/pipelines/serving/test_export.py",
        "tests/pipelines/serving/test_predict.py",
        "tests/pipelines/serving/test_serve_client.py",
    ),
    # tests/pipelines/training/stopped_runs.py `stopped_everywhere`
    "stopped_everywhere": (
        "tests/pipelines/training/test_train_exact_resume.py",
        "tests/pipelines/training/test_train_resume.py",
    ),
    # conftest `raw_corpus_dir`, `raw_artifacts`
    "raw_corpus": (
        "tests/pipelines/data/test_raw_augment.py",
        "tests/pipelines/data/test_raw_inputs.py",
        "tests/pipelines/datasets/test_synthetic_raw.py",
        "tests/pipelines/datasets/test_field_checks.py",
    ),
}
GROUP_OF = {path: group for group, paths in SHARED_FIXTURES.items() for path in paths}
COSTLIEST_FIRST = (
    "tiny_runs",
    "tests/pipelines/training/test_train.py",
    "stopped_everywhere",
    "tests/pipelines/training/test_tune.py",
    "tests/cold_keras/models/test_builders.py",
    "tiny_export",
    "tests/cold_keras/models/test_presence.py",
    "tests/pipelines/training/test_train_raw.py",
    "tests/pipelines/data/test_label_delay.py",
)


def group_of(item) -> str:
    path = item.nodeid.split("::")[0]
    return GROUP_OF.get(path, path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    named = [entry for entry in (*GROUP_OF, *COSTLIEST_FIRST) if entry not in SHARED_FIXTURES]
    stale = [path for path in named if not (config.rootpath / path).is_file()]
    if stale:  # a renamed file would otherwise silently lose its group or its place in the order
        raise pytest.UsageError(f"tests/conftest.py names test files that do not exist: {', '.join(stale)}")
    rank = {group: i for i, group in enumerate(COSTLIEST_FIRST)}
    items.sort(key=lambda item: rank.get(group_of(item), len(rank)))  # stable: file order otherwise
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of(item)))


@pytest.fixture(autouse=True)
def _keras_seed():
    import keras  # here: pytest-xdist's controlling process, which runs no test, never starts TensorFlow

    keras.utils.set_random_seed(0)
