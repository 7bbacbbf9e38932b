"""task.split=validation (suites/splits.py): per task family, the held-out part is disjoint from what is
trained on, of the stated size, stratified where stated, the same on every construction, scored under
val_* names only; split=test is as before. Plus the task configs' sourced `wd` tables and `search`
factors, and Target.on_validation. Tiny files in the real formats (tests/vision_files.py)."""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from conftest import CONF, compose_cfg
from results.targets import Target
from runners.checks import task_problems
from suites.digits import SmallResNet
from suites.splits import held_out_count, last_of_permutation, stratified_holdout
from vision_files import CARS_TEST, CARS_TRAIN, CIFAR_TEST, write_cars_torchvision, write_cifar10

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
DIGITS_TRAIN, DIGITS_TEST = 1297, 500  # suites/digits.py: stratified 500 of 1,797 for test


def build(cfg, split: str):
    """The task of `cfg` with task.split=`split`, built as the engine builds it (`cls(cfg, device)`)."""
    task_cfg = OmegaConf.merge(cfg.task, {"split": split})
    return get_class(task_cfg._target_)(task_cfg, "cpu")


def image_counts(images: torch.Tensor) -> collections.Counter:
    """Images as a multiset (duplicates counted), to compare partitions by content."""
    return collections.Counter(bytes(x.cpu().numpy().tobytes()) for x in images)


# --- The split rules.

def test_cifar_rule_is_the_last_tenth_of_a_permutation_seeded_0():
    train, held = last_of_permutation(50_000)
    assert (len(train), len(held)) == (45_000, 5_000)
    np.testing.assert_array_equal(held, np.sort(np.random.RandomState(0).permutation(50_000)[-5_000:]))
    assert not set(train) & set(held) and len(set(train) | set(held)) == 50_000
    np.testing.assert_array_equal(last_of_permutation(50_000)[1], held)


def test_stratified_rule_takes_a_tenth_of_every_class():
    rng = np.random.RandomState(1)
    labels = np.repeat(np.arange(196), rng.randint(24, 69, 196))  # Stanford Cars' 24-68 per class
    rng.shuffle(labels)
    train, held = stratified_holdout(labels)
    assert len(held) == held_out_count(len(labels)) == round(0.1 * len(labels))
    assert not set(train) & set(held) and len(train) + len(held) == len(labels)
    per_class, sizes = np.bincount(labels[held], minlength=196), np.bincount(labels)
    assert np.all(np.abs(per_class - 0.1 * sizes) < 1) and np.all(np.bincount(labels[train]) >= 1)
    np.testing.assert_array_equal(stratified_holdout(labels)[1], held)
    assert not np.array_equal(stratified_holdout(labels, seed=1)[1], held)


def test_a_stratified_split_with_one_example_per_class_is_refused_in_words():
    """Found by the rehearsal: one fabricated Cars image per class gave an empty held-out part, and the
    task's label check then failed on it with a reduction error."""
    with pytest.raises(ValueError, match="no class has a second example"):
        stratified_holdout(np.arange(20))
    train, held = stratified_holdout(np.repeat(np.arange(20), 2))
    assert len(held) == 4 and len(train) == 36


def test_on_validation_maps_test_metrics_to_val():
    for metric, expected in [("test_acc", "val_acc"), ("test_acc_tta", "val_acc_tta"), ("val_ppl", "val_ppl")]:
        target = Target(metric, 0.94, "max")
        assert target.on_validation() == Target(expected, 0.94, "max")
    assert Target("val_ppl", 68.7, "min").on_validation().mode == "min"


# --- Vision claims on tiny files.

def test_cifar10_holds_out_the_last_tenth_and_reports_val(tmp_path):
    train_x, _ = write_cifar10(tmp_path / "data")
    cfg = compose_cfg(["task=cifar10_wrn22", f"task.data_dir={tmp_path / 'data'}",
                       "task.verify_md5=false", "task.widen=1", "task.blocks_per_group=1", "task.tta=flip"])
    full = build(cfg, "test")
    assert (len(full.train), len(full.test)) == (len(train_x), CIFAR_TEST)  # as before
    assert full.metrics == ("test_acc", "test_loss", "test_acc_tta", "test_loss_tta")
    task = build(cfg, "validation")
    keep, held = last_of_permutation(len(train_x))
    assert (len(task.train), len(task.test)) == (len(keep), len(held)) == (18, 2)
    assert torch.equal(task.test.images, torch.as_tensor(train_x[held]))  # cut from the training set
    assert torch.equal(task.train.images, torch.as_tensor(train_x[keep]))
    assert torch.equal(build(cfg, "validation").test.images, task.test.images)  # seeded: the same again
    assert task.metrics == ("val_acc", "val_loss", "val_acc_tta", "val_loss_tta")
    model = task.build_model().eval()
    with torch.no_grad():
        assert set(task.evaluate(model)) == set(task.metrics)


def test_cars_holds_out_a_stratified_tenth_of_its_training_half(tmp_path):
    write_cars_torchvision(tmp_path / "data")
    cfg = compose_cfg(["task=cars_resnet50", f"task.data_dir={tmp_path / 'data'}", "task.cache_hw=[24,36]",
                       f"task.cache_dir={tmp_path / 'cache'}"])
    full = build(cfg, "test")
    assert (len(full.train), len(full.test)) == (len(CARS_TRAIN), len(CARS_TEST))
    task = build(cfg, "validation")
    assert (len(task.train), len(task.test)) == (5, 1) and task.metrics == ("val_acc", "val_loss")
    assert image_counts(task.train.images) + image_counts(task.test.images) == image_counts(full.train.images)
    _, held = stratified_holdout(full.train.labels.numpy())
    assert torch.equal(task.test.labels, full.train.labels[held])
    assert torch.equal(build(cfg, "validation").test.images, task.test.images)


