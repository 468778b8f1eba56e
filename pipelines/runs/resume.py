"""Continuing an interrupted run: `fit_resuming` is `model.fit` that starts where the run's last backup
(`pipelines.runs.backup.StepBackup`) left off, inside an epoch too, and says from which epoch and step.
"""

from __future__ import annotations

from pipelines.runs.checks import resume_point_of as resume_point


def fit_resuming(
    model,
    train_ds,
    *,
    epochs,
    steps_per_epoch,
    repeated,
    backup,
    callbacks,
    print_fn=print,
    epoch_line=None,
    **fit_kwargs,
):
    """`model.fit` that continues from `backup`'s folder, in-epoch backups included.

    A backup taken inside epoch e after s steps first trains the remaining `steps_per_epoch - s`
    steps of epoch e, then epochs e+1.. as usual; everything `StepBackup` saved is put back, so
    with `train_ds` a stream the run goes on exactly as it would have without the interruption.
    Prints from which epoch and step the run continues.

    Args:
        model: compiled keras.Model.
        train_ds: a callable `(epoch, step) -> tf.data.Dataset` of the training batches from step
            `step` of epoch `epoch` on, every epoch `steps_per_epoch` batches that depend on the
            epoch only (`training_setup.TrainingInputs.train_stream`); or a tf.data.Dataset of one
            epoch (or repeated, with `repeated=True`), whose windows then come in a freshly shuffled
            order after a resume.
        epochs: int. Total epochs.
        steps_per_epoch: int. Steps of a full epoch.
        repeated: bool. A dataset `train_ds` repeats forever (fit then needs `steps_per_epoch`).
        backup: StepBackup (also in `callbacks`).
        callbacks: list of callbacks for both fits.
        epoch_line: optional EpochLine (also in `callbacks`).
        **fit_kwargs: passed to `model.fit` (validation_data, verbose, ...).
    """
    stream = train_ds if callable(train_ds) else None

    def data(epoch, step):
        """(dataset, steps_per_epoch for fit) from step `step` of epoch `epoch`."""
        if stream is not None:
            return stream(epoch, step), steps_per_epoch - step
        if repeated:
            return train_ds, steps_per_epoch - step
        return train_ds.skip(step), None

    point = resume_point(backup.backup_dir)
    backup.print_fn = print_fn
    backup.steps_per_epoch = steps_per_epoch
    start = 0
    if point is not None:
        epoch, step = point
        start = epoch
        if epoch >= epochs:
            print_fn(f"resuming: the backup is at the end of epoch {epoch}; nothing left to train")
        elif step and step < steps_per_epoch:
            backup.announce = (
                f"resuming epoch {epoch + 1}/{epochs} at step {step + 1}/{steps_per_epoch} from the "
                f"backup in {backup.backup_dir} (the training state after step {step})"
            )
            backup.step_offset = step
            if epoch_line is not None:
                epoch_line.step_offset = step
            dataset, steps = data(epoch, step)
            model.fit(
                dataset,
                epochs=epoch + 1,
                initial_epoch=epoch,
                steps_per_epoch=steps,
                callbacks=callbacks,
                **fit_kwargs,
            )
            if getattr(model, "stop_training", False):
                return
            start = epoch + 1
        elif epoch > 0:
            backup.announce = f"resuming after epoch {epoch}/{epochs} from the backup in {backup.backup_dir}"
    dataset, steps = data(min(start, epochs), 0)
    model.fit(
        dataset,
        epochs=epochs,
        steps_per_epoch=steps if (stream is not None or repeated) else None,
        callbacks=callbacks,
        **fit_kwargs,
    )
