"""Vision data: CIFAR-10 and Stanford Cars readers on tiny files in the real formats, missing-data
messages, the resident crop/flip loader and the side-on affine augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from results.errors import DatasetMissing
from suites.vision.cars import load_cars
from suites.vision.cifar import load_cifar10
from suites.vision.resident import CropFlip, ResidentImages, draw_crop_flip, gather_crops
from suites.vision.side_on import SideOn, centre_view, draw_side_on, render
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")

from vision_files import (CARS_TEST, CLASS_NAMES, CARS_TRAIN, CIFAR_TEST, coordinate_images, write_cars_imagefolder,
                          write_cars_parquet, write_cars_torchvision, write_cifar10)


def test_cifar10_pickle_batches_load_as_hwc_uint8(tmp_path):
    train_x, train_y = write_cifar10(tmp_path)
    x_tr, y_tr, x_te, y_te = load_cifar10(tmp_path, verify_md5=False)
    assert x_tr.shape == (20, 32, 32, 3) and x_tr.dtype == np.uint8 and x_te.shape == (CIFAR_TEST, 32, 32, 3)
    np.testing.assert_array_equal(x_tr, train_x)
    np.testing.assert_array_equal(y_tr, train_y)
    x_sub, _, x_te_sub, _ = load_cifar10(tmp_path, verify_md5=False, subset=3)
    assert len(x_sub) == 3 and len(x_te_sub) == 3


def test_cifar10_missing_or_corrupt_says_where_and_how(tmp_path, monkeypatch):
    with pytest.raises(DatasetMissing) as missing:
        load_cifar10(tmp_path / "nowhere")
    for needle in ("cifar-10-batches-py", "task.data_dir", "ONECYCLE_DATA", "cifar-10-python.tar.gz",
                   "make data TASKS=cifar10_wrn22"):
        assert needle in str(missing.value)
    write_cifar10(tmp_path)
    with pytest.raises(DatasetMissing, match="corrupted"):  # tiny files fail the published md5s
        load_cifar10(tmp_path, verify_md5=True)


@pytest.mark.parametrize("writer", [write_cars_torchvision, write_cars_imagefolder, write_cars_parquet])
def test_cars_layouts_decode_into_a_cache(tmp_path, writer):
    base = writer(tmp_path / "data")
    splits = load_cars(tmp_path / "data", "auto", (24, 36), tmp_path / "cache", torch.device("cpu"))
    images, labels, aspect = splits["train"]
    assert images.shape == (len(CARS_TRAIN), 24, 36, 3) and images.dtype == np.uint8
    expected = [(label, w / h) for h, w, label in CARS_TRAIN]
    if writer is write_cars_imagefolder:  # classes are the sorted folder names; files grouped by class
        remapped = [(sorted(CLASS_NAMES).index(CLASS_NAMES[label]), ratio) for label, ratio in expected]
        expected = sorted(remapped, key=lambda pair: pair[0])  # stable: file order within a class
    got = list(zip(labels.tolist(), aspect.tolist()))
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expected], rtol=1e-6)
    assert len(splits["test"][1]) == len(CARS_TEST)
    # The gradient's top-left pixel is dark, bottom-right bright: decoding kept orientation.
    assert images[0, 0, 0, :2].max() < 40 and images[0, -1, -1, :2].min() > 200
    import shutil

    shutil.rmtree(base)  # the second load reads the cache only
    with pytest.raises(DatasetMissing):
        load_cars(tmp_path / "data", "auto", (24, 36), tmp_path / "cache", torch.device("cpu"))
    writer(tmp_path / "data")
    again = load_cars(tmp_path / "data", "auto", (24, 36), tmp_path / "cache", torch.device("cpu"))
    np.testing.assert_array_equal(again["train"][0], images)
    assert len(list((tmp_path / "cache" / "stanford_cars").iterdir())) == 1


def test_cars_missing_gives_the_command_and_the_layouts(tmp_path):
    with pytest.raises(DatasetMissing) as missing:
        load_cars(tmp_path, "auto", (24, 36), tmp_path / "cache", torch.device("cpu"))
    for needle in ("make data TASKS=cars_resnet50", "cars_test_annos_withlabels.mat", "devkit", "parquet",
                   "train/<class>", "ONECYCLE_DATA", "task.data_dir", "7545"):
        assert needle in str(missing.value)


def recover_views(crops: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, dx, flip) of coordinate-image crops, read at the centre pixel (never in the padding)."""
    c = crops.shape[1] // 2
    dy = crops[:, c, c, 0].long() - c + pad
    flip = crops[:, c, c + 1, 1].long() < crops[:, c, c, 1].long()
    col = crops[:, c, c, 1].long()
    dx = torch.where(flip, col - (crops.shape[2] - 1 - c), col - c) + pad
    return dy, dx, flip


