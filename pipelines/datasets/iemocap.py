"""IEMOCAP adapter: EmoEvaluation labels plus per-utterance feature files -> `Recording`s.

Layout::

    <root>/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt
        [start - end]<TAB><utterance id><TAB><category><TAB>[V, A, D]
    <features_dir>/<modality folder>/<utterance id>.npy    2-D [frames, features]
    <features_dir>/<modality folder>/<utterance id>.csv    numeric, optional header

* Only the utterance lines of the EmoEvaluation files are read (lines starting with `[`); headers,
  annotator lines (`C-E1:`, `A-F2:`, ...), blank lines and the `Categorical/`, `Attribute/` and
  `Self-evaluation/` subfolders are ignored. A line starting with `[` that does not parse is an error.
* Valence and arousal on 1..5 become sequence-level labels (x - 3) / 2 in [-1, 1] (a rating outside
  1..5 is clipped, counted in the report and warned about).
* Split: sessions 1-4 train; session 5 by speaker: the speaker whose gender (the letter before the
  final number of the utterance id, `Ses05F_impro01_M012` -> M) is `validation_speaker` is devel,
  the other is test.
* Alignment: feature extractors run at different frame rates, so both modalities are resampled onto
  one grid of `round((end - start) / hop)` frames (at least one) spanning the utterance:
  `resample_frames` averages the input frames falling into each output frame when downsampling and
  interpolates linearly when upsampling. Truncating to the shorter modality would misalign
  everything after the first frame whenever the two rates differ.
* Utterances without features are skipped and counted in `Corpus.report`; with
  `allow_missing_modality=True` a missing modality is zero-filled with presence 0 instead (an
  utterance with neither modality is still skipped). This is the one documented skip: it is
  counted and summed up in a note, not warned about per utterance.
* Sessions: the release has Session1 .. Session5. A session whose folder or `dialog/EmoEvaluation`
  folder is missing, or whose EmoEvaluation folder holds no `<dialog>.txt`, is not an error, since
  a subset may be deliberate, but it is warned about, naming the missing path, and listed in the
  report. Without session 5 there is no devel and no test partition (and without sessions 1-4 no
  train partition): a warning and a note say so, because training stops later for want of the
  validation partition.
* Damaged feature entries: a file named like a feature file (`<id>.npy`, `<id>.csv`) that is a
  dangling symlink, a symlink loop, not a regular file (e.g. a folder) or cannot be looked at is an
  error naming that entry (the symlink's own path), in strict mode (the default). With
  `strict=False` (`--lenient`) the entry is left out with a warning naming it and what is wrong, the
  utterance is treated as lacking that file (skipped, or zero-filled with
  `allow_missing_modality`), and both the entry and the skip are counted in the report under the
  problem. For an id with both files the `.npy` is the one used, damaged or not.
* `Corpus.report` (ExampleGen's `corpus_report`): `sessions_read`, `sessions_missing` (session
  numbers), `utterances_read` (utterance lines in the EmoEvaluation files), `utterances_used`,
  `utterances_skipped` (counts per reason: `no_feature_file`, and in lenient mode
  `dangling_symlink`, `symlink_loop`, `not_a_file`, `unreadable`), `damaged_feature_files`
  (lenient: `{"path", "problem"}` per entry left out), `recordings` per partition, the older keys
  (`utterances`, `skipped_without_features`, `skipped_ids`, `missing_audio`, `missing_visual`,
  `clipped_labels`) and `notes`: one-line summaries for the console, e.g.
  `IEMOCAP: read sessions 1, 2, 4, 5 (8,054 utterances), used 8,042, skipped 12 (no feature file);
  Session3 folder missing`, and a second line when a partition is empty, e.g. `IEMOCAP: no devel or
  test recordings, because session 5 is devel and test and Session5 was not read (...)`.

This module finds the sessions and utterances and opens the corpus; `iemocap_labels` parses the
EmoEvaluation files, `iemocap_features` reads the feature folders and files and resamples them.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from pipelines.core.errors import ConfigError, DataError
from pipelines.data import features
from pipelines.datasets.base import Corpus, content_digest
from pipelines.datasets.iemocap_features import describe_folder, read_utterance, resolve_folders, symlink_problem
from pipelines.datasets.iemocap_labels import parse_emo_evaluation

SESSIONS = (1, 2, 3, 4, 5)
TEST_SESSION = 5
DEFAULT_HOP = 0.1
READER_VERSION = 3  # 2: the report names sessions and skips; 3: fingerprints hash the contents
NO_FEATURE_FILE = "no_feature_file"
# Problems of a feature entry: report key -> words of the console note.
DAMAGE = {
    "dangling_symlink": "dangling symlink",
    "symlink_loop": "symlink loop",
    "not_a_file": "not a regular file",
    "unreadable": "unreadable",
}
SKIP_WORDS = {NO_FEATURE_FILE: "no feature file", **DAMAGE}


def open_iemocap(
    data_dir,
    *,
    features_dir=None,
    audio_features="audio",
    visual_features="visual",
    validation_speaker="F",
    hop=DEFAULT_HOP,
    allow_missing_modality=False,
    strict=True,
) -> Corpus:
    """Opens IEMOCAP with per-utterance features.

    Args:
        data_dir: str or Path. The IEMOCAP root holding `Session1` .. `Session5`.
        features_dir: str or Path. Folder of per-utterance features, one subfolder per modality.
        audio_features: str or list of str. Audio folder(s) under `features_dir` (several are
            concatenated per frame). Defaults to "audio".
        visual_features: str or list of str. Defaults to "visual".
        validation_speaker: "F" or "M". The session-5 speaker used for validation (devel); the
            other one is the test set. Defaults to "F".
        hop: float. Frame hop in seconds of the common grid both modalities are resampled onto.
            Defaults to 0.1 (AVEC's).
        allow_missing_modality: bool. Zero-fill a missing modality (presence 0) instead of
            skipping the utterance. Defaults to False.
        strict: bool. False accepts an utterance id that does not start with its dialog's name,
            with a warning, and leaves out a feature entry that is a dangling symlink, a symlink
            loop, not a regular file or unreadable, with a warning (its utterance lacks that file).
            Defaults to True.

    Returns:
        `Corpus` of sequence-level recordings (scalar valence/arousal).

    Raises:
        ConfigError: a bad option, or a features folder that does not exist.
        DataError: no EmoEvaluation files, an unparseable utterance line, bad feature files, a
            damaged feature entry (strict).

    Warns:
        UserWarning: a missing session folder (naming it), an empty partition (e.g. no session 5),
            a damaged feature entry left out (lenient), clipped ratings.
    """
    if features_dir is None:
        raise ConfigError(
            "IEMOCAP needs features_dir (--features-dir): the folder of per-utterance feature "
            "files <features_dir>/<modality>/<utterance id>.npy or .csv"
        )
    speaker = str(validation_speaker).upper()
    if speaker not in ("F", "M"):
        raise ConfigError(f"validation_speaker must be 'F' or 'M', got {validation_speaker!r}")
    if isinstance(hop, bool) or not isinstance(hop, (int, float)) or not hop > 0:
        raise ConfigError(f"hop must be a positive number of seconds, got {hop!r}")
    hop = float(hop)
    root, features_root = Path(data_dir), Path(features_dir)
    if not root.is_dir():
        raise DataError("IEMOCAP folder does not exist", root)
    if not features_root.is_dir():
        raise ConfigError("features folder does not exist", features_root)
    modalities = {
        features.AUDIO: resolve_folders(features_root, features.AUDIO, audio_features, strict),
        features.VISUAL: resolve_folders(features_root, features.VISUAL, visual_features, strict),
    }

    label_files, sessions_read, sessions_missing = [], [], {}  # session -> (missing path, what is wrong)
    for session in SESSIONS:
        folder = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        found = []
        if folder.is_dir():
            found = [(session, path) for path in sorted(folder.glob("*.txt")) if not path.name.startswith(".")]
        if found:
            sessions_read.append(session)
            label_files += found
        else:
            sessions_missing[session] = _missing_session(root, session)
    if not label_files:
        raise DataError("no EmoEvaluation files: expected Session{1..5}/dialog/EmoEvaluation/<dialog>.txt", root)
    for session, (path, problem) in sessions_missing.items():
        warnings.warn(
            f"{path}: {problem}; session {session} not read (the IEMOCAP release has Session1 .. Session5: "
            f"sessions 1-4 are train, session 5 devel and test)",
            stacklevel=2,
        )
    utterances, seen = [], {}
    for session, path in label_files:
        for utterance in parse_emo_evaluation(path, session, strict):
            if utterance.id in seen:
                first = seen[utterance.id]
                raise DataError(f"utterance {utterance.id} is also on {first.path}:{first.line}", path, utterance.line)
            seen[utterance.id] = utterance
            utterances.append(utterance)

    report = {
        "utterances": len(utterances),
        "skipped_without_features": 0,
        "skipped_ids": [],
        "missing_audio": 0,
        "missing_visual": 0,
        "clipped_labels": 0,
        "sessions_read": sessions_read,
        "sessions_missing": sorted(sessions_missing),
        "utterances_read": len(utterances),
        "utterances_used": 0,
        "utterances_skipped": {NO_FEATURE_FILE: 0},
        "damaged_feature_files": [],
        "notes": [],
    }
    used, fates = [], {}  # fates: utterance id -> what became of it, for the warnings about damaged entries
    for utterance in utterances:
        present = {
            modality: all(utterance.id in folder.files for folder in folders)
            for modality, folders in modalities.items()
        }
        broken = [
            (modality, folder.broken[utterance.id])
            for modality, folders in modalities.items()
            for folder in folders
            if utterance.id in folder.broken
        ]
        if not all(present.values()) and (not allow_missing_modality or not any(present.values())):
            reason = broken[0][1] if broken else NO_FEATURE_FILE
            report["skipped_without_features"] += 1
            report["skipped_ids"].append(utterance.id)
            report["utterances_skipped"][reason] = report["utterances_skipped"].get(reason, 0) + 1
            fates[utterance.id] = f"utterance {utterance.id} skipped"
            continue
        for modality, ok in present.items():
            report[f"missing_{modality}"] += int(not ok)
        if broken:
            zero_filled = " and ".join(sorted({modality for modality, _ in broken}))
            fates[utterance.id] = f"utterance {utterance.id}'s {zero_filled} zero-filled (allow_missing_modality)"
        used.append((utterance, present))
    report["utterances_used"] = len(used)
    for folders in modalities.values():
        for folder in folders:
            for stem, path, problem, message, blocking in folder.damaged:
                if not blocking:
                    fate = "nothing lost"
                elif stem in seen:
                    fate = fates[stem]
                else:
                    fate = f"no utterance {stem} in the EmoEvaluation files"
                report["damaged_feature_files"].append({"path": str(path), "problem": problem})
                warnings.warn(f"{path}: {message}; left out (lenient): {fate}", stacklevel=2)
    if not used:
        raise DataError(
            f"no utterance of the {len(utterances)} in the EmoEvaluation files has feature files "
            f"in {', '.join(str(f.path) for folders in modalities.values() for f in folders)}",
            features_root,
        )
    for folders in modalities.values():
        for folder in folders:
            describe_folder(folder, [u.id for u, _ in used if u.id in folder.files])
    for utterance, _ in used:
        for name in ("valence", "arousal"):
            raw = getattr(utterance, name)
            if not 1.0 <= raw <= 5.0:
                report["clipped_labels"] += 1
                warnings.warn(f"{utterance.path}:{utterance.line}: {name} {raw} is outside 1..5; clipped", stacklevel=2)

    def partition(utterance):
        if utterance.session != TEST_SESSION:
            return features.TRAIN
        return features.DEVEL if utterance.gender == speaker else features.TEST

    counts = {name: 0 for name in features.PARTITIONS}
    for utterance, _ in used:
        counts[partition(utterance)] += 1
    report["recordings"] = counts
    report["notes"].append(_summary(report, sessions_missing, root))
    empty = _empty_partitions(counts, sessions_read, speaker)
    if empty:
        report["notes"].append(empty)
        warnings.warn(empty, stacklevel=2)

    # Contents, not sizes and times: an edit that keeps both still changes the fingerprint.
    files = [[os.path.relpath(path, root), content_digest(path)] for _, path in label_files]
    for utterance, _ in used:
        for folders in modalities.values():
            for folder in folders:
                if utterance.id in folder.files:
                    path, _ = folder.files[utterance.id]
                    files.append([f"{folder.name}/{path.name}", content_digest(path)])
    options = {
        "audio_features": [f.name for f in modalities[features.AUDIO]],
        "visual_features": [f.name for f in modalities[features.VISUAL]],
        "validation_speaker": speaker,
        "hop": hop,
        "allow_missing_modality": bool(allow_missing_modality),
    }
    key = {"dataset": "iemocap", "reader_version": READER_VERSION, "options": options, "files": files}
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def recordings():
        for utterance, present in used:
            yield read_utterance(utterance, present, modalities, hop, partition(utterance))

    names = {
        modality: [
            n
            for folder in folders
            for n in (folder.names if len(folders) == 1 else [f"{folder.name}/{x}" for x in folder.names])
        ]
        for modality, folders in modalities.items()
    }
    return Corpus(
        dataset="iemocap",
        root=str(root),
        hop=hop,
        audio_feature_names=names[features.AUDIO],
        visual_feature_names=names[features.VISUAL],
        recordings=recordings,
        fingerprint=fingerprint,
        report=report,
    )


def _missing_session(root: Path, session: int) -> tuple:
    """(the first missing path of Session<N>/dialog/EmoEvaluation/<dialog>.txt, what is wrong)."""
    path = root
    for part in (f"Session{session}", "dialog", "EmoEvaluation"):
        path = path / part
        if not path.is_dir():
            return path, _not_a_folder(path)
    return path, "no <dialog>.txt EmoEvaluation file in this folder"


def _not_a_folder(path: Path) -> str:
    if path.is_symlink():
        problem = symlink_problem(path)
        if problem is not None:
            return problem[1]
        return f"symlink to {os.readlink(path)}, not a folder"
    if path.exists():
        return "not a folder"
    return "folder missing"


def _summary(report: dict, sessions_missing: dict, root: Path) -> str:
    """The console line, e.g. `IEMOCAP: read sessions 1, 2, 4, 5 (16 utterances), used 16, skipped 0;
    Session3 folder missing`."""
    sessions = ", ".join(str(s) for s in report["sessions_read"])
    plural = "s" if len(report["sessions_read"]) > 1 else ""
    skips = {reason: n for reason, n in report["utterances_skipped"].items() if n}
    skipped = sum(skips.values())
    line = (
        f"IEMOCAP: read session{plural} {sessions} ({report['utterances_read']:,} utterances), "
        f"used {report['utterances_used']:,}, skipped {skipped:,}"
    )
    if len(skips) == 1:
        line += f" ({SKIP_WORDS[next(iter(skips))]})"
    elif skips:
        line += " (" + ", ".join(f"{n:,} {SKIP_WORDS[reason]}" for reason, n in skips.items()) + ")"
    damaged = len(report["damaged_feature_files"])
    if damaged:
        line += f"; {damaged} damaged feature file{'s' if damaged > 1 else ''} left out (lenient)"
    for path, problem in sessions_missing.values():
        where = path.relative_to(root).as_posix()
        line += f"; {where} {problem}" if problem == "folder missing" else f"; {where}: {problem}"
    return line


def _empty_partitions(counts: dict, sessions_read: list, speaker: str):
    """A line naming the empty partitions and why, or None."""
    other = "M" if speaker == "F" else "F"
    read_train = any(session != TEST_SESSION for session in sessions_read)
    reasons = {
        features.TRAIN: "sessions 1-4 are train and "
        + ("every utterance read from them was skipped" if read_train else "none of them was read"),
        features.DEVEL: f"the devel set is session {TEST_SESSION}'s {speaker} speaker (validation_speaker) "
        f"and every utterance of that speaker was skipped",
        features.TEST: f"the test set is session {TEST_SESSION}'s {other} speaker "
        f"and every utterance of that speaker was skipped",
    }
    if TEST_SESSION not in sessions_read:
        reasons[features.DEVEL] = reasons[features.TEST] = (
            f"session {TEST_SESSION} is devel and test and Session{TEST_SESSION} was not read"
        )
    empty = [name for name in (features.TRAIN, features.DEVEL, features.TEST) if not counts.get(name)]
    if not empty:
        return None
    why = list(dict.fromkeys(reasons[name] for name in empty))
    line = f"IEMOCAP: no {' or '.join(empty)} recordings, because {'; '.join(why)}"
    if features.TRAIN in empty or features.DEVEL in empty:
        line += " (training and tuning need both a train and a devel partition)"
    return line
