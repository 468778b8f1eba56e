"""Evaluation: whole-recording scoring, the evaluator, per-frame uncertainty and its conformal
calibration, and the fusion guard."""
