"""The tf.data input pipeline: ExampleGen's shards -> batches in the model's input contract.

Training (`training=True`): shards are read in parallel (shuffled file order, `interleave`),
parsed, cut into windows of `window_seconds` every `window_hop_seconds` (default: half a window),
augmented (`pipelines.data.augment`), shuffled, batched and prefetched. Window starts are 0, hop,
2 hop, ... while the window fits, plus one window ending on the last frame when the hop does not
land there, so every frame is seen (with a hop of at most a window) and windows are padded only
when a recording is shorter than a window (zero features, mask 0 on the padded frames; a window
always holds real frames).

Evaluation (`training=False`): one element per whole recording, in shard order, padded batches,
never augmented. An unlabelled partition yields features only.

Every element is `(features, targets)`: features `audio` [B, T, D_a], `visual` [B, T, D_v],
`mask` [B, T] (float32, 1 = real frame), `audio_present`, `visual_present` [B, T] (float32, 1 = the
modality's features are real on that frame; all ones unless the corpus marked frames absent or
augmentation dropped a modality); targets `valence`, `arousal` [B, T] (float32, or int32
class ids 0/1/2 with `task="classification"`; sequence-level labels broadcast to every frame).
The features are raw: the normalisation fitted by `pipelines.transform` is applied inside the
model.

Raw corpora (manifest `"mode": "raw"`): `visual` is [B, T, H, W, 3] float32 face crops (pixel
values 0..255, decoded from the stored PNGs) and `audio` [B, T, P, M] float32 log-mel patches,
one per frame (`pipelines.data.raw_inputs.logmel_patches`). Training applies the raw augmentations
(`pipelines.data.raw_augment`: face flip/zoom/translation/rotation, SpecAugment) instead of the
feature ones; padded frames are zero.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from cold_keras.names import TASKS
from pipelines.core.errors import ConfigError, DataError
from pipelines.data import augment as augment_lib
from pipelines.data import features, records
from pipelines.data.labels import class_weights, to_classes  # noqa: F401 (also input_pipeline.X)
from pipelines.data.records import is_raw, iter_recordings, label_arrays, parse_spec  # noqa: F401 (also input_pipeline.X)

OVERSAMPLE_MODES = ("joint", features.VALENCE, features.AROUSAL)


# ---------------------------------------------------------------------------------------------
# Reading


def _records(paths, *, training, seed, reshuffle=True):
    files = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=reshuffle)
    return files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=max(1, min(len(paths), 8)),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training or seed is not None,
    )


# ---------------------------------------------------------------------------------------------
# Windows


def window_frames(info, window_seconds, window_hop_seconds):
    """(window length, window hop) in frames for a partition's hop."""
    if window_seconds is None or not window_seconds > 0:
        raise ConfigError(f"window_seconds must be positive, got {window_seconds!r}")
    if window_hop_seconds is not None and not window_hop_seconds > 0:
        raise ConfigError(f"window_hop_seconds must be positive, got {window_hop_seconds!r}")
    hop = float(info["hop"])
    window = max(1, int(round(window_seconds / hop)))
    step = max(1, window // 2) if window_hop_seconds is None else max(1, int(round(window_hop_seconds / hop)))
    return window, step


def window_starts(num_frames: int, window: int, step: int) -> np.ndarray:
    """First frame of each window of a recording (NumPy twin of the pipeline's windowing)."""
    last = max(num_frames - window, 0)
    starts = np.arange(0, last + 1, step)
    if starts[-1] < last:
        starts = np.append(starts, last)
    return starts


def _window_starts_tf(num_frames, window, step):
    last = tf.maximum(num_frames - window, 0)
    starts = tf.range(0, last + 1, step)
    return tf.cond(starts[-1] < last, lambda: tf.concat([starts, [last]], 0), lambda: starts)


def windows_of(example, window, step):
    """Cuts one parsed recording into windows; returns a dict of stacked [K, window, ...] tensors.

    Keys: `audio`, `visual`, `mask`, the presence flags when parsed, and `valence`/`arousal`
    when labelled, plus `start` [K]. Padded frames are zero (presence 0 too), except string values
    (a raw recording's encoded faces), which repeat the last frame so that they decode; zero them
    after decoding.
    """
    n = tf.cast(tf.shape(example[features.AUDIO])[0], tf.int32)
    starts = _window_starts_tf(n, window, step)
    index = starts[:, None] + tf.range(window)[None, :]
    valid = index < n
    index = tf.minimum(index, n - 1)
    mask = tf.cast(valid, tf.float32)
    out = {features.MASK: mask, "start": starts}
    for key in features.MODALITIES + tuple(features.PRESENT_KEYS.values()) + features.LABEL_KEYS:
        if key not in example:
            continue
        values = tf.gather(example[key], index)
        if values.dtype == tf.string:
            out[key] = values
            continue
        valid_b = tf.reshape(valid, tf.concat([tf.shape(valid), tf.ones([tf.rank(values) - 2], tf.int32)], 0))
        out[key] = tf.where(valid_b, values, tf.zeros_like(values))
    return out


def _dominant_class(labels, mask):
    counts = tf.reduce_sum(tf.one_hot(to_classes(labels), features.NUM_CLASSES) * mask[:, None], axis=0)
    return tf.cast(tf.argmax(counts), tf.int32)


def _dominant_class_np(labels, mask):
    counts = np.bincount(to_classes(labels)[mask > 0], minlength=features.NUM_CLASSES)
    return int(np.argmax(counts))


def _stratum(valence_class, arousal_class, mode):
    if mode == features.VALENCE:
        return valence_class
    if mode == features.AROUSAL:
        return arousal_class
    return valence_class * features.NUM_CLASSES + arousal_class


def window_strata(artifact_dir, partition, window, step, mode, label_delay_frames=0):
    """Stratum (dominant class) of every training window, computed in NumPy from the labels."""
    from pipelines.data import label_delay

    strata = []
    for valence, arousal in label_delay.delayed_label_arrays(label_arrays(artifact_dir, partition), label_delay_frames):
        info_n = len(valence)
        for start in window_starts(info_n, window, step):
            stop = min(start + window, info_n)
            mask = np.ones(stop - start)
            strata.append(
                _stratum(
                    _dominant_class_np(valence[start:stop], mask), _dominant_class_np(arousal[start:stop], mask), mode
                )
            )
    return np.asarray(strata, np.int64)


def _oversample_mode(oversample):
    if oversample is False or oversample is None:
        return None
    if oversample is True:
        return "joint"
    if oversample in OVERSAMPLE_MODES:
        return oversample
    raise ConfigError(f"oversample must be False, True or one of {', '.join(OVERSAMPLE_MODES)}, got {oversample!r}")


def count_batches(
    artifact_dir,
    partition,
    *,
    batch_size=4,
    window_seconds=30.0,
    window_hop_seconds=None,
    training=True,
    label_delay_frames=0,
):
    """Batches per pass of `make_dataset` with the same arguments (from the manifest, no reading)."""
    info = records.partition_info(artifact_dir, partition)
    lengths = [n - label_delay_frames for _, n in info["recordings"] if n > label_delay_frames]
    if not training:
        return math.ceil(len(lengths) / batch_size)
    window, step = window_frames(info, window_seconds, window_hop_seconds)
    total = sum(len(window_starts(n, window, step)) for n in lengths)
    return math.ceil(total / batch_size)


# ---------------------------------------------------------------------------------------------
# Datasets


def _split(element, task, labelled):
    inputs = {key: element[key] for key in features.INPUT_KEYS}
    if not labelled:
        return inputs
    targets = {}
    for key in features.LABEL_KEYS:
        targets[key] = to_classes(element[key]) if task == "classification" else element[key]
    return inputs, targets


# The pipeline's functions hold no Python control flow on tensors, so AutoGraph has nothing to
# convert in them; left on, it transpiles every function they call (the manifest reading and the
# option checks included) each time a dataset is built: about 3 CPU-s per training run.
@tf.autograph.experimental.do_not_convert
def make_dataset(
    artifact_dir,
    partition,
    *,
    training,
    batch_size=4,
    window_seconds=30.0,
    window_hop_seconds=None,
    task="regression",
    augment=None,
    oversample=False,
    shuffle_buffer=128,
    seed=None,
    raw_augment=None,
    label_delay_frames=0,
    corruption_targets=False,
    epoch=None,
    strata=None,
    faces=None,
):
    """A tf.data pipeline over one partition (module docstring).

    Args:
        artifact_dir: str or Path. ExampleGen's output folder.
        partition: str. `train`, `devel` or `test`.
        training: bool. Windows, augmentation, shuffling (True) or whole recordings (False).
        batch_size: int. Defaults to 4.
        window_seconds: float. Training window length. Defaults to 30.
        window_hop_seconds: optional float. Distance between window starts. Defaults to half a
            window.
        task: `regression` (float targets) or `classification` (int32 class ids).
        augment: optional dict (`pipelines.data.augment`); applied with `training=True` only and
            ignored otherwise. `noise_std` is in units of the train standard deviation from
            `transform.json` (run `pipelines.transform` first).
        oversample: False, True (strata = the dominant (valence, arousal) class pair of a
            window), `valence` or `arousal` (strata = that dimension's dominant class). Training
            draws windows from every stratum present with equal probability, one pass as long as
            the plain pass (paper section 5.1: minority classes oversampled).
        shuffle_buffer: int. Windows in the shuffle buffer. Defaults to 128 (raw corpora: at most 32,
            the windows hold spectrogram patches).
        seed: optional int. Makes file order, shuffling and sampling reproducible.
        raw_augment: optional dict (`pipelines.data.raw_augment`) for raw corpora; applied with
            `training=True` only. Raw corpora take no feature `augment`.
        label_delay_frames: int >= 0. Pair the features of frame t with the labels of frame t + D
            (`pipelines.data.label_delay`): the last D frames of a recording are left out, recordings of
            at most D frames are skipped. Per-frame labels only. Defaults to 0.
        corruption_targets: bool. Training only: add the frames the augmentation's corruption
            replaced to the targets, as `audio_corruption_target` / `visual_corruption_target`
            (float32 [B, T]; all 0 without `corrupt_prob`), for `model.lambda_reliability`.
        epoch: optional int or int64 scalar tensor. Training only: the pipeline is then this one epoch
            of the run, a pure function of (`seed`, `epoch`): the file order, the shuffle, the
            oversampling draws and every augmentation draw (stateless, seeded per window) derive from
            `epoch_seed(seed, epoch)`, so an epoch comes out the same whenever it is built, e.g.
            after a resume (`epoch_stream`). Without it, each pass over the dataset is reshuffled.
        strata: optional int array. With `oversample`: the windows' strata (`window_strata`), computed
            beforehand, e.g. where the pipeline is built inside a traced function (`epoch_stream`).
        faces: optional `raw_augment.FaceAugmenter` of a raw corpus's `raw_augment`, built beforehand
            for the same reason (its Keras layers hold variables).

    Returns:
        tf.data.Dataset of (features, targets), or of features alone for an unlabelled partition
        with `training=False`.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    info, paths = records.shard_paths(artifact_dir, partition)
    labelled = bool(info["labelled"])
    parse = records.parser(info)
    raw = is_raw(info)
    if label_delay_frames:
        parse = _delayed_parser(parse, info, int(label_delay_frames), artifact_dir)
    if not training:
        dataset = _records(paths, training=False, seed=seed).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        if label_delay_frames:
            dataset = dataset.filter(lambda e: tf.shape(e[features.AUDIO])[0] > 0)
        if raw:
            dataset = dataset.map(
                lambda e: {**e, features.VISUAL: tf.cast(records.decode_faces(e[features.VISUAL], info), tf.float32)},
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        dataset = dataset.map(
            lambda e: _split({**e, features.MASK: tf.ones(tf.shape(e[features.AUDIO])[:1])}, task, labelled),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return _batched(dataset, batch_size)

    if not labelled:
        raise DataError(
            f"cannot train on partition {partition!r}: it has no labels", Path(artifact_dir) / records.MANIFEST
        )
    config = augment_lib.validate_config(augment)
    if raw and augment_lib.is_active(config):
        raise ConfigError(
            "training.augment (feature noise, time masks, modality dropout) applies to feature "
            "corpora; raw mode augments with raw.augment (pipelines.data.raw_augment)"
        )
    if raw:
        shuffle_buffer = min(shuffle_buffer, 32)
    epochwise = epoch is not None
    if epochwise:
        seed = epoch_seed(0 if seed is None else seed, epoch)
    mode = _oversample_mode(oversample)
    window, step = window_frames(info, window_seconds, window_hop_seconds)
    scale = center = None
    if config["noise_std"] or config["corrupt_prob"]:
        from pipelines.components import transform

        norms = transform.load_normalization(artifact_dir)
        scale = {m: np.sqrt(norms[m][1]).astype(np.float32) for m in features.MODALITIES}
        center = {m: np.asarray(norms[m][0], np.float32) for m in features.MODALITIES}

    def keep(element):
        keys = features.MODALITIES + tuple(features.PRESENT_KEYS.values()) + features.LABEL_KEYS
        return {key: element[key] for key in keys}

    def window_stream(stream_seed):
        stream = _records(paths, training=True, seed=stream_seed, reshuffle=not epochwise).map(
            lambda e: keep(parse(e)), num_parallel_calls=tf.data.AUTOTUNE
        )
        if label_delay_frames:
            stream = stream.filter(lambda e: tf.shape(e[features.AUDIO])[0] > 0)
        return stream.flat_map(lambda e: tf.data.Dataset.from_tensor_slices(windows_of(e, window, step)))

    if mode is None:
        dataset = window_stream(seed)
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=not epochwise)
    else:
        if strata is None:
            strata = window_strata(artifact_dir, partition, window, step, mode, int(label_delay_frames))
        present = np.unique(strata)
        streams = []
        for k in present.tolist():
            stream_seed = None if seed is None else seed + 1 + k
            stream = window_stream(stream_seed)

            def in_stratum(element, k=k):
                v = _dominant_class(element[features.VALENCE], element[features.MASK])
                a = _dominant_class(element[features.AROUSAL], element[features.MASK])
                return tf.equal(_stratum(v, a, mode), k)

            stream = stream.filter(in_stratum)
            stream = stream.shuffle(max(1, shuffle_buffer // len(present)), seed=stream_seed).repeat()
            streams.append(stream)
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=[1.0 / len(streams)] * len(streams), seed=seed
        ).take(len(strata))

    if corruption_targets and raw:
        raise ConfigError(
            "model.lambda_reliability needs the feature corruption augmentation (training.augment); "
            "raw corpora do not have it"
        )
    augmented = augment_lib.is_active(config) or corruption_targets or raw
    if epochwise and augmented:
        # Each window's augmentation draws from its own seed: (the epoch's seed, its place in the epoch).
        dataset = dataset.enumerate().map(
            lambda index, element: {**element, WINDOW_SEED: tf.stack([tf.cast(seed, tf.int64), index])}
        )
    if augment_lib.is_active(config) or corruption_targets:

        def apply(element):
            inputs = augment_lib.augment_window(
                {key: element[key] for key in features.INPUT_KEYS},
                config,
                scale,
                center,
                targets=corruption_targets,
                hop=float(info["hop"]),
                seed=element.get(WINDOW_SEED),
            )
            return {**element, **inputs}

        dataset = dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    if corruption_targets:

        def split_with_targets(element):
            inputs, targets = _split(element, task, True)
            flags = {key: tf.cast(element[key], tf.float32) for key in augment_lib.CORRUPTION_TARGET_KEYS.values()}
            return inputs, {**targets, **flags}

        dataset = dataset.map(split_with_targets, num_parallel_calls=tf.data.AUTOTUNE)
        return _batched(dataset, batch_size)
    if raw:
        dataset = dataset.map(
            _raw_window_function(info, raw_augment, None if epochwise else seed, faces),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.map(lambda e: _split(e, task, True), num_parallel_calls=tf.data.AUTOTUNE)
    return _batched(dataset, batch_size)


PREFETCH_BATCHES = 8  # fixed: the datasets are not autotuned (`records.untuned`)


def _batched(dataset, batch_size):
    return records.untuned(dataset.padded_batch(batch_size).prefetch(PREFETCH_BATCHES))


WINDOW_SEED = "window_seed"  # an epoch-wise training window's augmentation seed (dropped by `_split`)


def epoch_seed(seed, epoch):
    """The seed of one epoch's file order, shuffle, sampling and augmentation (ints or int64 tensors)."""
    return (seed * 1_000_003 + (epoch + 1) * 7_919) % 2_147_483_647


def epoch_stream(artifact_dir, partition, *, start_epoch, start_step, steps_per_epoch, batch_size=4, **kwargs):
    """The training batches of a run from step `start_step` of epoch `start_epoch` on, endlessly.

    Epoch e is `make_dataset(..., training=True, epoch=e)` (a pure function of the seed and e),
    cut or cycled to exactly `steps_per_epoch` batches, so the batches of an epoch, and where each
    step of it starts, never depend on when the stream was started: a run resumed at (epoch, step)
    sees the same batches from there on as the uninterrupted run. Pass it to `fit` with
    `steps_per_epoch`. `kwargs` are `make_dataset`'s (the seed among them).
    """
    steps = int(steps_per_epoch)
    if steps < 1:
        raise ConfigError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")

    info = records.partition_info(artifact_dir, partition)
    if is_raw(info) and kwargs.get("faces") is None:  # Keras layers: built before the traced function
        from pipelines.data import raw_augment as raw_augment_lib

        config = raw_augment_lib.validate_config(kwargs.get("raw_augment"))
        kwargs["faces"] = raw_augment_lib.FaceAugmenter(config, info["visual_shape"])
    mode = _oversample_mode(kwargs.get("oversample", False))
    if mode is not None and kwargs.get("strata") is None:  # read in NumPy, so before the traced function
        window, step = window_frames(info, kwargs.get("window_seconds", 30.0), kwargs.get("window_hop_seconds"))
        kwargs["strata"] = window_strata(
            artifact_dir, partition, window, step, mode, int(kwargs.get("label_delay_frames", 0))
        )

    @tf.autograph.experimental.do_not_convert
    def one_epoch(epoch):
        # tf.data's seed helper compares a tensor seed with 0 when the global seed is 0 (e.g.
        # `keras.utils.set_random_seed(0)`), which fails in this traced function: its graph's own
        # seed is moved off 0. The epoch stays a pure function of the seeds.
        graph = tf.compat.v1.get_default_graph()
        if graph.seed is not None and graph.seed % 2_147_483_647 == 0:
            graph.seed = 1
        dataset = make_dataset(artifact_dir, partition, training=True, batch_size=batch_size, epoch=epoch, **kwargs)
        return dataset.repeat().take(steps)

    stream = tf.data.Dataset.range(int(start_epoch), np.iinfo(np.int64).max).flat_map(one_epoch)
    return records.untuned(stream.skip(int(start_step)).prefetch(PREFETCH_BATCHES))


def _delayed_parser(parse, info, frames, artifact_dir):
    """`parse` followed by the label-delay pairing; a recording of at most `frames` frames comes out empty."""
    from pipelines.data import label_delay

    if frames < 0:
        raise ConfigError(f"the label delay must be >= 0 frames, got {frames}")
    if info["labelled"] and info["sequence_level"]:
        raise ConfigError(
            "a label delay applies to per-frame labels; this corpus has one label per utterance",
            Path(artifact_dir) / records.MANIFEST,
        )

    def delayed(serialized):
        return label_delay.delay_example(parse(serialized), frames)

    return delayed


def _raw_window_function(info, raw_augment, seed, faces=None):
    """Decodes a raw training window's faces, augments both modalities, zeroes the padded frames."""
    from pipelines.data import raw_augment as raw_augment_lib

    config = raw_augment_lib.validate_config(raw_augment)
    if faces is None:
        faces = raw_augment_lib.FaceAugmenter(config, info["visual_shape"], seed=seed)
    warp, freq, time = raw_augment_lib.spec_parameters(config, info["audio_shape"])

    def apply(element):
        mask = element[features.MASK]
        window_seed = element.get(WINDOW_SEED)
        visual = tf.cast(records.decode_faces(element[features.VISUAL], info), tf.float32)
        visual = faces(visual, seed=window_seed) * mask[:, None, None, None]
        audio = raw_augment_lib.spec_augment(element[features.AUDIO], warp, freq, time, seed=window_seed)
        audio = audio * mask[:, None, None]
        return {**element, features.VISUAL: visual, features.AUDIO: audio}

    return apply
