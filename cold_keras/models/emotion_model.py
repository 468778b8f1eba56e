"""A functional model whose optional inputs (the presence flags) may be left out of its input dict."""

import keras


@keras.saving.register_keras_serializable(package="cold_keras")
class EmotionModel(keras.Model):
    """Functional `keras.Model` that fills optional inputs missing from a dict with None.

    `build_model` and `inference_model` return this class so that a batch without the presence
    flags (`audio_present`, `visual_present`, declared with `keras.Input(..., optional=True)`)
    works everywhere a batch with them does: in `fit`, `predict`, `predict_on_batch` and direct
    calls. A plain functional model would raise "Missing data for input" instead. Built like any
    functional model, `EmotionModel(inputs=..., outputs=..., name=...)`, and saved and loaded
    with `.keras` files like one.

    `compile` also builds the optimizer's variables (it needs the model built, as every functional
    model is): Keras otherwise creates them while tracing the first training step, and TensorFlow
    then traces that step a second time, which doubles the start-up time of every `fit`.
    """

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        if self.optimizer is not None and self.built and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _optional_input_names(self):
        return [
            layer.name
            for layer in self.layers
            if isinstance(layer, keras.layers.InputLayer) and getattr(layer, "optional", False)
        ]

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, dict):
            missing = [key for key in self._optional_input_names() if key not in inputs]
            if missing:
                inputs = {**inputs, **{key: None for key in missing}}
        return super().__call__(inputs, *args, **kwargs)
