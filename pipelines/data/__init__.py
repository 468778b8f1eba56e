"""The data layer: record keys and the manifest, feature/label keys, label classes, corruption,
augmentation of windows, raw inputs and the annotation delay. Imports no component."""
