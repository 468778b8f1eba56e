"""Tests of the annotation delay: shifting, training pairs, the synthetic corpus's delay, the tuner's search."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pipelines.config import merging
from pipelines.core.errors import ConfigError
from pipelines.data import label_delay

DELAY_SECONDS = 1.5
HOP = 0.1
TINY = {
    "seed": 2,
    "num_train": 3,
    "num_devel": 2,
    "num_test": 0,
    "duration_seconds": 20.0,
    "audio_dim": 5,
    "visual_dim": 6,
    "corruption_fraction": 0.0,
    "smoothness_seconds": 1.0,
}


@pytest.fixture(scope="module")
def delayed_corpus(tmp_path_factory):
    from pipelines.datasets import synthetic

    return synthetic.generate(tmp_path_factory.mktemp("delayed") / "corpus", label_delay_seconds=DELAY_SECONDS, **TINY)


@pytest.fixture(scope="module")
def artifacts(delayed_corpus, tmp_path_factory):
    from pipelines.components import example_gen, statistics_gen, transform
    from pipelines.datasets import open_corpus

    out = tmp_path_factory.mktemp("delayed_artifacts")
    example_gen.run(open_corpus("synthetic", delayed_corpus), out, progress=False)
    statistics_gen.run(out)
    transform.run(out)
    return out


def test_shift_back_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(12, 3))
    for frames in (0, 1, 5, 12, 20):
        expected = np.array([values[max(t - frames, 0)] for t in range(12)])
        np.testing.assert_array_equal(label_delay.shift_back(values, frames), expected)
    outputs = {"valence": values[:, 0], "audio_valence": values, "valence_utterance": np.float32(0.3)}
    shifted = label_delay.shift_outputs(outputs, 4)
    np.testing.assert_array_equal(shifted["valence"][4:], values[:8, 0])
    np.testing.assert_array_equal(shifted["valence"][:4], np.full(4, values[0, 0]))
    assert shifted["valence_utterance"] == outputs["valence_utterance"]
    assert label_delay.delay_frames(1.5, 0.1) == 15
    assert label_delay.delay_frames(0.04, 0.1) == 0
    for bad in (-1.0, float("nan"), "2", True):
        with pytest.raises(ConfigError, match="label_delay_seconds"):
            label_delay.check(bad)


def test_training_pairs_features_at_t_with_labels_at_t_plus_delay(artifacts):
    """Both the whole-recording and the windowed datasets against NumPy slices of the recordings."""
    from pipelines.components import input_pipeline
    from pipelines.data import features

    frames = label_delay.delay_frames(DELAY_SECONDS, HOP)
    recordings = list(input_pipeline.iter_recordings(artifacts, features.DEVEL))
    dataset = input_pipeline.make_dataset(
        artifacts, features.DEVEL, training=False, batch_size=1, label_delay_frames=frames
    )
    count = 0
    for (inputs, targets), recording in zip(dataset.as_numpy_iterator(), recordings):
        n = len(recording[features.VALENCE])
        np.testing.assert_array_equal(inputs[features.AUDIO][0], recording[features.AUDIO][: n - frames])
        np.testing.assert_array_equal(inputs[features.VISUAL][0], recording[features.VISUAL][: n - frames])
        for key in features.LABEL_KEYS:
            np.testing.assert_array_equal(targets[key][0], recording[key][frames:])
        count += 1
    assert count == len(recordings)

    # One window per recording (window longer than any recording): the same pairing, masked to N - D frames.
    n_max = max(len(r[features.VALENCE]) for r in recordings)
    train = input_pipeline.make_dataset(
        artifacts,
        features.DEVEL,
        training=True,
        batch_size=8,
        window_seconds=(n_max + 5) * HOP,
        label_delay_frames=frames,
        seed=0,
    )
    ((inputs, targets),) = list(train.as_numpy_iterator())
    by_first_label = {}
    for recording in recordings:
        by_first_label[float(recording[features.VALENCE][frames])] = recording
    for i in range(inputs[features.MASK].shape[0]):
        recording = by_first_label[float(targets[features.VALENCE][i, 0])]
        n = len(recording[features.VALENCE]) - frames
        assert inputs[features.MASK][i].sum() == n
        np.testing.assert_array_equal(inputs[features.AUDIO][i, :n], recording[features.AUDIO][:n])
        np.testing.assert_array_equal(targets[features.AROUSAL][i, :n], recording[features.AROUSAL][frames:])
    assert (
        input_pipeline.count_batches(
            artifacts, features.DEVEL, batch_size=8, window_seconds=(n_max + 5) * HOP, label_delay_frames=frames
        )
        == 1
    )


def test_synthetic_labels_lag_the_features_by_the_delay(delayed_corpus, tmp_path):
    """Ridge regression of the labels at t + k on the features at t fits best at k = the delay."""
    from pipelines.datasets import synthetic
    from pipelines.datasets.avec import open_avec

    def best_shift(root):
        recordings = list(open_avec(root, audio_features=["audio"], visual_features=["visual"]).recordings())
        errors = []
        for k in range(0, 31):
            x = np.concatenate(
                [
                    np.concatenate(
                        [r.audio[: r.num_frames - k], r.visual[: r.num_frames - k], np.ones((r.num_frames - k, 1))],
                        axis=1,
                    )
                    for r in recordings
                ]
            )
            y = np.concatenate([np.stack([r.valence[k:], r.arousal[k:]], axis=1) for r in recordings])
            weights = np.linalg.lstsq(x, y, rcond=None)[0]
            errors.append(np.mean((y - x @ weights) ** 2) / y.var(axis=0).mean())
        return int(np.argmin(errors))

    assert best_shift(delayed_corpus) == label_delay.delay_frames(DELAY_SECONDS, HOP)
    undelayed = synthetic.generate(tmp_path / "undelayed", **TINY)
    assert best_shift(undelayed) == 0
    # A corpus without delay keeps its parameters (and so its cache key) unchanged.
    assert "label_delay_seconds" not in synthetic.load_parameters(undelayed)
    with pytest.raises(ConfigError, match="label_delay_seconds"):
        synthetic.generate(tmp_path / "bad", label_delay_seconds=-1.0, **TINY)


def test_config_flag_and_hparams_carry_the_delay(tmp_path):
    from pipelines import train as train_command
    from pipelines.config import files as config_lib
    from pipelines.config import flags as run_options

    args = train_command.parse_args(["--dataset", "synthetic", "--label-delay", "2.5"])
    assert run_options.build_config(args).training.label_delay_seconds == 2.5
    with pytest.raises(SystemExit):  # the flag is refused by name before any config is built
        train_command.parse_args(["--dataset", "synthetic", "--label-delay", "-1"])
    config = run_options.build_config(args).to_dict()
    config["training"]["label_delay_seconds"] = -1  # as a config file would set it
    with pytest.raises(ConfigError, match="training.label_delay_seconds must be a number of seconds >= 0"):
        config_lib.validate(config)
    hparams = tmp_path / "best.json"
    hparams.write_text(json.dumps({"hyperparameters": {"label_delay_seconds": 2.0, "lambda_regu": 0.1}}))
    assert config_lib.load_hparams(hparams) == {"training": {"label_delay_seconds": 2.0}, "model": {"lambda_regu": 0.1}}


def test_search_groups_and_choices():
    from pipelines.training import search_space

    config = {"model": {"name": "cold_fusion"}, "training": {}}
    assert search_space.searched_names(config, False, search_space.parse_search("label_delay")) == (
        "label_delay_seconds",
    )
    assert search_space.searched_names(config, False, search_space.parse_search("lambdas,label_delay")) == (
        search_space.LAMBDA_NAMES + ("label_delay_seconds",)
    )
    assert search_space.searched_names(config, True) == search_space.LAMBDA_NAMES + ("learning_rate",)
    with pytest.raises(ConfigError, match="--search"):
        search_space.parse_search("lambdas,delay")
    with pytest.raises(ConfigError, match="no loss weights"):
        search_space.searched_names({"model": {"name": "early_fusion"}, "training": {}}, False, ("lambdas",))
    assert search_space.parse_delay_choices("2,0,2,4") == (0.0, 2.0, 4.0)
    with pytest.raises(ConfigError, match="--label-delay-choices"):
        search_space.parse_delay_choices("0,-2")


@pytest.mark.slow
def test_tuner_trains_each_trial_on_its_own_delay(delayed_corpus, tmp_path, monkeypatch):
    """Two one-epoch trials, delays 0 and 1.5 s: each trial fits on datasets paired with its own delay."""
    from pipelines.config import files as config_lib
    from pipelines.training import setup as training_setup
    from pipelines.training import tune

    monkeypatch.setenv("COLD_KERAS_CACHE", str(tmp_path / "cache"))
    config = merging.deep_update(
        config_lib.load_file(config_lib.default_config_path("synthetic")),
        {
            "data_dir": str(delayed_corpus),
            "model": {"name": "cold_fusion", "gru_units": 4, "gru_layers": 1, "latent_dim": 4},
            "training": {"epochs": 1, "window_seconds": 6.0, "window_hop_seconds": 6.0, "mixed_precision": "off"},
        },
    )
    config["dataset"] = "synthetic"
    config = config_lib.validate(config)
    delays_built = []
    original = training_setup.make_training_inputs

    def recording(config, artifact_dir):
        delays_built.append(training_setup.training_delay_frames(config, artifact_dir))
        return original(config, artifact_dir)

    monkeypatch.setattr(training_setup, "make_training_inputs", recording)
    result = tune.run(
        config,
        tmp_path / "search",
        max_trials=2,
        search=("label_delay",),
        label_delay_choices=f"0,{DELAY_SECONDS}",
        progress=False,
    )
    tried = sorted(row["label_delay_seconds"] for row in result["trials"])
    assert tried == [0.0, DELAY_SECONDS]
    assert all(row["score"] is not None and np.isfinite(row["score"]) for row in result["trials"])
    # The search's own inputs (delay 0), then one per trial with the trial's delay in frames.
    assert sorted(delays_built[1:]) == [0, label_delay.delay_frames(DELAY_SECONDS, HOP)]
    best = json.loads((tmp_path / "search" / "best_hparams.json").read_text())
    assert best["hyperparameters"]["label_delay_seconds"] in (0.0, DELAY_SECONDS)
    assert os.path.isfile(tmp_path / "search" / "config.json")
