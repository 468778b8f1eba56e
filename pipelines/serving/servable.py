"""The servable graph of an inference model: what `pipelines.export` writes as a SavedModel.

Signatures (both take float32 tensors, batch and time axes of any size):

* `serving_default`: `audio` [B, T, D_a], `visual` [B, T, D_v] and `mask` [B, T] (1 = real frame).
  `mask` is optional: the SignatureDef carries a default (an empty [0, 0] tensor, read as "every
  frame is real") that TensorFlow Serving feeds when a request leaves `mask` out.
  Models with presence flags also take `audio_present` and `visual_present` [B, T] (1 = the
  modality's features are real on that frame), optional in the same way (default: all present).
  An absent modality gets a fusion weight of exactly 0 and its features there change nothing.
* `without_mask`: `audio` and `visual` only, for clients and servers that do not use SignatureDef
  defaults (a SavedModel loaded in Python with `tf.saved_model.load` requires every input of a
  signature, so `serving_default` must get `mask` and the flags there).

Outputs: a dict of float32 tensors with the inference model's names: `valence`, `arousal` (fused),
`audio_valence`, ..., `visual_arousal` (unimodal branches) and, for COLD fusion, `audio_weight`,
`visual_weight`, `audio_sigma_norm`, `visual_sigma_norm`, all [B, T] ([B, T, 3] logits for
classification). The normalisation statistics are part of the model.
When the run directory holds an uncertainty calibration (`uncertainty_calibration.json`, written by
`python -m pipelines.uncertainty --run-dir RUN` or by evaluating the run), the outputs also include the
calibrated per-frame std in label units: `valence_std`, `arousal_std` and per branch
(`audio_valence_std`, ...), computed in the graph from the sigma norms and fusion weights. When it
holds `conformal_calibration.json` (the trainer writes both), the outputs also include the bounds of
the 90% conformal intervals, `valence_lower`, `valence_upper`, `arousal_lower`, `arousal_upper` and
per branch, computed in the graph (`cold_keras.layers.ConformalBounds`) from the outputs, the mask and
the presence flags.
"""

from __future__ import annotations

import numpy as np

from pipelines.data import features

SERVING_DEFAULT = "serving_default"
WITHOUT_MASK = "without_mask"
SIGNATURES = (SERVING_DEFAULT, WITHOUT_MASK)


def _has_presence_inputs(model) -> bool:
    # Imported here: the CLI checks its arguments before TensorFlow is loaded.
    from pipelines.evaluation.scoring import has_presence_inputs

    return has_presence_inputs(model)


def feature_dims(model) -> dict:
    """{"audio": D_a, "visual": D_v} from the inference model's input layers."""
    dims = {}
    for key in features.MODALITIES:
        shape = model.get_layer(key).output.shape
        dims[key] = int(shape[-1])
    return dims


def _servable(model):
    """A tf.Module holding the model's variables and the two serving functions.

    `keras.export.ExportArchive.write_out` hands concrete functions to `tf.saved_model.save`,
    which drops the tensor default that makes `mask` optional in the SignatureDef; saving the
    polymorphic `tf.function` directly keeps it (TensorFlow writes it to `SignatureDef.defaults`
    and as a `placeholder_with_default` in the serving graph). The TensorSpec names keep the
    input names. As in `ExportArchive`, the module tracks the model's variables, not the Keras
    model: a tracked Keras model would add its own default signature to the SavedModel, traced
    once more per model at every export and loaded by every server.
    """
    import tensorflow as tf

    dims = feature_dims(model)
    audio_spec = tf.TensorSpec([None, None, dims[features.AUDIO]], tf.float32, name=features.AUDIO)
    visual_spec = tf.TensorSpec([None, None, dims[features.VISUAL]], tf.float32, name=features.VISUAL)
    mask_spec = tf.TensorSpec([None, None], tf.float32, name=features.MASK)
    has_presence = _has_presence_inputs(model)

    def all_frames(audio):
        return tf.ones(tf.shape(audio)[:2], tf.float32)

    def predict(audio, visual, mask, audio_present=None, visual_present=None):
        inputs = {features.AUDIO: audio, features.VISUAL: visual, features.MASK: mask}
        if has_presence:
            inputs[features.AUDIO_PRESENT] = all_frames(audio) if audio_present is None else audio_present
            inputs[features.VISUAL_PRESENT] = all_frames(audio) if visual_present is None else visual_present
        outputs = model(inputs, training=False)
        # A model trained under mixed_float16 still serves float32.
        return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}

    def or_all_frames(value, audio):
        # An empty tensor (the signature's default) means every frame is real / present.
        return tf.cond(tf.size(value) > 0, lambda: value, lambda: all_frames(audio))

    module = tf.Module()
    module.model_variables = list(model.variables)
    empty = tf.zeros([0, 0], tf.float32)

    if has_presence:
        flag_specs = [
            tf.TensorSpec([None, None], tf.float32, name=key)
            for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT)
        ]

        @tf.function(input_signature=[audio_spec, visual_spec, mask_spec] + flag_specs)
        def serve(audio, visual, mask=empty, audio_present=empty, visual_present=empty):
            return predict(
                audio,
                visual,
                or_all_frames(mask, audio),
                or_all_frames(audio_present, audio),
                or_all_frames(visual_present, audio),
            )
    else:

        @tf.function(input_signature=[audio_spec, visual_spec, mask_spec])
        def serve(audio, visual, mask=empty):
            return predict(audio, visual, or_all_frames(mask, audio))

    @tf.function(input_signature=[audio_spec, visual_spec])
    def serve_without_mask(audio, visual):
        return predict(audio, visual, all_frames(audio))

    module.serve = serve
    module.serve_without_mask = serve_without_mask
    return module


def save_saved_model(model, path) -> None:
    """Writes `model` (an inference model) as a SavedModel with the two serving signatures."""
    import tensorflow as tf

    module = _servable(model)
    # Serving computes no gradients: the custom gradients of the recurrent layers are left out of
    # the SavedModel (saving them traces every one of them).
    tf.saved_model.save(
        module,
        str(path),
        signatures={SERVING_DEFAULT: module.serve, WITHOUT_MASK: module.serve_without_mask},
        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
    )


def keras_outputs(model, audio, visual, mask, audio_present=None, visual_present=None) -> dict:
    """The Keras inference model's outputs on one batch, as float32 NumPy."""
    from pipelines.evaluation.scoring import model_inputs

    outputs = model.predict_on_batch(model_inputs(model, audio, visual, mask, audio_present, visual_present))
    return {name: np.asarray(value, np.float32) for name, value in outputs.items()}
