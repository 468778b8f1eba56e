"""Recordings named as their user named them (AVEC's `<Partition>_<Culture>_<NN>` is one convention, not
a requirement), partitions from `partitions.csv`, and the `present` column that marks frames absent."""

import warnings

import numpy as np
import pytest

from pipelines.core.errors import DataError
from pipelines.datasets.avec import open_layout

NAMES = ("my session 1", "interview.2 é", "Ünïcode talk")
FRAMES = 30


def write_corpus(root, names=NAMES, labels=(), absent=range(10, 15), seed=0):
    """An own-named corpus: `egemaps` (2 features) and `faces` (1 feature + the `present` column, 0 on the
    frames `absent`); label files for the names in `labels`."""
    rng = np.random.default_rng(seed)
    truth = {}
    for folder in ("egemaps", "faces", "labels"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        audio = np.round(rng.normal(size=(FRAMES, 2)), 6)
        visual = np.round(rng.normal(size=(FRAMES, 1)), 6)
        present = np.ones(FRAMES)
        present[list(absent)] = 0
        visual[present == 0] = 0.0
        rows = [f"'{name}';{t * 0.1:.1f};{a:.6f};{b:.6f}" for t, (a, b) in enumerate(audio)]
        (root / "egemaps" / f"{name}.csv").write_text("name;frameTime;f0;loudness\n" + "\n".join(rows) + "\n")
        rows = [f"'{name}';{t * 0.1:.1f};{v[0]:.6f};{int(p)}" for t, (v, p) in enumerate(zip(visual, present))]
        (root / "faces" / f"{name}.csv").write_text("name;frameTime;AU12;present\n" + "\n".join(rows) + "\n")
        entry = {"audio": audio, "visual": visual, "present": present, "valence": None}
        if name in labels:
            valence = np.round(rng.uniform(-1, 1, FRAMES), 6)
            arousal = np.round(rng.uniform(-1, 1, FRAMES), 6)
            rows = [f"'{name}';{t * 0.1:.1f};{a:.6f};{v:.6f}" for t, (a, v) in enumerate(zip(arousal, valence))]
            (root / "labels" / f"{name}.csv").write_text("name;timestamp;arousal;valence\n" + "\n".join(rows) + "\n")
            entry.update(valence=valence, arousal=arousal)
        truth[name] = entry
    return truth


def open_own(root, **options):
    options.setdefault("labels_optional", False)
    return open_layout(
        root,
        audio_features=["egemaps"],
        visual_features=["faces"],
        allow_missing_modality=False,
        dataset="avec",
        **options,
    )


def test_own_names_are_test_recordings_for_prediction(tmp_path):
    truth = write_corpus(tmp_path)
    corpus = open_own(tmp_path, labels_optional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recordings = {recording.name: recording for recording in corpus.recordings()}
    assert sorted(recordings) == sorted(NAMES)
    assert corpus.visual_feature_names == ["AU12"] and corpus.audio_feature_names == ["f0", "loudness"]
    for name, recording in recordings.items():
        assert recording.partition == "test" and recording.metadata == {}
        np.testing.assert_allclose(recording.audio, truth[name]["audio"], atol=1e-6)
        np.testing.assert_allclose(recording.visual, truth[name]["visual"], atol=1e-6)
        np.testing.assert_array_equal(recording.visual_present, truth[name]["present"])
        np.testing.assert_array_equal(recording.audio_present, 1.0)


def test_partitions_csv_makes_a_trainable_corpus(tmp_path):
    write_corpus(tmp_path, labels=NAMES[:2])
    (tmp_path / "partitions.csv").write_text(f"name;partition\n'{NAMES[0]}';train\n{NAMES[1]};Devel\n{NAMES[2]};test\n")
    corpus = open_own(tmp_path)
    recordings = {recording.name: recording for recording in corpus.recordings()}
    assert {name: r.partition for name, r in recordings.items()} == {
        NAMES[0]: "train",
        NAMES[1]: "devel",
        NAMES[2]: "test",
    }
    assert recordings[NAMES[0]].labelled and not recordings[NAMES[2]].labelled
    assert corpus.report["recordings"] == {"train": 1, "devel": 1, "test": 1}


def test_a_listed_training_recording_without_labels_is_named(tmp_path):
    write_corpus(tmp_path, labels=NAMES[:1])
    (tmp_path / "partitions.csv").write_text(f"name;partition\n{NAMES[0]};train\n{NAMES[1]};train\n")
    with pytest.raises(DataError) as error:
        open_own(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'labels' / (NAMES[1] + '.csv')}: no label file, but ")


@pytest.mark.parametrize(
    "content,where,message",
    [
        ("name;split\na;train\n", ":1: ", "the header must be name;partition, found name;split"),
        ("name;partition\na;train\nb;validation\n", ":3:2: ", "partition 'validation' (expected train, devel, test)"),
        ("name;partition\na;train\na;test\n", ":3:1: ", "recording 'a' is listed twice"),
    ],
)
def test_a_bad_partitions_file_is_named_with_line_and_column(tmp_path, content, where, message):
    write_corpus(tmp_path)
    (tmp_path / "partitions.csv").write_text(content)
    with pytest.raises(DataError) as error:
        open_own(tmp_path, labels_optional=True)
    assert str(error.value) == f"{tmp_path / 'partitions.csv'}{where}{message}"


def test_an_unlisted_own_name_is_ignored_with_a_warning_when_training(tmp_path):
    write_corpus(tmp_path, names=NAMES[:1])
    write_corpus(tmp_path, names=("Train_DE_01", "Devel_DE_01"), labels=("Train_DE_01", "Devel_DE_01"), seed=1)
    with pytest.warns(UserWarning) as caught:
        corpus = open_own(tmp_path)
    ignored = [str(w.message) for w in caught if "ignored" in str(w.message)]
    assert ignored == [
        f"{tmp_path / 'egemaps' / (NAMES[0] + '.csv')}: ignored, recordings are named <Partition>_<Culture>_<NN>.csv "
        f"with Partition Train, Devel or Test, or listed with their partition in partitions.csv",
        f"{tmp_path / 'faces' / (NAMES[0] + '.csv')}: ignored, recordings are named <Partition>_<Culture>_<NN>.csv "
        f"with Partition Train, Devel or Test, or listed with their partition in partitions.csv",
    ]
    assert corpus.report["ignored_files"] == [
        str(tmp_path / "egemaps" / f"{NAMES[0]}.csv"),
        str(tmp_path / "faces" / f"{NAMES[0]}.csv"),
    ]
    assert sorted(r.name for r in corpus.recordings()) == ["Devel_DE_01", "Train_DE_01"]


def test_a_present_flag_other_than_0_or_1_is_named(tmp_path):
    write_corpus(tmp_path)
    path = tmp_path / "faces" / f"{NAMES[0]}.csv"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(";", 1)[0] + ";0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as error:
        list(open_own(tmp_path, labels_optional=True).recordings())
    assert str(error.value) == f"{path}:5:4: present is 0.5 (expected 0 or 1)"
