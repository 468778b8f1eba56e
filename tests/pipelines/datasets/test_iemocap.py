"""The IEMOCAP reader against fixtures in the real EmoEvaluation format."""

import warnings

import numpy as np
import pytest

from pipelines.datasets import open_corpus
from pipelines.datasets.iemocap import resample_frames
from pipelines.errors import ConfigError, DataError
from tests.fixtures import write_iemocap_fixture


def reference_resample(values, n):
    """Independent reference: frame j averages the input frames centred in [j/n, (j+1)/n) when
    there are any, else interpolates linearly between the neighbouring input centres."""
    m = len(values)
    centres = (np.arange(m) + 0.5) / m
    out = []
    for j in range(n):
        inside = [values[i] for i in range(m) if j / n <= centres[i] < (j + 1) / n]
        if m >= n:
            out.append(np.mean(inside, axis=0))
            continue
        t = (j + 0.5) / n
        if t <= centres[0]:
            out.append(values[0])
        elif t >= centres[-1]:
            out.append(values[-1])
        else:
            i = int(np.searchsorted(centres, t)) - 1
            w = (t - centres[i]) / (centres[i + 1] - centres[i])
            out.append((1 - w) * values[i] + w * values[i + 1])
    return np.array(out)


@pytest.mark.parametrize("m,n", [(10, 10), (23, 5), (7, 3), (100, 33), (3, 11), (1, 4), (5, 1), (2, 3)])
def test_resample_frames_matches_reference(m, n):
    values = np.random.default_rng(m * 100 + n).normal(size=(m, 3))
    np.testing.assert_allclose(resample_frames(values, n), reference_resample(values, n), atol=1e-12)


def test_resample_keeps_a_constant_and_the_mean_when_downsampling_evenly():
    values = np.random.default_rng(0).normal(size=(12, 2))
    np.testing.assert_allclose(resample_frames(values, 4).mean(axis=0), values.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(resample_frames(np.full((5, 2), 3.0), 17), np.full((17, 2), 3.0))


def open_iemocap(tmp_path, **options):
    return open_corpus("iemocap", tmp_path / "IEMOCAP", features_dir=tmp_path / "features", **options)


@pytest.mark.parametrize("feature_format,csv_header", [("npy", False), ("csv", False), ("csv", True)])
def test_reads_utterances_labels_and_resampled_features(tmp_path, feature_format, csv_header):
    truth = write_iemocap_fixture(
        tmp_path / "IEMOCAP", tmp_path / "features", feature_format=feature_format, csv_header=csv_header
    )
    corpus = open_iemocap(tmp_path)
    recordings = {r.name: r for r in corpus.recordings()}
    assert sorted(recordings) == sorted(truth)
    assert corpus.hop == 0.1
    if csv_header:
        assert corpus.audio_feature_names == ["audio_c0", "audio_c1", "audio_c2"]
    else:
        assert corpus.visual_feature_names == ["visual_0", "visual_1"]
    for name, recording in recordings.items():
        expected = truth[name]
        n = max(1, round((expected["end"] - expected["start"]) / 0.1))
        assert recording.num_frames == n
        np.testing.assert_allclose(recording.audio, reference_resample(expected["audio"], n), atol=1e-5)
        np.testing.assert_allclose(recording.visual, reference_resample(expected["visual"], n), atol=1e-5)
        assert recording.valence == pytest.approx((expected["valence_raw"] - 3) / 2)
        assert recording.arousal == pytest.approx((expected["arousal_raw"] - 3) / 2)
        assert recording.sequence_level
        np.testing.assert_allclose(recording.timestamps, expected["start"] + np.arange(n) * 0.1)
        assert recording.metadata["session"] == str(expected["session"])
        assert recording.metadata["gender"] == expected["gender"]
        assert recording.metadata["category"] == expected["category"]


@pytest.mark.parametrize("speaker", ["F", "M"])
def test_speaker_independent_split(tmp_path, speaker):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    corpus = open_iemocap(tmp_path, validation_speaker=speaker.lower())
    for recording in corpus.recordings():
        session, gender = truth[recording.name]["session"], truth[recording.name]["gender"]
        expected = "train" if session < 5 else ("devel" if gender == speaker else "test")
        assert recording.partition == expected
    assert corpus.report["recordings"] == {"train": 16, "devel": 2, "test": 2}


def test_utterances_without_features_are_skipped_and_counted(tmp_path):
    missing = [
        ("Ses02F_impro01_F000", "audio"),
        ("Ses03F_impro01_M001", "visual"),
        ("Ses03F_impro01_M000", "audio"),
        ("Ses03F_impro01_M000", "visual"),
    ]
    write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features", missing=missing)
    corpus = open_iemocap(tmp_path)
    names = {r.name for r in corpus.recordings()}
    assert len(names) == 17 and not names & {name for name, _ in missing}
    assert corpus.report["skipped_without_features"] == 3
    assert corpus.report["utterances"] == 20

    corpus = open_iemocap(tmp_path, allow_missing_modality=True)
    recordings = {r.name: r for r in corpus.recordings()}
    assert len(recordings) == 19 and "Ses03F_impro01_M000" not in recordings
    audio_missing = recordings["Ses02F_impro01_F000"]
    np.testing.assert_array_equal(audio_missing.audio, np.zeros((audio_missing.num_frames, 3)))
    np.testing.assert_array_equal(audio_missing.audio_present, np.zeros(audio_missing.num_frames))
    np.testing.assert_array_equal(audio_missing.visual_present, np.ones(audio_missing.num_frames))
    assert (corpus.report["missing_audio"], corpus.report["missing_visual"]) == (1, 1)
    assert corpus.report["skipped_without_features"] == 1


def test_unparseable_emo_evaluation_line(tmp_path):
    write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    path = tmp_path / "IEMOCAP" / "Session2" / "dialog" / "EmoEvaluation" / "Ses02F_impro01.txt"
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if "_M000" in line)
    lines[number - 1] = lines[number - 1].replace("[", "(", 2).replace(", ", "; ", 1)
    lines[number - 1] = "[" + lines[number - 1][1:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="cannot parse the utterance line") as error:
        open_iemocap(tmp_path)
    assert (error.value.path, error.value.line) == (str(path), number)


