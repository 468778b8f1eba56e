"""`python -m pipelines.extract` on real media made here (`tests/pipelines/media/make_media.py`): a talking
head (a real face photograph that matplotlib ships, moving, with a voiced AAC track, H.264 in MP4), a
WAV, a scene without a face, a video without audio and a truncated file. Nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines import extract
from pipelines.datasets.tables import read_table
from tests.pipelines.media import make_media

REPO = Path(__file__).resolve().parents[3]
FACE_VIDEO = "my talk.v1"  # a name with a space and dots
UNICODE = "ünï çødé"


def run_extract(args, capsys=None):
    """Runs the command in-process; (exit code, stdout, stderr)."""
    try:
        extract.main([str(arg) for arg in args] + ["--quiet"])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    if capsys is None:
        return code, "", ""
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code, err) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def read_manifest(out: Path) -> dict:
    return json.loads((out / "extract.json").read_text())


def avec_functionals(llds, fps):
    """AVEC 2019's generate_functionals.py, written out as its loop (the reference)."""
    window_size_half = int(4.0 * fps / 2)
    times, rows = [], []
    for t in range(100000):
        t_orig = int(t * fps * 0.1)
        min_orig = max(0, t_orig - window_size_half)
        max_orig = min(llds.shape[0], t_orig + window_size_half + 1)
        if min_orig < max_orig and t_orig <= llds.shape[0]:
            times.append(t * 0.1)
            window = llds[min_orig:max_orig]
            rows.append(np.concatenate([np.mean(window, axis=0), np.std(window, axis=0)]))
        else:
            break
    return np.array(times), np.array(rows)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    files = {
        "talk": make_media.write_video(root / f"{FACE_VIDEO}.mp4", 4.0),
        "voice": make_media.write_wav(root / f"{UNICODE}.wav", make_media.voice(3.0, 22050, seed=1), 22050, 2),
        "voice16k": make_media.write_wav(root / "voice16k.wav", make_media.voice(3.0, 16000, seed=2), 16000),
        "noface": make_media.write_video(root / "empty room.mp4", 3.0, face=False, seed=3),
        "mute": make_media.write_video(root / "mute.mp4", 3.0, audio=False, seed=4),
    }
    files["truncated"] = make_media.truncate(files["talk"], root / "truncated.mp4")
    return files


@pytest.fixture(scope="module")
def corpus(media, tmp_path_factory):
    """One extraction with the default feature sets of the talking head, the WAV, the faceless scene and
    the silent video."""
    out = tmp_path_factory.mktemp("corpus")
    extract.main(
        [str(media[key]) for key in ("talk", "voice", "noface", "mute", "voice16k")]
        + ["--output-dir", str(out), "--quiet"]
    )
    return out


def test_functionals_are_avecs_of_opensmiles_own_llds(media, corpus):
    from pipelines.media import load_opensmile

    opensmile = load_opensmile()  # with its own FFT, not TensorFlow's (see load_opensmile)

    rate, signal = 16000, None
    import wave

    with wave.open(str(media["voice16k"]), "rb") as handle:
        signal = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float32) / 32768.0
    smiles = {
        "egemaps": opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.LowLevelDescriptors
        ),
        "mfcc": opensmile.Smile(
            feature_set=str(REPO / "pipelines" / "media" / "MFCC12_0_D_A.conf"), feature_level="lld"
        ),
    }
    for name, smile in smiles.items():
        llds = smile.process_signal(signal, rate)
        times, expected = avec_functionals(llds.to_numpy(np.float64), 100)
        assert len(times) == len(llds) // 10 + 1
        table = read_table(corpus / name / "voice16k.csv", text_columns=1, header=True)
        assert table.header == ["name", "frameTime"] + [f"{c}_mean" for c in llds.columns] + [
            f"{c}_std" for c in llds.columns
        ]
        np.testing.assert_array_equal(table.values[:, 0], np.round(times, 1))
        np.testing.assert_allclose(table.values[:, 1:], expected, rtol=1e-5, atol=1e-9)
    # The MFCC config is openSMILE's MFCC12_0_D_A: 0..12, deltas and accelerations, 39 LLDs.
    names = list(smiles["mfcc"].feature_names)
    assert names == [f"pcm_fftMag_mfcc{suffix}[{i}]" for suffix in ("", "_de", "_de_de") for i in range(13)]
    assert len(smiles["egemaps"].feature_names) == 25


