"""ExampleGen: SequenceExample round trip, manifest, reuse, redo, crash safety, validation."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from pipelines import example_gen as example_gen_command
from pipelines.components import example_gen, input_pipeline
from pipelines.core.errors import ConfigError, DataError
from tests.pipelines.example_gen_helpers import AUDIO_DIM, HOP, VISUAL_DIM, make_corpus, make_recordings


def _convert(tmp_path, recordings, **kwargs):
    out = tmp_path / "artifacts"
    manifest = example_gen.run(make_corpus(recordings, **kwargs.pop("corpus", {})), out, progress=False, **kwargs)
    return out, manifest


def _assert_same(recording, parsed):
    assert parsed["name"] == recording.name
    assert parsed["partition"] == recording.partition
    assert parsed["hop"] == pytest.approx(recording.hop)
    assert parsed["num_frames"] == recording.num_frames
    assert parsed["metadata"] == recording.metadata
    np.testing.assert_array_equal(parsed["audio"], recording.audio)
    np.testing.assert_array_equal(parsed["visual"], recording.visual)
    assert parsed["timestamps"].dtype == np.float64  # stored as whole microseconds
    np.testing.assert_allclose(parsed["timestamps"], recording.timestamps, rtol=0, atol=5e-7)
    np.testing.assert_array_equal(parsed["audio_present"], recording.audio_present)
    np.testing.assert_array_equal(parsed["visual_present"], recording.visual_present)
    for key in ("valence", "arousal"):
        expected = getattr(recording, key)
        if expected is None:
            assert parsed[key] is None
        else:
            np.testing.assert_array_equal(parsed[key], np.float32(expected))
            assert np.ndim(parsed[key]) == np.ndim(expected)
    for key in ("audio_corrupted", "visual_corrupted"):
        expected = getattr(recording, key)
        if expected is None:
            assert key not in parsed
        else:
            assert parsed[key].dtype == bool
            np.testing.assert_array_equal(parsed[key], expected)


@pytest.mark.parametrize("sequence_level", [False, True])
@pytest.mark.parametrize("num_shards", [None, 3])
def test_round_trip_equals_recordings(tmp_path, sequence_level, num_shards):
    recordings = make_recordings(sequence_level=sequence_level, corruption=not sequence_level)
    out, _ = _convert(tmp_path, recordings, num_shards=num_shards)
    by_name = {r.name: r for r in recordings}
    for partition in ("train", "devel", "test"):
        parsed = list(input_pipeline.iter_recordings(out, partition))
        assert sorted(p["name"] for p in parsed) == sorted(r.name for r in recordings if r.partition == partition)
        for item in parsed:
            _assert_same(by_name[item["name"]], item)
            assert item["sequence_level"] is (sequence_level and partition != "test")


def test_missing_optional_fields_get_defaults(tmp_path):
    recording = dataclasses.replace(
        make_recordings()[0],
        timestamps=None,
        audio_present=None,
        visual_present=None,
        audio_corrupted=None,
        visual_corrupted=None,
    )
    out, _ = _convert(tmp_path, [recording])
    parsed = next(input_pipeline.iter_recordings(out, "train"))
    np.testing.assert_allclose(parsed["timestamps"], np.arange(recording.num_frames) * HOP)
    np.testing.assert_array_equal(parsed["audio_present"], np.ones(recording.num_frames))
    assert "audio_corrupted" not in parsed


def test_manifest_content_and_checksums(tmp_path):
    recordings = make_recordings()
    out, manifest = _convert(tmp_path, recordings, corpus={"fingerprint": "abc"})
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["fingerprint"] == "abc" and manifest["fingerprint"] == "abc"
    assert on_disk["corpus_report"] == {"reads": 1}
    assert on_disk["audio_dim"] == AUDIO_DIM and on_disk["visual_dim"] == VISUAL_DIM
    assert list(on_disk["partitions"]) == ["train", "devel", "test"]
    for partition, part in on_disk["partitions"].items():
        mine = [r for r in recordings if r.partition == partition]
        assert part["num_recordings"] == len(mine)
        assert part["num_frames"] == sum(r.num_frames for r in mine)
        assert part["recordings"] == [[r.name, r.num_frames] for r in mine]
        assert (part["audio_dim"], part["visual_dim"]) == (AUDIO_DIM, VISUAL_DIM)
        assert part["audio_feature_names"] == [f"a{i}" for i in range(AUDIO_DIM)]
        assert part["visual_feature_names"] == [f"v{i}" for i in range(VISUAL_DIM)]
        assert part["hop"] == HOP
        assert part["labelled"] is (partition != "test")
        assert part["sequence_level"] is False
        assert part["has_corruption"] is True
        assert sum(s["num_recordings"] for s in part["shards"]) == len(mine)
        for shard in part["shards"]:
            data = (out / shard["file"]).read_bytes()
            assert shard["sha256"] == hashlib.sha256(data).hexdigest()
            assert shard["bytes"] == len(data)
    files = sorted(p.relative_to(out).as_posix() for p in (out / "examples").rglob("*") if p.is_file())
    listed = sorted(s["file"] for part in on_disk["partitions"].values() for s in part["shards"])
    assert files == listed


def test_sharding_round_robin_and_by_size(tmp_path):
    recordings = make_recordings()
    _, manifest = _convert(tmp_path / "a", recordings, num_shards=3)
    train = manifest["partitions"]["train"]["shards"]
    assert [s["num_recordings"] for s in train] == [2, 1, 1]
    assert train[0]["file"] == "examples/train/train-00000-of-00003.tfrecord"
    assert len(manifest["partitions"]["test"]["shards"]) == 1  # one recording: one shard
    _, manifest = _convert(tmp_path / "b", recordings, shard_bytes=1)
    assert [s["num_recordings"] for s in manifest["partitions"]["train"]["shards"]] == [1, 1, 1, 1]


def _mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "examples").rglob("*.tfrecord")}


def test_rerun_reuses_shards(tmp_path):
    recordings = make_recordings()
    corpus = make_corpus(recordings)
    out = tmp_path / "artifacts"
    first = example_gen.run(corpus, out, progress=False)
    before = _mtimes(out)
    manifest_mtime = (out / "manifest.json").stat().st_mtime_ns
    second = example_gen.run(corpus, out, progress=False)
    assert second["reused"] == ["devel", "test", "train"]
    assert corpus.report["reads"] == 1  # the corpus was not read again
    assert _mtimes(out) == before
    assert (out / "manifest.json").stat().st_mtime_ns == manifest_mtime
    assert second["partitions"] == first["partitions"]


def test_redo_after_deleted_or_corrupt_shard(tmp_path):
    recordings = make_recordings()
    corpus = make_corpus(recordings)
    out = tmp_path / "artifacts"
    first = example_gen.run(corpus, out, progress=False, num_shards=2)
    before = _mtimes(out)
    devel_shard = out / first["partitions"]["devel"]["shards"][1]["file"]
    devel_shard.unlink()
    second = example_gen.run(corpus, out, progress=False, num_shards=2)
    assert devel_shard.is_file()
    assert second["reused"] == ["test", "train"]
    assert second["partitions"]["devel"]["shards"] == first["partitions"]["devel"]["shards"]
    after = _mtimes(out)
    for name, mtime in before.items():
        if name.startswith(("train", "test")):
            assert after[name] == mtime

    train_shard = out / first["partitions"]["train"]["shards"][0]["file"]
    data = bytearray(train_shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    train_shard.write_bytes(bytes(data))
    third = example_gen.run(corpus, out, progress=False, num_shards=2)
    assert third["reused"] == ["devel", "test"]
    assert hashlib.sha256(train_shard.read_bytes()).hexdigest() == first["partitions"]["train"]["shards"][0]["sha256"]


def test_changed_fingerprint_or_settings_converts_again(tmp_path):
    recordings = make_recordings()
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(recordings, fingerprint="one"), out, progress=False)
    changed = [dataclasses.replace(r, audio=r.audio + 1) for r in recordings]
    manifest = example_gen.run(make_corpus(changed, fingerprint="two"), out, progress=False)
    assert manifest["reused"] == [] and manifest["fingerprint"] == "two"
    first = next(input_pipeline.iter_recordings(out, "train"))
    np.testing.assert_array_equal(first["audio"], changed[0].audio)
    manifest = example_gen.run(make_corpus(changed, fingerprint="two"), out, progress=False, num_shards=2)
    assert manifest["reused"] == [] and len(manifest["partitions"]["train"]["shards"]) == 2
    assert len(list((out / "examples" / "train").glob("*.tfrecord"))) == 2  # the old single shard is gone


class _Crash(RuntimeError):
    pass


def test_crash_leaves_no_complete_looking_shard(tmp_path):
    recordings = make_recordings()
    out = tmp_path / "artifacts"
    example_gen.run(make_corpus(recordings, fingerprint="old"), out, progress=False)

    def crashing():
        for index, recording in enumerate(recordings):
            if index == 5:
                raise _Crash("disk full")
            yield recording

    corpus = make_corpus(recordings, fingerprint="new")
    corpus.recordings = crashing
    with pytest.raises(_Crash):
        example_gen.run(corpus, out, progress=False, num_shards=2)
    assert not (out / "manifest.json").exists()
    assert not [p for p in (out / "examples").rglob("*.partial")]
    with pytest.raises(DataError, match="no manifest.json"):
        list(input_pipeline.iter_recordings(out, "train"))
    # The next run starts over and succeeds.
    manifest = example_gen.run(make_corpus(recordings, fingerprint="new"), out, progress=False, num_shards=2)
    assert manifest["reused"] == [] and manifest["partitions"]["train"]["num_recordings"] == 4


def test_stale_partial_files_are_removed(tmp_path):
    recordings = make_recordings()
    out = tmp_path / "artifacts"
    stale = out / "examples" / "train" / ".train-00000-999.tfrecord.partial"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a shard")
    example_gen.run(make_corpus(recordings), out, progress=False)
    assert not stale.exists()


def test_inconsistent_dimensions_name_the_recording(tmp_path):
    recordings = make_recordings()
    recordings[5] = dataclasses.replace(recordings[5], visual=np.zeros((recordings[5].num_frames, 5), np.float32))
    with pytest.raises(DataError, match=rf"recording '{recordings[5].name}'.*5 visual features per frame, expected 4"):
        _convert(tmp_path, recordings)
    assert not (tmp_path / "artifacts" / "manifest.json").exists()
    assert not list((tmp_path / "artifacts").rglob("*.tfrecord"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: dataclasses.replace(r, visual=r.visual[:-1]), "visual frames but"),
        (lambda r: dataclasses.replace(r, valence=r.valence[:-1]), "valence must be a scalar or one value per frame"),
        (lambda r: dataclasses.replace(r, arousal=None), "only one of valence and arousal"),
        (lambda r: dataclasses.replace(r, valence=None, arousal=None), "unlabelled but recording 'train_00'"),
        (lambda r: dataclasses.replace(r, hop=0.1), "hop 0.1 s differs"),
        (lambda r: dataclasses.replace(r, partition="Train"), "partition must be one of"),
        (lambda r: dataclasses.replace(r, name="train_00"), "occurs twice"),
        (lambda r: dataclasses.replace(r, timestamps=r.timestamps[:2]), "timestamps must have one value per frame"),
    ],
)
def test_bad_recordings_raise_data_errors(tmp_path, change, message):
    recordings = make_recordings()
    recordings[1] = change(recordings[1])
    with pytest.raises(DataError, match=message) as info:
        _convert(tmp_path, recordings)
    assert "/corpus" in str(info.value)


def test_bad_num_shards(tmp_path):
    with pytest.raises(ConfigError, match="num_shards"):
        _convert(tmp_path, make_recordings(), num_shards=0)


def test_cli_help_and_flag_errors(capsys):
    with pytest.raises(SystemExit) as info:
        example_gen_command.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--dataset",
        "--data-dir",
        "--audio-features",
        "--visual-features",
        "--output-dir",
        "--features-dir",
        "--validation-speaker",
        "--allow-missing-modality",
        "--num-shards",
    ):
        assert flag in text
    with pytest.raises(SystemExit) as info:
        example_gen_command.main(["--dataset", "avec", "--data-dir", "x", "--output-dir", "y", "--features-dir", "z"])
    assert info.value.code == 2
    assert "error: --features-dir applies to --dataset iemocap only" in capsys.readouterr().err


def test_cli_chain_on_an_avec_layout(tmp_path, capsys):
    from pipelines import statistics_gen, transform
    from tests.fixtures import write_avec_fixture

    truth = write_avec_fixture(tmp_path / "avec", num_frames=12)
    out = tmp_path / "artifacts"
    example_gen_command.main(
        [
            "--dataset",
            "avec",
            "--data-dir",
            str(tmp_path / "avec"),
            "--audio-features",
            "egemaps",
            "--visual-features",
            "au",
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    statistics_gen.main(["--artifact-dir", str(out)])
    transform.main(["--artifact-dir", str(out)])
    for name in (
        "manifest.json",
        "statistics.json",
        "statistics.txt",
        "schema.json",
        "anomalies.json",
        "anomalies.txt",
        "transform.json",
    ):
        assert (out / name).is_file()
    parsed = {r["name"]: r for r in input_pipeline.iter_recordings(out, "train")}
    assert sorted(parsed) == ["Train_DE_01", "Train_HU_02"]
    for name, recording in parsed.items():
        np.testing.assert_allclose(recording["audio"], truth["features"]["egemaps"][name], rtol=1e-6)
        np.testing.assert_allclose(recording["valence"], truth["labels"][name]["valence"], rtol=1e-6)


def test_synthetic_corpus_keeps_the_corruption_ground_truth(tmp_path):
    from pipelines.datasets import open_corpus, synthetic

    root = tmp_path / "synthetic"
    synthetic.generate(root, num_train=2, num_devel=1, num_test=1, duration_seconds=4.0, audio_dim=3, visual_dim=4)
    corpus = open_corpus("synthetic", root)
    expected = {r.name: r for r in corpus.recordings()}
    out = tmp_path / "artifacts"
    manifest = example_gen.run(corpus, out, progress=False)
    assert all(part["has_corruption"] for part in manifest["partitions"].values())
    for partition in manifest["partitions"]:
        for parsed in input_pipeline.iter_recordings(out, partition):
            _assert_same(expected[parsed["name"]], parsed)
            # Timestamps such as 0.1 s come back exactly, not as float32 0.10000000149.
            np.testing.assert_array_equal(parsed["timestamps"], expected[parsed["name"]].timestamps)
