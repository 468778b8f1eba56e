"""Input pipeline: windows, masks, padding, evaluation datasets, classes, weights, oversampling."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import example_gen, input_pipeline, transform
from pipelines.core.errors import ConfigError, DataError
from tests.pipelines.example_gen_helpers import HOP, make_corpus, make_recordings

WINDOW_SECONDS = 2.5  # 5 frames at the helpers' 0.5 s hop
WINDOW = 5


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    recordings = make_recordings(seed=11)
    out = tmp_path_factory.mktemp("pipeline") / "artifacts"
    example_gen.run(make_corpus(recordings), out, progress=False, num_shards=2)
    transform.run(out)
    return recordings, out


def _numpy_windows(recording, window, step):
    """Independent windowing: every `step` frames while a window fits, then one ending on the last frame."""
    n = recording.num_frames
    if n <= window:
        starts = [0]
    else:
        starts = list(range(0, n - window + 1, step))
        if starts[-1] + window < n:
            starts.append(n - window)
    out = []
    for start in starts:
        real = min(window, n - start)
        item = {"mask": np.zeros(window, np.float32)}
        item["mask"][:real] = 1
        for key in ("audio", "visual"):
            values = getattr(recording, key)
            item[key] = np.zeros((window, values.shape[1]), np.float32)
            item[key][:real] = values[start : start + real]
        for key in ("valence", "arousal"):
            item[key] = np.zeros(window, np.float32)
            item[key][:real] = np.broadcast_to(np.float32(getattr(recording, key)), (n,))[start : start + real]
        for key in ("audio_present", "visual_present"):
            flags = getattr(recording, key)
            flags = np.ones(n, np.float32) if flags is None else np.asarray(flags, np.float32)
            item[key] = np.zeros(window, np.float32)  # padded frames are never present
            item[key][:real] = flags[start : start + real]
        out.append(item)
    return out


def _key(item):
    return item["audio"].tobytes() + item["mask"].tobytes()


def _unbatch(dataset):
    items = []
    for inputs, targets in dataset.as_numpy_iterator():
        for b in range(inputs["mask"].shape[0]):
            items.append({**{k: v[b] for k, v in inputs.items()}, **{k: v[b] for k, v in targets.items()}})
    return items


@pytest.mark.parametrize("n, step", [(12, 2), (12, 5), (10, 3), (3, 2), (5, 5), (1, 1), (11, 7)])
def test_windows_reconstruct_the_recording(n, step):
    recording = make_recordings(seed=1, lengths={"train": [n]})[0]
    example = {k: tf.constant(getattr(recording, k)) for k in ("audio", "visual", "valence", "arousal")}
    windows = {k: v.numpy() for k, v in input_pipeline.windows_of(example, WINDOW, step).items()}
    assert (windows["mask"].sum(axis=1) > 0).all()  # never an all-masked window
    rebuilt = np.full((n, recording.audio.shape[1]), np.nan, np.float32)
    for k, start in enumerate(windows["start"]):
        real = windows["mask"][k] > 0
        assert real.sum() == min(WINDOW, n - start)
        np.testing.assert_array_equal(real, np.arange(WINDOW) < n - start)  # padding on the right only
        for key in ("audio", "visual", "valence", "arousal"):
            assert not windows[key][k][~real].any()  # padded frames are zero
        rebuilt[start : start + real.sum()] = windows["audio"][k][real]
        np.testing.assert_array_equal(windows["valence"][k][real], recording.valence[start : start + real.sum()])
    if step <= WINDOW:
        np.testing.assert_array_equal(rebuilt, recording.audio)  # every frame covered, values exact
    else:  # a hop longer than the window skips frames between windows
        covered = ~np.isnan(rebuilt[:, 0])
        np.testing.assert_array_equal(rebuilt[covered], recording.audio[covered])
        assert covered[0] and covered[-1] and not covered.all()
    expected = _numpy_windows(recording, WINDOW, step)
    assert len(expected) == len(windows["start"])
    for k, item in enumerate(expected):
        np.testing.assert_array_equal(windows["visual"][k], item["visual"])
        np.testing.assert_array_equal(windows["mask"][k], item["mask"])


def test_training_dataset_yields_exactly_the_numpy_windows(artifacts):
    recordings, out = artifacts
    dataset = input_pipeline.make_dataset(
        out, "train", training=True, batch_size=3, window_seconds=WINDOW_SECONDS, window_hop_seconds=1.0, seed=0
    )
    items = _unbatch(dataset)
    expected = [w for r in recordings if r.partition == "train" for w in _numpy_windows(r, WINDOW, 2)]
    assert len(items) == len(expected)
    assert len(list(dataset)) == input_pipeline.count_batches(
        out, "train", batch_size=3, window_seconds=WINDOW_SECONDS, window_hop_seconds=1.0
    )
    got = sorted(items, key=_key)
    for item, reference in zip(got, sorted(expected, key=_key)):
        assert set(item) == {"audio", "visual", "mask", "audio_present", "visual_present", "valence", "arousal"}
        for key, value in reference.items():
            np.testing.assert_array_equal(item[key], value)
            assert item[key].dtype == np.float32


def test_default_window_hop_is_half_a_window(artifacts):
    recordings, out = artifacts
    dataset = input_pipeline.make_dataset(out, "train", training=True, window_seconds=2.0, seed=0)
    expected = sum(len(_numpy_windows(r, 4, 2)) for r in recordings if r.partition == "train")
    assert len(_unbatch(dataset)) == expected


def test_evaluation_dataset_whole_recordings_never_augmented(artifacts):
    recordings, out = artifacts
    augment = {"noise_std": 1.0, "time_mask_frames": 3, "modality_dropout_prob": 1.0}
    dataset = input_pipeline.make_dataset(out, "devel", training=False, batch_size=2, augment=augment)
    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == 1
    inputs, targets = batches[0]
    devel = [r for r in recordings if r.partition == "devel"]
    longest = max(r.num_frames for r in devel)
    assert inputs["audio"].shape == (2, longest, 3)
    for b, parsed in enumerate(input_pipeline.iter_recordings(out, "devel")):
        recording = next(r for r in devel if r.name == parsed["name"])
        n = recording.num_frames
        np.testing.assert_array_equal(inputs["mask"][b], np.arange(longest) < n)
        np.testing.assert_array_equal(inputs["audio"][b][:n], recording.audio)
        np.testing.assert_array_equal(inputs["visual"][b][:n], recording.visual)
        assert not inputs["audio"][b][n:].any()
        np.testing.assert_array_equal(targets["arousal"][b][:n], recording.arousal)


def test_no_dataset_is_autotuned(artifacts, monkeypatch):
    """tf.data's autotuning thread delays freeing each iterator (`records.untuned`), so no dataset
    the commands iterate runs with it: the training and evaluation batches, the resumable training
    stream, and the per-recording reads of the evaluator, the predictor and the statistics."""
    from pipelines.components import statistics
    from pipelines.data import records

    _, out = artifacts
    batches = [
        input_pipeline.make_dataset(out, "train", training=True, window_seconds=WINDOW_SECONDS, seed=0),
        input_pipeline.make_dataset(out, "devel", training=False),
        input_pipeline.epoch_stream(
            out, "train", start_epoch=0, start_step=1, steps_per_epoch=2, window_seconds=WINDOW_SECONDS, seed=0
        ),
    ]
    assert [dataset.options().autotune.enabled for dataset in batches] == [False, False, False]

    iterated = []
    as_numpy_iterator = tf.data.Dataset.as_numpy_iterator

    def recording(dataset):
        iterated.append(dataset.options().autotune.enabled)
        return as_numpy_iterator(dataset)

    monkeypatch.setattr(tf.data.Dataset, "as_numpy_iterator", recording)
    assert list(input_pipeline.iter_recordings(out, "devel"))
    assert records.label_arrays(out, "train")
    assert list(statistics._tolerant_examples(out, "train"))
    assert iterated == [False, False, False]


def test_unlabelled_partition(artifacts):
    _, out = artifacts
    batch = next(iter(input_pipeline.make_dataset(out, "test", training=False)))
    assert set(batch) == {"audio", "visual", "mask", "audio_present", "visual_present"}
    with pytest.raises(DataError, match="no labels"):
        input_pipeline.make_dataset(out, "test", training=True)


def test_sequence_level_labels_broadcast_to_frames(tmp_path):
    recordings = make_recordings(seed=2, sequence_level=True, corruption=False)
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(recordings), out, progress=False)
    for training in (True, False):
        dataset = input_pipeline.make_dataset(
            out, "train", training=training, window_seconds=WINDOW_SECONDS, task="classification"
        )
        owners = {row.tobytes(): r for r in recordings if r.partition == "train" for row in r.audio}
        seen = 0
        for item in _unbatch(dataset):
            real = item["mask"] > 0
            owner = owners[item["audio"][0].tobytes()]
            expected = np.where(owner.valence < np.float32(-0.05), 0, np.where(owner.valence > np.float32(0.05), 2, 1))
            assert (item["valence"][real] == expected).all() and item["valence"].dtype == np.int32
            seen += 1
        assert seen >= 4


def test_to_classes_at_the_boundaries():
    t = np.float32(0.05)
    values = np.array([-1, np.nextafter(-t, np.float32(-1)), -t, 0, t, np.nextafter(t, np.float32(1)), 1], np.float32)
    expected = np.array([0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(input_pipeline.to_classes(values), expected)
    np.testing.assert_array_equal(input_pipeline.to_classes(tf.constant(values)).numpy(), expected)
    assert input_pipeline.to_classes(tf.constant(values)).dtype == tf.int32


def test_class_weights_match_numpy(artifacts):
    recordings, out = artifacts
    weights = input_pipeline.class_weights(out)
    for index, key in enumerate(("valence", "arousal")):
        labels = np.concatenate([getattr(r, key) for r in recordings if r.partition == "train"])
        bins = np.where(labels < np.float32(-0.05), 0, np.where(labels > np.float32(0.05), 2, 1))
        share = np.array([(bins == k).mean() for k in range(3)])
        inverse = 1 / share
        np.testing.assert_allclose(weights[index], inverse / inverse.mean(), rtol=1e-12)
        assert np.mean(weights[index]) == pytest.approx(1.0)


def test_class_weights_absent_class_gets_zero(tmp_path):
    recordings = [
        dataclasses.replace(r, valence=np.abs(r.valence) + 0.1 if r.labelled else None) for r in make_recordings(seed=4)
    ]
    recordings = [dataclasses.replace(r, valence=np.minimum(r.valence, 1.0)) if r.labelled else r for r in recordings]
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(recordings), out, progress=False)
    valence = input_pipeline.class_weights(out)[0]
    assert valence == [0.0, 0.0, 1.0]


def _dominant(labels, mask):
    bins = np.where(labels < np.float32(-0.05), 0, np.where(labels > np.float32(0.05), 2, 1))
    return np.bincount(bins[mask > 0], minlength=3).argmax()


def test_oversampling_moves_towards_balance(tmp_path):
    rng = np.random.default_rng(0)
    recordings = []
    for index in range(6):
        n = 20
        negative = index == 0  # one recording of six is negative: a minority class
        valence = (rng.uniform(-0.9, -0.2, n) if negative else rng.uniform(0.2, 0.9, n)).astype(np.float32)
        recordings.append(
            dataclasses.replace(
                make_recordings(seed=index, lengths={"train": [n]})[0], name=f"train_{index}", valence=valence
            )
        )
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(recordings), out, progress=False, num_shards=3)

    def share_negative(oversample, passes):
        counts = np.zeros(3)
        for p in range(passes):
            dataset = input_pipeline.make_dataset(
                out,
                "train",
                training=True,
                window_seconds=WINDOW_SECONDS,
                oversample=oversample,
                seed=p,
                task="classification",
            )
            items = _unbatch(dataset)
            for item in items:
                counts[np.bincount(item["valence"][item["mask"] > 0], minlength=3).argmax()] += 1
        return counts[0] / counts.sum(), counts.sum() / passes

    plain, plain_len = share_negative(False, 1)
    expected = np.mean(
        [_dominant(w["valence"], w["mask"]) == 0 for r in recordings for w in _numpy_windows(r, WINDOW, 2)]
    )
    assert plain == pytest.approx(expected)
    balanced, balanced_len = share_negative("valence", 4)
    assert balanced_len == plain_len  # one oversampled pass is as long as a plain pass
    assert expected < 0.2 and 0.35 < balanced < 0.65  # two strata drawn with equal probability


def test_bad_arguments(artifacts):
    _, out = artifacts
    with pytest.raises(ConfigError, match="task"):
        input_pipeline.make_dataset(out, "train", training=True, task="ranking")
    with pytest.raises(ConfigError, match="oversample"):
        input_pipeline.make_dataset(out, "train", training=True, oversample="liking")
    with pytest.raises(ConfigError, match="window_seconds"):
        input_pipeline.make_dataset(out, "train", training=True, window_seconds=0)
    with pytest.raises(DataError, match="no partition 'validation'"):
        input_pipeline.make_dataset(out, "validation", training=False)


def test_iter_recordings_reports_a_dimension_mismatch(artifacts, tmp_path):
    recordings, _ = artifacts
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(recordings), out, progress=False)
    manifest_path = out / "manifest.json"
    text = manifest_path.read_text().replace('"visual_dim": 4', '"visual_dim": 6')
    manifest_path.write_text(text)
    with pytest.raises(DataError, match="does not match its manifest entry"):
        list(input_pipeline.iter_recordings(out, "devel"))


def test_hop_in_frames():
    info = {"hop": HOP}
    assert input_pipeline.window_frames(info, 30.0, None) == (60, 30)
    assert input_pipeline.window_frames(info, 30.0, 5.0) == (60, 10)
