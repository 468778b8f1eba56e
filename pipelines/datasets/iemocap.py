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
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import stat as stat_module
import warnings
from pathlib import Path

import numpy as np

from pipelines.core.errors import ConfigError, DataError
from pipelines.data import features
from pipelines.datasets.base import Corpus, Recording, content_digest
from pipelines.datasets.tables import (
    check_float32,
    clean_name,
    detect_header,
    first_line,
    read_table,
    sniff_separator,
    split_line,
)

SESSIONS = (1, 2, 3, 4, 5)
TEST_SESSION = 5
DEFAULT_HOP = 0.1
UTTERANCE_LINE = re.compile(
    r"^\[\s*(?P<start>[^\s\]-]+)\s*-\s*(?P<end>[^\s\]]+)\s*\]\s+(?P<id>\S+)\s+(?P<category>\S+)\s+"
    r"\[(?P<vad>[^\]]*)\]\s*$"
)
GENDER = re.compile(r"([A-Za-z])(\d+)$")
READER_VERSION = 3  # 2: the report names sessions and skips; 3: fingerprints hash the contents
_SUFFIXES = (".npy", ".csv")  # .npy wins when both exist
NO_FEATURE_FILE = "no_feature_file"
# Problems of a feature entry: report key -> words of the console note.
DAMAGE = {
    "dangling_symlink": "dangling symlink",
    "symlink_loop": "symlink loop",
    "not_a_file": "not a regular file",
    "unreadable": "unreadable",
}
SKIP_WORDS = {NO_FEATURE_FILE: "no feature file", **DAMAGE}


@dataclasses.dataclass
class Utterance:
    """One utterance line of an EmoEvaluation file."""

    id: str
    session: int
    gender: str
    dialog: str
    category: str
    start: float
    end: float
    valence: float  # raw rating, 1..5
    arousal: float
    dominance: float
    path: Path
    line: int