def test_bad_vad_values(tmp_path):
    write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features", sessions=(1,))
    path = tmp_path / "IEMOCAP" / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    text = path.read_text()
    first = next(line for line in text.splitlines() if line.startswith("["))
    bad = first[: first.rindex("[")] + "[2.5000, high, 3.0000]"
    path.write_text(text.replace(first, bad))
    with pytest.raises(DataError, match="expected three numbers") as error:
        open_iemocap(tmp_path)
    assert error.value.line == 3


def test_feature_errors_name_the_file(tmp_path):
    write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features", sessions=(1, 5))
    folder = tmp_path / "features" / "visual"
    np.save(folder / "Ses05F_impro01_M001.npy", np.ones((4, 3), np.float32))
    with pytest.raises(DataError, match="3 feature columns, but .* has 2") as error:
        list(open_iemocap(tmp_path).recordings())
    assert error.value.path == str(folder / "Ses05F_impro01_M001.npy")
    values = np.ones((4, 2), np.float32)
    values[2, 1] = np.nan
    np.save(folder / "Ses05F_impro01_M001.npy", values)
    with pytest.raises(DataError, match="nan at frame 2 .*feature 1"):
        list(open_iemocap(tmp_path).recordings())
    np.save(folder / "Ses05F_impro01_M001.npy", np.ones(4, np.float32))
    with pytest.raises(DataError, match="expected a 2-D array"):
        list(open_iemocap(tmp_path).recordings())


def test_csv_feature_errors_name_line_and_column(tmp_path):
    write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features", sessions=(1,), feature_format="csv")
    path = tmp_path / "features" / "audio" / "Ses01F_impro01_M000.csv"
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[2] = "abc"
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="'abc' is not a number") as error:
        list(open_iemocap(tmp_path).recordings())
    assert (error.value.path, error.value.line, error.value.column) == (str(path), 2, 3)


def test_options_and_folders_are_checked(tmp_path):
    write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features", sessions=(1,))
    with pytest.raises(ConfigError, match="validation_speaker"):
        open_iemocap(tmp_path, validation_speaker="X")
    with pytest.raises(ConfigError, match="'faces' does not exist; folders in .*: audio, visual"):
        open_iemocap(tmp_path, visual_features="faces")
    with pytest.raises(ConfigError, match="features_dir"):
        open_corpus("iemocap", tmp_path / "IEMOCAP")
    with pytest.raises(DataError, match="no EmoEvaluation files"):
        open_corpus("iemocap", tmp_path / "features", features_dir=tmp_path / "features")


def test_ratings_outside_one_to_five_are_clipped_with_a_warning(tmp_path):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features", sessions=(1,))
    path = tmp_path / "IEMOCAP" / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    text = path.read_text()
    line = next(line for line in text.splitlines() if "_M001" in line and line.startswith("["))
    path.write_text(text.replace(line, line[: line.rindex("[")] + "[5.5000, 0.5000, 3.0000]"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = open_iemocap(tmp_path)
    messages = sorted(str(w.message).split(": ", 1)[1] for w in caught)
    assert messages == ["arousal 0.5 is outside 1..5; clipped", "valence 5.5 is outside 1..5; clipped"]
    recording = {r.name: r for r in corpus.recordings()}["Ses01F_impro01_M001"]
    assert (recording.valence, recording.arousal) == (1.0, -1.0)
    assert corpus.report["clipped_labels"] == 2
    other = {r.name: r for r in corpus.recordings()}["Ses01F_impro01_F001"]
    assert other.valence == pytest.approx((truth["Ses01F_impro01_F001"]["valence_raw"] - 3) / 2)
