"""The AVEC 2019 CES reader against fixtures written in AVEC's on-disk format."""

import os
import warnings

import numpy as np
import pytest

from pipelines.core.errors import ConfigError, DataError
from pipelines.datasets import open_corpus
from tests.fixtures import write_avec_fixture

AUDIO = (("egemaps", 3), ("deepspectrum", 2))
VISUAL = (("au", 2),)


def open_avec(root, **options):
    options.setdefault("audio_features", ["egemaps", "deepspectrum"])
    options.setdefault("visual_features", ["au"])
    return open_corpus("avec", root, **options)


def by_name(corpus):
    return {recording.name: recording for recording in corpus.recordings()}


@pytest.mark.parametrize("sep,header,quote", [(";", True, "'"), (",", False, "'"), (",", True, '"'), ("\t", False, "")])
def test_reads_labels_and_concatenated_features(tmp_path, sep, header, quote):
    truth = write_avec_fixture(
        tmp_path, audio_folders=AUDIO, visual_folders=VISUAL, sep=sep, header=header, quote=quote
    )
    corpus = open_avec(tmp_path)
    recordings = by_name(corpus)
    assert sorted(recordings) == sorted(truth["labels"])
    assert corpus.hop == pytest.approx(0.1)
    assert corpus.report["recordings"] == {"train": 2, "devel": 1, "test": 1}
    if header:
        assert corpus.audio_feature_names == truth["feature_names"]["egemaps"] + truth["feature_names"]["deepspectrum"]
    else:
        assert corpus.audio_feature_names == ["egemaps_0", "egemaps_1", "egemaps_2", "deepspectrum_0", "deepspectrum_1"]
    for name, recording in recordings.items():
        labels = truth["labels"][name]
        assert recording.partition == {"Train": "train", "Devel": "devel", "Test": "test"}[name.split("_")[0]]
        assert recording.metadata["culture"] == name.split("_")[1]
        expected_audio = np.concatenate(
            [truth["features"]["egemaps"][name], truth["features"]["deepspectrum"][name]], 1
        )
        np.testing.assert_allclose(recording.audio, expected_audio, atol=1e-6)
        np.testing.assert_allclose(recording.visual, truth["features"]["au"][name], atol=1e-6)
        assert recording.audio.dtype == np.float32 and recording.visual.dtype == np.float32
        np.testing.assert_allclose(recording.valence, labels["valence"], atol=1e-6)
        np.testing.assert_allclose(recording.arousal, labels["arousal"], atol=1e-6)
        np.testing.assert_allclose(recording.timestamps, labels["timestamp"], atol=1e-9)
        np.testing.assert_array_equal(recording.audio_present, np.ones(12))
        assert not recording.sequence_level


