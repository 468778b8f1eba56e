"""Importing the per-frame CSV files that OpenFace 2 writes (`FeatureExtraction -f video.mp4`).

OpenFace writes one row per video frame, `, `-separated with a header whose names carry a leading
space: `frame, face_id, timestamp, confidence, success, gaze_0_x, ..., gaze_angle_y, ...,
pose_Tx, ..., pose_Rz, ..., AU01_r, ..., AU45_r, AU01_c, ..., AU45_c` (and landmark columns, which
are not used). What is read:

* the columns `AU<nn>_r`, `AU<nn>_c`, `gaze_*` and `pose_*`, in the file's order (at least one);
  `timestamp`, `confidence` and `success` are required, `frame` and `face_id` optional;
* a frame is present when `success` is 1 and `confidence` >= `min_confidence`; a frame number
  missing from the file (when there is a `frame` column) is absent too; with several faces per
  frame (`face_id`), the present row of highest confidence is kept;
* the frame rate is the video's (from the media file) when the timestamps agree with it within 1%,
  else frames / seconds between the first and the last timestamp.

The frames become AVEC's functionals on the 0.1 s grid at that frame rate
(`functionals.masked_functionals`): mean and standard deviation over the present frames of each
4 s window; a grid frame whose window has no present frame is absent (its values 0, `present` 0).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from pipelines.core.errors import DataError
from pipelines.datasets.tables import read_table
from pipelines.media import functionals as functionals_lib

OPENFACE = "openface"
MIN_CONFIDENCE = 0.8
FEATURE_COLUMN = re.compile(r"^(AU\d+_[rc]|gaze_\w+|pose_\w+)$")
REQUIRED = ("timestamp", "confidence", "success")
PRESENT_COLUMN = "present"
FPS_TOLERANCE = 0.01  # relative: the CSV's timestamps agree with the video's frame rate


@dataclasses.dataclass
class OpenFaceFrames:
    """The frames of one OpenFace CSV.

    Attributes:
        path: Path.
        names: list of str. The feature columns used.
        values: float64 [frames, D].
        present: bool [frames].
        fps: float. Frames per second, from the timestamps.
    """

    path: Path
    names: list
    values: np.ndarray
    present: np.ndarray
    fps: float

    @property
    def duration(self) -> float:
        return len(self.values) / self.fps


def read(path, min_confidence: float = MIN_CONFIDENCE) -> OpenFaceFrames:
    """Reads an OpenFace CSV; DataError naming the file (and line and column) when it does not fit."""
    path = Path(path)
    table = read_table(path, text_columns=0, header=True)
    header = list(table.header)
    lower = [name.lower() for name in header]
    for name in REQUIRED:
        if name not in lower:
            raise DataError(
                f"no {name!r} column (expected OpenFace's header: frame, face_id, timestamp, confidence, success, ...)",
                path,
                1,
            )
    columns = [i for i, name in enumerate(header) if FEATURE_COLUMN.match(name)]
    if not columns:
        raise DataError(
            "no feature column (expected OpenFace's AU01_r..AU45_r, AU01_c..AU45_c, gaze_* or pose_* columns)", path, 1
        )
    values = table.values
    column = {name: lower.index(name) for name in ("frame", "face_id", *REQUIRED) if name in lower}
    timestamps = values[:, column["timestamp"]]
    confidence = values[:, column["confidence"]]
    success = values[:, column["success"]]
    present = (success >= 0.5) & (confidence >= min_confidence)
    if "frame" in column:
        frames = values[:, column["frame"]]
        if not np.all(frames == np.round(frames)):
            i = int(np.argmax(frames != np.round(frames)))
            raise DataError(
                f"frame {frames[i]:.6g} is not a whole number", path, int(table.lines[i]), column["frame"] + 1
            )
        index = frames.astype(np.int64) - int(frames.min())
    else:
        index = np.arange(len(values))
    n = int(index.max()) + 1
    # One row per frame: the present row of highest confidence (rows of other faces give way).
    order = np.lexsort((confidence, present, index))  # by frame, then absent before present, then confidence
    last = np.r_[index[order][1:] != index[order][:-1], True]
    chosen = order[last]
    out = np.zeros((n, len(columns)), np.float64)
    flags = np.zeros(n, bool)
    stamps = np.full(n, np.nan)
    out[index[chosen]] = values[np.ix_(chosen, columns)]
    flags[index[chosen]] = present[chosen]
    stamps[index[chosen]] = timestamps[chosen]
    known = np.flatnonzero(~np.isnan(stamps))
    if len(known) < 2:
        raise DataError("at least two frames are needed to tell the frame rate from the timestamps", path)
    # Over the whole file: OpenFace rounds its timestamps to milliseconds (steps of 0.033 and 0.034 s at 30 fps).
    step = float((stamps[known[-1]] - stamps[known[0]]) / (known[-1] - known[0]))
    if not step > 0 or not np.all(np.diff(stamps[known]) > 0):
        raise DataError("the timestamps do not increase (expected OpenFace's seconds per frame)", path)
    return OpenFaceFrames(
        path=path,
        names=[header[i] for i in columns],
        values=out,
        present=flags,
        fps=1.0 / step,
    )


def frame_rate(frames: OpenFaceFrames, video_fps=None) -> float:
    """The frame rate to window with: the video's own (exact, e.g. 30000/1001) when the CSV's timestamps
    agree with it within `FPS_TOLERANCE`, else the rate the timestamps give. (OpenFace rounds its
    timestamps to milliseconds, so on a short file they give e.g. 29.9975 for 30 fps, which would move
    AVEC's window centres int(t * fps * 0.1) by a frame.)"""
    if video_fps and abs(frames.fps - video_fps) <= FPS_TOLERANCE * video_fps:
        return float(video_fps)
    return frames.fps


def functionals(frames: OpenFaceFrames, fps=None, hop: float = functionals_lib.HOP):
    """(timestamps [T], features [T, 2D], present [T] uint8) on the `hop` grid, windows at `fps`
    (default: the CSV's own frame rate)."""
    return functionals_lib.masked_functionals(frames.values, frames.present, fps or frames.fps, hop)


def feature_names(frames: OpenFaceFrames) -> list:
    """`<column>_mean` ..., `<column>_std` ..., then `present`."""
    return functionals_lib.names(frames.names) + [PRESENT_COLUMN]
