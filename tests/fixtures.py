"""Tiny corpora in the real on-disk formats, for tests.

`write_avec_fixture` writes AVEC 2019 CES's layout, `write_avec_real_fixture` the same with the
distributed corpus's properties (dyadic pairs sharing their audio features, feature files padded
past the labels, a zero start), and `write_iemocap_fixture` IEMOCAP's
EmoEvaluation files plus per-utterance features. Both return the values they wrote, so tests can
compare what an adapter reads against the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_AVEC_RECORDINGS = ("Train_DE_01", "Train_HU_02", "Devel_DE_01", "Test_CN_01")


def _quote(name: str, quote: str) -> str:
    return f"{quote}{name}{quote}"


def write_avec_fixture(
    root,
    *,
    recordings=DEFAULT_AVEC_RECORDINGS,
    num_frames=12,
    hop=0.1,
    audio_folders=(("egemaps", 3),),
    visual_folders=(("au", 2),),
    sep=";",
    header=True,
    quote="'",
    feature_frames=None,
    test_labels="labels",
    seed=0,
) -> dict:
    """Writes a tiny AVEC 2019 CES corpus under `root`.

    Args:
        root: str or Path. Created if needed.
        recordings: names `<Partition>_<Culture>_<NN>`.
        num_frames: int. Label rows per recording.
        hop: float. Seconds between label rows.
        audio_folders, visual_folders: (folder, dimension) pairs.
        sep: str. Separator of the feature files (label files always use `;`, like AVEC's).
        header: bool. Whether feature files have a header row (`name;frameTime;<folder>_f<i>...`).
        quote: str. Quote around names in every file (`'`, `"` or "").
        feature_frames: None (as many rows as labels), an int (every feature file), or a dict
            {name: rows} or {(folder, name): rows} for single files.
        test_labels: "labels" (full label files), "no_label_columns" (name;timestamp only) or
            "absent" (no label file) for Test recordings.
        seed: int.

    Returns:
        dict with "labels" {name: {"timestamp", "arousal", "valence"} arrays or None},
        "features" {folder: {name: float array [rows, D]}} and "feature_names" {folder: [...]}.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    truth = {"labels": {}, "features": {}, "feature_names": {}}
    for name in recordings:
        timestamps = np.round(np.arange(num_frames) * hop, 6)
        arousal = np.round(rng.uniform(-1, 1, num_frames), 6)
        valence = np.round(rng.uniform(-1, 1, num_frames), 6)
        liking = np.round(rng.uniform(-1, 1, num_frames), 6)
        mode = test_labels if name.startswith("Test") else "labels"
        if mode == "absent":
            truth["labels"][name] = None
            continue
        quoted = _quote(name, quote)
        if mode == "labels":
            lines = ["name;timestamp;arousal;valence;liking"]
            lines += [
                f"{quoted};{t:.2f};{a:.6f};{v:.6f};{lk:.6f}"
                for t, a, v, lk in zip(timestamps, arousal, valence, liking)
            ]
            truth["labels"][name] = {"timestamp": timestamps, "arousal": arousal, "valence": valence}
        else:
            lines = ["name;timestamp"] + [f"{quoted};{t:.2f}" for t in timestamps]
            truth["labels"][name] = {"timestamp": timestamps, "arousal": None, "valence": None}
        (root / "labels" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    for folder, dim in tuple(audio_folders) + tuple(visual_folders):
        (root / folder).mkdir(exist_ok=True)
        names = [f"{folder}_f{i}" for i in range(dim)]
        truth["feature_names"][folder] = names
        truth["features"][folder] = {}
        for name in recordings:
            rows = num_frames
            if isinstance(feature_frames, int):
                rows = feature_frames
            elif isinstance(feature_frames, dict):
                rows = feature_frames.get((folder, name), feature_frames.get(name, num_frames))
            values = np.round(rng.normal(size=(rows, dim)), 6)
            truth["features"][folder][name] = values
            quoted = _quote(name, quote)
            lines = [sep.join(["name", "frameTime"] + names)] if header else []
            lines += [sep.join([quoted, f"{i * hop:.2f}"] + [f"{x:.6f}" for x in row]) for i, row in enumerate(values)]
            (root / folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return truth


# Dyadic pairs as AVEC 2019 CES has them: both partners of a conversation share its audio.
AVEC_PAIRS = (
    ("Train_DE_01", "Train_DE_02"),
    ("Train_HU_01", "Train_HU_02"),
    ("Devel_DE_03", "Devel_DE_08"),
    ("Devel_HU_04", "Devel_HU_10"),
    ("Test_DE_01", "Test_DE_02"),
)
# Label rows per recording, within the corpus's 974-1768; the partners of DE 03/08 and HU 04/10
# differ by one frame, as in the official devel partition.
AVEC_LABEL_FRAMES = {
    "Train_DE_01": 1768,
    "Train_DE_02": 1768,
    "Train_HU_01": 1412,
    "Train_HU_02": 1412,
    "Devel_DE_03": 975,
    "Devel_DE_08": 974,
    "Devel_HU_04": 1153,
    "Devel_HU_10": 1152,
}
AVEC_PADDED_FRAMES = 1768


def write_avec_real_fixture(
    root,
    *,
    pairs=AVEC_PAIRS,
    label_frames=None,
    padded_frames=AVEC_PADDED_FRAMES,
    audio_folders=(("egemaps", 4), ("mfcc", 3)),
    visual_folders=(("au", 3), ("baseline", 2)),
    zero_start_folder="baseline",
    zero_seconds=2.0,
    hop=0.1,
    seed=0,
) -> dict:
    """Writes an AVEC 2019 CES corpus with the properties of the distributed one.

    * Dyadic: recordings come in `pairs` from one conversation, and every audio feature file of a
      pair holds the same values (the conversation's audio); visual features and labels differ.
    * Label files of `label_frames` rows (974-1768 by default; test recordings have none), names
      quoted (`'Devel_DE_03'`), header `name;timestamp;arousal;valence;liking`.
    * Every feature file has `padded_frames` rows (1768, the longest recording): the rows past a
      recording's labels are not zeros.
    * The first `zero_seconds` of every file of `zero_start_folder` are exactly 0 (a baseline
      system's output, shifted by its annotation delay).
    * Several feature folders per modality, with a header `name;frameTime;<folder>_f<i>...`.

    Returns:
        dict with "labels" {name: {"timestamp", "arousal", "valence"} or None}, "features"
        {folder: {name: float array [padded_frames, D]}}, "pairs" and "label_frames".
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    label_frames = dict(AVEC_LABEL_FRAMES if label_frames is None else label_frames)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    truth = {"labels": {}, "features": {}, "pairs": tuple(pairs), "label_frames": label_frames}
    names = [name for pair in pairs for name in pair]
    for name in names:
        if name.startswith("Test"):
            truth["labels"][name] = None
            continue
        n = label_frames[name]
        timestamps = np.round(np.arange(n) * hop, 6)
        t = np.arange(n) * hop
        arousal = np.round(0.6 * np.sin(t / 7.0 + rng.uniform(0, 6)) + rng.normal(0, 0.05, n), 6).clip(-1, 1)
        valence = np.round(0.6 * np.sin(t / 11.0 + rng.uniform(0, 6)) + rng.normal(0, 0.05, n), 6).clip(-1, 1)
        liking = np.round(rng.uniform(-1, 1, n), 6)
        lines = ["name;timestamp;arousal;valence;liking"]
        lines += [
            f"'{name}';{a:.1f};{b:.6f};{c:.6f};{d:.6f}" for a, b, c, d in zip(timestamps, arousal, valence, liking)
        ]
        (root / "labels" / f"{name}.csv").write_text("\n".join(lines) + "\n")
        truth["labels"][name] = {"timestamp": timestamps, "arousal": arousal, "valence": valence}

    def write(folder, name, values):
        header = ";".join(["name", "frameTime"] + [f"{folder}_f{i}" for i in range(values.shape[1])])
        rows = [f"'{name}';{i * hop:.1f};" + ";".join(f"{x:.6f}" for x in row) for i, row in enumerate(values)]
        (root / folder / f"{name}.csv").write_text("\n".join([header] + rows) + "\n")
        truth["features"][folder][name] = values

    zero_rows = int(round(zero_seconds / hop))
    for folder, dim in tuple(audio_folders) + tuple(visual_folders):
        (root / folder).mkdir(exist_ok=True)
        truth["features"][folder] = {}
        audio = folder in dict(audio_folders)
        for pair in pairs:
            shared = np.round(rng.normal(size=(padded_frames, dim)), 6)
            for name in pair:
                values = shared if audio else np.round(rng.normal(size=(padded_frames, dim)), 6)
                if folder == zero_start_folder:
                    values = values.copy()
                    values[:zero_rows] = 0.0
                write(folder, name, values)
    return truth


EMO_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
RATINGS = np.arange(1.0, 5.01, 0.5)


def write_iemocap_fixture(
    root,
    features_root,
    *,
    sessions=(1, 2, 3, 4, 5),
    utterances_per_speaker=2,
    audio_dim=3,
    visual_dim=2,
    audio_rate=20.0,
    visual_rate=7.0,
    feature_format="npy",
    csv_header=False,
    missing=(),
    audio_folder="audio",
    visual_folder="visual",
    seed=0,
) -> dict:
    """Writes a tiny IEMOCAP: one improvised dialog per session, both speakers.

    EmoEvaluation files follow the real format: the `%` header, utterance lines
    `[start - end]<TAB>id<TAB>category<TAB>[V, A, D]`, then annotator lines (`C-E2:`, `A-F1:`) and a
    blank line per utterance; a `Categorical/` subfolder holds a file the reader must ignore.

    Args:
        root: IEMOCAP root (Session<k>/dialog/EmoEvaluation/ is created).
        features_root: the features folder (<audio_folder>/ and <visual_folder>/ are created).
        utterances_per_speaker: int. Utterances per speaker and dialog.
        audio_dim, visual_dim: int. Feature dimensions.
        audio_rate, visual_rate: float. Frames per second of each modality's features.
        feature_format: "npy" or "csv".
        csv_header: bool. Header row in the .csv features (`<folder>_c<i>`).
        missing: (utterance id, modality) pairs whose feature file is not written.
        seed: int.

    Returns:
        dict {utterance id: {"session", "gender", "dialog", "category", "start", "end", "valence_raw",
        "arousal_raw", "audio" [Na, Da] or None, "visual" [Nv, Dv] or None}}.
    """
    root, features_root = Path(root), Path(features_root)
    rng = np.random.default_rng(seed)
    folders = {
        "audio": (features_root / audio_folder, audio_dim, audio_rate),
        "visual": (features_root / visual_folder, visual_dim, visual_rate),
    }
    for folder, _, _ in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    missing = set(missing)
    truth = {}
    for session in sessions:
        emo = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        (emo / "Categorical").mkdir(parents=True, exist_ok=True)
        dialog = f"Ses{session:02d}F_impro01"
        lines = [EMO_HEADER]
        clock = 1.0 + rng.uniform(0, 1)
        ids = [f"{dialog}_{gender}{k:03d}" for k in range(utterances_per_speaker) for gender in ("F", "M")]
        for utterance in ids:
            start = round(clock, 4)
            end = round(start + rng.uniform(0.8, 2.5), 4)
            clock = end + rng.uniform(0.2, 1.0)
            v, a, d = rng.choice(RATINGS, size=3)
            category = str(rng.choice(["neu", "ang", "hap", "sad", "xxx"]))
            lines.append(f"[{start:.4f} - {end:.4f}]\t{utterance}\t{category}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n")
            lines.append("C-E2:\tNeutral;\t()\nC-F1:\tNeutral;\t(curious)\n")
            lines.append(f"A-E3:\tval {int(v)}; act {int(a)}; dom  {int(d)};\t()\n\n")
            record = {
                "session": session,
                "gender": utterance[-4],
                "dialog": dialog,
                "category": category,
                "start": start,
                "end": end,
                "valence_raw": float(v),
                "arousal_raw": float(a),
            }
            for modality, (folder, dim, rate) in folders.items():
                if (utterance, modality) in missing:
                    record[modality] = None
                    continue
                frames = max(1, int(round((end - start) * rate)))
                values = np.round(rng.normal(size=(frames, dim)), 6)
                record[modality] = values
                if feature_format == "npy":
                    np.save(folder / f"{utterance}.npy", values.astype(np.float32))
                    record[modality] = values.astype(np.float32).astype(np.float64)
                else:
                    rows = [",".join(f"{folder.name}_c{i}" for i in range(dim))] if csv_header else []
                    rows += [",".join(f"{x:.6f}" for x in row) for row in values]
                    (folder / f"{utterance}.csv").write_text("\n".join(rows) + "\n")
            truth[utterance] = record
        (emo / f"{dialog}.txt").write_text("".join(lines))
        (emo / "Categorical" / f"{dialog}_e2_cat.txt").write_text(f"[{ids[0]}] :Neutral state; ()\n")
    return truth
