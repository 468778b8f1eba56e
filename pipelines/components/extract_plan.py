"""What `pipelines.extract` extracts: the feature sets, their output folders and the output settings.

`Plan` reads the command's flags (or a run folder, `--for-run`) into the feature sets to extract,
the folder each is written to, the face size and sample rate of raw mode and the OpenFace settings;
`Plan.settings()` is the part of `extract.json` that decides whether an earlier output is current.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import ConfigError
from pipelines.media import layout

FORMAT_VERSION = 1
EGEMAPS, MFCC, FACES, OPENFACE = "egemaps", "mfcc", "faces", "openface"
AUDIO_SETS = (EGEMAPS, MFCC)
VISUAL_SETS = (FACES, OPENFACE)
ALL_SETS = AUDIO_SETS + VISUAL_SETS
DEFAULT_FACE_SIZE = 48  # raw mode's default (synthetic.face_size)
DEFAULT_SAMPLE_RATE = 16000  # raw mode's default (synthetic.sample_rate)
HOP = layout.HOP
# Labels and raw-mode faces more than this many frames apart are worth a warning.
FRAME_SLACK = 1


class Plan:
    """What to extract: the feature sets, their output folders and the settings that shape the outputs."""

    def __init__(self, args):
        from pipelines.media import for_run

        self.requested = args.feature_sets  # None: the default per file
        self.folders = {name: name for name in ALL_SETS}
        self.run = None
        self.face_size = args.face_size or DEFAULT_FACE_SIZE
        self.sample_rate = args.sample_rate or DEFAULT_SAMPLE_RATE
        if args.for_run:
            if args.feature_sets:
                raise ConfigError("--for-run chooses the feature sets (the run's); leave out --feature-sets")
            self.run = for_run.plan(args.for_run)
            if self.run.mode == "raw":
                for flag, given, value in (
                    ("--face-size", args.face_size, self.run.face_size),
                    ("--sample-rate", args.sample_rate, self.run.sample_rate),
                ):
                    if given is not None and given != value:
                        raise ConfigError(f"{flag} {given}, but the run {args.for_run} was trained on {value}")
                self.face_size, self.sample_rate = self.run.face_size, self.run.sample_rate
                self.requested = [FACES]
            else:
                self.requested = [name for _, name, _ in self.run.folders]
                for folder, name, _ in self.run.folders:
                    self.folders[name] = folder
        self.openface_dir = Path(args.openface_dir).expanduser() if args.openface_dir else None
        self.min_confidence = float(args.min_confidence)
        if OPENFACE in (self.requested or []):
            if self.openface_dir is None:
                raise ConfigError("the openface feature set needs --openface-dir (the folder of OpenFace's CSV files)")
            if not self.openface_dir.is_dir():
                raise ConfigError("--openface-dir is not a folder", self.openface_dir)
        elif self.openface_dir is not None:
            raise ConfigError("--openface-dir is given but the openface feature set is not chosen (--feature-sets)")

    def sets_for(self, info) -> tuple:
        """(feature sets this file gets, warnings) given the streams it has."""
        warnings = []
        if self.requested is None:
            sets = ([*AUDIO_SETS] if info.has_audio else []) + ([FACES] if info.has_video else [])
            if not info.has_audio:
                warnings.append("no audio stream: no audio features (egemaps, mfcc) and no waveform (audio/)")
            return sets, warnings
        sets = []
        for name in self.requested:
            if name in AUDIO_SETS and not info.has_audio:
                continue
            if name in VISUAL_SETS and not info.has_video:
                continue
            sets.append(name)
        missing_audio = [name for name in self.requested if name in AUDIO_SETS and not info.has_audio]
        missing_video = [name for name in self.requested if name in VISUAL_SETS and not info.has_video]
        if missing_audio:
            warnings.append(f"no audio stream: no audio features ({', '.join(missing_audio)})")
        if FACES in self.requested and info.has_video and not info.has_audio:
            warnings.append("no audio stream: no waveform (audio/) for raw mode")
        if missing_video:
            warnings.append(f"no video stream: no visual features ({', '.join(missing_video)})")
        return sets, warnings

    def settings(self) -> dict:
        from pipelines.media import faces, functionals

        return {
            "format_version": FORMAT_VERSION,
            "feature_sets": self.requested or "default: egemaps,mfcc, plus faces for a file with video",
            "folders": {name: self.folders[name] for name in (self.requested or [*AUDIO_SETS, FACES])},
            "hop_seconds": HOP,
            "functionals": {"window_seconds": functionals.WINDOW_SECONDS, "statistics": ["mean", "std (ddof 0)"]},
            "opensmile_sample_rate": 16000,
            "face_size": self.face_size,
            "sample_rate": self.sample_rate,
            "face_detector": {
                "cascade": faces.CASCADE,
                "detect_height": faces.DETECT_HEIGHT,
                "min_face_fraction": faces.MIN_FACE_FRACTION,
                "scale_factor": faces.SCALE_FACTOR,
                "min_neighbours": faces.MIN_NEIGHBOURS,
                "margin": faces.MARGIN,
                "full_search_every": faces.FULL_SEARCH_EVERY,
            },
            "openface_min_confidence": self.min_confidence,
        }
