"""Training: the shared set-up, the trainer, the tuner, the learning-rate finder, the callbacks and
the collapse detector."""
