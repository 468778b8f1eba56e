"""NumPy references of the metrics, written from the definitions (not from the implementation)."""

import numpy as np


def np_ccc_ddof1(x, y):
    """CCC with np.cov / np.var (ddof=1); x, y already cleaned of padding."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cov = np.cov(x, y, ddof=1)[0, 1]
    return 2 * cov / (np.var(x, ddof=1) + np.var(y, ddof=1) + (np.mean(x) - np.mean(y)) ** 2)


def avec_calc_scores_ccc(x, y):
    """CCC exactly as AVEC 2019's calc_scores.py writes it (nanmean / nansum, variances / (len - 1))."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x_mean = np.nanmean(x)
    y_mean = np.nanmean(y)
    covariance = np.nanmean((x - x_mean) * (y - y_mean))
    x_var = 1.0 / (len(x) - 1) * np.nansum((x - x_mean) ** 2)
    y_var = 1.0 / (len(y) - 1) * np.nansum((y - y_mean) ** 2)
    return (2 * covariance) / (x_var + y_var + (x_mean - y_mean) ** 2)


def np_macro_prf(y_true, y_pred, num_classes):
    """Macro precision/recall/F1 over the classes present in y_true or y_pred, by explicit counting."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    precisions, recalls, f1s = [], [], []
    for c in range(num_classes):
        tp = np.sum((y_true == c) & (y_pred == c))
        fp = np.sum((y_true != c) & (y_pred == c))
        fn = np.sum((y_true == c) & (y_pred != c))
        if tp + fp + fn == 0:
            continue
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(p)
        recalls.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return np.mean(precisions), np.mean(recalls), np.mean(f1s)


def np_ece(probs, labels, num_bins):
    """Top-label ECE by looping over equal-width bins [b/M, (b+1)/M), the last one closed."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    total = 0.0
    for b in range(num_bins):
        lo, hi = b / num_bins, (b + 1) / num_bins
        upper = confidence <= hi if b == num_bins - 1 else confidence < hi
        in_bin = (confidence >= lo) & upper
        if in_bin.any():
            total += in_bin.sum() / len(labels) * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return total


def np_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def right_padded_mask(lengths, num_frames):
    return (np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)
