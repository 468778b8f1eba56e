"""The IEMOCAP reader against fixtures in the real EmoEvaluation format."""

import os
import shutil
import warnings

import numpy as np
import pytest

from pipelines.core.errors import ConfigError, DataError
from pipelines.datasets import open_corpus
from pipelines.datasets.iemocap_features import resample_frames
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
    # All five sessions: with fewer, the missing sessions are warned about too.
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
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


def caught_warnings(function, *args, **kwargs):
    """(result, [warning message, ...]) of calling `function`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(*args, **kwargs)
    return result, [str(w.message) for w in caught]


def test_the_full_corpus_reads_every_session_without_warnings(tmp_path):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    corpus, messages = caught_warnings(open_iemocap, tmp_path)
    assert messages == []
    report = corpus.report
    assert (report["sessions_read"], report["sessions_missing"]) == ([1, 2, 3, 4, 5], [])
    assert report["utterances_read"] == report["utterances_used"] == len(truth) == 20
    assert report["utterances_skipped"] == {"no_feature_file": 0}
    assert report["notes"] == ["IEMOCAP: read sessions 1, 2, 3, 4, 5 (20 utterances), used 20, skipped 0"]


def replace_with_symlink(path, target):
    path.unlink()
    os.symlink(target, path)


@pytest.mark.parametrize("loop", ["itself", "two links"])
def test_a_symlink_loop_among_the_feature_files_names_the_link(tmp_path, loop):
    write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    link = tmp_path / "features" / "audio" / "Ses02F_impro01_F001.npy"
    if loop == "itself":
        replace_with_symlink(link, link.name)
    else:
        replace_with_symlink(link, "partner")
        os.symlink(link.name, link.parent / "partner")
    with pytest.raises(DataError, match="symlink loop") as error:
        open_iemocap(tmp_path)
    assert error.value.path == str(link)
    assert str(error.value).startswith(f"{link}: symlink loop: it points to ")
    assert str(error.value).endswith("--lenient leaves it out with a warning")

    corpus, messages = caught_warnings(open_iemocap, tmp_path, strict=False)
    assert [m for m in messages if m.startswith(f"{link}: symlink loop")] == messages and len(messages) == 1
    assert messages[0].endswith("left out (lenient): utterance Ses02F_impro01_F001 skipped")
    assert "Ses02F_impro01_F001" not in {r.name for r in corpus.recordings()}
    assert corpus.report["utterances_skipped"] == {"no_feature_file": 0, "symlink_loop": 1}
    assert corpus.report["damaged_feature_files"] == [{"path": str(link), "problem": "symlink_loop"}]


def test_a_dangling_symlink_is_an_error_or_a_counted_lenient_skip(tmp_path):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    link = tmp_path / "features" / "visual" / "Ses04F_impro01_M000.npy"
    gone = tmp_path / "moved" / "Ses04F_impro01_M000.npy"
    replace_with_symlink(link, gone)
    with pytest.raises(DataError) as error:
        open_iemocap(tmp_path)
    assert error.value.path == str(link)
    assert str(error.value) == (
        f"{link}: dangling symlink to {gone}: the target does not exist (expected a .npy feature file); "
        f"--lenient leaves it out with a warning"
    )

    corpus, messages = caught_warnings(open_iemocap, tmp_path, strict=False)
    assert messages == [
        f"{link}: dangling symlink to {gone}: the target does not exist; left out (lenient): "
        f"utterance Ses04F_impro01_M000 skipped"
    ]
    assert sorted(r.name for r in corpus.recordings()) == sorted(set(truth) - {"Ses04F_impro01_M000"})
    report = corpus.report
    assert report["utterances_skipped"] == {"no_feature_file": 0, "dangling_symlink": 1}
    assert report["skipped_ids"] == ["Ses04F_impro01_M000"] and report["skipped_without_features"] == 1
    assert report["damaged_feature_files"] == [{"path": str(link), "problem": "dangling_symlink"}]
    assert (report["utterances_read"], report["utterances_used"]) == (20, 19)
    assert report["notes"] == [
        "IEMOCAP: read sessions 1, 2, 3, 4, 5 (20 utterances), used 19, skipped 1 (dangling symlink); "
        "1 damaged feature file left out (lenient)"
    ]

    corpus, messages = caught_warnings(open_iemocap, tmp_path, strict=False, allow_missing_modality=True)
    assert messages[0].endswith("utterance Ses04F_impro01_M000's visual zero-filled (allow_missing_modality)")
    recording = {r.name: r for r in corpus.recordings()}["Ses04F_impro01_M000"]
    np.testing.assert_array_equal(recording.visual_present, np.zeros(recording.num_frames))
    assert corpus.report["missing_visual"] == 1 and corpus.report["utterances_skipped"] == {"no_feature_file": 0}


def test_a_symlink_to_a_feature_file_is_read_and_a_folder_named_like_one_is_not(tmp_path):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    path = tmp_path / "features" / "audio" / "Ses01F_impro01_F000.npy"
    (tmp_path / "elsewhere").mkdir()
    shutil.move(path, tmp_path / "elsewhere" / path.name)
    os.symlink(tmp_path / "elsewhere" / path.name, path)
    recording = {r.name: r for r in open_iemocap(tmp_path).recordings()}["Ses01F_impro01_F000"]
    expected = truth["Ses01F_impro01_F000"]
    n = max(1, round((expected["end"] - expected["start"]) / 0.1))
    np.testing.assert_allclose(recording.audio, reference_resample(expected["audio"], n), atol=1e-5)

    folder = tmp_path / "features" / "visual" / "Ses03F_impro01_F001.npy"
    folder.unlink()
    folder.mkdir()
    with pytest.raises(DataError, match="not a regular file but a folder") as error:
        open_iemocap(tmp_path)
    assert error.value.path == str(folder)


def expected_partitions(truth, sessions):
    """Train, devel, test counts of the fixture's utterances of `sessions` with both feature files."""
    counts = {"train": 0, "devel": 0, "test": 0}
    for record in truth.values():
        if record["session"] in sessions and record["audio"] is not None and record["visual"] is not None:
            name = "train" if record["session"] != 5 else ("devel" if record["gender"] == "F" else "test")
            counts[name] += 1
    return counts