def test_resident_crops_equal_torchvision_symmetric_pad_crop_flip():
    images = coordinate_images(64)
    draws = draw_crop_flip(torch.arange(64), CropFlip(pad=4), torch.Generator().manual_seed(0))
    crops = gather_crops(images, draws, 4, "reflect")
    for i in range(64):  # the per-image reference: torchvision on CHW, symmetric = cv2 BORDER_REFLECT
        padded = TF.pad(images[i].permute(2, 0, 1), [4], padding_mode="symmetric")
        ref = padded[:, draws.dy[i]:draws.dy[i] + 32, draws.dx[i]:draws.dx[i] + 32]
        ref = TF.horizontal_flip(ref) if draws.flip[i] else ref
        assert torch.equal(crops[i].permute(2, 0, 1), ref)
    zero = gather_crops(images, draws, 4, "zeros")
    for i in range(8):
        padded = TF.pad(images[i].permute(2, 0, 1), [4], fill=0)
        ref = padded[:, draws.dy[i]:draws.dy[i] + 32, draws.dx[i]:draws.dx[i] + 32]
        assert torch.equal(zero[i].permute(2, 0, 1), TF.horizontal_flip(ref) if draws.flip[i] else ref)


def test_resident_epoch_every_image_once_with_torchvision_distribution():
    n, pad = 3000, 4
    data = ResidentImages(coordinate_images(n), torch.arange(n), [0.0] * 3, [1 / 255] * 3, "cpu")
    batches = data.train_epoch(128, CropFlip(pad=pad), torch.Generator().manual_seed(1))
    assert len(batches) == len(list(batches)) == -(-n // 128)
    xs, ys = zip(*batches)
    labels = torch.cat(ys)
    assert sorted(labels.tolist()) == list(range(n)) and labels.tolist() != list(range(n))
    crops = torch.cat(xs).permute(0, 2, 3, 1).round().to(torch.uint8)  # normalisation was x*1
    assert torch.equal(crops[:, 0, 0, 2], (labels % 256).to(torch.uint8))  # image i's pixels, label i
    dy, dx, flip = recover_views(crops, pad)
    # The per-image CPU reference (torchvision RandomCrop(32, 4) + RandomHorizontalFlip) draws each
    # offset uniformly from 0..8 and flips with p 0.5: the same law, checked by chi-square.
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=2 * pad + 1).double()
        chi2 = ((counts - n / 9) ** 2 / (n / 9)).sum().item()
        assert counts.numel() == 9 and chi2 < 26.1  # 8 degrees of freedom, p = 0.001
    assert abs(flip.double().mean().item() - 0.5) < 0.04
    again = data.train_epoch(128, CropFlip(pad=pad), torch.Generator().manual_seed(1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))  # seeded: same batches


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resident_batches_identical_on_cpu_and_cuda():
    images = coordinate_images(300)
    cpu = ResidentImages(images, torch.arange(300), [0.5] * 3, [0.25] * 3, "cpu")
    gpu = ResidentImages(images, torch.arange(300), [0.5] * 3, [0.25] * 3, "cuda")
    for a, b in zip(cpu.train_epoch(64, CropFlip(), torch.Generator().manual_seed(3)),
                    gpu.train_epoch(64, CropFlip(), torch.Generator().manual_seed(3))):
        assert torch.allclose(a[0], b[0].cpu()) and torch.equal(a[1], b[1].cpu())


def test_side_on_centre_view_is_resize_then_centre_crop():
    # A 40 x 60 image cached squished to 64 x 64; the centre view must equal the image resized to
    # shorter side 32 then centre-cropped to 32 x 32 (fastai's validation transform).
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 40, 60), dtype=np.uint8))
    img = TF.gaussian_blur(img, [5, 5])  # smooth, so interpolation differences stay small
    cached = TF.resize(img, [64, 64], antialias=True).permute(1, 2, 0)[None]
    out = render(cached, torch.tensor([1.5]), centre_view(1), 32)[0]
    ref = TF.center_crop(TF.resize(img, [32], antialias=True), [32]).float() / 255
    ref = (ref - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert (out - ref).abs().mean() < 0.08
    flipped = render(cached, torch.tensor([1.5]), centre_view(1, flip=True), 32)[0]
    assert torch.allclose(flipped, out.flip(-1), atol=1e-5)


def test_side_on_draws_follow_fastai_ranges():
    view = draw_side_on(4000, SideOn(size=224), torch.Generator().manual_seed(0))
    assert view.zoom.min() >= 1.0 and view.zoom.max() <= 1.05
    # RandomScale applies with p 0.75, and int(z * 224) floors zooms under 1 + 1/224 back to 1.
    assert 0.28 < (view.zoom == 1.0).double().mean() < 0.36
    degrees = view.angle * 180 / np.pi
    assert degrees.abs().max() <= 10.0 and 0.2 < (degrees == 0).double().mean() < 0.3
    assert 0.95 < view.contrast.min() and view.contrast.max() <= 1.05 and view.brightness.abs().max() <= 0.05
    assert abs(view.flip.double().mean().item() - 0.5) < 0.04
