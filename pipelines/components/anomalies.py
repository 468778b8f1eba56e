"""ExampleValidator: every partition's statistics checked against the schema.

Blocking: dimension mismatch, hop mismatch, NaN/Inf in features or labels, labels out of range, no
labelled train partition. Warnings: constant features, and a distribution shift, i.e. more than
`shift_fraction` of a modality's features with |mean_p - mean_train| / std_train > `shift_threshold`.
`pipelines.components.statistics_gen.run` writes the report to `anomalies.json` (+ `anomalies.txt`).
"""

from __future__ import annotations

from pipelines.data import features

ANOMALIES = "anomalies.json"
BLOCKING = "blocking"
WARNING = "warning"
DEFAULT_SHIFT_THRESHOLD = 1.0
DEFAULT_SHIFT_FRACTION = 0.25
MAX_LISTED = 20  # feature names or recordings listed per anomaly


def _names(names, indices):
    listed = [names[i] if i < len(names) else f"#{i}" for i in indices[:MAX_LISTED]]
    more = len(indices) - len(listed)
    return listed, (", ".join(listed) + (f" and {more} more" if more > 0 else ""))


def validate(
    statistics: dict, schema: dict, *, shift_threshold=DEFAULT_SHIFT_THRESHOLD, shift_fraction=DEFAULT_SHIFT_FRACTION
) -> list:
    """ExampleValidator: the anomalies of every partition (list of dicts, blocking ones first)."""
    anomalies = []

    def add(partition, kind, severity, message, **extra):
        anomalies.append({"partition": partition, "kind": kind, "severity": severity, "message": message, **extra})

    partitions = statistics["partitions"]
    train = partitions.get(features.TRAIN)
    if train is None or not train["labelled"]:
        add(
            features.TRAIN,
            "missing_train",
            BLOCKING,
            "train: no labelled train partition, so nothing to train or normalise on",
        )
    for partition, part in partitions.items():
        if any(abs(h - schema["hop"]) > 1e-6 for h in part["hops"]):
            add(
                partition,
                "hop_mismatch",
                BLOCKING,
                f"{partition}: frame hops {part['hops']} s differ from the schema's {schema['hop']} s",
            )
        for modality in features.MODALITIES:
            entry, expected = part[modality], schema[modality]["dim"]
            if entry["dims_seen"] and entry["dims_seen"] != [expected]:
                wrong = entry["recordings_with_wrong_dim"]
                add(
                    partition,
                    "dimension_mismatch",
                    BLOCKING,
                    f"{partition}: {modality} frames have {entry['dims_seen']} features, the schema says "
                    f"{expected} (recordings {', '.join(wrong[:MAX_LISTED])})",
                    modality=modality,
                    recordings=wrong[:MAX_LISTED],
                    count=len(wrong),
                )
            names = schema[modality]["names"]
            bad = [i for i, (n, f) in enumerate(zip(entry["nan_count"], entry["inf_count"])) if n or f]
            if bad:
                listed, text = _names(names, bad)
                add(
                    partition,
                    "non_finite_features",
                    BLOCKING,
                    f"{partition}: {modality} features with NaN/Inf values "
                    f"({sum(entry['nan_count'])} NaN, {sum(entry['inf_count'])} Inf): {text}",
                    modality=modality,
                    features=listed,
                    count=len(bad),
                )
            constant = [i for i, (c, s) in enumerate(zip(entry["count"], entry["std"])) if c > 1 and s == 0.0]
            if constant:
                listed, text = _names(names, constant)
                add(
                    partition,
                    "constant_features",
                    WARNING,
                    f"{partition}: {len(constant)} constant {modality} feature(s): {text}",
                    modality=modality,
                    features=listed,
                    count=len(constant),
                )
            if train is not None and partition != features.TRAIN:
                reference = train[modality]
                shifted, checked = [], 0
                for i, (mean, ref_mean, ref_std) in enumerate(zip(entry["mean"], reference["mean"], reference["std"])):
                    if mean is None or ref_mean is None or not ref_std:
                        continue
                    checked += 1
                    if abs(mean - ref_mean) / ref_std > shift_threshold:
                        shifted.append(i)
                if checked and len(shifted) > shift_fraction * checked:
                    listed, text = _names(names, shifted)
                    add(
                        partition,
                        "distribution_shift",
                        WARNING,
                        f"{partition}: {len(shifted)} of {checked} {modality} features have a mean more than "
                        f"{shift_threshold:g} train standard deviations from the train mean: {text}",
                        modality=modality,
                        features=listed,
                        count=len(shifted),
                    )
        for key, entry in part.get("labels", {}).items():
            if entry["nan_count"] or entry["inf_count"]:
                add(
                    partition,
                    "non_finite_labels",
                    BLOCKING,
                    f"{partition}: {key} has {entry['nan_count']} NaN and {entry['inf_count']} Inf values",
                    label=key,
                    count=entry["nan_count"] + entry["inf_count"],
                )
            if entry["out_of_range"]:
                low, high = schema["labels"][key]["min"], schema["labels"][key]["max"]
                add(
                    partition,
                    "label_out_of_range",
                    BLOCKING,
                    f"{partition}: {entry['out_of_range']} {key} value(s) outside [{low:g}, {high:g}] "
                    f"(min {entry['min']}, max {entry['max']})",
                    label=key,
                    count=entry["out_of_range"],
                )
    anomalies.sort(key=lambda a: a["severity"] != BLOCKING)
    return anomalies


def format_anomalies(report: dict) -> str:
    lines = [f"Data validation: {report['num_blocking']} blocking, {report['num_warnings']} warning(s)"]
    lines += [f"[{a['severity'].upper()}] {a['message']}" for a in report["anomalies"]]
    if not report["anomalies"]:
        lines.append("No anomalies.")
    return "\n".join(lines) + "\n"
