"""Decoding audio and video files with PyAV (FFmpeg inside the `av` wheel).

* `probe(path)`: which streams a file has, their rates and durations; an unreadable or corrupt file
  is a `DataError` naming it.
* `decode_audio(path, sample_rate)`: the first audio stream as mono float32 at `sample_rate`
  (FFmpeg's resampler mixes the channels down and resamples), on the file's clock (time 0 is the
  container's start, as for the video frames).
* `grid_frames(path, hop)`: the first video stream sampled on the frame grid t = k * hop: for every
  grid point, the video frame shown at that time (the last frame that starts at or before it).
  Every frame is decoded (inter-coded video needs its reference frames) but only the frames on the
  grid are handed on, so converting and analysing them costs 1/hop frames per second of video.

A stream that decodes to less than `TRUNCATION_FRACTION` of the duration its container declares is
taken for a truncated file (a `DataError`): FFmpeg reads a cut file as far as it goes without
complaint.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional

import numpy as np

from pipelines.core.errors import DataError

# A stream must decode to at least this fraction of its declared duration (else: truncated file).
TRUNCATION_FRACTION = 0.9
# A decoded stream may also fall short of its declared duration by this much (priming, rounding).
TRUNCATION_SLACK_SECONDS = 0.5


@dataclasses.dataclass
class MediaInfo:
    """What a media file holds.

    Attributes:
        path: Path.
        has_audio, has_video: bool. Whether the file has an audio / a video stream.
        duration: float or None. Seconds, as the container declares it.
        audio_rate: int or None. Sample rate of the first audio stream.
        audio_channels: int or None.
        audio_codec, video_codec: str or None.
        video_fps: float or None. The video's average frame rate.
        width, height: int or None. The video's frame size.
    """

    path: Path
    has_audio: bool
    has_video: bool
    duration: Optional[float]
    audio_rate: Optional[int] = None
    audio_channels: Optional[int] = None
    audio_codec: Optional[str] = None
    video_codec: Optional[str] = None
    video_fps: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None

    def to_dict(self) -> dict:
        fields = dataclasses.asdict(self)
        fields.pop("path")
        return fields


def _ffmpeg_errors():
    import av

    return (av.error.FFmpegError, OSError, EOFError, ValueError)


def _reason(error) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(text).rstrip(".")


def _open(path: Path):
    import av

    try:
        return av.open(str(path), "r")
    except _ffmpeg_errors() as error:
        raise DataError(
            f"cannot open the media file: {_reason(error)} (expected a complete audio or video file)", path
        ) from None


def _stream_duration(stream) -> Optional[float]:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def video_streams(container) -> list:
    """The container's moving-picture streams: not the cover art an MP3 or M4A file carries
    (an attached picture, a one-frame "video" stream)."""
    import av

    still = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    return [stream for stream in container.streams.video if not stream.disposition & still]


def probe(path) -> MediaInfo:
    """The streams of a media file; DataError when FFmpeg cannot open it or it has no audio or video."""
    path = Path(path)
    with _open(path) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        videos = video_streams(container)
        video = videos[0] if videos else None
        if audio is None and video is None:
            raise DataError("no audio or video stream in the file (expected an audio or video file)", path)
        duration = container.duration / 1e6 if container.duration is not None else None
        info = MediaInfo(path=path, has_audio=audio is not None, has_video=video is not None, duration=duration)
        if audio is not None:
            info.audio_rate = int(audio.codec_context.sample_rate or 0) or None
            info.audio_channels = int(audio.codec_context.channels or 0) or None
            info.audio_codec = audio.codec_context.name
        if video is not None:
            rate = video.average_rate or video.guessed_rate or video.base_rate
            info.video_fps = float(rate) if rate else None
            info.width, info.height = video.codec_context.width, video.codec_context.height
            info.video_codec = video.codec_context.name
    return info


def _check_complete(path: Path, kind: str, decoded: float, declared: Optional[float]) -> None:
    if declared is None or declared <= 0:
        return
    if decoded < TRUNCATION_FRACTION * declared and decoded < declared - TRUNCATION_SLACK_SECONDS:
        raise DataError(
            f"the {kind} stream decodes to {decoded:.2f} s, but the file declares {declared:.2f} s: "
            f"the file is truncated or damaged (expected a complete audio or video file)",
            path,
        )


def decode_audio(path, sample_rate: int) -> np.ndarray:
    """The first audio stream of `path` as mono float32 [samples] at `sample_rate` Hz."""
    import av

    path = Path(path)
    chunks = []
    with _open(path) as container:
        if not container.streams.audio:
            raise DataError("no audio stream in the file", path)
        stream = container.streams.audio[0]
        # Only the stream's own duration: the container's is its longest stream's (an audio track may
        # end before the video does).
        declared = _stream_duration(stream)
        start = container.start_time / 1e6 if container.start_time is not None else 0.0
        first = None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
        try:
            for frame in container.decode(stream):
                if first is None and frame.time is not None:
                    first = frame.time - start
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except _ffmpeg_errors() as error:
            raise DataError(
                f"cannot decode the audio stream: {_reason(error)} (the file may be damaged)", path
            ) from None
    signal = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    _check_complete(path, "audio", len(signal) / sample_rate, declared)
    # On the file's clock, as the video frames are: an audio stream that starts late is preceded by
    # silence, one that starts early loses its lead.
    shift = int(round((first or 0.0) * sample_rate))
    if shift > 0:
        signal = np.concatenate([np.zeros(shift, np.float32), signal])
    elif shift < 0:
        signal = signal[-shift:]
    return signal


@dataclasses.dataclass
class GridFrame:
    """One frame of the `hop` grid: its index, its grid time and the PyAV video frame shown then."""

    index: int
    time: float
    frame: object


class VideoGrid:
    """Iterates the frames of the first video stream on the grid t = k * hop (k = 0, 1, ...).

    After iteration, `count` is the number of grid frames (the grid times before the end of the
    video: last frame time + one frame duration), `duration` the video's length in seconds and
    `fps` its frame rate.
    """

    def __init__(self, path, hop: float):
        self.path = Path(path)
        self.hop = float(hop)
        self.count = 0
        self.duration = 0.0
        self.fps = None
        self.decoded_frames = 0

    def __iter__(self):
        path, hop = self.path, self.hop
        with _open(path) as container:
            videos = video_streams(container)
            if not videos:
                raise DataError("no video stream in the file", path)
            stream = videos[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else None
            declared = _stream_duration(stream) or (container.duration / 1e6 if container.duration else None)
            start = container.start_time / 1e6 if container.start_time is not None else 0.0
            previous = None
            previous_time = None
            k = 0
            try:
                for number, frame in enumerate(container.decode(stream)):
                    self.decoded_frames = number + 1
                    time = frame.time if frame.time is not None else number / (fps or 25.0)
                    time -= start
                    if previous is None:
                        previous, previous_time = frame, time
                        continue
                    # Every grid time before this frame starts shows the previous frame.
                    while k * hop < time - 1e-6:
                        yield GridFrame(k, k * hop, previous)
                        k += 1
                    previous, previous_time = frame, time
            except _ffmpeg_errors() as error:
                raise DataError(
                    f"cannot decode the video stream: {_reason(error)} (the file may be damaged)", path
                ) from None
            if previous is None:
                raise DataError("the video stream holds no frame (the file may be damaged)", path)
            frame_duration = 1.0 / fps if fps else 0.04
            end = max(previous_time, 0.0) + frame_duration
            _check_complete(path, "video", end, declared)
            last = max(int(math.ceil(end / hop - 1e-6)), 1)
            while k < last:
                yield GridFrame(k, k * hop, previous)
                k += 1
            self.count, self.duration, self.fps = k, end, fps