def test_longer_feature_files_are_cut_and_shorter_ones_padded_with_a_warning(tmp_path):
    truth = write_avec_fixture(tmp_path, feature_frames={"Train_DE_01": 20, ("au", "Devel_DE_01"): 9})
    corpus = open_avec(tmp_path, audio_features=["egemaps"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recordings = by_name(corpus)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and str(tmp_path / "au" / "Devel_DE_01.csv") in messages[0]
    long = recordings["Train_DE_01"]
    assert long.num_frames == 12
    np.testing.assert_allclose(long.audio, truth["features"]["egemaps"]["Train_DE_01"][:12], atol=1e-6)
    short = recordings["Devel_DE_01"]
    raw = truth["features"]["au"]["Devel_DE_01"]
    expected = np.concatenate([raw, np.repeat(raw[-1:], 3, axis=0)])
    np.testing.assert_allclose(short.visual, expected, atol=1e-6)
    np.testing.assert_array_equal(short.visual_present, [1] * 9 + [0] * 3)
    np.testing.assert_array_equal(short.audio_present, np.ones(12))
    assert corpus.report["padded_files"] == [str(tmp_path / "au" / "Devel_DE_01.csv")]


def test_test_recordings_without_labels(tmp_path):
    write_avec_fixture(tmp_path, test_labels="absent", feature_frames={"Test_CN_01": 15})
    recordings = by_name(open_avec(tmp_path, audio_features=["egemaps"]))
    test = recordings["Test_CN_01"]
    assert test.partition == "test" and not test.labelled
    assert test.valence is None and test.arousal is None
    assert test.num_frames == 15
    np.testing.assert_allclose(test.timestamps, np.arange(15) * 0.1, atol=1e-9)

    other = tmp_path / "no_columns"
    write_avec_fixture(other, test_labels="no_label_columns")
    corpus = open_avec(other, audio_features=["egemaps"])
    test = by_name(corpus)["Test_CN_01"]
    assert test.valence is None and test.num_frames == 12
    assert corpus.report["unlabelled"] == ["Test_CN_01"]


def test_missing_modality_is_zero_filled_when_allowed(tmp_path):
    write_avec_fixture(tmp_path)
    os.remove(tmp_path / "au" / "Train_HU_02.csv")
    with pytest.raises(DataError) as error:
        open_avec(tmp_path, audio_features=["egemaps"])
    assert error.value.path == str(tmp_path / "au" / "Train_HU_02.csv")
    corpus = open_avec(tmp_path, audio_features=["egemaps"], allow_missing_modality=True)
    recording = by_name(corpus)["Train_HU_02"]
    np.testing.assert_array_equal(recording.visual, np.zeros((12, 2), np.float32))
    np.testing.assert_array_equal(recording.visual_present, np.zeros(12))
    np.testing.assert_array_equal(recording.audio_present, np.ones(12))
    assert corpus.report["missing_visual"] == ["Train_HU_02"]


def test_files_are_read_lazily(tmp_path):
    write_avec_fixture(tmp_path)
    corpus = open_avec(tmp_path, audio_features=["egemaps"])
    (tmp_path / "au" / "Test_CN_01.csv").write_text("'Test_CN_01';0.0;x;1\n")
    iterator = corpus.recordings()
    assert next(iterator).name == "Train_DE_01"
    with pytest.raises(DataError) as error:
        list(iterator)
    assert (error.value.path, error.value.line, error.value.column) == (str(tmp_path / "au" / "Test_CN_01.csv"), 1, 3)


def test_fingerprint_tracks_files_and_options(tmp_path):
    write_avec_fixture(tmp_path)
    first = open_avec(tmp_path, audio_features=["egemaps"]).fingerprint
    assert open_avec(tmp_path, audio_features=["egemaps"]).fingerprint == first
    assert open_avec(tmp_path, audio_features=["egemaps"], allow_missing_modality=True).fingerprint != first
    path = tmp_path / "au" / "Train_DE_01.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    # The content, not the time: a touched file keeps the fingerprint, an edited one changes it.
    assert open_avec(tmp_path, audio_features=["egemaps"]).fingerprint == first
    path.write_text(path.read_text().replace("\n", "\r\n"))
    assert open_avec(tmp_path, audio_features=["egemaps"]).fingerprint != first


def test_feature_folders_must_be_chosen_and_exist(tmp_path):
    write_avec_fixture(tmp_path)
    with pytest.raises(ConfigError, match="folders in .*: au, egemaps"):
        open_corpus("avec", tmp_path, visual_features=["au"])
    with pytest.raises(ConfigError, match="'openface' does not exist; folders in .*: au, egemaps") as error:
        open_corpus("avec", tmp_path, audio_features=["egemaps"], visual_features=["openface"])
    assert error.value.path == str(tmp_path / "openface")


def test_missing_labels_folder(tmp_path):
    write_avec_fixture(tmp_path)
    (tmp_path / "labels").rename(tmp_path / "gold")
    with pytest.raises(DataError, match="no labels folder") as error:
        open_avec(tmp_path, audio_features=["egemaps"])
    assert error.value.path == str(tmp_path / "labels")


def read_all(root, **options):
    options.setdefault("audio_features", ["egemaps"])
    return list(open_avec(root, **options).recordings())


def rewrite_line(path, number, transform):
    lines = path.read_text().splitlines()
    lines[number - 1] = transform(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def replace_cell(path, number, column, value, sep=";"):
    def transform(line):
        cells = line.split(sep)
        cells[column - 1] = value
        return sep.join(cells)

    rewrite_line(path, number, transform)


def test_row_with_wrong_number_of_columns(tmp_path):
    write_avec_fixture(tmp_path)
    path = tmp_path / "egemaps" / "Devel_DE_01.csv"
    rewrite_line(path, 5, lambda line: line + ";0.5")
    with pytest.raises(DataError, match="expected 5 columns .* found 6") as error:
        read_all(tmp_path)
    assert (error.value.path, error.value.line) == (str(path), 5)
    rewrite_line(path, 5, lambda line: line.rsplit(";", 2)[0])
    with pytest.raises(DataError, match="expected 5 columns .* found 4") as error:
        read_all(tmp_path)
    assert error.value.line == 5


def test_non_numeric_value_names_line_and_column(tmp_path):
    write_avec_fixture(tmp_path, sep=",")
    path = tmp_path / "au" / "Train_HU_02.csv"
    replace_cell(path, 8, 4, "n/a?", sep=",")
    with pytest.raises(DataError, match="'n/a\\?' is not a number") as error:
        read_all(tmp_path)
    assert (error.value.path, error.value.line, error.value.column) == (str(path), 8, 4)
    assert str(error.value).startswith(f"{path}:8:4: ")


@pytest.mark.parametrize("value,message", [("nan", "NaN value"), ("inf", "infinite value"), ("", "empty value")])
def test_nan_inf_and_empty_features(tmp_path, value, message):
    write_avec_fixture(tmp_path)
    path = tmp_path / "egemaps" / "Train_DE_01.csv"
    replace_cell(path, 3, 5, value)
    with pytest.raises(DataError, match=message) as error:
        read_all(tmp_path)
    assert (error.value.path, error.value.line, error.value.column) == (str(path), 3, 5)


def test_empty_files(tmp_path):
    write_avec_fixture(tmp_path)
    path = tmp_path / "egemaps" / "Devel_DE_01.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty file") as error:
        read_all(tmp_path)
    assert error.value.path == str(path)
    path.write_text("name;frameTime;a;b;c\n")
    with pytest.raises(DataError, match="no data rows after the header"):
        read_all(tmp_path)


def test_feature_dimension_differs_between_recordings(tmp_path):
    write_avec_fixture(tmp_path)
    path = tmp_path / "egemaps" / "Test_CN_01.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.rsplit(";", 1)[0] for line in lines) + "\n")
    with pytest.raises(DataError, match="2 feature columns, but .*Train_DE_01.csv has 3") as error:
        read_all(tmp_path)
    assert error.value.path == str(path)


@pytest.mark.parametrize("column,value", [(3, "1.5"), (4, "-1.000001")])
def test_labels_outside_the_range(tmp_path, column, value):
    write_avec_fixture(tmp_path)
    path = tmp_path / "labels" / "Train_HU_02.csv"
    replace_cell(path, 7, column, value)
    name = {3: "arousal", 4: "valence"}[column]
    with pytest.raises(DataError, match=f"{name} .* is outside \\[-1, 1\\]") as error:
        read_all(tmp_path)
    assert (error.value.path, error.value.line, error.value.column) == (str(path), 7, column)


def test_uneven_label_timestamps(tmp_path):
    write_avec_fixture(tmp_path)
    path = tmp_path / "labels" / "Devel_DE_01.csv"
    replace_cell(path, 6, 2, "0.47")
    with pytest.raises(DataError, match="timestamp step") as error:
        read_all(tmp_path)
    assert (error.value.line, error.value.column) == (6, 2)


def test_files_not_named_like_avec_are_ignored_with_a_warning(tmp_path):
    write_avec_fixture(tmp_path)
    (tmp_path / "labels" / "all_labels.csv").write_text("name;timestamp\n")
    with pytest.warns(UserWarning, match="all_labels.csv: ignored"):
        corpus = open_avec(tmp_path, audio_features=["egemaps"])
    assert len(list(corpus.recordings())) == 4