def parse_emo_evaluation(path, session: int, strict=True) -> list:
    """The utterances of one EmoEvaluation file, in file order.

    Columns in errors are the tab-separated fields: 1 the time span, 2 the id, 3 the category, 4 the
    ratings. An id that does not start with the dialog's name (the file name) is an error, or a
    warning when not `strict`.

    Raises:
        DataError: a line starting with `[` that does not parse (file and line).
    """
    path = Path(path)
    utterances = []
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the file ({error})", path) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("["):
            continue
        match = UTTERANCE_LINE.match(line.strip())
        if not match:
            raise DataError(
                "cannot parse the utterance line (expected "
                "'[start - end]<TAB>utterance id<TAB>category<TAB>[V, A, D]')",
                path,
                number,
            )
        try:
            start, end = float(match["start"]), float(match["end"])
        except ValueError:
            start = end = float("nan")
        if not (np.isfinite(start) and np.isfinite(end) and start >= 0):
            raise DataError(
                f"bad time span [{match['start']} - {match['end']}] (expected two finite times in "
                f"seconds, the start >= 0)",
                path,
                number,
                1,
            )
        try:
            vad = [float(part) for part in match["vad"].split(",")]
        except ValueError:
            vad = []
        if len(vad) != 3 or not all(np.isfinite(vad)):
            raise DataError(f"expected three numbers [V, A, D], found [{match['vad']}]", path, number, 4)
        if not end > start:
            raise DataError(
                f"the utterance ends ({end}) before it starts ({start}) (expected end > start)", path, number, 1
            )
        gender = GENDER.search(match["id"])
        if gender is None or gender.group(1).upper() not in ("F", "M"):
            raise DataError(
                f"utterance id {match['id']!r} does not end in F or M and a number (expected e.g. {path.stem}_F000)",
                path,
                number,
                2,
            )
        if not match["id"].startswith(f"{path.stem}_"):
            message = (
                f"utterance id {match['id']!r} is not of dialog {path.stem} (expected '{path.stem}_<speaker><NNN>')"
            )
            if strict:
                raise DataError(message + "; --lenient accepts it with a warning", path, number, 2)
            warnings.warn(f"{path}:{number}:2: {message}; accepted (lenient)", stacklevel=2)
        utterances.append(
            Utterance(
                id=match["id"],
                session=session,
                gender=gender.group(1).upper(),
                dialog=path.stem,
                category=match["category"],
                start=start,
                end=end,
                valence=vad[0],
                arousal=vad[1],
                dominance=vad[2],
                path=path,
                line=number,
            )
        )
    return utterances


def resample_frames(values: np.ndarray, num_frames: int) -> np.ndarray:
    """Resamples a feature sequence [M, D] to `num_frames` frames spanning the same time.

    Output frame j covers the fraction [j / n, (j + 1) / n) of the span, input frame i is centred
    at (i + 0.5) / M. Downsampling (M >= n): the mean of the input frames centred in output frame j
    (never empty). Upsampling: linear interpolation between input centres, held at the edges.

    >>> resample_frames(np.array([[0.0], [2.0], [4.0], [6.0]]), 2)[:, 0]
    array([1., 5.])
    """
    values = np.asarray(values, np.float64)
    m, n = values.shape[0], int(num_frames)
    if m == n:
        return values.copy()
    if m > n:
        bins = np.floor((np.arange(m) + 0.5) * n / m).astype(np.int64)
        sums = np.zeros((n, values.shape[1]))
        np.add.at(sums, bins, values)
        return sums / np.bincount(bins, minlength=n)[:, None]
    position = np.clip((np.arange(n) + 0.5) / n * m - 0.5, 0.0, m - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, m - 1)
    weight = (position - low)[:, None]
    return values[low] * (1.0 - weight) + values[high] * weight


@dataclasses.dataclass
class _Folder:
    name: str
    path: Path
    files: dict  # utterance id -> (Path, os.stat_result)
    # lenient: damaged entries left out, (utterance id, Path, problem key, message, whether the id has no
    # usable file because of it); `broken`: utterance id -> problem key of the entry that would be used
    damaged: list = dataclasses.field(default_factory=list)
    broken: dict = dataclasses.field(default_factory=dict)
    dim: int = 0
    names: list = dataclasses.field(default_factory=list)
    first_file: Path = None


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
        features.AUDIO: _resolve_folders(features_root, features.AUDIO, audio_features, strict),
        features.VISUAL: _resolve_folders(features_root, features.VISUAL, visual_features, strict),
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
            _describe_folder(folder, [u.id for u, _ in used if u.id in folder.files])
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
            yield _read_utterance(utterance, present, modalities, hop, partition(utterance))

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
        problem = _symlink_problem(path)
        if problem is not None:
            return problem[1]
        return f"symlink to {os.readlink(path)}, not a folder"
    if path.exists():
        return "not a folder"
    return "folder missing"


def _symlink_problem(path: Path):
    """(problem key, message) for a symlink that cannot be followed, else None."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return "dangling_symlink", f"dangling symlink to {os.readlink(path)}: the target does not exist"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink_loop", (
                f"symlink loop: it points to {os.readlink(path)}, and following the links never reaches a file"
            )
        return "unreadable", f"cannot follow the symlink to {os.readlink(path)}: {error.strerror}"
    return None


def _entry_problem(item: os.DirEntry):
    """(os.stat_result, None) for a regular feature file, else (None, (problem key, message))."""
    try:
        if item.is_symlink():
            problem = _symlink_problem(Path(item.path))
            if problem is not None:
                return None, problem
        info = item.stat()
    except OSError as error:
        return None, ("unreadable", f"cannot look at the file: {error.strerror}")
    if stat_module.S_ISREG(info.st_mode):
        return info, None
    kind = "folder" if stat_module.S_ISDIR(info.st_mode) else "special file (a pipe, socket or device)"
    if item.is_symlink():
        return None, ("not_a_file", f"not a regular file but a symlink to the {kind} {os.readlink(item.path)}")
    return None, ("not_a_file", f"not a regular file but a {kind}")


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


def _resolve_folders(features_root: Path, modality: str, names, strict=True) -> list:
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    names = [str(name) for name in (names or [])]
    existing = ", ".join(sorted(p.name for p in features_root.iterdir() if p.is_dir())) or "none"
    if not names:
        raise ConfigError(
            f"choose the {modality} feature folder under {features_root} ({modality}_features); "
            f"folders there: {existing}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"{modality} feature folders repeat a folder: {', '.join(names)}")
    folders = []
    for name in names:
        path = features_root / name
        if Path(name).name != name or not path.is_dir():
            raise ConfigError(
                f"{modality} feature folder {name!r} does not exist; folders in {features_root}: {existing}", path
            )
        entries = {}  # stem -> {suffix: (Path, os.stat_result or None, (problem key, message) or None)}
        with os.scandir(path) as scan:
            for item in sorted(scan, key=lambda item: item.name):
                stem, suffix = os.path.splitext(item.name)
                if suffix in _SUFFIXES and not item.name.startswith("."):
                    info, problem = _entry_problem(item)
                    if problem is not None and strict:
                        raise DataError(
                            f"{problem[1]} (expected a {suffix} feature file); --lenient leaves it out with a warning",
                            item.path,
                        )
                    entries.setdefault(stem, {})[suffix] = (Path(item.path), info, problem)
        folder = _Folder(name=name, path=path, files={})
        for stem, found in entries.items():
            chosen_path, info, problem = found.get(".npy") or found[".csv"]
            if problem is None:
                folder.files[stem] = (chosen_path, info)
            else:
                folder.broken[stem] = problem[0]
            for entry_path, _, entry_problem in found.values():
                if entry_problem is not None:
                    message = entry_problem[1]
                    if entry_path != chosen_path:
                        message += f"; {chosen_path.name} takes precedence"
                    elif len(found) > 1:
                        message += f"; the {stem}.csv beside it is not used in its place (the .npy takes precedence)"
                    folder.damaged.append((stem, entry_path, entry_problem[0], message, entry_path == chosen_path))
        folders.append(folder)
    return folders


def _describe_folder(folder: _Folder, ids: list) -> None:
    """Feature dimension and names from the first used file of a folder."""
    if not ids:
        raise DataError("no feature file of any utterance in this folder", folder.path)
    path = folder.files[ids[0]][0]
    folder.first_file = path
    if path.suffix == ".npy":
        shape = _load_npy(path, mmap=True).shape
        folder.dim = int(shape[1])
        folder.names = [f"{folder.name}_{i}" for i in range(folder.dim)]
        return
    line = first_line(path)
    cells = split_line(line, sniff_separator(path, line, default=","))
    folder.dim = len(cells)
    if detect_header(cells, 0):
        folder.names = [clean_name(cell) for cell in cells]
    else:
        folder.names = [f"{folder.name}_{i}" for i in range(folder.dim)]


def _load_npy(path: Path, mmap=False) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        if "object" in str(error).lower() or "pickle" in str(error).lower():
            raise DataError(
                "an array of Python objects (expected a numeric .npy array; pickled data is never loaded)", path
            ) from None
        raise DataError(
            f"cannot read the .npy file ({error}) (expected a numeric array saved with numpy.save)", path
        ) from None
    if not isinstance(array, np.ndarray):
        raise DataError("not a .npy array file (expected one numeric array saved with numpy.save)", path)
    if array.ndim != 2:
        raise DataError(
            f"a {array.ndim}-D array of shape {tuple(array.shape)} (expected a 2-D array [frames, features])", path
        )
    if (
        not np.issubdtype(array.dtype, np.number)
        or np.issubdtype(array.dtype, np.complexfloating)
        or array.dtype.names is not None
    ):
        raise DataError(f"dtype {array.dtype} (expected real numbers: a float or integer dtype)", path)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"empty array of shape {tuple(array.shape)} (expected at least one frame and feature)", path)
    return array


def _read_features(path: Path, folder: _Folder) -> np.ndarray:
    if path.suffix == ".npy":
        values = np.asarray(_load_npy(path), np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"{values[row, column]} at frame {row} (0-based), feature {column} (expected finite numbers)", path
            )
        check_float32(values, path)
        first_row = 0
    else:
        table = read_table(path, text_columns=0)
        values = table.values
        first_row = int(table.lines[0])
    if values.shape[1] != folder.dim:
        raise DataError(
            f"{values.shape[1]} feature columns, but {folder.first_file} has {folder.dim}", path, first_row or None
        )
    return values


def _read_utterance(utterance: Utterance, present: dict, modalities: dict, hop: float, partition: str) -> Recording:
    n = max(1, int(round((utterance.end - utterance.start) / hop)))
    arrays, presence = {}, {}
    for modality, folders in modalities.items():
        if present[modality]:
            parts = [resample_frames(_read_features(folder.files[utterance.id][0], folder), n) for folder in folders]
            arrays[modality] = np.concatenate(parts, axis=1).astype(np.float32)
            presence[modality] = np.ones(n, np.float32)
        else:
            arrays[modality] = np.zeros((n, sum(folder.dim for folder in folders)), np.float32)
            presence[modality] = np.zeros(n, np.float32)
    return Recording(
        name=utterance.id,
        partition=partition,
        hop=hop,
        audio=arrays[features.AUDIO],
        visual=arrays[features.VISUAL],
        valence=_scale(utterance.valence),
        arousal=_scale(utterance.arousal),
        timestamps=utterance.start + np.arange(n) * hop,
        audio_present=presence[features.AUDIO],
        visual_present=presence[features.VISUAL],
        metadata={
            "session": str(utterance.session),
            "gender": utterance.gender,
            "speaker": f"Ses{utterance.session:02d}{utterance.gender}",
            "dialog": utterance.dialog,
            "category": utterance.category,
        },
    )


def _scale(rating: float) -> float:
    """A 1..5 rating as a label in [-1, 1]: (x - 3) / 2, clipped."""
    return float(np.clip((rating - 3.0) / 2.0, -1.0, 1.0))
