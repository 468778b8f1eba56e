"""NumPy references of the loss terms and metrics, written from the paper's equations as the
README states them ("Losses and metrics")."""

import numpy as np

EPS = 1e-7


def softmax(z, axis=-1):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ccc_population(x, y):
    """CCC with population moments (the training loss's form, epsilon 1e-7)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2 + EPS)


def ccc_sample(x, y):
    """AVEC 2019 calc_scores.py's CCC: covariance / n, variances / (n - 1)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var(ddof=1) + y.var(ddof=1) + (x.mean() - y.mean()) ** 2)


def regression_emotion_loss(y, p, mask):
    valid = mask > 0
    return 1.0 - ccc_population(y[valid], p[valid]) + np.mean((y[valid] - p[valid]) ** 2)


def frame_cross_entropy(labels, logits):
    logp = np.log(softmax(logits))
    return -np.take_along_axis(logp, labels[..., None].astype(int), axis=-1)[..., 0]


def weighted_cross_entropy(labels, logits, weights, mask):
    ce = frame_cross_entropy(labels, logits)
    w = mask * (np.ones(logits.shape[-1]) if weights is None else np.asarray(weights))[labels]
    return np.sum(w * ce) / np.sum(w)


def macro_f1(labels, predicted, num_classes=3):
    scores = []
    for c in range(num_classes):
        tp = np.sum((labels == c) & (predicted == c))
        fp = np.sum((labels != c) & (predicted == c))
        fn = np.sum((labels == c) & (predicted != c))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def calibration(distances, norms, mask, convention="informativeness", standardize=False, temperature=1.0):
    """Mean over sequences of KL(P_D || P_S) + KL(P_S || P_D) over the valid frames."""
    values = []
    for d, n, m in zip(distances, norms, mask):
        valid = m > 0
        d = np.asarray(d[valid], np.float64)
        s = (
            1.0 / np.asarray(n[valid], np.float64)
            if convention == "informativeness"
            else np.asarray(n[valid], np.float64)
        )
        if standardize:
            d = (d - d.mean()) / np.sqrt(d.var() + 1e-6)
            s = (s - s.mean()) / np.sqrt(s.var() + 1e-6)
        p_d = softmax(d / temperature)
        p_s = softmax(s / temperature)
        values.append(np.sum(p_d * np.log(p_d / p_s)) + np.sum(p_s * np.log(p_s / p_d)))
    return float(np.mean(values))


def gaussian_kl(mu, sigma, mask):
    """KL(N(mu, sigma^2) || N(0, I)) summed over latent dims, mean over valid frames."""
    kl = -0.5 * np.sum(1 + np.log(sigma.astype(np.float64) ** 2) - mu**2 - sigma.astype(np.float64) ** 2, axis=-1)
    return float(np.sum(kl * mask) / np.sum(mask))
