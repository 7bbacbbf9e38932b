"""CIFAR-10 through `torchvision.datasets.CIFAR10`: 50,000 train / 10,000 test 32x32 RGB images.

The python-pickle batches live in `<data root>/cifar-10-batches-py/` (torchvision's layout), the data
root being `task.data_dir`, else $ONECYCLE_DATA, else ./data. Runs read the disk only: `make data`
fetches and verifies them (suites/data).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10

from results.errors import DatasetMissing

from ..base import DATA_ENV

# Per-channel statistics of the CIFAR-10 training set, as the blog's train_cifar10.py gives them.
CIFAR10_MEAN = (0.4914, 0.48216, 0.44653)
CIFAR10_STD = (0.24703, 0.24349, 0.26159)
FOLDER = "cifar-10-batches-py"


class _CIFAR10Files(CIFAR10):
    """torchvision's reader; with verify_md5 off, present files count as intact (files written by
    tests, or a re-packed copy, cannot match the published checksums): torchvision's integrity
    check accepts any existing file whose expected md5 is None."""

    def __init__(self, root: str, train: bool, verify_md5: bool):
        if not verify_md5:  # instance attributes shadow the class's checksum tables
            self.train_list = [(name, None) for name, _ in CIFAR10.train_list]
            self.test_list = [(name, None) for name, _ in CIFAR10.test_list]
            self.meta = {**CIFAR10.meta, "md5": None}
        super().__init__(root, train=train, download=False)


def missing_message(root: Path, reason: str) -> str:
    return (f"CIFAR-10 not found under {root / FOLDER} ({reason}). Fetch and verify it with "
            f"`make data TASKS=cifar10_wrn22`, or extract the python version (cifar-10-python.tar.gz from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html: {FOLDER}/data_batch_1..5, test_batch, "
            f"batches.meta) under a data root and point task.data_dir=... or ${DATA_ENV} at it.")


def load_cifar10(root: Path, verify_md5: bool = True, subset: int | None = None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test): uint8 (N, 32, 32, 3) and int64; `subset` keeps the first
    n images of each split (toy-size runs)."""
    try:
        splits = [_CIFAR10Files(str(root), train, verify_md5) for train in (True, False)]
    except Exception as exc:  # RuntimeError (not found / corrupt), pickle errors, ...
        raise DatasetMissing(missing_message(root, f"{type(exc).__name__}: {exc}")) from None
    arrays = []
    for split in splits:
        x, y = np.asarray(split.data, dtype=np.uint8), np.asarray(split.targets, dtype=np.int64)
        arrays += [x[:subset], y[:subset]] if subset else [x, y]
    return tuple(arrays)