def test_the_functionals_match_the_loop_on_edge_lengths():
    from pipelines.media.functionals import functionals, masked_functionals

    rng = np.random.default_rng(0)
    for n, fps in [(0, 100), (1, 100), (150, 100), (401, 100), (402, 100), (2345, 100), (95, 29.97)]:
        values = rng.normal(50, 100, size=(n, 3))
        times, ours = functionals(values, fps)
        ref_times, ref = avec_functionals(values, fps)
        assert len(times) == len(ref_times)
        if n:
            np.testing.assert_allclose(times, ref_times)
            np.testing.assert_array_equal(ours, ref)
            _, masked, present = masked_functionals(values, np.ones(n, bool), fps)
            np.testing.assert_array_equal(masked, ref)
            assert present.all()


def test_the_corpus_folder_reads_back(media, corpus):
    manifest = read_manifest(corpus)
    assert manifest["complete"] and set(manifest["versions"]) == {"opensmile", "av", "cv2", "numpy"}
    assert sorted(manifest["recordings"]) == sorted([FACE_VIDEO, UNICODE, "empty room", "mute", "voice16k"])
    for name in (FACE_VIDEO, UNICODE):
        entry = manifest["recordings"][name]
        assert (
            entry["source"]["sha256"]
            and entry["source"]["size"] == media["talk" if name == FACE_VIDEO else "voice"].stat().st_size
        )
        for folder, dim in (("egemaps", 50), ("mfcc", 78)):
            path = corpus / folder / f"{name}.csv"
            table = read_table(path, text_columns=1, header=True)
            assert table.sep == ";" and table.header[:2] == ["name", "frameTime"]
            assert table.values.shape[1] == dim + 1
            assert set(table.text[0]) == {f"'{name}'"}
            np.testing.assert_allclose(np.diff(table.values[:, 0]), 0.1, atol=1e-9)
            assert table.values[0, 0] == 0.0 and entry["frames"][folder] == len(table.values)
            first = path.read_text(encoding="utf-8").splitlines()[1]
            assert first.startswith(f"'{name}';0.0;")
    # the stereo 22.05 kHz WAV was mixed down and resampled: about 3 s of rows
    assert 29 <= manifest["recordings"][UNICODE]["frames"]["egemaps"] <= 31
    assert manifest["recordings"][FACE_VIDEO]["feature_sets"] == ["faces", "egemaps", "mfcc"]


def test_faces_are_found_on_the_face_and_absent_without_one(media, corpus):
    from pipelines.datasets.synthetic_raw import read_faces, read_wav

    manifest = read_manifest(corpus)
    with np.load(corpus / "faces" / f"{FACE_VIDEO}.npz") as archive:
        faces, present = archive["faces"], archive["present"]
    assert faces.dtype == np.uint8 and faces.shape == (40, 48, 48, 3) and present.dtype == np.uint8
    assert present.mean() >= 0.9
    assert faces[present == 1].mean() > 40  # real crops, not zeros
    assert manifest["recordings"][FACE_VIDEO]["face_detected_frames"] == int(present.sum())
    assert read_faces(corpus / "faces" / f"{FACE_VIDEO}.npz").shape == faces.shape  # raw mode's reader
    waveform, rate = read_wav(corpus / "audio" / f"{FACE_VIDEO}.wav")
    assert rate == 16000 and len(waveform) == 40 * 1600 and np.abs(waveform).max() > 0.05
    with np.load(corpus / "faces" / "empty room.npz") as archive:
        assert archive["present"].shape == (30,) and not archive["present"].any()
        assert not archive["faces"].any()
    assert manifest["recordings"]["empty room"]["face_detected_frames"] == 0


