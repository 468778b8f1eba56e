"""Raw inputs of raw mode: log-mel spectrograms, per-frame log-mel patches, encoded face crops.

* ExampleGen turns each recording's waveform into a log-mel spectrogram (`compute_logmel`, with
  `tf.signal`: STFT, mel filter bank, log(mel + 0.01) as VGGish does) and stores it with the
  per-frame face crops encoded as PNG (`encode_faces`).
* The input pipeline cuts the spectrogram into one patch per video frame (`logmel_patches`):
  `patch_seconds` (1 s) of spectrogram centred on the frame, so consecutive patches overlap by
  0.9 s with the 0.1 s frame hop, and decodes the faces (`decode_faces`).
* The evaluator masks the lower half of faces (`mask_lower_face`, paper Table 7).

Log-mel settings (the `raw.logmel` section of a config; `DEFAULT_LOGMEL`):
`mel_bins` (64), `window_seconds` (0.025), `hop_seconds` (0.010), `patch_seconds` (1.0),
`fmin` (125 Hz), `fmax` (7500 Hz, at most half the sample rate). The frame hop must be a whole
number of spectrogram hops.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.core.errors import ConfigError

DEFAULT_LOGMEL = {
    "mel_bins": 64,
    "window_seconds": 0.025,
    "hop_seconds": 0.010,
    "patch_seconds": 1.0,
    "fmin": 125.0,
    "fmax": 7500.0,
}
LOG_OFFSET = 0.01  # VGGish's log(mel + 0.01); log(0.01) is the value of silence
FACE_CHANNELS = ("red", "green", "blue")
# Colour of the surgical-style mask drawn over the lower half of a face.
MASK_COLOUR = (196, 214, 230)


def validate_logmel(settings, frame_hop, source="raw.logmel") -> dict:
    """Checks log-mel settings against the corpus frame hop; returns them complete (defaults filled in).

    Raises:
        ConfigError: an unknown key, a value out of range, or a frame hop that is not a whole
            number of spectrogram hops.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(DEFAULT_LOGMEL))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_LOGMEL)}")
    out = {**DEFAULT_LOGMEL, **settings}
    for key, value in out.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value < 0
            or (key != "fmin" and value == 0)
        ):
            raise ConfigError(f"{source}.{key} must be a positive number, got {value!r}")
    if int(out["mel_bins"]) != out["mel_bins"]:
        raise ConfigError(f"{source}.mel_bins must be an integer, got {out['mel_bins']!r}")
    out["mel_bins"] = int(out["mel_bins"])
    out = {key: (value if key == "mel_bins" else float(value)) for key, value in out.items()}
    ratio = float(frame_hop) / out["hop_seconds"]
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ConfigError(
            f"{source}.hop_seconds ({out['hop_seconds']:g} s) must divide the frame hop "
            f"({float(frame_hop):g} s) a whole number of times"
        )
    if out["fmin"] >= out["fmax"]:
        raise ConfigError(f"{source}.fmin ({out['fmin']:g}) must be below fmax ({out['fmax']:g})")
    return out


def patch_frames(settings) -> int:
    """Spectrogram frames per patch: round(patch_seconds / hop_seconds)."""
    return max(1, int(round(settings["patch_seconds"] / settings["hop_seconds"])))


