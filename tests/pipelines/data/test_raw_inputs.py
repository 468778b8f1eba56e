"""Raw inputs: log-mel patches around each frame, PNG face crops, the lower-face mask."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.components import input_pipeline
from pipelines.core.errors import ConfigError
from pipelines.data import corrupt, raw_inputs

SETTINGS = raw_inputs.validate_logmel({"mel_bins": 4, "hop_seconds": 0.02, "patch_seconds": 0.5}, 0.1)


def test_patches_are_centred_on_their_frames_and_pad_with_silence():
    frames, hop = 7, 0.1
    length = raw_inputs.patch_frames(SETTINGS)
    spectrogram = np.tile(np.arange(30, dtype=np.float32)[:, None], (1, 4))  # value = spectrogram frame index
    patches = raw_inputs.logmel_patches(spectrogram, frames, hop, SETTINGS).numpy()
    assert patches.shape == (frames, length, 4) and length == 25
    silence = np.float32(np.log(raw_inputs.LOG_OFFSET))
    step = int(round(hop / SETTINGS["hop_seconds"]))
    for i, patch in enumerate(patches):
        inside = patch[:, 0] != silence
        index = patch[inside, 0]
        assert (np.diff(index) == 1).all()  # consecutive spectrogram frames
        first = index[0] - np.flatnonzero(inside)[0]  # the (possibly padded) first frame of the patch
        assert (
            first
            == patches[0, :, 0][patches[0, :, 0] != silence][0]
            - np.flatnonzero(patches[0, :, 0] != silence)[0]
            + i * step
        )
        # Centre of the patch's spectrogram frames vs centre of the video frame, within one hop.
        centres = (first + np.arange(length)) * SETTINGS["hop_seconds"] + SETTINGS["window_seconds"] / 2
        assert abs(centres.mean() - (i * hop + hop / 2)) <= SETTINGS["hop_seconds"]
        # Frames outside the recording (index < 0 or >= 30) read as silence.
        expected_inside = (first + np.arange(length) >= 0) & (first + np.arange(length) < 30)
        np.testing.assert_array_equal(inside, expected_inside)


def test_logmel_of_a_tone_peaks_at_its_mel_bin():
    rate = 8000
    t = np.arange(rate) / rate
    settings = raw_inputs.validate_logmel({"mel_bins": 16, "fmax": 4000.0}, 0.1)
    low = raw_inputs.compute_logmel(0.5 * np.sin(2 * np.pi * 300 * t), rate, settings)
    high = raw_inputs.compute_logmel(0.5 * np.sin(2 * np.pi * 2500 * t), rate, settings)
    frames = 1 + (rate - int(0.025 * rate)) // int(0.01 * rate)
    assert low.shape == (frames, 16) and low.dtype == np.float32
    assert np.argmax(low.mean(axis=0)) < np.argmax(high.mean(axis=0))
    silent = raw_inputs.compute_logmel(np.zeros(rate), rate, settings)
    np.testing.assert_allclose(silent, np.log(raw_inputs.LOG_OFFSET), atol=1e-6)


def test_validate_logmel():
    assert raw_inputs.validate_logmel(None, 0.1) == raw_inputs.DEFAULT_LOGMEL
    with pytest.raises(ConfigError, match="must divide the frame hop"):
        raw_inputs.validate_logmel({"hop_seconds": 0.03}, 0.1)
    with pytest.raises(ConfigError, match="unknown key.*bins"):
        raw_inputs.validate_logmel({"bins": 4}, 0.1)


def test_png_round_trip_is_exact():
    faces = np.random.default_rng(0).integers(0, 256, (5, 12, 10, 3)).astype(np.uint8)
    encoded = raw_inputs.encode_faces(faces)
    assert all(data.startswith(b"\x89PNG") for data in encoded)
    np.testing.assert_array_equal(raw_inputs.decode_faces(tf.constant(encoded), (12, 10, 3)).numpy(), faces)


def test_face_mask_corruption_covers_the_lower_half_of_half_the_frames(raw_artifacts):
    recordings = list(input_pipeline.iter_recordings(raw_artifacts, "devel"))
    out = corrupt.corrupt_recordings(recordings, "visual", 0.5, mode="face_mask", seed=1)
    for before, after in zip(recordings, out):
        flags = after["visual_corrupted_eval"]
        n = len(flags)
        assert flags.sum() == round(0.5 * n)
        assert np.count_nonzero(np.diff(flags.astype(int)) == 1) + int(flags[0]) <= 4  # consecutive blocks
        faces, masked = before["visual"].astype(np.float32), after["visual"]
        half = faces.shape[1] // 2
        np.testing.assert_array_equal(masked[~flags], faces[~flags])
        np.testing.assert_array_equal(masked[:, :half], faces[:, :half])  # eyes untouched
        colour = np.asarray(raw_inputs.MASK_COLOUR, np.float32)
        centre = masked[flags, half + 1, faces.shape[2] // 2]
        np.testing.assert_array_equal(centre, np.broadcast_to(colour, centre.shape))
    with pytest.raises(ConfigError, match="face_mask needs the face crops"):
        corrupt.corrupt_recordings(recordings, "audio", 0.5, mode="face_mask")
