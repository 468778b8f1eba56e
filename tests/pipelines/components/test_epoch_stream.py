"""The trainer's epoch-wise input stream: every epoch a pure function of (seed, epoch), so a run
resumed at (epoch, step) sees exactly the batches of the uninterrupted run from there on."""

import numpy as np
import pytest

from pipelines.components import example_gen, input_pipeline, transform
from tests.pipelines.example_gen_helpers import make_corpus, make_recordings

OPTIONS = dict(batch_size=2, window_seconds=2.5, window_hop_seconds=1.0, seed=5)
AUGMENT = {"noise_std": 0.1, "time_mask_frames": 2, "modality_dropout_prob": 0.5, "corrupt_prob": 0.5}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    out = tmp_path_factory.mktemp("stream") / "artifacts"
    example_gen.run(make_corpus(make_recordings(seed=7)), out, progress=False, num_shards=2)
    transform.run(out)
    return out


def _batches(dataset, count):
    out = []
    for features, targets in dataset.take(count).as_numpy_iterator():
        out.append({**features, **{f"target_{k}": v for k, v in targets.items()}})
    return out


def _same(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"augment": AUGMENT}, {"oversample": True}, {"augment": AUGMENT, "corruption_targets": True}],
    ids=["plain", "augmented", "oversampled", "corruption-targets"],
)
def test_a_stream_started_at_any_step_continues_the_uninterrupted_one(artifacts, options):
    steps = input_pipeline.count_batches(
        artifacts, "train", **{k: OPTIONS[k] for k in ("batch_size", "window_seconds", "window_hop_seconds")}
    )
    kwargs = {**OPTIONS, **options, "steps_per_epoch": steps}
    straight = _batches(
        input_pipeline.epoch_stream(artifacts, "train", start_epoch=0, start_step=0, **kwargs), 3 * steps
    )
    # epochs differ from each other (reshuffled, augmented anew) ...
    assert not _same(straight[:steps], straight[steps : 2 * steps])
    # ... and each is the same whenever the stream is built: mid-epoch, at an epoch boundary, later epochs
    for epoch, step in ((0, 3), (1, 0), (1, steps - 1), (2, 1)):
        resumed = input_pipeline.epoch_stream(artifacts, "train", start_epoch=epoch, start_step=step, **kwargs)
        start = epoch * steps + step
        assert _same(_batches(resumed, 3 * steps - start), straight[start:]), (epoch, step)


def test_an_epoch_holds_every_window_once(artifacts):
    plain = input_pipeline.make_dataset(artifacts, "train", training=True, **OPTIONS)
    epoch = input_pipeline.make_dataset(artifacts, "train", training=True, epoch=4, **OPTIONS)

    def windows(dataset):
        return sorted(
            row.tobytes()
            for features, _ in dataset.as_numpy_iterator()
            for row in features["audio"].reshape(features["audio"].shape[0], -1)
        )

    assert windows(plain) == windows(epoch)


def test_raw_windows_are_augmented_the_same_after_a_resume(raw_artifacts):
    from pipelines.data import raw_augment

    kwargs = dict(batch_size=2, window_seconds=1.0, window_hop_seconds=0.5, seed=2, raw_augment=raw_augment.PAPER)
    steps = input_pipeline.count_batches(
        raw_artifacts, "train", batch_size=2, window_seconds=1.0, window_hop_seconds=0.5
    )
    straight = _batches(
        input_pipeline.epoch_stream(
            raw_artifacts, "train", start_epoch=0, start_step=0, steps_per_epoch=steps, **kwargs
        ),
        2 * steps,
    )
    resumed = input_pipeline.epoch_stream(
        raw_artifacts, "train", start_epoch=1, start_step=1, steps_per_epoch=steps, **kwargs
    )
    assert _same(_batches(resumed, steps - 1), straight[steps + 1 :])
    assert not _same(straight[:steps], straight[steps:])
