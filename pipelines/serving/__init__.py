"""Serving: the SavedModel exporter, the predictor and the TF Serving gRPC client."""
