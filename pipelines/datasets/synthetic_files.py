"""The files of the synthetic corpus besides its AVEC layout: `synthetic.json` (the parameters),
`corruption.csv` (the corrupted stretches), and the atomic writes of the label and feature tables."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from pipelines.core.errors import DataError
from pipelines.data import features
from pipelines.datasets import synthetic_raw
from pipelines.datasets.avec_folders import LABELS_FOLDER

FORMAT_VERSION = 1
PARAMETERS_FILE = "synthetic.json"
CORRUPTION_FILE = "corruption.csv"
CORRUPTION_HEADER = ["name", "modality", "start_frame", "end_frame", "kind"]


def load_parameters(output_dir):
    """The parameters of the complete synthetic corpus in `output_dir`, or None when there is none."""
    path = Path(output_dir) / PARAMETERS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        return None
    return data.get("parameters")


def write_table(path: Path, name: str, columns: list, values: np.ndarray) -> None:
    """A `;`-separated table with a header, the quoted name on every row, values with 6 decimals."""
    buffer = io.StringIO()
    np.savetxt(buffer, values, fmt="%.6f", delimiter=";")
    prefix = f"'{name}';"
    body = "".join(prefix + line + "\n" for line in buffer.getvalue().splitlines())
    write_atomic(path, "name;" + ";".join(columns) + "\n" + body)


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` under a temporary name and renames it, so `path` is never half written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_recording(root: Path, name: str, data: dict, params: dict, n: int) -> None:
    """The label file and the feature tables (raw: the faces and the voice) of one generated recording."""
    timestamps = np.arange(n) * params["hop"]
    labels = np.stack([timestamps, data["arousal"], data["valence"], np.zeros(n)], axis=1)
    write_table(root / LABELS_FOLDER / f"{name}.csv", name, ["timestamp", "arousal", "valence", "liking"], labels)
    if params.get("raw"):
        synthetic_raw.write_faces(root / synthetic_raw.FACES_FOLDER / f"{name}.npz", data["faces"])
        synthetic_raw.write_wav(
            root / synthetic_raw.AUDIO_FOLDER / f"{name}.wav", data["waveform"], params["sample_rate"]
        )
        return
    for modality in features.MODALITIES:
        columns = ["timestamp"] + [f"{modality}_{i}" for i in range(data[modality].shape[1])]
        write_table(
            root / modality / f"{name}.csv",
            name,
            columns,
            np.concatenate([timestamps[:, None], data[modality]], axis=1),
        )


def write_corruption(path: Path, rows: list) -> None:
    """`corruption.csv` with one row [name, modality, start_frame, end_frame, kind] per corrupted stretch."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow(CORRUPTION_HEADER)
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def write_parameters(root: Path, params: dict, summary: dict) -> None:
    """`synthetic.json`, written last: a folder with it holds a complete corpus of these parameters."""
    write_atomic(
        root / PARAMETERS_FILE,
        json.dumps({"format_version": FORMAT_VERSION, "parameters": params, "summary": summary}, indent=2) + "\n",
    )


def read_corruption(path) -> dict:
    """`corruption.csv` as {name: {modality: [(start, end, line), ...]}}.

    Raises:
        DataError: a bad header, row, modality or frame range (file, line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no corruption file in the synthetic corpus; regenerate it", path)
    segments = {}
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    if not rows or [cell.strip() for cell in rows[0]][:4] != CORRUPTION_HEADER[:4]:
        raise DataError(f"expected the header {';'.join(CORRUPTION_HEADER)}", path, 1)
    width = len(rows[0])
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise DataError(f"expected {width} columns, found {len(row)}", path, number)
        name, modality = row[0].strip().strip("'\""), row[1].strip()
        if modality not in features.MODALITIES:
            raise DataError(f"modality must be audio or visual, got {modality!r}", path, number, 2)
        try:
            start, end = int(row[2]), int(row[3])
        except ValueError:
            raise DataError(f"frames must be integers, got {row[2]!r} and {row[3]!r}", path, number, 3) from None
        if not 0 <= start < end:
            raise DataError(f"need 0 <= start_frame < end_frame, got {start} and {end}", path, number, 3)
        segments.setdefault(name, {}).setdefault(modality, []).append((start, end, number))
    return segments
