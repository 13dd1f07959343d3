"""Metrics of the encoder GANs (bench.structures.age, bench.structures.ali): pure functions of codes,
features and labels.

- sphere_kl(codes): AGE's divergence of codes [N, d] to its prior, the uniform distribution on the unit
  sphere: the codes are scaled by sqrt(d) (so the prior's coordinates have mean 0 and variance 1), a
  diagonal Gaussian is fitted (batch means m_j, variances v_j) and KL(N(m, v) || N(0, I)) =
  0.5 (v_j + m_j^2 - 1 - log v_j) is averaged over the dimensions. About 0 for samples of the prior
  (the fit's sampling error only: ~d / N^2), large for collapsed or concentrated codes.
- linear_probe(train_features, train_labels, test_features, test_labels): the test accuracy of a
  logistic regression (sklearn; features standardised on the training set) fitted on the training
  features: how linearly an encoder's codes separate the classes (ALI / BiGAN). About chance for
  features independent of the labels.
"""

from __future__ import annotations

import math

import numpy as np


def gaussian_kl(x: np.ndarray) -> float:
    """KL(N(m, v) || N(0, I)) of the diagonal Gaussian fitted to x [N, d], averaged over the d dimensions."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        return math.nan
    m, v = x.mean(0), x.var(0)
    v = np.maximum(v, 1e-12)
    return float(np.mean(0.5 * (v + m ** 2 - 1.0 - np.log(v))))


def sphere_kl(codes) -> float:
    codes = np.asarray(codes.cpu() if hasattr(codes, "cpu") else codes, dtype=np.float64)
    return gaussian_kl(codes * math.sqrt(codes.shape[-1]))


def linear_probe(train_features, train_labels, test_features, test_labels, max_iter: int = 500) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def arr(x, dtype):
        return np.asarray(x.cpu() if hasattr(x, "cpu") else x, dtype=dtype)

    xtr, ytr = arr(train_features, np.float64), arr(train_labels, np.int64).reshape(-1)
    xte, yte = arr(test_features, np.float64), arr(test_labels, np.int64).reshape(-1)
    if not len(yte) or len(np.unique(ytr)) < 2:
        return math.nan
    if not (np.isfinite(xtr).all() and np.isfinite(xte).all()):
        return math.nan
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=max_iter).fit(scaler.transform(xtr), ytr)
    return float((clf.predict(scaler.transform(xte)) == yte).mean())
