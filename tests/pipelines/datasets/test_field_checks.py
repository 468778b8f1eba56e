"""Every field of a corpus file against what it must be: names, timestamps, float32 range, duplicates,
IEMOCAP lines and .npy arrays; strict by default, lenient on request."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from pipelines import example_gen as example_gen_command
from pipelines.components import example_gen
from pipelines.core.errors import DataError
from pipelines.data import records
from pipelines.datasets import open_corpus
from tests.fixtures import write_avec_fixture, write_iemocap_fixture
from tests.pipelines.example_gen_helpers import make_corpus, make_recordings


def open_avec(root, **options):
    return open_corpus("avec", root, audio_features=["egemaps"], visual_features=["au"], **options)


def read_all(corpus):
    return {recording.name: recording for recording in corpus.recordings()}


def edit_rows(path, edit):
    """Applies `edit(row_index, cells) -> cells` to every data row of a `;`-separated file with a header."""
    lines = path.read_text().splitlines()
    out = [lines[0]] + [";".join(edit(i, line.split(";"))) for i, line in enumerate(lines[1:])]
    path.write_text("\n".join(out) + "\n")


@pytest.fixture
def avec(tmp_path):
    truth = write_avec_fixture(tmp_path)
    return tmp_path, truth


def test_value_that_overflows_float32_is_named_with_its_column(avec):
    root, _ = avec
    path = root / "egemaps" / "Train_HU_02.csv"
    edit_rows(path, lambda i, cells: cells[:3] + ["1e300"] + cells[4:] if i == 5 else cells)
    with pytest.raises(DataError) as error:
        read_all(open_avec(root))
    assert str(error.value).startswith(f"{path}:7:4: value 1e+300 does not fit a 32-bit float")
    assert "expected a magnitude of at most 3.403e+38" in str(error.value)


def test_label_value_that_overflows_float32_is_an_error(avec):
    root, _ = avec
    path = root / "labels" / "Devel_DE_01.csv"
    edit_rows(path, lambda i, cells: cells[:4] + ["-4e38"] if i == 2 else cells)
    with pytest.raises(DataError) as error:
        read_all(open_avec(root))
    assert str(error.value).startswith(f"{path}:4:5: value -4e+38 does not fit a 32-bit float")


def test_name_column_of_another_recording_is_an_error(avec):
    root, _ = avec
    path = root / "au" / "Train_DE_01.csv"
    edit_rows(path, lambda i, cells: ["'Train_HU_02'"] + cells[1:] if i >= 3 else cells)
    for strict in (True, False):
        with pytest.raises(DataError) as error:
            read_all(open_avec(root, strict=strict))
        assert str(error.value) == (
            f"{path}:5:1: name \"'Train_HU_02'\" in a file of recording Train_DE_01 "
            f"(expected 'Train_DE_01' on every row)"
        )


def test_name_differing_only_in_quoting_is_strict_error_and_lenient_warning(avec):
    root, truth = avec
    path = root / "labels" / "Train_HU_02.csv"
    edit_rows(path, lambda i, cells: ["'Train_HU_02"] + cells[1:])
    with pytest.raises(DataError) as error:
        read_all(open_avec(root))
    assert str(error.value).startswith(f"{path}:2:1: name \"'Train_HU_02\" differs from 'Train_HU_02' in its quoting")
    assert "--lenient accepts it" in str(error.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recordings = read_all(open_avec(root, strict=False))
    assert [str(w.message) for w in caught if "quoting" in str(w.message)] == [
        f"{path}: the name column differs from 'Train_HU_02' in its quoting from line 2 on; accepted (lenient)"
    ]
    np.testing.assert_allclose(recordings["Train_HU_02"].valence, truth["labels"]["Train_HU_02"]["valence"], atol=1e-6)


@pytest.mark.parametrize("fraction", [0.3, 0.45])
def test_timestamp_drift_under_half_a_hop_is_lenient_only(avec, fraction):
    root, truth = avec
    path = root / "egemaps" / "Devel_DE_01.csv"
    edit_rows(path, lambda i, cells: [cells[0], f"{i * 0.1 + fraction * 0.1:.4f}"] + cells[2:] if i >= 4 else cells)
    with pytest.raises(DataError) as error:
        read_all(open_avec(root))
    assert str(error.value) == (
        f"{path}:6:2: timestamp {0.4 + fraction * 0.1:.6g} s, but the label row it is "
        f"paired with is at 0.4 s (expected within 0.005 s; --lenient accepts less than "
        f"half a hop)"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recordings = read_all(open_avec(root, strict=False))
    messages = [str(w.message) for w in caught if "drift" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith(f"{path}: timestamps drift up to {fraction * 0.1:.3g} s")
    np.testing.assert_allclose(recordings["Devel_DE_01"].audio, truth["features"]["egemaps"]["Devel_DE_01"], atol=1e-6)
    np.testing.assert_allclose(recordings["Devel_DE_01"].timestamps, truth["labels"]["Devel_DE_01"]["timestamp"])


def test_drift_of_half_a_hop_or_more_is_an_error_even_when_lenient(avec):
    root, _ = avec
    path = root / "au" / "Train_DE_01.csv"
    edit_rows(path, lambda i, cells: [cells[0], f"{i * 0.1 + 0.06:.4f}"] + cells[2:] if i >= 7 else cells)
    with pytest.raises(DataError) as error:
        read_all(open_avec(root, strict=False))
    assert str(error.value).startswith(
        f"{path}:9:2: timestamp 0.76 s, but the label row it is paired with is at 0.7 s (expected within 0.05 s)"
    )


def test_feature_file_with_its_own_hop_names_both_hops(avec):
    root, _ = avec
    path = root / "egemaps" / "Train_DE_01.csv"
    edit_rows(path, lambda i, cells: [cells[0], f"{i * 0.04:.2f}"] + cells[2:])
    for strict in (True, False):
        with pytest.raises(DataError) as error:
            read_all(open_avec(root, strict=strict))
        assert str(error.value) == (
            f"{path}:3:2: the timestamps advance by 0.04 s per row, but the hop of the "
            f"labels is 0.1 s (expected rows 0.1 s apart)"
        )


def test_unlabelled_test_recording_files_are_aligned_with_each_other(tmp_path):
    write_avec_fixture(tmp_path, test_labels="absent")
    path = tmp_path / "egemaps" / "Test_CN_01.csv"
    edit_rows(path, lambda i, cells: [cells[0], f"{i * 0.1 + 0.02:.2f}"] + cells[2:])
    with pytest.raises(DataError) as error:
        read_all(open_avec(tmp_path))
    assert str(error.value) == (
        f"{path}:2:2: timestamp 0.02 s, but the 0.1 s frame grid puts that row at 0 s "
        f"(expected within 0.005 s; --lenient accepts less than half a hop)"
    )


def test_same_features_in_two_partitions_are_a_warning_naming_both_files(avec):
    root, _ = avec
    source, copy = root / "au" / "Train_DE_01.csv", root / "au" / "Devel_DE_01.csv"
    copy.write_text(source.read_text().replace("'Train_DE_01'", "'Devel_DE_01'"))
    corpus = open_avec(root)
    with pytest.warns(UserWarning) as caught:
        read_all(corpus)
    messages = [str(w.message) for w in caught if "the same feature values" in str(w.message)]
    assert messages == [
        f"{copy}: the same feature values as {source} of the train partition; a recording in two partitions "
        f"leaks its data from one into the other (accepted)"
    ]
    assert corpus.report["shared_across_partitions"] == [[str(source), str(copy)]]
    assert corpus.report["recordings_sharing_features"] == []


def test_example_gen_refuses_a_recording_twice_under_two_names(tmp_path):
    recordings = make_recordings()
    twin = recordings[0]
    recordings[4].audio, recordings[4].visual = twin.audio.copy(), twin.visual.copy()
    recordings[4].valence, recordings[4].arousal = twin.valence, twin.arousal
    recordings[4].timestamps, recordings[4].audio_present = twin.timestamps, twin.audio_present
    recordings[4].visual_present = twin.visual_present
    recordings[4].audio_corrupted, recordings[4].visual_corrupted = twin.audio_corrupted, twin.visual_corrupted
    with pytest.raises(
        DataError,
        match=r"recording 'devel_00' \(devel\): has the same audio and visual features "
        r"as recording 'train_00' \(train\)",
    ):
        example_gen.run(make_corpus(recordings), tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


# --------------------------------------------------------------------------- IEMOCAP


@pytest.fixture
def iemocap(tmp_path):
    truth = write_iemocap_fixture(tmp_path / "IEMOCAP", tmp_path / "feats", sessions=(1, 5))
    return tmp_path / "IEMOCAP", tmp_path / "feats", truth


def open_iemocap(root, feats, **options):
    return open_corpus("iemocap", root, features_dir=feats, **options)


def emo_file(root, session):
    return root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"Ses0{session}F_impro01.txt"


@pytest.mark.parametrize(
    "old,new,column,message",
    [
        ("[{start}", "[inf", 1, "bad time span [inf - {end}] (expected two finite times in seconds, the start >= 0)"),
        ("[{start}", "[1.2.3", 1, "bad time span [1.2.3 - {end}] (expected two finite times"),
        ("[{start} - {end}]", "[{start} - nan]", 1, "bad time span [{start} - nan]"),
        ("[{v}, {a}, {d}]", "[{v}, inf, {d}]", 4, "expected three numbers [V, A, D], found [{v}, inf, {d}]"),
        ("[{v}, {a}, {d}]", "[{v}, {a}]", 4, "expected three numbers [V, A, D], found [{v}, {a}]"),
        ("{id}", "Ses01F_impro01_X000", 2, "utterance id 'Ses01F_impro01_X000' does not end in F or M and a number"),
    ],
)
def test_malformed_emo_evaluation_fields(iemocap, old, new, column, message):
    root, feats, _ = iemocap
    path = emo_file(root, 1)
    lines = path.read_text().split("\n")
    number = next(i for i, line in enumerate(lines) if line.startswith("["))
    span, utterance, _, vad = lines[number].split("\t")
    start, end = span[1:-1].split(" - ")
    v, a, d = vad[1:-1].split(", ")
    fields = dict(start=start, end=end, v=v, a=a, d=d, id=utterance)
    lines[number] = lines[number].replace(old.format(**fields), new.format(**fields))
    path.write_text("\n".join(lines))
    with pytest.raises(DataError) as error:
        open_iemocap(root, feats)
    assert str(error.value).startswith(f"{path}:{number + 1}:{column}: {message.format(**fields)}")


def test_utterance_id_of_another_dialog_is_strict_error_and_lenient_warning(iemocap):
    root, feats, truth = iemocap
    path = emo_file(root, 1)
    text = path.read_text()
    path.write_text(text.replace("\tSes01F_impro01_M000\t", "\tSes01F_impro02_M000\t"))
    for folder in ("audio", "visual"):
        (feats / folder / "Ses01F_impro01_M000.npy").rename(feats / folder / "Ses01F_impro02_M000.npy")
    number = 1 + text.split("\n").index(next(line for line in text.split("\n") if "Ses01F_impro01_M000" in line))
    with pytest.raises(DataError) as error:
        open_iemocap(root, feats)
    assert str(error.value) == (
        f"{path}:{number}:2: utterance id 'Ses01F_impro02_M000' is not of dialog "
        f"Ses01F_impro01 (expected 'Ses01F_impro01_<speaker><NNN>'); --lenient accepts it "
        f"with a warning"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = open_iemocap(root, feats, strict=False)
    assert any(str(w.message).startswith(f"{path}:{number}:2: utterance id") for w in caught)
    assert "Ses01F_impro02_M000" in {recording.name for recording in corpus.recordings()}


@pytest.mark.parametrize(
    "array,message",
    [
        (np.array([[1, None]], dtype=object), "an array of Python objects (expected a numeric .npy array"),
        (np.zeros((4, 3, 2)), "a 3-D array of shape (4, 3, 2) (expected a 2-D array [frames, features])"),
        (np.zeros((4, 3), bool), "dtype bool (expected real numbers: a float or integer dtype)"),
        (np.array([["a", "b"]]), "dtype <U1 (expected real numbers"),
        (np.zeros((4, 3), complex), "dtype complex128 (expected real numbers"),
        (np.zeros(4, [("a", "f4"), ("b", "f4")]).reshape(2, 2), "dtype [('a', '<f4'), ('b', '<f4')] (expected real"),
    ],
)
def test_npy_arrays_of_the_wrong_kind(iemocap, array, message):
    root, feats, _ = iemocap
    path = feats / "visual" / "Ses05F_impro01_M001.npy"
    np.save(path, array, allow_pickle=array.dtype == object)
    with pytest.raises(DataError) as error:
        list(open_iemocap(root, feats).recordings())
    assert str(error.value).startswith(f"{path}: {message}")


def test_npy_value_that_overflows_float32(iemocap):
    root, feats, truth = iemocap
    path = feats / "audio" / "Ses05F_impro01_F001.npy"
    values = np.asarray(truth["Ses05F_impro01_F001"]["audio"], np.float64)
    values[2, 1] = -1e300
    np.save(path, values)
    with pytest.raises(DataError) as error:
        list(open_iemocap(root, feats).recordings())
    assert str(error.value).startswith(f"{path}: value -1e+300 does not fit a 32-bit float and would become infinite")
    assert str(error.value).endswith("at frame 2, feature 1 (0-based)")


def test_example_gen_cli_strict_and_lenient(avec):
    """From the command line: strict fails in one line with exit code 2, lenient converts with a warning."""
    root, _ = avec
    path = root / "au" / "Train_DE_01.csv"
    edit_rows(path, lambda i, cells: [cells[0], f"{i * 0.1 + 0.02:.2f}"] + cells[2:])
    command = [
        sys.executable,
        "-m",
        "pipelines.example_gen",
        "--dataset",
        "avec",
        "--data-dir",
        str(root),
        "--audio-features",
        "egemaps",
        "--visual-features",
        "au",
        "--output-dir",
        str(root / "out"),
        "--no-progress",
    ]
    strict = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert strict.returncode == 2, strict.stderr
    assert strict.stderr.strip().splitlines() == [
        f"error: {path}:2:2: timestamp 0.02 s, but the label row it is paired with is at 0 s (expected within "
        f"0.005 s; --lenient accepts less than half a hop)"
    ]
    assert not (root / "out" / "manifest.json").exists()
    with pytest.warns(UserWarning, match=f"{path}: timestamps drift up to 0.02 s"):
        example_gen_command.main(command[3:] + ["--lenient"])
    manifest = records.load_manifest(root / "out")
    assert sum(part["num_recordings"] for part in manifest["partitions"].values()) == 4


# --------------------------------------------------------------------------- raw synthetic files


@pytest.mark.parametrize("damage", ["short_wav", "other_name", "garbage_faces"])
def test_raw_synthetic_files_are_checked(raw_corpus_dir, tmp_path, damage):
    import shutil

    from pipelines.datasets import synthetic_raw

    root = tmp_path / "raw"
    shutil.copytree(raw_corpus_dir, root)
    name = sorted(p.stem for p in (root / "labels").glob("*.csv"))[0]
    if damage == "short_wav":
        path = root / synthetic_raw.AUDIO_FOLDER / f"{name}.wav"
        waveform, rate = synthetic_raw.read_wav(path)
        synthetic_raw.write_wav(path, waveform[: len(waveform) // 2], rate)
        message = f"{path}: {len(waveform) // 2} samples"
        expected = f"(expected {len(waveform)} samples at {rate} Hz, within a hop)"
    elif damage == "other_name":
        path = root / "labels" / f"{name}.csv"
        other = sorted(p.stem for p in (root / "labels").glob("*.csv"))[1]
        path.write_text(path.read_text().replace(f"'{name}'", f"'{other}'"))
        message = f"{path}:2:1: name \"'{other}'\" in a file of recording {name}"
        expected = f"(expected '{name}' on every row)"
    else:
        path = root / synthetic_raw.FACES_FOLDER / f"{name}.npz"
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
        message = f"{path}: unreadable face file, expected a .npz with a 'faces' array"
        expected = ""
    with pytest.raises(DataError) as error:
        list(open_corpus("synthetic", root).recordings())
    assert str(error.value).startswith(message) and str(error.value).endswith(expected or str(error.value)[-1])
