"""Metrics of conditional and code-controlled generators (bench.structures.cgan, bench.structures.infogan):
pure functions of class ids / codes and evaluator features.

- class_accuracy(pred, labels): the fraction of conditional samples the evaluator classifies as the
  class they were generated for (CGAN / ACGAN), or of test images D's class head gets right (ACGAN).
- code_accuracy(codes, classes): unsupervised agreement of a categorical code with classes: the
  accuracy under the best one-to-one mapping of codes to classes (Hungarian algorithm,
  scipy.optimize.linear_sum_assignment on the contingency table). A perfect code, or any relabelling
  of one, scores 1; codes independent of the classes score about 1 / (number of classes).
- code_nmi(codes, classes): normalized mutual information (sklearn, arithmetic normalisation): 1 for a
  perfect code (up to relabelling), about 0 for independent codes.
- class_fid(real_features, real_labels, fake_features, fake_labels): the mean over classes of the FID
  between each class's real and generated evaluator features (classes with fewer than 2 samples on
  either side are skipped; NaN when none is left).
"""

from __future__ import annotations

import math

import numpy as np


def _ints(x) -> np.ndarray:
    return np.asarray(x.cpu() if hasattr(x, "cpu") else x).astype(np.int64).reshape(-1)


def class_accuracy(pred, labels) -> float:
    pred, labels = _ints(pred), _ints(labels)
    if len(pred) != len(labels):
        raise ValueError(f"{len(pred)} predictions for {len(labels)} labels")
    return float((pred == labels).mean()) if len(pred) else math.nan


def contingency(codes, classes) -> np.ndarray:
    """[n_codes, n_classes] counts of (code, class) pairs (sizes from the largest ids seen)."""
    codes, classes = _ints(codes), _ints(classes)
    table = np.zeros((codes.max(initial=-1) + 1, classes.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (codes, classes), 1)
    return table


def code_accuracy(codes, classes) -> float:
    """Best-permutation accuracy: max over one-to-one maps m of mean(m(code) == class)."""
    from scipy.optimize import linear_sum_assignment

    codes, classes = _ints(codes), _ints(classes)
    if len(codes) != len(classes):
        raise ValueError(f"{len(codes)} codes for {len(classes)} classes")
    if not len(codes):
        return math.nan
    table = contingency(codes, classes)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(codes))


def code_nmi(codes, classes) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    codes, classes = _ints(codes), _ints(classes)
    if not len(codes):
        return math.nan
    return float(normalized_mutual_info_score(classes, codes))


def class_fid(real_features, real_labels, fake_features, fake_labels) -> float:
    from bench.metrics import fid as F

    real_labels, fake_labels = _ints(real_labels), _ints(fake_labels)
    rf, ff = np.asarray(real_features, dtype=np.float64), np.asarray(fake_features, dtype=np.float64)
    values = []
    for c in np.unique(fake_labels):
        r, f = rf[real_labels == c], ff[fake_labels == c]
        if len(r) >= 2 and len(f) >= 2:
            values.append(F.fid(*F.feature_stats(r), *F.feature_stats(f)))
    return float(np.mean(values)) if values else math.nan
