"""The AVEC reader and ExampleGen on a corpus with the distributed AVEC 2019 CES's properties: dyadic
pairs sharing their audio features, feature files padded past the labels with non-zero rows, a
zero start, label files of 974-1768 rows, pairs one frame apart, quoted names, several folders
per modality. Plus what the reader must name: broken links, a folder copied into another, an
edit that keeps a file's size and time; and shards that are the same bytes in every process."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pipelines import example_gen
from pipelines.components import statistics_gen
from pipelines.core.errors import DataError
from pipelines.data import records
from pipelines.datasets import open_corpus
from tests.fixtures import write_avec_real_fixture

REPO = Path(__file__).resolve().parents[3]
AUDIO, VISUAL = ["egemaps", "mfcc"], ["au", "baseline"]


def open_avec(root, **options):
    options.setdefault("audio_features", AUDIO)
    options.setdefault("visual_features", VISUAL)
    return open_corpus("avec", root, **options)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("avec_real") / "AVEC2019_CES"
    truth = write_avec_real_fixture(root)
    return root, truth


@pytest.fixture
def corpus_copy(corpus_dir, tmp_path):
    source, truth = corpus_dir
    root = tmp_path / "AVEC2019_CES"
    shutil.copytree(source, root)
    return root, truth


def run_example_gen(root, out, *extra):
    """(exit code, stderr lines) of the ExampleGen command, warnings left to the caller."""
    stderr = io.StringIO()
    code = 0
    args = ["--dataset", "avec", "--data-dir", str(root), "--audio-features", ",".join(AUDIO)]
    args += ["--visual-features", ",".join(VISUAL), "--output-dir", str(out), "--no-progress", *extra]
    with contextlib.redirect_stderr(stderr):
        try:
            example_gen.main(args)
        except SystemExit as leave:
            code = leave.code
    return code, stderr.getvalue().strip().splitlines()


def test_distributed_corpus_is_read_with_its_pairs_listed(corpus_dir):
    root, truth = corpus_dir
    corpus = open_avec(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recordings = {recording.name: recording for recording in corpus.recordings()}
    assert len(recordings) == sum(len(pair) for pair in truth["pairs"])
    for name, recording in recordings.items():
        n = truth["label_frames"].get(name, 1768)  # unlabelled test recordings keep their feature files' length
        assert recording.num_frames == n
        audio = np.concatenate([truth["features"][folder][name][:n] for folder in AUDIO], axis=1)
        visual = np.concatenate([truth["features"][folder][name][:n] for folder in VISUAL], axis=1)
        np.testing.assert_allclose(recording.audio, audio, atol=1e-6)
        np.testing.assert_allclose(recording.visual, visual, atol=1e-6)
        np.testing.assert_array_equal(recording.visual[:20, 3:], 0.0)  # the baseline's first 2 s
        assert recording.visual[20:, 3:].any()
        np.testing.assert_array_equal(recording.audio_present, 1.0)
    for first, second in truth["pairs"]:
        common = min(recordings[first].num_frames, recordings[second].num_frames)
        np.testing.assert_array_equal(recordings[first].audio[:common], recordings[second].audio[:common])
        assert not np.array_equal(recordings[first].visual[:common], recordings[second].visual[:common])
    partition = {"Train": "train", "Devel": "devel", "Test": "test"}
    assert corpus.report["recordings_sharing_features"] == [
        {"partition": partition[first.split("_")[0]], "recordings": [first, second], "folders": AUDIO}
        for first, second in truth["pairs"]
    ]
    assert corpus.report["shared_across_partitions"] == []
    (note,) = corpus.report["notes"]
    assert note.startswith("10 recordings share feature values with another recording of their partition, accepted")
    for first, second in truth["pairs"]:
        assert f"{first}={second} (egemaps, mfcc)" in note


def test_example_gen_says_in_one_line_which_recordings_share_features(corpus_dir, tmp_path):
    root, truth = corpus_dir
    out = tmp_path / "artefacts"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, lines = run_example_gen(root, out)
    assert code == 0, lines
    assert len(lines) == 1 and lines[0].startswith("example_gen: 10 recordings share feature values"), lines
    manifest = records.load_manifest(out)
    groups = manifest["corpus_report"]["recordings_sharing_features"]
    assert [group["recordings"] for group in groups] == [list(pair) for pair in truth["pairs"]]
    assert {p: part["num_frames"] for p, part in manifest["partitions"].items()} == {
        "train": 2 * 1768 + 2 * 1412,
        "devel": 975 + 974 + 1153 + 1152,
        "test": 2 * 1768,
    }
    report = statistics_gen.run(out)
    assert report["num_blocking"] == 0, report
    statistics = json.loads((out / "statistics.json").read_text())
    assert statistics["recordings_sharing_features"] == groups
    text = (out / "statistics.txt").read_text()
    assert "Recordings sharing features (5 groups; accepted, e.g. a conversation's partners):" in text
    assert "  devel: Devel_DE_03, Devel_DE_08 (egemaps, mfcc)" in text

    # Up to date: the same line again, from the manifest.
    code, lines = run_example_gen(root, out)
    assert code == 0 and lines == ["example_gen: " + manifest["corpus_report"]["notes"][0]]


def test_a_feature_folder_copied_into_another_is_an_error_naming_both_files(corpus_copy):
    root, _ = corpus_copy
    shutil.copytree(root / "au", root / "au_copy")
    with pytest.raises(DataError) as error:
        list(open_avec(root, visual_features=["au", "au_copy"]).recordings())
    assert str(error.value) == (
        f"{root / 'au_copy' / 'Train_DE_01.csv'}: the same feature values as {root / 'au' / 'Train_DE_01.csv'}, "
        f"a file of another feature folder (expected each folder to hold its own feature set: was one folder "
        f"copied into another?)"
    )


def test_all_zero_files_in_two_folders_are_not_taken_for_a_copy(tmp_path):
    truth = write_avec_real_fixture(tmp_path, visual_folders=(("au", 2), ("baseline", 2)))
    for folder in VISUAL:
        path = tmp_path / folder / "Train_DE_01.csv"
        lines = path.read_text().splitlines()
        path.write_text(
            "\n".join(lines[:1] + [";".join(line.split(";")[:2] + ["0", "0"]) for line in lines[1:]]) + "\n"
        )
    recordings = {recording.name: recording for recording in open_avec(tmp_path).recordings()}
    np.testing.assert_array_equal(recordings["Train_DE_01"].visual, 0.0)
    assert len(recordings) == sum(len(pair) for pair in truth["pairs"])


def test_same_audio_in_two_partitions_is_a_warning_and_listed(corpus_copy, tmp_path):
    root, _ = corpus_copy
    source, copy = root / "mfcc" / "Train_HU_01.csv", root / "mfcc" / "Devel_HU_04.csv"
    copy.write_text(source.read_text().replace("'Train_HU_01'", "'Devel_HU_04'"))
    out = tmp_path / "artefacts"
    with pytest.warns(UserWarning, match="leaks its data") as caught:
        code, lines = run_example_gen(root, out)
    assert code == 0, lines
    leaks = [str(w.message) for w in caught if "leaks its data" in str(w.message)]
    assert leaks == [
        f"{copy}: the same feature values as {source} of the train partition; a recording in two partitions "
        f"leaks its data from one into the other (accepted)"
    ]
    report = records.load_manifest(out)["corpus_report"]
    assert report["shared_across_partitions"] == [[str(source), str(copy)]]
    # The pair Devel_HU_04/10 no longer shares its mfcc file, only its egemaps file.
    assert {"partition": "devel", "recordings": ["Devel_HU_04", "Devel_HU_10"], "folders": ["egemaps"]} in report[
        "recordings_sharing_features"
    ]


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_symbolic_link_is_named(corpus_copy, tmp_path, kind):
    root, _ = corpus_copy
    link = root / "au" / "Devel_DE_08.csv"
    link.unlink()
    if kind == "dangling":
        link.symlink_to(root / "elsewhere" / "Devel_DE_08.csv")
        expected = f"error: {link}: a dangling symbolic link (it points to {root / 'elsewhere' / 'Devel_DE_08.csv'}: "
    else:
        link.symlink_to(link)
        expected = f"error: {link}: a symbolic link loop (it points to {link}: "
    code, lines = run_example_gen(root, tmp_path / "artefacts")
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert lines[0].endswith("expected a feature or label file")
    assert not (tmp_path / "artefacts" / "manifest.json").exists()


def test_fingerprint_follows_the_content_not_size_and_time(corpus_copy, tmp_path):
    root, _ = corpus_copy
    out = tmp_path / "artefacts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_example_gen(root, out)[0] == 0
        before = open_avec(root).fingerprint
        moved = tmp_path / "moved"
        shutil.copytree(root, moved, copy_function=shutil.copy)  # new times, same content
        assert open_avec(moved).fingerprint == before
        path = root / "au" / "Devel_DE_03.csv"
        stat = path.stat()
        text = path.read_text()
        lines = text.split("\n")
        cells = lines[5].split(";")
        cells[2] = cells[2][:-1] + ("1" if cells[2][-1] != "1" else "2")  # one digit, same size
        lines[5] = ";".join(cells)
        path.write_text("\n".join(lines))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
        assert open_avec(root).fingerprint != before
        code, lines = run_example_gen(root, out)
    assert code == 0
    assert not any("up to date" in line for line in lines), lines
    from pipelines.data import records

    devel = {r["name"]: r for r in records.iter_recordings(out, "devel")}
    assert devel["Devel_DE_03"]["visual"][4, 0] == pytest.approx(float(cells[2]), abs=1e-6)


@pytest.mark.slow
def test_shards_are_the_same_bytes_in_two_processes(corpus_dir, tmp_path):
    root, _ = corpus_dir
    outs = [tmp_path / "first", tmp_path / "second"]
    for out in outs:
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.example_gen", "--dataset", "avec", "--data-dir", str(root)]
            + ["--audio-features", ",".join(AUDIO), "--visual-features", ",".join(VISUAL)]
            + ["--output-dir", str(out), "--no-progress"],
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "random"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    shards = [sorted(p.relative_to(out) for p in (out / "examples").rglob("*.tfrecord")) for out in outs]
    assert shards[0] == shards[1] and len(shards[0]) == 3
    for relative in shards[0]:
        assert (outs[0] / relative).read_bytes() == (outs[1] / relative).read_bytes(), relative
