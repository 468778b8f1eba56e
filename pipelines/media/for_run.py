"""What a trained run was trained on, as what `pipelines.extract --for-run RUN` extracts.

`RUN/config.json` (written by `pipelines.train`) names the run's feature folders
(`features.audio`, `features.visual`) or, in raw mode (`mode: raw`), the face crop size and the
sample rate. A feature folder is computed by the extractor its name names: `egemaps` (a name
containing "egemaps"), `mfcc` ("mfcc") or `openface` ("openface", or a name whose words include
"au", "aus", "fau" or "faus": OpenFace's action units); any other folder (e.g. deep features such as
`deepspectrum` or `resnet`) cannot be computed from media, which is one line naming it. The
extracted files are written under the run's own folder names.

When the run's artefact folder (`runtime.artifact_dir`) still holds its `manifest.json`, the
dimensions and feature names recorded there are checked against the extraction's: a difference is
an error naming both.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Optional

from pipelines.config.settings import resolve_saved
from pipelines.core.errors import ConfigError
from pipelines.media.audio_features import EGEMAPS, MFCC
from pipelines.media.openface import OPENFACE, PRESENT_COLUMN

FACES = "faces"
DEFAULT_FACE_SIZE = 48  # raw mode's default (configs/synthetic_raw.yaml, synthetic.face_size)
DEFAULT_SAMPLE_RATE = 16000  # raw mode's default (synthetic.sample_rate)
_AU_WORDS = {"au", "aus", "fau", "faus"}
MODALITY_OF = {EGEMAPS: "audio", MFCC: "audio", OPENFACE: "visual", FACES: "visual"}


@dataclasses.dataclass
class RunPlan:
    """What to extract for a run.

    Attributes:
        run_dir: Path.
        mode: "features" or "raw".
        folders: list of (folder name, feature set, modality), in the run's order.
        face_size, sample_rate: int (raw mode).
        expected: {modality: (dim, names or None)} recorded by the run's artefacts, or {}.
        artifact_manifest: Path or None. Where `expected` came from.
    """

    run_dir: Path
    mode: str
    folders: list
    face_size: Optional[int] = None
    sample_rate: Optional[int] = None
    expected: dict = dataclasses.field(default_factory=dict)
    artifact_manifest: Optional[Path] = None


def extractor_of(folder: str) -> Optional[str]:
    """The feature set that computes a feature folder of this name, or None."""
    lower = folder.lower()
    if "egemaps" in lower:
        return EGEMAPS
    if "mfcc" in lower:
        return MFCC
    if "openface" in lower or _AU_WORDS & set(re.split(r"[^a-z0-9]+", lower)):
        return OPENFACE
    return None


def _read_json(path: Path, what: str):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"--for-run: no {what}", path) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"--for-run: cannot read {what} ({error})", path) from None


def plan(run_dir) -> RunPlan:
    """The feature sets a run was trained on; ConfigError (one line) for a folder no extractor computes."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise ConfigError("--for-run: not a folder (expected a run folder written by pipelines.train)", run_dir)
    path = run_dir / "config.json"
    config = _read_json(path, "config.json (expected a run folder written by pipelines.train)")
    if not isinstance(config, dict):
        raise ConfigError("--for-run: config.json is not a mapping", path)
    config = resolve_saved(config, path)
    mode = config.mode or "features"
    runtime = config.runtime or {}
    manifest, manifest_path = None, None
    if isinstance(runtime, dict) and runtime.get("artifact_dir"):
        candidate = Path(runtime["artifact_dir"]) / "manifest.json"
        if candidate.is_file():
            try:
                manifest, manifest_path = json.loads(candidate.read_text()), candidate
            except (OSError, ValueError):
                manifest = None
    result = RunPlan(run_dir=run_dir, mode=mode, folders=[], artifact_manifest=manifest_path)
    if mode == "raw":
        synthetic = config.synthetic or {}
        result.face_size = int(synthetic.get("face_size") or DEFAULT_FACE_SIZE)
        result.sample_rate = int(synthetic.get("sample_rate") or DEFAULT_SAMPLE_RATE)
        # What the trainer recorded (config.json's runtime.raw), else the run's artefact manifest.
        manifest = runtime.get("raw") or manifest
        if manifest:
            shape = manifest.get("visual_shape") or []
            if len(shape) >= 2 and shape[0] == shape[1] and int(shape[0]) > 0:
                result.face_size = int(shape[0])
            if manifest.get("sample_rate"):
                result.sample_rate = int(manifest["sample_rate"])
        result.folders = [(FACES, FACES, "visual")]
        return result
    for modality in ("audio", "visual"):
        for folder in getattr(config.features, modality) or []:
            name = extractor_of(str(folder))
            if name is None:
                raise ConfigError(
                    f"--for-run: the run's {modality} feature folder {folder!r} cannot be computed from media "
                    f"(pipelines.extract computes egemaps, mfcc and openface folders; a folder is matched by "
                    f"its name)",
                    path,
                )
            if MODALITY_OF[name] != modality:
                raise ConfigError(
                    f"--for-run: the run's {modality} feature folder {folder!r} looks like {name}, a "
                    f"{MODALITY_OF[name]} feature set",
                    path,
                )
            twin = [other for other, other_name, _ in result.folders if other_name == name]
            if twin:
                raise ConfigError(
                    f"--for-run: the run's feature folders {twin[0]!r} and {folder!r} would both be {name}; "
                    f"one extraction cannot give two folders",
                    path,
                )
            result.folders.append((str(folder), name, modality))
    if not result.folders:
        raise ConfigError("--for-run: the run names no feature folder (features.audio, features.visual)", path)
    if manifest:
        for modality in ("audio", "visual"):
            dim = manifest.get(f"{modality}_dim")
            if dim is not None:
                result.expected[modality] = (int(dim), manifest.get(f"{modality}_feature_names"))
    return result