def compute_logmel(waveform, sample_rate, settings) -> np.ndarray:
    """Log-mel spectrogram [L, mel_bins] float32 of a mono waveform (values in [-1, 1]).

    Frame j covers samples [j * hop, j * hop + window) (no padding), so its centre lies at
    j * hop_seconds + window_seconds / 2.
    """
    import tensorflow as tf

    window = max(2, int(round(settings["window_seconds"] * sample_rate)))
    hop = max(1, int(round(settings["hop_seconds"] * sample_rate)))
    fft_length = 2 ** int(math.ceil(math.log2(window)))
    signal = np.asarray(waveform, np.float32).reshape(-1)
    if len(signal) < window:
        signal = np.pad(signal, (0, window - len(signal)))
    stft = tf.signal.stft(
        signal, frame_length=window, frame_step=hop, fft_length=fft_length, window_fn=tf.signal.hann_window
    )
    fmax = min(settings["fmax"], sample_rate / 2.0)
    weights = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=settings["mel_bins"],
        num_spectrogram_bins=fft_length // 2 + 1,
        sample_rate=sample_rate,
        lower_edge_hertz=min(settings["fmin"], fmax / 2),
        upper_edge_hertz=fmax,
    )
    mel = tf.matmul(tf.abs(stft), weights)
    return np.log(mel.numpy() + LOG_OFFSET).astype(np.float32)


def logmel_patches(logmel, num_frames, frame_hop, settings):
    """Cuts [L, M] spectrogram frames into one patch per video frame: [num_frames, P, M] (TensorFlow).

    Patch i is centred on the middle of video frame i (time i * frame_hop + frame_hop / 2) and
    spans `patch_seconds`; spectrogram frames before the start or after the end of the
    recording read as silence (log(0.01)).
    """
    import tensorflow as tf

    length = patch_frames(settings)
    step = int(round(frame_hop / settings["hop_seconds"]))
    # Spectrogram frame j is centred at j * hop + window / 2: the patch of video frame i starts at
    # the frame whose centre is half a patch before the video frame's centre.
    offset = int(
        round(
            (frame_hop / 2 - settings["patch_seconds"] / 2 - settings["window_seconds"] / 2) / settings["hop_seconds"]
        )
    )
    logmel = tf.convert_to_tensor(logmel, tf.float32)
    num_frames = tf.cast(num_frames, tf.int32)
    before = max(0, -offset)
    start = max(0, offset)
    needed = (num_frames - 1) * step + length + start
    after = tf.maximum(0, needed - (tf.shape(logmel)[0] + before))
    silence = float(np.log(LOG_OFFSET))
    padded = tf.pad(logmel, [[before, after], [0, 0]], constant_values=silence)[start:]
    patches = tf.signal.frame(padded, frame_length=length, frame_step=step, axis=0)
    return patches[:num_frames]


def encode_faces(faces) -> list:
    """PNG bytes of every [H, W, 3] uint8 frame of `faces` [N, H, W, 3]."""
    import tensorflow as tf

    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be uint8 [frames, height, width, 3], got {faces.dtype} {faces.shape}")
    return [tf.io.encode_png(frame).numpy() for frame in faces]


def decode_faces(encoded, face_shape):
    """Decodes a [N] string tensor of PNG frames into [N, H, W, 3] uint8 (TensorFlow)."""
    import tensorflow as tf

    height, width, channels = (int(d) for d in face_shape)

    def decode(data):
        image = tf.io.decode_png(data, channels=channels)
        return tf.ensure_shape(image, (height, width, channels))

    return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec((height, width, channels), tf.uint8))


def mask_lower_face(faces, flags) -> np.ndarray:
    """Faces with a mask drawn over the lower half of the crop on the flagged frames (paper Table 7).

    The mask covers the rows from the middle of the crop down and the central 80% of the
    columns, in a flat light colour with a faint pleat every few rows, like a surgical mask.

    Args:
        faces: [N, H, W, 3] array (uint8 or float pixel values 0..255).
        flags: [N] bool, the frames to mask.

    Returns:
        a copy of `faces` (same dtype).
    """
    faces = np.array(faces, copy=True)
    flags = np.asarray(flags, bool)
    _, height, width, _ = faces.shape
    top = height // 2
    left, right = int(round(0.1 * width)), int(round(0.9 * width))
    patch = np.empty((height - top, right - left, 3), np.float32)
    patch[:] = MASK_COLOUR
    patch[:: max(2, height // 12)] -= 25.0  # pleats
    faces[flags, top:, left:right] = patch.astype(faces.dtype)
    return faces
