"""IEMOCAP's EmoEvaluation files: the utterance lines, and their 1..5 ratings as labels in [-1, 1]."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np

from pipelines.core.errors import DataError

UTTERANCE_LINE = re.compile(
    r"^\[\s*(?P<start>[^\s\]-]+)\s*-\s*(?P<end>[^\s\]]+)\s*\]\s+(?P<id>\S+)\s+(?P<category>\S+)\s+"
    r"\[(?P<vad>[^\]]*)\]\s*$"
)
GENDER = re.compile(r"([A-Za-z])(\d+)$")


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


def label_from_rating(rating: float) -> float:
    """A 1..5 rating as a label in [-1, 1]: (x - 3) / 2, clipped."""
    return float(np.clip((rating - 3.0) / 2.0, -1.0, 1.0))
