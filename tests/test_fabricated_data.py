"""A rehearsal's data (`python -m suites.data fake`): every blog item in its real on-disk format, read by
the real loaders into the full-size models, marked FABRICATED.txt; and never written where real data is."""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from suites import TASK_SCHEMAS
from suites.base import FABRICATED_MARKER, fabricated_at
from suites.data import __main__ as data_cli
from suites.data import fake, items
from suites.text.data import corpus_counts, read_wikitext_dir
from conftest import compose_all

BLOG = ["cifar10_wrn22", "cars_resnet50", "awd_lstm_wt2", "qrnn_wt2"]


def fabricated_conf(name: str, root: Path):
    """conf/task/<name>.yaml typed as `make data` types it, pointed at the fabricated data."""
    conf = data_cli.typed_task(name)
    return dataclasses.replace(conf, **conf.fabricated(root))


def files(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under root: its mtime and bytes."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rehearsal") / "data"
    assert data_cli.main(["fake", "suite=blog", f"data_root={path}"]) == 0
    return path


def test_every_item_is_written_marked_and_found_through_the_task_overrides(root):
    for directory in (root, *(root / d for d in ("cifar-10-batches-py", "wikitext-2", "stanford_cars", "weights"))):
        assert (directory / FABRICATED_MARKER).read_text().startswith("fabricated by python -m suites.data fake")
    for name in BLOG:
        conf = fabricated_conf(name, root)
        assert conf.problems() == []
        needs = conf.data_needs()
        assert needs, name
        for need in needs:
            assert Path(need.path).exists() and root in Path(need.path).parents, need
            assert fabricated_at(need.path) in (root / FABRICATED_MARKER, fake.home(need) / FABRICATED_MARKER)
            assert fake.state(need) == "present"
    assert fabricated_conf("cars_resnet50", root).weights_path == str(root / "weights" / "resnet50-0676ba61.pth")
    assert fabricated_at(root.parent) is None


def test_cifar_batches_pickle_as_the_real_ones(root):
    folder = root / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")  # the real files' keys read so: Python 2's str
    assert set(batch) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert batch[b"data"].dtype == "uint8" and batch[b"data"].shape == (fake.CIFAR_PER_BATCH, 3072)
    assert sorted(set(batch[b"labels"])) == list(range(10))
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"][0] == "airplane"  # as torchvision reads it


def test_wikitext_has_the_published_training_vocabulary(root):
    lines = read_wikitext_dir(root / "wikitext-2")
    counts = corpus_counts(lines)
    assert counts["vocabulary"] == items.WikiText2.published["vocabulary"] == 33_278
    # One whole window of the blog's batch-1 evaluation (blog_eval_bptt=2000, the tail dropped) and more.
    assert 40_000 <= counts["train"] <= 60_000 and 2_001 < counts["valid"] <= 5_000
    train_words = {w for line in lines["train"] for w in line.split()}
    for split in ("valid", "test"):
        assert {w for line in lines[split] for w in line.split()} <= train_words
    assert lines["train"][:3] == [" ", lines["train"][1], " "] and lines["train"][1].startswith(" = ")


def test_the_full_size_blog_tasks_and_models_build_on_it(root, one_thread):
    from runners.run import make_task
    from runners.spec import resolve_run

    overrides = [[f"task={name}", *(f"task.{k}='{v}'" if isinstance(v, str) else f"task.{k}={str(v).lower()}"
                                     for k, v in fabricated_conf(name, root).fabricated(root).items())]
                 for name in BLOG]
    tasks = {name: make_task(resolve_run(cfg), torch.device("cpu")) for name, cfg in zip(BLOG, compose_all(overrides))}

    cifar = tasks["cifar10_wrn22"]
    assert len(cifar.train) == 5 * fake.CIFAR_PER_BATCH and len(cifar.test) == fake.CIFAR_TEST
    wrn = cifar.build_model()
    # WRN-22 k=6 (9.66M parameters), not a toy width: 3 groups of 3 blocks, 96 -> 192 -> 384 channels
    assert wrn.head.in_features == 384 and len(wrn.body) == 1 + 9
    assert sum(p.numel() for p in wrn.parameters()) > 9_000_000

    cars = tasks["cars_resnet50"]
    assert (len(cars.train), len(cars.test)) == (fake.CARS_TRAIN, fake.CARS_TEST)
    assert (root / "cache" / "stanford_cars").is_dir()  # the decoded cache beside the fabricated data
    resnet = cars.build_model()
    weights = torch.load(root / "weights" / "resnet50-0676ba61.pth", weights_only=True)
    assert torch.equal(resnet.early[0].weight, weights["conv1.weight"])  # loaded, not freshly drawn
    assert sum(p.numel() for p in resnet.late.parameters()) > 20_000_000  # ResNet-50's layer3 + layer4

    for name in ("awd_lstm_wt2", "qrnn_wt2"):
        lm = tasks[name]
        assert lm.vocab_size == 33_279  # the blog's vocabulary: WikiText-2's 33,278 and `_pad_`
        assert lm.build_model().encoder.weight.shape == (33_279, 400)
        assert len(lm.train_batches(0, torch.Generator().manual_seed(0))) >= 2  # a few batches an epoch


