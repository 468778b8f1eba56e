"""Real media made on the spot for the extraction tests and benchmark (nothing is downloaded).

* A talking head: the photograph of Grace Hopper that matplotlib ships as sample data
  (`mpl-data/sample_data/grace_hopper.jpg`, a real frontal face), moved and scaled a little per
  frame over a plain background, 25 fps, with a voiced audio track (a harmonic tone with vibrato
  and a syllable-like amplitude envelope), encoded with PyAV (H.264 + AAC in MP4).
* A scene without a face (smooth gradients and moving blocks), a video without an audio stream,
  an audio-only WAV, and a truncated copy of a file.
"""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np


def face_photo() -> np.ndarray:
    """The RGB uint8 photograph [600, 512, 3] of a real face that matplotlib ships."""
    import matplotlib.cbook
    from PIL import Image

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def voice(duration: float, sample_rate: int, seed: int = 0, f0: float = 140.0) -> np.ndarray:
    """A voiced mono signal in [-1, 1]: harmonics of a wavering pitch under a 4 Hz syllable envelope
    with short pauses, plus faint noise."""
    rng = np.random.default_rng(seed)
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    pitch = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * 0.3 * t) + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    tone = sum(k**-1.2 * np.sin(k * phase) for k in range(1, 16) if k * f0 * 1.1 < 0.45 * sample_rate)
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 2 * np.pi)), 0.0, None) ** 0.7
    pauses = (np.sin(2 * np.pi * 0.25 * t) > -0.7).astype(float)
    signal = 0.25 * tone * syllables * pauses + rng.normal(0, 0.002, n)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def write_wav(path, signal, sample_rate: int, channels: int = 1) -> Path:
    """16-bit PCM WAV; `channels` > 1 repeats the signal (a second channel at half level)."""
    path = Path(path)
    data = np.asarray(signal, np.float64)
    if channels > 1:
        data = np.stack([data] + [0.5 * data] * (channels - 1), axis=1)
    pcm = np.round(np.clip(data, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())
    return path


def talking_head_frames(n: int, width: int, height: int, seed: int = 0):
    """Frames [H, W, 3] uint8 of the face photo moving and scaling slightly over a grey background."""
    import cv2

    rng = np.random.default_rng(seed)
    photo = face_photo()
    base = 0.8 * height / photo.shape[0]
    background = np.full((height, width, 3), 90, np.uint8)
    background[:, :, 2] = 110
    for i in range(n):
        scale = base * (1.0 + 0.06 * np.sin(2 * np.pi * i / 50.0))
        face = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frame = background.copy()
        fh, fw = face.shape[:2]
        x = int((width - fw) / 2 + 0.08 * width * np.sin(2 * np.pi * i / 70.0) + rng.normal(0, 1))
        y = int((height - fh) / 2 + 0.04 * height * np.cos(2 * np.pi * i / 60.0))
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + fw, width), min(y + fh, height)
        frame[y0:y1, x0:x1] = face[y0 - y : y1 - y, x0 - x : x1 - x]
        yield frame


def faceless_frames(n: int, width: int, height: int, seed: int = 1):
    """Frames of a scene without a face: a smooth gradient with a few moving coloured blocks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 200 // width, yy * 200 // height, np.full_like(xx, 120)], axis=-1).astype(np.uint8)
    blocks = [(rng.uniform(0, 1, 2), rng.uniform(0.05, 0.2), rng.integers(0, 255, 3)) for _ in range(4)]
    for i in range(n):
        frame = base.copy()
        for (cx, cy), size, colour in blocks:
            x = int(((cx + 0.01 * i) % 1.0) * width)
            y = int(cy * height)
            s = int(size * height)
            frame[y : y + s, x : x + s] = colour
        yield frame


def write_video(
    path,
    duration: float,
    *,
    fps: int = 25,
    width: int = 320,
    height: int = 240,
    face: bool = True,
    audio: bool = True,
    sample_rate: int = 44100,
    codec: str = "libx264",
    seed: int = 0,
) -> Path:
    """An MP4 (or any container PyAV picks from the suffix) with a video stream and, when `audio`,
    an AAC voice track."""
    import av

    path = Path(path)
    n = int(round(duration * fps))
    frames = talking_head_frames(n, width, height, seed) if face else faceless_frames(n, width, height, seed)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "ultrafast", "tune": "zerolatency"}
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            signal = voice(duration, sample_rate, seed)
            block = 1024
            for start in range(0, len(signal), block):
                chunk = signal[start : start + block]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = start
                frame.time_base = Fraction(1, sample_rate)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


def truncate(source, target, fraction: float = 0.5) -> Path:
    """A copy of `source` cut after `fraction` of its bytes."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)
