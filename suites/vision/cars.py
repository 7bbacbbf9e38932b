"""Stanford Cars (196 classes; 8,144 train / 8,041 test, the test half being the blog's validation
set) from one of three on-disk layouts, decoded and resized once into a uint8 cache.

Layouts, looked for under `<data root>/stanford_cars` (and the data root itself):
  torchvision  devkit/{cars_meta.mat, cars_train_annos.mat}, cars_train/, cars_test/,
               cars_test_annos_withlabels.mat  (torchvision.datasets.StanfordCars' layout)
  imagefolder  train/<class name>/*.jpg and test/<class name>/*.jpg (Kaggle's by-class mirror,
               HF `imagefolder`); classes are the sorted folder names
  parquet      *.parquet files whose names hold 'train' / 'test', with `image` ({bytes}) and `label`
               columns (a Hugging Face hub mirror, e.g. `huggingface-cli download
               tanganke/stanford_cars --repo-type dataset --local-dir <data root>/stanford_cars`)
Why a cache: decoding 16k JPEGs per epoch on the host would starve a GPU; the cache holds every
image "squished" to a fixed `cache_hw` plus its aspect ratio, so the device can undo the squish in the
same affine resample that zooms, rotates, crops and flips (side_on.py).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_image, decode_jpeg

from results.errors import DatasetMissing

from ..base import DATA_ENV
from .paths import config_hash, publish_dir

LAYOUTS = ("auto", "torchvision", "imagefolder", "parquet")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class Split:
    sources: list  # Path or bytes per image
    labels: list[int]


def missing_message(root: Path, layout: str) -> str:
    return (f"Stanford Cars not found (layout {layout!r}) under {root / 'stanford_cars'} or {root}. "
            f"Fetch and verify it with `make data TASKS=cars_resnet50` (the HF hub's parquet mirror; "
            f"torchvision can no longer download it, pytorch/vision#7545), or put a copy under "
            f"{root / 'stanford_cars'} in one of these layouts: torchvision's (devkit/, cars_train/, "
            f"cars_test/, cars_test_annos_withlabels.mat), parquet (*train*.parquet, *test*.parquet with "
            f"image and label columns), or train/<class>/*.jpg and test/<class>/*.jpg; the data root is "
            f"task.data_dir, else ${DATA_ENV}, else ./data.")


def detect(root: Path, layout: str = "auto") -> tuple[str, Path]:
    """(layout, directory) of the first layout found, or DatasetMissing."""
    checks = {"torchvision": lambda d: (d / "devkit" / "cars_train_annos.mat").is_file()
              and (d / "cars_test_annos_withlabels.mat").is_file(),
              "imagefolder": lambda d: (d / "train").is_dir() and (d / "test").is_dir(),
              "parquet": lambda d: any(d.rglob("*train*.parquet")) and any(d.rglob("*test*.parquet"))}
    for directory in (root / "stanford_cars", root):
        for name, check in checks.items():
            if layout in ("auto", name) and directory.is_dir() and check(directory):
                return name, directory
    raise DatasetMissing(missing_message(root, layout))


def fingerprint(layout: str, directory: Path) -> list:
    """Names and sizes of the files that define the dataset: a cache key that is cheap to compute."""
    if layout == "torchvision":
        files = [directory / "devkit" / "cars_train_annos.mat", directory / "cars_test_annos_withlabels.mat"]
    elif layout == "parquet":
        files = sorted(directory.rglob("*.parquet"))
    else:
        files = sorted(p for p in directory.glob("t*/*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [(str(p.relative_to(directory)), p.stat().st_size) for p in files]


def read_torchvision(directory: Path) -> dict[str, Split]:
    from scipy.io import loadmat

    def split(annos: Path, images: Path) -> Split:
        rows = loadmat(str(annos), squeeze_me=True)["annotations"]
        rows = np.atleast_1d(rows)
        return Split([images / str(r["fname"]) for r in rows], [int(r["class"]) - 1 for r in rows])

    return {"train": split(directory / "devkit" / "cars_train_annos.mat", directory / "cars_train"),
            "test": split(directory / "cars_test_annos_withlabels.mat", directory / "cars_test")}


def read_imagefolder(directory: Path) -> dict[str, Split]:
    classes = sorted(p.name for p in (directory / "train").iterdir() if p.is_dir())
    test_classes = sorted(p.name for p in (directory / "test").iterdir() if p.is_dir())
    if classes != test_classes:
        raise DatasetMissing(f"{directory}: train/ and test/ hold different class folders")
    out = {}
    for name in ("train", "test"):
        pairs = [(p, i) for i, c in enumerate(classes) for p in sorted((directory / name / c).iterdir())
                 if p.suffix.lower() in IMAGE_SUFFIXES]
        out[name] = Split([p for p, _ in pairs], [i for _, i in pairs])
    return out


def parquet_files(directory: Path, split: str) -> list[Path]:
    return sorted(directory.rglob(f"*{split}*.parquet"))


def read_parquet(directory: Path) -> dict[str, Split]:
    import pyarrow.parquet as pq

    out = {}
    for name in ("train", "test"):
        sources, labels = [], []
        for path in parquet_files(directory, name):
            table = pq.read_table(path, columns=["image", "label"]).to_pydict()
            sources += [img["bytes"] for img in table["image"]]
            labels += [int(v) for v in table["label"]]
        out[name] = Split(sources, labels)
    return out


def split_labels(layout: str, directory: Path) -> dict[str, list[int]]:
    """Each split's labels, no image read (parquet: the label column only): what `make data` counts."""
    if layout != "parquet":
        return {name: split.labels for name, split in READERS[layout](directory).items()}
    import pyarrow.parquet as pq

    return {name: [int(v) for path in parquet_files(directory, name)
                   for v in pq.read_table(path, columns=["label"]).column("label").to_pylist()]
            for name in ("train", "test")}