def test_a_video_without_audio_gets_no_audio_features_and_says_so(corpus):
    entry = read_manifest(corpus)["recordings"]["mute"]
    assert entry["feature_sets"] == ["faces"]
    assert any("no audio stream" in warning for warning in entry["warnings"])
    assert not (corpus / "egemaps" / "mute.csv").exists() and not (corpus / "audio" / "mute.wav").exists()
    assert (corpus / "faces" / "mute.npz").is_file()


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def test_a_truncated_file_is_one_line_or_skipped_when_lenient(media, tmp_path, capsys):
    out = tmp_path / "out"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.extract",
            str(media["truncated"]),
            str(media["voice16k"]),
            "--output-dir",
            str(out),
            "--quiet",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = one_error_line(process.returncode, process.stderr)
    assert line.startswith(f"error: {media['truncated']}: ") and "Traceback" not in process.stderr
    code, _, err = run_extract([media["truncated"], media["voice16k"], "--output-dir", out, "--lenient"], capsys)
    assert code == 0 and f"warning: {media['truncated']}: " in err and "skipped (lenient)" in err
    manifest = read_manifest(out)
    assert [item["path"] for item in manifest["skipped"]] == [str(media["truncated"])]
    assert list(manifest["recordings"]) == ["voice16k"]


def test_no_tensorflow_and_a_missing_extra_is_one_line(monkeypatch):
    code = "import sys, pipelines.extract, pipelines.media.for_run; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
    from pipelines import media
    from pipelines.core.errors import ConfigError

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ConfigError) as error:
        media.require_extra()
    assert str(error.value).startswith('pipelines.extract needs the extract extra: pip install -e ".[extract]"')


def test_a_rerun_skips_complete_recordings_and_redoes_a_changed_one(media, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    wav = make_media.write_wav(inputs / "a.wav", make_media.voice(2.0, 16000, seed=5), 16000)
    (inputs / "b.mp4").write_bytes(media["mute"].read_bytes())
    out = tmp_path / "out"
    assert run_extract([inputs, "--output-dir", out], capsys)[0] == 0
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "extract.json")
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    assert read_manifest(out)["last_run"]["extracted"] == ["a", "b"]
    code, stdout, _ = run_extract([inputs, "--output-dir", out], capsys)
    assert code == 0 and "0 recording(s) extracted, 2 up to date" in stdout
    assert read_manifest(out)["last_run"]["up to date"] == ["a", "b"]
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    old = read_manifest(out)["recordings"]["a"]["outputs"]["egemaps/a.csv"]["sha256"]
    make_media.write_wav(wav, make_media.voice(2.0, 16000, seed=6, f0=190.0), 16000)
    assert run_extract([inputs, "--output-dir", out], capsys)[0] == 0
    manifest = read_manifest(out)
    assert manifest["last_run"]["extracted"] == ["a"] and manifest["last_run"]["up to date"] == ["b"]
    assert manifest["recordings"]["a"]["outputs"]["egemaps/a.csv"]["sha256"] != old
    assert (out / "faces" / "b.npz").stat().st_mtime_ns == mtimes[out / "faces" / "b.npz"]
    # a damaged output is written again
    (out / "mfcc" / "a.csv").write_text("cut")
    assert run_extract([inputs, "--output-dir", out], capsys)[0] == 0
    assert read_manifest(out)["last_run"]["extracted"] == ["a"]
    # a recording whose file now holds other streams loses its stale outputs (FFmpeg reads a WAV as such)
    (inputs / "b.mp4").write_bytes(wav.read_bytes())
    assert run_extract([inputs, "--output-dir", out], capsys)[0] == 0
    entry = read_manifest(out)["recordings"]["b"]
    assert entry["feature_sets"] == ["egemaps", "mfcc"] and not (out / "faces" / "b.npz").exists()


def test_two_inputs_with_one_name_are_one_line_naming_both(media, tmp_path, capsys):
    other = tmp_path / "x" / f"{UNICODE}.flac"
    other.parent.mkdir()
    other.write_bytes(b"")
    code, _, err = run_extract([media["voice"], other, "--output-dir", tmp_path / "out"], capsys)
    line = one_error_line(code, err)
    assert str(media["voice"]) in line and str(other) in line and f"{UNICODE!r}" in line