# --- The digits twins.

def check_digits_partition(full, task, classes=range(10)):
    """`task` trains and evaluates on a partition of `full`'s training images, the held-out part a
    tenth of each class."""
    assert image_counts(task.train.images) + image_counts(task.test.images) == image_counts(full.train.images)
    held, trained = (np.bincount(t.labels.numpy(), minlength=len(classes)) for t in (task.test, task.train))
    assert np.all(np.abs(held - 0.1 * (held + trained)) < 1)
    assert task.metrics == ("val_acc", "val_loss")


def test_digits_twins_hold_out_a_stratified_tenth(tmp_path):
    for name in ("digits_resnet", "digits_wrn"):
        cfg = compose_cfg([f"task={name}"])
        full, task = build(cfg, "test"), build(cfg, "validation")
        assert (len(full.train), len(full.test)) == (DIGITS_TRAIN, DIGITS_TEST)  # as before
        assert (len(task.train), len(task.test)) == (DIGITS_TRAIN - 130, 130)
        check_digits_partition(full, task)
        assert torch.equal(build(cfg, "validation").test.images, task.test.images)
        assert torch.equal(task.train.scale, full.train.scale)  # one normalisation either way
        with torch.no_grad():
            assert set(task.evaluate(task.build_model().eval())) == set(task.metrics)


def test_finetune_and_pretrain_cut_the_same_held_out_part(tmp_path):
    checkpoint = tmp_path / "pretrained.pt"
    torch.save({"model": SmallResNet(8, 2, classes=5).state_dict()}, checkpoint)
    pre = compose_cfg(["task=digits_pretrain"])
    fine = compose_cfg(["task=digits_finetune", "task.pretrain=null", f"task.pretrained_path={checkpoint}",
                        "task.width=8"])
    held = {}
    for cfg in (pre, fine):
        full, task = build(cfg, "test"), build(cfg, "validation")
        check_digits_partition(full, task, classes=range(5))
        held[cfg.task.name] = image_counts(task.test.images)
    whole = build(compose_cfg(["task=digits_resnet"]), "validation")  # all ten digits' held-out part
    assert held["digits_pretrain"] + held["digits_finetune"] == image_counts(whole.test.images)


# --- The language models: their validation set as before, the test set never scored.

def wikitext_files(directory: Path) -> Path:
    for split in ("train", "valid", "test"):
        lines = [" = Heading = ", *(f" w{i % 7} w{(i + 1) % 7} w{(i * 3) % 7} . " for i in range(40))]
        (directory / f"wiki.{split}.tokens").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


TINY_LM = ["task.emb_size=8", "task.hidden_size=12", "task.layers=2", "task.batch_size=4", "task.bptt=6",
           "task.eval_batch_size=3", "task.test_batch_size=1", "task.blog_eval_bptt=50"]


@pytest.mark.parametrize("task_name", ["synth_awd_lstm", "qrnn_wt2"])
def test_language_models_drop_only_the_test_metrics(tmp_path, task_name):
    extra = ([f"task.data_dir={wikitext_files(tmp_path)}"] if task_name == "qrnn_wt2"
             else ["task.train_tokens=2000", "task.valid_tokens=500", "task.test_tokens=500"])
    cfg = compose_cfg([f"task={task_name}", *TINY_LM, *extra])
    full, task = build(cfg, "test"), build(cfg, "validation")
    assert full.metrics == ("val_loss", "val_ppl", "test_ppl")  # as before
    assert full.final_metrics == ("val_ppl_blog", "test_ppl_blog")
    assert task.metrics == ("val_loss", "val_ppl") and task.final_metrics == ("val_ppl_blog",)
    assert torch.equal(task.train_data, full.train_data) and torch.equal(task.valid_data, full.valid_data)
    assert not hasattr(task, "test_data") and not hasattr(task, "test_ids")
    model = task.build_model().eval()
    with torch.no_grad():
        assert set(task.evaluate(model)) == set(task.metrics)
        assert set(task.evaluate_final(model)) == set(task.final_metrics)


# --- The task configs: sourced decay for every optimizer a task is trained with, sane search factors.

def test_every_task_has_a_decay_for_each_of_its_optimizers():
    for path in sorted((CONF / "task").glob("*.yaml")):
        task = OmegaConf.load(path)
        assert set(task.lr) <= set(task.wd), path.name  # lr lists the optimizers the grids give it
        assert all(v >= 0 for v in task.wd.values()), path.name
    for path in sorted((CONF / "suite").glob("*.yaml")):
        sweep = OmegaConf.load(path).grid.sweep
        for name in str(sweep.task).split(","):
            wd = OmegaConf.load(CONF / "task" / f"{name}.yaml").wd
            assert set(str(sweep.optimizer).split(",")) <= set(wd), (path.name, name)


def test_bad_split_search_and_wd_are_refused():
    cfg = compose_cfg(["task=digits_resnet", "task.split=train", "task.search.lr_factor=1",
                       "task.search.wd_factor=0.5", "task.wd.sgd=-1"])
    found = task_problems(cfg.task)
    for needle in ("task.split must be one of ['test', 'validation']", "task.search.lr_factor must be > 1",
                   "task.search.wd_factor must be > 1", "task.wd[sgd] must be >= 0"):
        assert any(needle in p for p in found), (needle, found)
    assert task_problems(compose_cfg(["task=digits_resnet", "task.split=validation"]).task) == []
