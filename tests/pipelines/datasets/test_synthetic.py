"""The synthetic corpus: determinism, reuse, corruption ground truth and what the features carry."""

import csv
import json
import os

import numpy as np
import pytest

from pipelines.core.errors import ConfigError, DataError
from pipelines.datasets import open_corpus, synthetic

SMALL = {
    "seed": 5,
    "num_train": 3,
    "num_devel": 1,
    "num_test": 1,
    "duration_seconds": 40.0,
    "audio_dim": 6,
    "visual_dim": 8,
}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("synthetic"), **SMALL)


@pytest.fixture(scope="module")
def recordings(corpus_dir):
    return list(open_corpus("synthetic", corpus_dir).recordings())


def files_of(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read_segments(root):
    """corruption.csv parsed here with the csv module, as per-frame flags."""
    flags = {}
    with open(root / "corruption.csv", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0] == ["name", "modality", "start_frame", "end_frame", "kind"]
    for name, modality, start, end, kind in rows[1:]:
        assert kind in {"audio": ("noise", "silence"), "visual": ("noise", "occlusion")}[modality]
        flags.setdefault((name, modality), []).append((int(start), int(end)))
    return flags


def test_layout_and_partitions(corpus_dir, recordings):
    corpus = open_corpus("synthetic", corpus_dir)
    assert corpus.dataset == "synthetic" and corpus.hop == pytest.approx(0.1)
    assert corpus.audio_feature_names == [f"audio_{i}" for i in range(6)]
    assert len(corpus.visual_feature_names) == 8
    assert [r.name for r in recordings] == ["Train_SY_01", "Train_SY_02", "Train_SY_03", "Devel_SY_01", "Test_SY_01"]
    assert [r.partition for r in recordings] == ["train"] * 3 + ["devel", "test"]
    for recording in recordings:
        assert recording.num_frames == 400 and recording.labelled
        assert np.abs(recording.valence).max() <= 1.0 and np.abs(recording.arousal).max() <= 1.0
        # Smooth trajectories: a frame-to-frame step far below the label range.
        assert np.abs(np.diff(recording.valence)).max() < 0.1
    params = json.loads((corpus_dir / "synthetic.json").read_text())["parameters"]
    assert {key: params[key] for key in SMALL} == SMALL


def test_corruption_ground_truth_matches_the_file(corpus_dir, recordings):
    segments = read_segments(corpus_dir)
    for recording in recordings:
        for modality in ("audio", "visual"):
            expected = np.zeros(recording.num_frames, bool)
            for start, end in segments[(recording.name, modality)]:
                expected[start:end] = True
            np.testing.assert_array_equal(getattr(recording, f"{modality}_corrupted"), expected)
            assert 0.25 <= expected.mean() <= 0.35
        both = recording.audio_corrupted & recording.visual_corrupted
        assert both.mean() < 0.1


def r_squared(x_train, y_train, x_test, y_test):
    design = np.c_[x_train, np.ones(len(x_train))]
    weights = np.linalg.lstsq(design, y_train, rcond=None)[0]
    prediction = np.c_[x_test, np.ones(len(x_test))] @ weights
    return 1.0 - np.sum((y_test - prediction) ** 2) / np.sum((y_test - y_test.mean()) ** 2)


def test_each_modality_carries_the_labels_only_where_clean(recordings):
    train, held_out = recordings[:3], recordings[3:]
    scores = {}
    for modality in ("audio", "visual"):
        for clean in (True, False):

            def pick(items, key):
                return np.concatenate([getattr(r, key)[getattr(r, f"{modality}_corrupted") != clean] for r in items])

            for label in ("valence", "arousal"):
                scores[modality, clean, label] = r_squared(
                    pick(train, modality), pick(train, label), pick(held_out, modality), pick(held_out, label)
                )
    assert scores["audio", True, "arousal"] > 0.7 and scores["visual", True, "valence"] > 0.7
    assert scores["audio", True, "arousal"] > scores["audio", True, "valence"]
    assert scores["visual", True, "valence"] > scores["visual", True, "arousal"]
    for modality in ("audio", "visual"):
        for label in ("valence", "arousal"):
            assert scores[modality, False, label] < 0.1


def test_generation_is_deterministic(tmp_path, corpus_dir):
    again = synthetic.generate(tmp_path / "again", **SMALL)
    assert files_of(again) == files_of(corpus_dir)
    other = synthetic.generate(tmp_path / "other", **{**SMALL, "seed": 6})
    assert (other / "labels" / "Train_SY_01.csv").read_bytes() != (
        corpus_dir / "labels" / "Train_SY_01.csv"
    ).read_bytes()


def test_reuse_regeneration_and_interruption(tmp_path):
    root = synthetic.generate(tmp_path / "corpus", **SMALL)
    stamp = (root / "audio" / "Train_SY_01.csv").stat().st_mtime_ns
    os.utime(root / "audio" / "Train_SY_01.csv", ns=(stamp - 10**9, stamp - 10**9))
    synthetic.generate(root, **SMALL)
    assert (root / "audio" / "Train_SY_01.csv").stat().st_mtime_ns == stamp - 10**9

    synthetic.generate(root, **{**SMALL, "num_train": 2})
    assert not (root / "labels" / "Train_SY_03.csv").exists()
    assert not (root / "audio" / "Train_SY_03.csv").exists()
    assert synthetic.load_parameters(root)["num_train"] == 2
    assert (root / "audio" / "Train_SY_01.csv").stat().st_mtime_ns != stamp - 10**9

    (root / "synthetic.json").unlink()  # as after an interrupted generation
    with pytest.raises(DataError, match="not a complete synthetic corpus"):
        open_corpus("synthetic", root)
    synthetic.generate(root, **{**SMALL, "num_train": 2})
    assert len(list(open_corpus("synthetic", root).recordings())) == 4
    assert not list(root.rglob("*.tmp"))


def test_bad_corruption_file(tmp_path):
    root = synthetic.generate(tmp_path / "corpus", **{**SMALL, "num_train": 1})
    path = root / "corruption.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("audio", "speech").replace("visual", "speech")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="modality must be audio or visual") as error:
        open_corpus("synthetic", root)
    assert (error.value.path, error.value.line, error.value.column) == (str(path), 3, 2)


@pytest.mark.parametrize(
    "option,value",
    [("num_train", 0), ("hop", -0.1), ("corruption_fraction", 0.6), ("audio_dim", 2.5), ("duration_seconds", 0.5)],
)
def test_bad_parameters(tmp_path, option, value):
    with pytest.raises(ConfigError, match=option.split("_")[0]):
        synthetic.generate(tmp_path, **{**SMALL, option: value})
    assert not (tmp_path / "labels").exists()


def test_cli_writes_then_reuses(tmp_path, capsys):
    args = [
        "--output-dir",
        str(tmp_path / "cli"),
        "--seed",
        "1",
        "--num-train",
        "1",
        "--num-devel",
        "1",
        "--num-test",
        "0",
        "--duration-seconds",
        "12",
        "--audio-dim",
        "2",
        "--visual-dim",
        "3",
        "--no-progress",
    ]
    synthetic.main(args)
    assert "synthetic corpus written" in capsys.readouterr().out
    synthetic.main(args)
    out = capsys.readouterr().out
    assert "synthetic corpus reused" in out and "1 train, 1 devel, 0 test recordings of 120 frames" in out
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(args[:2] + ["--num-train", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: synthetic num_train must be an integer >= 1")