def test_a_missing_session_folder_is_warned_about_and_reported(tmp_path):
    missing = [("Ses02F_impro01_F000", "audio"), ("Ses05F_impro01_M001", "visual")]
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features", missing=missing)
    session3 = tmp_path / "IEMOCAP" / "Session3"
    shutil.rmtree(session3)
    corpus, messages = caught_warnings(open_iemocap, tmp_path)
    assert messages == [
        f"{session3}: folder missing; session 3 not read (the IEMOCAP release has Session1 .. Session5: "
        f"sessions 1-4 are train, session 5 devel and test)"
    ]
    read = {name: record for name, record in truth.items() if record["session"] != 3}
    usable = {name for name, record in read.items() if record["audio"] is not None and record["visual"] is not None}
    report = corpus.report
    assert (report["sessions_read"], report["sessions_missing"]) == ([1, 2, 4, 5], [3])
    assert report["utterances_read"] == len(read) == 16
    assert report["utterances_used"] == len(usable) == 14
    assert report["utterances_skipped"] == {"no_feature_file": len(read) - len(usable)}
    assert report["recordings"] == expected_partitions(truth, {1, 2, 4, 5})
    assert sorted(r.name for r in corpus.recordings()) == sorted(usable)
    assert report["notes"] == [
        "IEMOCAP: read sessions 1, 2, 4, 5 (16 utterances), used 14, skipped 2 (no feature file); "
        "Session3 folder missing"
    ]


@pytest.mark.parametrize("remove", ["Session5", "Session5/dialog/EmoEvaluation", "the dialog file"])
def test_without_session_five_there_is_no_devel_or_test_and_the_warning_says_why(tmp_path, remove):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    root = tmp_path / "IEMOCAP"
    if remove == "the dialog file":
        gone = root / "Session5" / "dialog" / "EmoEvaluation"
        (gone / "Ses05F_impro01.txt").unlink()
        problem = "no <dialog>.txt EmoEvaluation file in this folder"
    else:
        gone = root / remove
        shutil.rmtree(gone)
        problem = "folder missing"
    corpus, messages = caught_warnings(open_iemocap, tmp_path)
    empty = (
        "IEMOCAP: no devel or test recordings, because session 5 is devel and test and Session5 was not read "
        "(training and tuning need both a train and a devel partition)"
    )
    assert messages == [
        f"{gone}: {problem}; session 5 not read (the IEMOCAP release has Session1 .. Session5: "
        f"sessions 1-4 are train, session 5 devel and test)",
        empty,
    ]
    assert (
        corpus.report["recordings"] == expected_partitions(truth, {1, 2, 3, 4}) == {"train": 16, "devel": 0, "test": 0}
    )
    where = gone.relative_to(root).as_posix()
    assert corpus.report["notes"] == [
        "IEMOCAP: read sessions 1, 2, 3, 4 (16 utterances), used 16, skipped 0; "
        + (f"{where} folder missing" if problem == "folder missing" else f"{where}: {problem}"),
        empty,
    ]


def test_an_empty_devel_set_is_explained_when_its_speakers_utterances_are_all_skipped(tmp_path):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "features")
    devel = [name for name, record in truth.items() if record["session"] == 5 and record["gender"] == "F"]
    for name in devel:
        (tmp_path / "features" / "audio" / f"{name}.npy").unlink()
    corpus, messages = caught_warnings(open_iemocap, tmp_path)
    empty = (
        "IEMOCAP: no devel recordings, because the devel set is session 5's F speaker (validation_speaker) and every "
        "utterance of that speaker was skipped (training and tuning need both a train and a devel partition)"
    )
    assert messages == [empty]
    assert corpus.report["recordings"] == {"train": 16, "devel": 0, "test": 2}
    assert corpus.report["notes"] == [
        f"IEMOCAP: read sessions 1, 2, 3, 4, 5 (20 utterances), used {20 - len(devel)}, skipped {len(devel)} "
        f"(no feature file)",
        empty,
    ]


@pytest.mark.parametrize("edited", ["label", "feature"])
def test_fingerprint_follows_the_content_not_size_and_time(tmp_path, edited):
    root, feats = tmp_path / "IEMOCAP", tmp_path / "feats"
    truth = write_iemocap_fixture(root, feats, feature_format="csv")
    options = {"features_dir": feats, "audio_features": "audio", "visual_features": "visual"}
    first = open_corpus("iemocap", root, **options).fingerprint
    utterance = sorted(truth)[0]
    if edited == "label":
        path = next((root / "Session1" / "dialog" / "EmoEvaluation").glob("*.txt"))
        old, new = "C-E2:\tNeutral;", "C-E2:\tNeutraL;"
    else:
        path = feats / "audio" / f"{utterance}.csv"
        old = path.read_text().split(",")[0]
        new = old[:-1] + ("1" if old[-1] != "1" else "2")
    stat = path.stat()
    path.write_text(path.read_text().replace(old, new, 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert open_corpus("iemocap", root, **options).fingerprint != first