def test_the_real_data_root_and_what_holds_it_are_refused(tmp_path, monkeypatch, capsys):
    real = tmp_path / "data"
    monkeypatch.setenv("ONECYCLE_DATA", str(real))
    for given in (real, tmp_path):  # the root, and a directory whose marker would cover it
        assert data_cli.main(["fake", "tasks=awd_lstm_wt2", f"data_root={given}"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task, owned", [("cifar10_wrn22", "cifar-10-batches-py/data_batch_1"),
                                         ("cars_resnet50", "weights/resnet18-f37072fd.pth")])
def test_unmarked_data_in_the_directory_is_refused_and_left_alone(tmp_path, capsys, task, owned):
    (tmp_path / owned).parent.mkdir()
    (tmp_path / owned).write_bytes(b"someone's data")
    before = files(tmp_path)
    assert data_cli.main(["fake", f"tasks={task}", f"data_root={tmp_path}"]) == 2
    assert "without FABRICATED.txt" in capsys.readouterr().err
    assert files(tmp_path) == before and not (tmp_path / FABRICATED_MARKER).exists()


def test_a_rerun_changes_nothing_and_an_incomplete_item_is_rewritten(tmp_path, capsys):
    args = ["fake", "tasks=awd_lstm_wt2", f"data_root={tmp_path}"]
    assert data_cli.main(args) == 0
    assert "wikitext-2: written" in capsys.readouterr().out
    before = files(tmp_path)
    assert data_cli.main(args) == 0
    assert "wikitext-2: present" in capsys.readouterr().out
    assert files(tmp_path) == before
    (tmp_path / "wikitext-2" / "wiki.valid.tokens").unlink()  # ours, marked, no longer whole
    (tmp_path / ".wikitext-2.build-x1").mkdir()  # what a killed writer leaves
    assert data_cli.main(args) == 0
    after = files(tmp_path)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}  # the same bytes
    assert not (tmp_path / ".wikitext-2.build-x1").exists()


def test_published_items_are_documentation_not_config():
    for schema in TASK_SCHEMAS.values():  # a field would enter the config, so every run id
        assert "published_items" not in {f.name for f in dataclasses.fields(schema)}
        assert "published_items" not in OmegaConf.structured(schema)
    wiki, cars = items.WikiText2.published, items.StanfordCars.published
    assert TASK_SCHEMAS["awd_lstm_wt2"].published_items == {"train": wiki["train"], "eval": wiki["valid"],
                                                            "unit": "token"}
    assert TASK_SCHEMAS["cars_resnet50"].published_items == {"train": cars["train"], "eval": cars["test"],
                                                             "unit": "image"}
    assert TASK_SCHEMAS["cifar10_wrn22"].published_items == {"train": 50_000, "eval": 10_000, "unit": "image"}


def test_weights_are_added_to_a_marked_folder_and_generated_data_needs_nothing(tmp_path, capsys):
    from suites.base import DataNeed

    need = DataNeed("weights:resnet18/IMAGENET1K_V1", tmp_path / "weights" / "resnet18-f37072fd.pth")
    fake.fabricate(tmp_path, [need], real=[], log=lambda _: None)
    first = need.path.read_bytes()
    need.path.unlink()  # the folder stays marked: the file alone is written again, the same bytes
    fake.fabricate(tmp_path, [need], real=[], log=lambda _: None)
    assert need.path.read_bytes() == first and fake.state(need) == "present"
    assert sorted(p.name for p in need.path.parent.iterdir()) == [FABRICATED_MARKER, need.path.name]
    empty = tmp_path / "none"
    assert data_cli.main(["fake", "tasks=digits_resnet,synth_qrnn", f"data_root={empty}"]) == 0
    assert "nothing to fabricate" in capsys.readouterr().out and not empty.exists()
