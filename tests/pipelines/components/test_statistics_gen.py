"""StatisticsGen / SchemaGen / ExampleValidator against NumPy, one test per anomaly kind."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from pipelines import statistics_gen as statistics_gen_command
from pipelines.components import example_gen, shards, statistics, statistics_gen
from pipelines.core.errors import DataError
from tests.pipelines.example_gen_helpers import AUDIO_DIM, VISUAL_DIM, make_corpus, make_recordings


def _build(tmp_path, recordings, name="artifacts"):
    out = tmp_path / name
    example_gen.run(make_corpus(recordings), out, progress=False)
    return out


def _bins_numpy(values):
    values = np.asarray(values, np.float32)
    return np.where(values < np.float32(-0.05), 0, np.where(values > np.float32(0.05), 2, 1))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    recordings = make_recordings(seed=3)
    out = _build(tmp_path_factory.mktemp("clean"), recordings)
    report = statistics_gen.run(out)
    return recordings, out, report


def test_statistics_match_numpy(clean):
    recordings, out, _ = clean
    stats = json.loads((out / "statistics.json").read_text())
    for partition in ("train", "devel", "test"):
        mine = [r for r in recordings if r.partition == partition]
        part = stats["partitions"][partition]
        assert part["num_recordings"] == len(mine)
        assert part["num_frames"] == sum(r.num_frames for r in mine)
        for modality in ("audio", "visual"):
            present = np.concatenate([getattr(r, f"{modality}_present") for r in mine]) > 0
            values = np.concatenate([getattr(r, modality) for r in mine]).astype(np.float64)[present]
            entry = part[modality]
            assert entry["count"] == [len(values)] * values.shape[1]
            np.testing.assert_allclose(entry["mean"], values.mean(axis=0), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(entry["std"], values.std(axis=0, ddof=0), rtol=1e-10)
            np.testing.assert_array_equal(entry["min"], values.min(axis=0))
            np.testing.assert_array_equal(entry["max"], values.max(axis=0))
            assert entry["nan_count"] == [0] * values.shape[1]
            assert entry["absent_frames"] == int((~present).sum())
            assert entry["dims_seen"] == [values.shape[1]]
        if partition == "test":
            assert "labels" not in part
            continue
        for key in ("valence", "arousal"):
            labels = np.concatenate([getattr(r, key) for r in mine]).astype(np.float64)
            entry = part["labels"][key]
            assert entry["count"] == len(labels)
            assert entry["mean"] == pytest.approx(labels.mean(), abs=1e-12)
            assert entry["std"] == pytest.approx(labels.std(), abs=1e-12)
            assert entry["class_counts"] == np.bincount(_bins_numpy(labels), minlength=3).tolist()
            assert entry["out_of_range"] == 0
    assert "train:" in (out / "statistics.txt").read_text()


def test_moment_accumulator_streaming_precision():
    rng = np.random.default_rng(0)
    chunks = [1e6 + rng.normal(size=(n, 2)) * [1e-2, 3.0] for n in (1, 5, 17, 2)]
    chunks[2][3, 1] = np.nan
    chunks[1][0, 0] = np.inf
    acc = statistics.MomentAccumulator(2)
    for chunk in chunks:
        acc.update(chunk)
    values = np.concatenate(chunks)
    for column in range(2):
        finite = values[np.isfinite(values[:, column]), column]
        assert acc.count[column] == len(finite)
        assert acc.mean[column] == pytest.approx(finite.mean(), rel=1e-14)
        assert acc.variance[column] == pytest.approx(finite.var(), rel=1e-8)
        assert acc.min[column] == finite.min() and acc.max[column] == finite.max()
    assert acc.nan_count.tolist() == [0, 1] and acc.inf_count.tolist() == [1, 0]


def test_schema(clean):
    _, out, _ = clean
    schema = json.loads((out / "schema.json").read_text())
    assert schema["audio"] == {"dim": AUDIO_DIM, "names": [f"a{i}" for i in range(AUDIO_DIM)]}
    assert schema["visual"]["dim"] == VISUAL_DIM
    assert schema["labels"]["valence"] == {"min": -1.0, "max": 1.0}
    assert schema["hop"] == 0.5
    assert schema["partitions"] == {
        "train": {"labelled": True},
        "devel": {"labelled": True},
        "test": {"labelled": False},
    }


def test_clean_data_has_no_blocking_anomaly(clean):
    _, out, report = clean
    assert report["num_blocking"] == 0
    assert statistics_gen.check_anomalies(out)["num_blocking"] == 0
    assert (out / "anomalies.txt").read_text().startswith("Data validation: 0 blocking")


def test_statistics_are_reused_while_shards_are_unchanged(clean):
    _, out, _ = clean
    before = (out / "statistics.json").stat().st_mtime_ns
    statistics_gen.run(out)
    assert (out / "statistics.json").stat().st_mtime_ns == before


def _kinds(report, partition=None):
    return {
        (a["partition"], a["kind"], a["severity"])
        for a in report["anomalies"]
        if partition is None or a["partition"] == partition
    }


def _change(recordings, name, **fields):
    return [dataclasses.replace(r, **{k: f(r) for k, f in fields.items()}) if r.name == name else r for r in recordings]


def _set(array, index, value):
    array = np.array(array, copy=True)
    array[index] = value
    return array


@pytest.mark.parametrize(
    "name, fields, kind, text",
    [
        ("train_01", {"audio": lambda r: _set(r.audio, (0, 1), np.nan)}, "non_finite_features", "a1"),
        ("devel_00", {"visual": lambda r: _set(r.visual, (2, 3), np.inf)}, "non_finite_features", "v3"),
        ("train_02", {"valence": lambda r: _set(r.valence, 1, 1.5)}, "label_out_of_range", "valence"),
        ("devel_01", {"arousal": lambda r: _set(r.arousal, 0, -1.01)}, "label_out_of_range", "arousal"),
        ("train_00", {"arousal": lambda r: _set(r.arousal, 0, np.nan)}, "non_finite_labels", "arousal"),
    ],
)
def test_blocking_value_anomalies(tmp_path, name, fields, kind, text):
    recordings = make_recordings(seed=3)
    if fields.get("audio"):  # the NaN must sit on a frame where the audio is present
        recordings = _change(recordings, name, audio_present=lambda r: np.ones(r.num_frames, np.float32))
    out = _build(tmp_path, _change(recordings, name, **fields))
    report = statistics_gen.run(out)
    partition = name.split("_")[0]
    assert (partition, kind, "blocking") in _kinds(report)
    assert report["num_blocking"] == 1
    with pytest.raises(DataError, match=rf"blocking data anomaly: {partition}: .*{text}") as info:
        statistics_gen.check_anomalies(out)
    assert "\n" not in str(info.value)
    assert "[BLOCKING]" in (out / "anomalies.txt").read_text()


def test_constant_feature_is_a_warning(tmp_path):
    recordings = [dataclasses.replace(r, visual=_set(r.visual, (slice(None), 2), 7.0)) for r in make_recordings(seed=3)]
    report = statistics_gen.run(_build(tmp_path, recordings))
    constant = [a for a in report["anomalies"] if a["kind"] == "constant_features"]
    assert {a["partition"] for a in constant} == {"train", "devel", "test"}
    assert all(a["severity"] == "warning" and a["features"] == ["v2"] for a in constant)
    assert report["num_blocking"] == 0
    statistics_gen.check_anomalies(tmp_path / "artifacts")  # warnings do not block


def test_distribution_shift_matches_numpy(tmp_path):
    recordings = make_recordings(seed=3)
    shift = np.array([40.0, 0.0, 40.0], np.float32)
    recordings = [dataclasses.replace(r, audio=r.audio + shift) if r.partition == "devel" else r for r in recordings]
    out = _build(tmp_path, recordings)
    report = statistics_gen.run(out, shift_threshold=1.0, shift_fraction=0.25)

    def moments(partition):
        mine = [r for r in recordings if r.partition == partition]
        present = np.concatenate([r.audio_present for r in mine]) > 0
        values = np.concatenate([r.audio for r in mine]).astype(np.float64)[present]
        return values.mean(0), values.std(0)

    train_mean, train_std = moments("train")
    devel_mean, _ = moments("devel")
    expected = np.flatnonzero(np.abs(devel_mean - train_mean) / train_std > 1.0)
    assert len(expected) > 0.25 * AUDIO_DIM
    shifted = [a for a in report["anomalies"] if a["kind"] == "distribution_shift"]
    assert [(a["partition"], a["modality"], a["severity"]) for a in shifted] == [("devel", "audio", "warning")]
    assert shifted[0]["features"] == [f"a{i}" for i in expected]
    strict = statistics_gen.run(out, shift_threshold=1e6)
    assert not [a for a in strict["anomalies"] if a["kind"] == "distribution_shift"]


def _rewrite_shard(out, partition, recording):
    manifest = json.loads((out / "manifest.json").read_text())
    path = out / manifest["partitions"][partition]["shards"][0]["file"]
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(shards.serialize_recording(recording))


def test_dimension_mismatch_is_blocking(tmp_path):
    recordings = make_recordings(seed=3)
    out = _build(tmp_path, recordings)
    odd = dataclasses.replace(recordings[4], visual=np.ones((recordings[4].num_frames, VISUAL_DIM + 1), np.float32))
    _rewrite_shard(out, "devel", odd)
    report = statistics_gen.run(out)
    mismatch = [a for a in report["anomalies"] if a["kind"] == "dimension_mismatch"]
    assert [(a["partition"], a["modality"], a["recordings"]) for a in mismatch] == [("devel", "visual", [odd.name])]
    with pytest.raises(DataError, match=r"devel: visual frames have \[5\] features, the schema says 4"):
        statistics_gen.check_anomalies(out)


def test_hop_mismatch_is_blocking(tmp_path):
    recordings = make_recordings(seed=3)
    out = _build(tmp_path, recordings)
    _rewrite_shard(out, "test", dataclasses.replace(recordings[-1], hop=0.1))
    report = statistics_gen.run(out)
    assert ("test", "hop_mismatch", "blocking") in _kinds(report)


def test_missing_train_is_blocking(tmp_path):
    recordings = make_recordings(seed=3, lengths={"devel": [4, 5]})
    out = _build(tmp_path, recordings)
    report = statistics_gen.run(out)
    assert ("train", "missing_train", "blocking") in _kinds(report)


def test_check_anomalies_without_report(tmp_path):
    with pytest.raises(DataError, match="no anomalies.json"):
        statistics_gen.check_anomalies(tmp_path)


def test_cli_exits_2_on_blocking_anomaly(tmp_path, capsys):
    recordings = _change(make_recordings(seed=3), "train_02", valence=lambda r: _set(r.valence, 1, 2.0))
    out = _build(tmp_path, recordings)
    with pytest.raises(SystemExit) as info:
        statistics_gen_command.main(["--artifact-dir", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "anomalies.json: blocking data anomaly: train: 1 valence value(s) outside" in err
