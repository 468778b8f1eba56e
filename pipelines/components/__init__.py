"""The TFX-style components: ExampleGen, StatisticsGen/SchemaGen/ExampleValidator, Transform, the
tf.data input pipeline, and the extractor that turns media into a corpus folder."""
