"""Tiny datasets written in the real on-disk formats, for the vision tests (no network)."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg

CIFAR_TRAIN_PER_BATCH = 4
CIFAR_TEST = 6


def write_cifar10(root: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} as the python version ships
    them (rows of 3072 uint8, channel-major). Returns the train images (N, 32, 32, 3) and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = [], []
    for name, n in [*((f"data_batch_{i}", CIFAR_TRAIN_PER_BATCH) for i in range(1, 6)), ("test_batch", CIFAR_TEST)]:
        rows = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": rows,
                         "filenames": [f"{name}_{i}.png" for i in range(n)]}, f, protocol=2)
        if name != "test_batch":
            train_x.append(rows.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
            train_y += labels
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                     "horse", "ship", "truck"], "num_cases_per_batch": 10000}, f, protocol=2)
    return np.concatenate(train_x), np.array(train_y)


def jpeg_bytes(height: int, width: int, seed: int) -> bytes:
    """A smooth colour gradient (survives JPEG well), shifted by `seed`."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    img = torch.stack([yy, xx, (yy + xx + seed * 0.1) % 1]) * 255
    return encode_jpeg(img.round().to(torch.uint8), quality=95).numpy().tobytes()


# (height, width, label) per image: varied aspect ratios, labels within 3 classes.
CARS_TRAIN = [(40, 60, 0), (48, 64, 1), (30, 50, 2), (50, 40, 1), (36, 72, 0), (40, 40, 2)]
CARS_TEST = [(44, 66, 2), (32, 48, 0), (60, 40, 1), (40, 64, 1)]


def _annotations(rows):
    dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    out = np.zeros((1, len(rows)), dtype=dtype)
    for i, (h, w, label, fname) in enumerate(rows):
        out[0, i] = (np.array([[1]]), np.array([[1]]), np.array([[w]]), np.array([[h]]),
                     np.array([[label + 1]], dtype=np.uint8), np.array([fname]))
    return out


def write_cars_torchvision(root: Path) -> Path:
    """<root>/stanford_cars in torchvision's layout: devkit .mat files (1-based classes), JPEGs."""
    from scipy.io import savemat

    base = root / "stanford_cars"
    for sub in ("devkit", "cars_train", "cars_test"):
        (base / sub).mkdir(parents=True)
    for split, spec in (("train", CARS_TRAIN), ("test", CARS_TEST)):
        rows = []
        for i, (h, w, label) in enumerate(spec):
            fname = f"{i + 1:05d}.jpg"
            (base / f"cars_{split}" / fname).write_bytes(jpeg_bytes(h, w, i))
            rows.append((h, w, label, fname))
        annos = base / ("devkit/cars_train_annos.mat" if split == "train" else "cars_test_annos_withlabels.mat")
        savemat(str(annos), {"annotations": _annotations(rows)})
    names = np.empty((1, 3), dtype=object)
    names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]
    savemat(str(base / "devkit" / "cars_meta.mat"), {"class_names": names})
    return base


CLASS_NAMES = ["Acura RL Sedan 2012", "Acura TL Sedan 2012", "AM General Hummer SUV 2000"]


def write_cars_imagefolder(root: Path) -> Path:
    """<root>/stanford_cars/{train,test}/<class name>/*.jpg."""
    base = root / "stanford_cars"
    for split, spec in (("train", CARS_TRAIN), ("test", CARS_TEST)):
        for i, (h, w, label) in enumerate(spec):
            folder = base / split / CLASS_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.jpg").write_bytes(jpeg_bytes(h, w, i))
    return base


def write_cars_parquet(root: Path) -> Path:
    """A Hugging Face hub mirror's files: data/{train,test}-00000-of-00001.parquet, image + label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = root / "stanford_cars" / "data"
    base.mkdir(parents=True)
    for split, spec in (("train", CARS_TRAIN), ("test", CARS_TEST)):
        images = [{"bytes": jpeg_bytes(h, w, i), "path": f"{i}.jpg"} for i, (h, w, _) in enumerate(spec)]
        table = pa.table({"image": images, "label": [label for _, _, label in spec]})
        pq.write_table(table, base / f"{split}-00000-of-00001.parquet")
    return base.parent


def coordinate_images(n: int, size: int = 32) -> torch.Tensor:
    """uint8 (n, size, size, 3): channel 0 = row, channel 1 = column, channel 2 = image index, so a
    crop reveals where it came from."""
    rows = torch.arange(size)[:, None].expand(size, size)
    cols = torch.arange(size)[None, :].expand(size, size)
    images = torch.stack([rows, cols, torch.zeros_like(rows)], dim=-1).expand(n, size, size, 3).clone()
    images[..., 2] = torch.arange(n)[:, None, None] % 256
    return images.to(torch.uint8)