READERS = {"torchvision": read_torchvision, "imagefolder": read_imagefolder, "parquet": read_parquet}


def decode_all(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """uint8 (3, H, W) images; JPEGs on CUDA in one batched nvjpeg call, anything else on the host."""
    if device.type == "cuda" and all(d[:2].tolist() == [0xFF, 0xD8] for d in datas):
        try:
            return decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # e.g. a CMYK JPEG nvjpeg refuses: decode the chunk on the host
            pass
    return [decode_image(d, mode=ImageReadMode.RGB).to(device) for d in datas]


def decode_resized(sources: list, hw: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, H, W, 3) images squished to `hw` (antialiased bilinear) and their aspect ratios
    (width / height). On CUDA, JPEGs are decoded on the device in one batched nvjpeg call."""
    datas = [torch.frombuffer(bytearray(s if isinstance(s, bytes) else Path(s).read_bytes()), dtype=torch.uint8)
             for s in sources]
    with warnings.catch_warnings():  # torchvision 0.29 deprecates torchvision.io for TorchCodec
        warnings.simplefilter("ignore", DeprecationWarning)
        images = decode_all(datas, device)
    out = torch.empty((len(images), *hw, 3), dtype=torch.uint8, device=device)
    aspect = torch.empty(len(images))
    for i, img in enumerate(images):
        aspect[i] = img.shape[2] / img.shape[1]
        resized = F.interpolate(img[None].float(), size=hw, mode="bilinear", antialias=True, align_corners=False)
        out[i] = resized[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return out.cpu(), aspect


def build_cache(splits: dict[str, Split], hw: tuple[int, int], device: torch.device, out: Path,
                chunk: int = 64) -> None:
    """Write <split>_images.npy (uint8 N,H,W,3), <split>_labels.npy, <split>_aspect.npy into `out`."""
    for name, split in splits.items():
        images = np.lib.format.open_memmap(out / f"{name}_images.npy", mode="w+", dtype=np.uint8,
                                           shape=(len(split.sources), *hw, 3))
        aspect = np.empty(len(split.sources), dtype=np.float32)
        for start in range(0, len(split.sources), chunk):
            batch, ratio = decode_resized(split.sources[start:start + chunk], hw, device)
            images[start:start + len(batch)] = batch.numpy()
            aspect[start:start + len(batch)] = ratio.numpy()
        images.flush()
        del images
        np.save(out / f"{name}_labels.npy", np.asarray(split.labels, dtype=np.int64))
        np.save(out / f"{name}_aspect.npy", aspect)


def load_cars(root: Path, layout: str, hw: tuple[int, int], cache_dir: Path, device: torch.device,
              subset: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{split: (uint8 images (N,H,W,3), labels, aspect)} from the cache, building it on first use.
    `subset` keeps the first n images of each split (toy-size runs)."""
    found, directory = detect(root, layout)
    spec = {"layout": found, "files": fingerprint(found, directory), "hw": list(hw), "subset": subset,
            "version": 1}
    entry = cache_dir / "stanford_cars" / config_hash(spec)

    def build(tmp: Path) -> None:
        splits = READERS[found](directory)
        if subset:
            splits = {k: Split(s.sources[:subset], s.labels[:subset]) for k, s in splits.items()}
        build_cache(splits, hw, device, tmp)
        (tmp / "spec.json").write_text(json.dumps({**spec, "directory": str(directory)}, indent=1))

    if not (entry / "spec.json").is_file():
        publish_dir(build, entry)
    return {name: (np.load(entry / f"{name}_images.npy", mmap_mode="r"),
                   np.load(entry / f"{name}_labels.npy"), np.load(entry / f"{name}_aspect.npy"))
            for name in ("train", "test")}