def qualified(folders_and_names) -> list:
    """The names the AVEC reader gives the concatenated folders of a modality: `<folder>/<name>`
    when two folders share a name (the `present` column is not a feature)."""
    names = [n for _, folder_names in folders_and_names for n in folder_names if n != PRESENT_COLUMN]
    if len(set(names)) != len(names):
        names = [f"{folder}/{n}" for folder, folder_names in folders_and_names for n in folder_names]
        names = [n for n in names if not n.endswith("/" + PRESENT_COLUMN)]
    return names


def check_dims(result: RunPlan, modality: str, folders_and_names) -> None:
    """ConfigError naming both when the extraction's features of `modality` are not the run's.

    `folders_and_names`: list of (folder, feature names incl. a trailing `present`) in the run's order.
    Names are compared when the run recorded names of its own (not the `<folder>_<i>` names the
    reader gives header-less files).
    """
    if modality not in result.expected:
        return
    dim, names = result.expected[modality]
    ours = qualified(folders_and_names)
    where = result.artifact_manifest
    summary = ", ".join(f"{folder} {len([n for n in ns if n != PRESENT_COLUMN])}" for folder, ns in folders_and_names)
    if len(ours) != dim:
        raise ConfigError(
            f"--for-run: the run was trained on {dim} {modality} features per frame (recorded in {where}), the "
            f"extraction gives {len(ours)} ({summary})"
        )
    folders = {folder for folder, _ in folders_and_names}

    def generic(name):  # `<folder>_<i>`: the reader's names for a header-less file
        match = re.fullmatch(r"(.+)_(\d+)", name.split("/")[-1])
        return match is not None and match.group(1) in folders

    if names is not None and not all(generic(name) for name in names) and list(names) != ours:
        first = next(i for i, (a, b) in enumerate(zip(names, ours)) if a != b)
        raise ConfigError(
            f"--for-run: {modality} feature {first} is {names[first]!r} in the run (recorded in {where}), "
            f"{ours[first]!r} in the extraction"
        )