def write_labels(path: Path, rows: int, seed: int = 0, edit=None):
    rng = np.random.default_rng(seed)
    lines = ["timestamp;arousal;valence"]
    for i in range(rows):
        lines.append(f"{i * 0.1:.1f};{rng.uniform(-1, 1):.4f};{rng.uniform(-1, 1):.4f}")
    if edit:
        edit(lines)
    path.write_text("\n".join(lines) + "\n")


def test_raw_mode_faces_and_waveform_follow_the_labels(media, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    video = folder / "talk.mp4"
    video.write_bytes(media["talk"].read_bytes())  # 4 s: 40 frames of 0.1 s
    write_labels(folder / "talk.csv", 38)
    out = tmp_path / "out"
    code, _, err = run_extract([video, "--output-dir", out, "--feature-sets", "faces"], capsys)
    assert code == 0 and "40 video frames of 0.1 s but 38 label rows: the faces are cut" in err, err
    with np.load(out / "faces" / "talk.npz") as archive:
        assert archive["faces"].shape[0] == 38 and archive["present"].shape == (38,)
    from pipelines.datasets.synthetic_raw import read_wav

    assert len(read_wav(out / "audio" / "talk.wav")[0]) == 38 * 1600
    assert read_manifest(out)["recordings"]["talk"]["frames"] == {"faces": 38, "labels": 38}


def test_partition_folders_and_label_files_make_a_labelled_corpus(tmp_path, capsys):
    from pipelines.datasets.avec import open_layout

    root = tmp_path / "recordings"
    names = {"Train": ["s 1", "s.2"], "devel": ["s3"], "TEST": ["s4"]}
    for folder, stems in names.items():
        (root / folder).mkdir(parents=True)
        for stem in stems:
            seed = sum(map(ord, stem))
            make_media.write_wav(root / folder / f"{stem}.wav", make_media.voice(2.0, 16000, seed=seed), 16000)
            if folder != "TEST":
                write_labels(root / folder / f"{stem}.csv", 20, seed=seed)
    out = tmp_path / "out"
    assert run_extract([root, "--output-dir", out, "--feature-sets", "egemaps,mfcc"], capsys)[0] == 0
    partitions = (out / "partitions.csv").read_text().splitlines()
    assert partitions == ["name;partition", "'s 1';train", "'s.2';train", "'s3';devel", "'s4';test"]
    labels = read_table(out / "labels" / "s 1.csv", text_columns=1, header=True)
    assert labels.header == ["name", "timestamp", "arousal", "valence"] and set(labels.text[0]) == {"'s 1'"}
    source = read_table(root / "Train" / "s 1.csv", text_columns=0, header=True)
    np.testing.assert_allclose(labels.values, source.values)
    assert not (out / "labels" / "s4.csv").exists()
    # the AVEC reader takes the folder as a trainable corpus (mfcc stands in for a visual folder here)
    corpus = open_layout(
        out, audio_features=["egemaps"], visual_features=["mfcc"], allow_missing_modality=False, dataset="avec"
    )
    recordings = {r.name: r for r in corpus.recordings()}
    assert {n: r.partition for n, r in recordings.items()} == {
        "s 1": "train",
        "s.2": "train",
        "s3": "devel",
        "s4": "test",
    }
    assert recordings["s 1"].labelled and not recordings["s4"].labelled
    np.testing.assert_allclose(recordings["s 1"].arousal, source.values[:, 1], atol=1e-6)


@pytest.mark.parametrize(
    "edit,where,message",
    [
        (lambda lines: lines.__setitem__(3, "0.2;1.5;0.1"), ":4:2: ", "arousal 1.5 is outside [-1, 1]"),
        (lambda lines: lines.__setitem__(5, "0.45;0.1;0.1"), ":6:1: ", "timestamp 0.45 s, expected 0.4 s"),
        (lambda lines: lines.__setitem__(2, "0.1;0.3;x"), ":3:3: ", "'x' is not a number"),
        (lambda lines: lines.__setitem__(0, "timestamp;arousal;liking"), ":1: ", "no 'valence' column"),
    ],
)
def test_a_bad_label_file_is_named_with_line_and_column(tmp_path, capsys, edit, where, message):
    make_media.write_wav(tmp_path / "a b.wav", make_media.voice(1.0, 16000), 16000)
    write_labels(tmp_path / "a b.csv", 10, edit=edit)
    code, _, err = run_extract([tmp_path / "a b.wav", "--output-dir", tmp_path / "out"], capsys)
    line = one_error_line(code, err)
    assert line.startswith(f"error: {tmp_path / 'a b.csv'}{where}{message}"), line
    assert not (tmp_path / "out").exists()  # checked before anything is extracted


def fake_run(root: Path, config: dict, manifest=None) -> Path:
    run = root / "run"
    run.mkdir(parents=True)
    full = {
        "dataset": "avec",
        "validation_speaker": "F",
        "features": {"audio": [], "visual": []},
        "allow_missing_modality": False,
        "task": "regression",
        "mode": "features",
        "training": {"epochs": 1},
        **config,
    }
    if manifest is not None:
        artifacts = root / "artifacts"
        artifacts.mkdir()
        (artifacts / "manifest.json").write_text(json.dumps(manifest))
        full["runtime"] = {"artifact_dir": str(artifacts), "policy": "float32", "replicas": 1, "hop": 0.1}
    (run / "config.json").write_text(json.dumps(full))
    return run


def test_for_run_extracts_the_runs_feature_folders(media, tmp_path, capsys):
    from pipelines.media.audio_features import feature_names

    names = feature_names("egemaps") + feature_names("mfcc")
    manifest = {"audio_dim": len(names), "audio_feature_names": names, "visual_dim": 0, "visual_feature_names": []}
    run = fake_run(tmp_path, {"features": {"audio": ["egemaps_functionals", "MFCC"], "visual": []}}, manifest)
    out = tmp_path / "out"
    assert run_extract([media["voice16k"], "--output-dir", out, "--for-run", run], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["MFCC", "egemaps_functionals", "extract.json"]
    assert read_manifest(out)["for_run"]["folders"] == [
        ["egemaps_functionals", "egemaps", "audio"],
        ["MFCC", "mfcc", "audio"],
    ]


def test_for_run_refuses_what_media_cannot_give(media, tmp_path, capsys):
    run = fake_run(tmp_path / "a", {"features": {"audio": ["egemaps", "deepspectrum"], "visual": []}})
    code, _, err = run_extract([media["voice16k"], "--output-dir", tmp_path / "out", "--for-run", run], capsys)
    line = one_error_line(code, err)
    assert "'deepspectrum' cannot be computed from media" in line and str(run / "config.json") in line
    # the synthetic corpus's folders are not media features either (and "audio" is not "au")
    run = fake_run(tmp_path / "b", {"features": {"audio": ["audio"], "visual": ["visual"]}})
    code, _, err = run_extract([media["voice16k"], "--output-dir", tmp_path / "out", "--for-run", run], capsys)
    assert "'audio' cannot be computed from media" in one_error_line(code, err)
    # other dimensions than the run's (AVEC's distributed eGeMAPS functionals have 88)
    run = fake_run(
        tmp_path / "c",
        {"features": {"audio": ["egemaps"], "visual": []}},
        {"audio_dim": 88, "audio_feature_names": [f"egemaps_{i}" for i in range(88)]},
    )
    code, _, err = run_extract([media["voice16k"], "--output-dir", tmp_path / "out", "--for-run", run], capsys)
    line = one_error_line(code, err)
    assert "trained on 88 audio features" in line and "extraction gives 50 (egemaps 50)" in line
    assert not (tmp_path / "out").exists()


def test_for_run_in_raw_mode_takes_the_runs_face_size_and_sample_rate(media, tmp_path, capsys):
    run = fake_run(
        tmp_path, {"dataset": "synthetic", "mode": "raw", "synthetic": {"face_size": 32, "sample_rate": 8000}}
    )
    out = tmp_path / "out"
    assert run_extract([media["talk"], "--output-dir", out, "--for-run", run], capsys)[0] == 0
    with np.load(out / "faces" / f"{FACE_VIDEO}.npz") as archive:
        assert archive["faces"].shape == (40, 32, 32, 3)
    from pipelines.datasets.synthetic_raw import read_wav

    waveform, rate = read_wav(out / "audio" / f"{FACE_VIDEO}.wav")
    assert rate == 8000 and len(waveform) == 40 * 800
    assert not (out / "egemaps").exists()


OPENFACE_COLUMNS = ["AU01_r", "AU12_r", "AU45_r", "AU01_c", "AU12_c", "gaze_angle_x", "pose_Rx"]


def write_openface(path: Path, frames: int, fps: float, absent, low_confidence, seed=0):
    """A CSV in OpenFace 2's format (`, `-separated, leading spaces in the header, landmark columns)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(frames, len(OPENFACE_COLUMNS)))
    success = np.ones(frames, int)
    success[list(absent)] = 0
    confidence = np.full(frames, 0.98)
    confidence[list(low_confidence)] = 0.5
    confidence[success == 0] = 0.0
    header = ["frame", "face_id", "timestamp", "confidence", "success", "x_0", "y_0", *OPENFACE_COLUMNS]
    lines = [", ".join(header)]
    for i in range(frames):
        cells = [str(i + 1), "0", f"{i / fps:.3f}", f"{confidence[i]:.2f}", str(success[i]), "1.5", "2.5"]
        cells += [f"{v:.6f}" for v in values[i]]
        lines.append(", ".join(cells))
    path.write_text("\n".join(lines) + "\n")
    present = (success == 1) & (confidence >= 0.8)
    return np.round(values, 6), present


def test_openface_csvs_become_functionals_over_present_frames(media, tmp_path, capsys):
    from pipelines.datasets.avec import open_layout

    openface = tmp_path / "openface"
    openface.mkdir()
    fps = 25.0  # the videos' rate (OpenFace's millisecond timestamps give 24.99...)
    truth = {
        FACE_VIDEO: write_openface(openface / f"{FACE_VIDEO}.csv", 100, fps, range(0, 50), range(50, 75), seed=1),
        "empty room": write_openface(openface / "empty room.csv", 75, fps, range(0, 75), [], seed=2),
    }
    out = tmp_path / "out"
    args = [media["talk"], media["noface"], "--output-dir", out, "--feature-sets", "egemaps,openface"]
    assert run_extract(args + ["--openface-dir", openface], capsys)[0] == 0
    for name, (values, present) in truth.items():
        table = read_table(out / "openface" / f"{name}.csv", text_columns=1, header=True)
        assert table.header[-1] == "present"
        assert table.header[2:-1] == [f"{c}_mean" for c in OPENFACE_COLUMNS] + [f"{c}_std" for c in OPENFACE_COLUMNS]
        # the reference: AVEC's loop at the video's frame rate, over the present frames only
        half = int(4.0 * fps / 2)
        rows = []
        for t in range(10000):
            c = int(t * fps * 0.1)
            lo, hi = max(0, c - half), min(len(values), c + half + 1)
            if not (lo < hi and c <= len(values)):
                break
            window = values[lo:hi][present[lo:hi]]
            if len(window):
                rows.append(np.concatenate([window.mean(axis=0), window.std(axis=0), [1.0]]))
            else:
                rows.append(np.zeros(2 * len(OPENFACE_COLUMNS) + 1))
        np.testing.assert_allclose(table.values[:, 1:], np.array(rows), rtol=1e-5, atol=1e-6)
    flags = read_table(out / "openface" / f"{FACE_VIDEO}.csv", text_columns=1, header=True).values[:, -1]
    assert flags[:10].sum() == 0 and flags[10:].all()  # frames 0-74 absent: rows before 1.0 s see no present frame
    # the AVEC reader turns the column into the presence flag
    corpus = open_layout(
        out,
        audio_features=["egemaps"],
        visual_features=["openface"],
        allow_missing_modality=False,
        dataset="avec",
        labels_optional=True,
    )
    assert len(corpus.visual_feature_names) == 2 * len(OPENFACE_COLUMNS)
    recordings = {r.name: r for r in corpus.recordings()}
    n = len(recordings[FACE_VIDEO].visual_present)
    np.testing.assert_array_equal(recordings[FACE_VIDEO].visual_present, flags[:n])
    assert not recordings["empty room"].visual_present.any()
