"""Extract: audio and video files in, a corpus folder out that the other commands read.

    python -m pipelines.extract recordings/ --output-dir corpus
    python -m pipelines.extract talk.mp4 "call 2.wav" --output-dir corpus --feature-sets egemaps,mfcc,faces
    python -m pipelines.extract recordings/ --output-dir corpus --for-run runs/avec_cold_fusion_regression
    python -m pipelines.extract videos/ --output-dir corpus --feature-sets egemaps,openface --openface-dir openface_out

Feature sets (`--feature-sets`, default `egemaps,mfcc`, plus `faces` for a file with a video stream):

* `egemaps`, `mfcc`: AVEC 2019's audio LLDs (openSMILE eGeMAPSv02; MFCC 0-12 with deltas and
  accelerations) as AVEC 2019's functionals, a row every 0.1 s (`pipelines.media.audio_features`);
* `openface`: the CSV files OpenFace 2 wrote (`--openface-dir`), as the same functionals over the
  frames where the face was tracked, with a last `present` column (`pipelines.media.openface`);
* `faces`: raw mode's inputs: a face crop per 0.1 s frame (`faces/<name>.npz`: `faces` uint8
  [N, S, S, 3] and `present` uint8 [N]) and the waveform (`audio/<name>.wav`, 16-bit mono).

The output layout, the manifest `extract.json`, resuming and the errors are described in
`pipelines.media.layout` and in docs/own-recordings.md. What is extracted is planned by
`pipelines.components.extract_plan`; one recording is extracted by `pipelines.components.extraction`.
No TensorFlow is imported.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.components.extract_plan import AUDIO_SETS, OPENFACE, Plan
from pipelines.components.extraction import Extraction
from pipelines.core import cli
from pipelines.core.errors import DataError
from pipelines.core.io_utils import write_text_atomic
from pipelines.media import layout


def run(args) -> dict:
    """Extracts every input into `args.output_dir`; returns the manifest."""
    from pipelines import media
    from pipelines.media import audio_features, for_run

    out = Path(args.output_dir).expanduser()
    versions = media.require_extra()
    plan = Plan(args)
    sources = layout.find_sources(args.inputs)
    for source in sources:  # every label file is checked before anything is extracted
        if source.label_path is not None:
            layout.read_labels(source.label_path)
    extraction = Extraction(args, plan, versions, out)
    audio_names = {name: audio_features.feature_names(name) for name in AUDIO_SETS}
    if OPENFACE in (plan.requested or []):
        for source in sources:
            path = extraction.openface_path(source)
            if path.is_file():
                extraction.check_openface_header(path)
    if plan.run is not None and plan.run.mode != "raw":
        for modality in ("audio", "visual"):
            folders = []
            for folder, name, folder_modality in plan.run.folders:
                if folder_modality == modality:
                    names = audio_names[name] if name in AUDIO_SETS else extraction.openface_names
                    if names is not None:
                        folders.append((folder, names))
            if folders and len(folders) == len([f for f in plan.run.folders if f[2] == modality]):
                for_run.check_dims(plan.run, modality, folders)
    out.mkdir(parents=True, exist_ok=True)
    extraction.describe_sets(audio_names)
    # Partitions of this run's recordings and of those an earlier run left in the folder.
    current = {source.name for source in sources}
    partitions = [(source.name, source.partition) for source in sources if source.partition]
    partitions += [
        (name, entry["partition"])
        for name, entry in extraction.manifest["recordings"].items()
        if name not in current and isinstance(entry, dict) and entry.get("partition")
    ]
    if partitions:
        write_text_atomic(out / layout.PARTITIONS_FILE, layout.partitions_csv(partitions))
    elif extraction.old.get("partitions"):  # written by an earlier run whose recordings had partitions
        (out / layout.PARTITIONS_FILE).unlink(missing_ok=True)
    extraction.manifest["partitions"] = bool(partitions)
    extraction.manifest["inputs"] = [str(Path(item).expanduser().resolve()) for item in args.inputs]
    outcome = {"extracted": [], "up to date": [], "skipped": []}
    extraction.manifest["last_run"] = outcome
    bar = cli.progress_bar(sources, "extract", total=len(sources), unit="rec", enabled=not args.quiet)
    try:
        for source in bar:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(source.name[:30])
            try:
                outcome[extraction.extract(source)].append(source.name)
            except DataError as error:
                if not args.lenient or not _is_media_error(error, source):
                    raise
                extraction.warn(source.path, f"{error.message}; skipped (lenient)")
                extraction.remove_outputs(extraction.manifest["recordings"].pop(source.name, None))
                extraction.manifest["skipped"].append(
                    {"name": source.name, "path": str(source.path), "error": str(error)}
                )
                outcome["skipped"].append(source.name)
            extraction.save()
    finally:
        if hasattr(bar, "close"):
            bar.close()  # an error line then starts on a line of its own
    extraction.manifest["complete"] = True
    extraction.save()
    return extraction.manifest


def _is_media_error(error: DataError, source) -> bool:
    return error.path is not None and Path(error.path) == source.path
