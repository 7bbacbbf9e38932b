"""The held-out validation split (`task.split=validation`): a tuning trial trains on the training set
minus a held-out part and is scored on that part only, so hyperparameters are chosen without ever
looking at the test set (issue 13). `task.split=test` (the default) leaves everything as it was.

The held-out part is fixed per task family, the same for every trial on every machine:
  cifar10_wrn22                 the last 10% (5,000 of 50,000) of a permutation of the training
                                indices seeded 0: 45k / 5k
  cars_resnet50, digits twins   a stratified 10% of the training part, seed 0
  WikiText-2, synthetic text    their own validation set, as today (the claims' metric is val_ppl);
                                only the test-set metrics are dropped (suites/text/tasks.py)
The permutations come from NumPy's legacy RandomState, whose stream NumPy keeps frozen (NEP 19), so
the split cannot move with a NumPy upgrade (the Generator API's streams may change).
"""
from __future__ import annotations

import math

import numpy as np

SPLITS = ("test", "validation")
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 0


def metric_prefix(split: str) -> str:
    """Metric names start `test_` on the test set and `val_` on the held-out part."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return "test" if split == "test" else "val"


def held_out_count(n: int, fraction: float = VALIDATION_FRACTION) -> int:
    """round(n * fraction), at least 1 and leaving at least 1 to train on (toy-size subsets)."""
    if n < 2:
        raise ValueError(f"cannot hold out part of {n} example(s)")
    return min(max(math.floor(n * fraction + 0.5), 1), n - 1)


def last_of_permutation(n: int, fraction: float = VALIDATION_FRACTION,
                        seed: int = VALIDATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices, each sorted: the held-out part is the last `held_out_count(n)` of a
    permutation of range(n) seeded `seed`."""
    order = np.random.RandomState(seed).permutation(n)
    cut = n - held_out_count(n, fraction)
    return np.sort(order[:cut]), np.sort(order[cut:])


def class_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """`total` held-out examples shared across classes in proportion to `counts` (largest remainder,
    ties to the lower class index), never a class's last example."""
    exact = counts * (total / counts.sum())
    cap = np.maximum(counts - 1, 0)
    quotas = np.minimum(np.floor(exact).astype(np.int64), cap)
    for c in np.argsort(-(exact - np.floor(exact)), kind="stable"):
        if quotas.sum() >= total:
            break
        if quotas[c] < cap[c]:
            quotas[c] += 1
    return quotas


def stratified_holdout(labels, fraction: float = VALIDATION_FRACTION,
                       seed: int = VALIDATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices, each sorted: `held_out_count(n)` examples in all, each class giving
    its share (`class_quotas`), drawn per class in class order from one RandomState seeded `seed`."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    rng = np.random.RandomState(seed)
    held = []
    for c, quota in zip(classes, class_quotas(counts, held_out_count(len(labels), fraction))):
        members = np.flatnonzero(labels == c)
        held.append(members[rng.permutation(len(members))[:quota]])
    held = np.sort(np.concatenate(held))
    if not held.size:  # every class has one example, which it keeps: nothing to validate on
        raise ValueError(f"cannot hold out a stratified part of {len(labels)} examples: no class has a "
                         f"second example")
    return np.setdiff1d(np.arange(len(labels)), held), held


def evaluation_split(split: str, train: tuple, test: tuple, stratified: bool) -> tuple[tuple, tuple]:
    """(arrays to train on, arrays to evaluate on). `train` and `test` are tuples of equal-length arrays
    with the labels second ((images, labels, ...)). split=test: both unchanged; split=validation: the
    training arrays cut by `stratified_holdout` or `last_of_permutation`, the test arrays unused."""
    metric_prefix(split)  # refuses an unknown split
    if split == "test":
        return train, test
    keep, held = stratified_holdout(train[1]) if stratified else last_of_permutation(len(train[1]))
    return tuple(a[keep] for a in train), tuple(a[held] for a in train)
