"""`make data` (python -m suites.data) against a loopback server standing in for the internet: every
item fetched and verified, downloads resumed after a cut, corrupt files rejected with nothing placed,
one clear line per item offline, and the grid's data check before launching.

The fixtures are tiny files in the real formats, so they cannot match the published checksums and
counts: each test swaps the expected values for the fixture's (what is checked, and how, is unchanged)."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torchvision.datasets import CIFAR10

from data_server import LoopbackServer
from suites.data import __main__ as data_cli
from suites.data import download, items
from suites.text.data import corpus_counts, read_wikitext_dir
from vision_files import write_cars_parquet, write_cifar10

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
TRAIN = [" ", " = Valkyria Chronicles = ", " ", " the game is a <unk> role @-@ playing game . ", ""]
VALID = [" ", " = Gameplay = ", " the <unk> game . "]
TEST = [" the game . ", " ", " = Plot = "]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def cifar_archive(tmp: Path) -> tuple[bytes, dict[str, str]]:
    """cifar-10-python.tar.gz of the fixture batches, and each batch file's md5."""
    write_cifar10(tmp)
    folder = tmp / CIFAR10.base_folder
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=CIFAR10.base_folder)
    return buffer.getvalue(), {p.name: md5(p.read_bytes()) for p in folder.iterdir()}


def wikitext_parquet(lines: list[str]) -> bytes:
    """A hub parquet file: one row per line with its newline, blank lines as "" (the hub's shape)."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": [f"{line}\n" if line.strip() else "" for line in lines]}), buffer)
    return buffer.getvalue()


@pytest.fixture
def internet(tmp_path, monkeypatch):
    """The loopback server holding every item's files, the environment pointing at it, and the
    expected checksums and counts swapped for the fixtures'."""
    archive, batch_md5 = cifar_archive(tmp_path / "fixtures")
    cars = write_cars_parquet(tmp_path / "fixtures")
    weights = io.BytesIO()
    torch.save({"w": torch.arange(4.0)}, weights)
    with LoopbackServer() as server:
        server.add(CIFAR10.url, archive)
        server.add(WEIGHTS_URL, weights.getvalue())
        for split, lines in (("train", TRAIN), ("validation", VALID), ("test", TEST)):
            server.add_hub_file(items.WikiText2.repo, items.WikiText2.revision,
                                f"wikitext-2-v1/{split}-00000-of-00001.parquet", wikitext_parquet(lines))
        for path in sorted(cars.rglob("*.parquet")):
            server.add_hub_file(items.StanfordCars.repo, items.StanfordCars.revision,
                                str(path.relative_to(cars)), path.read_bytes())
        monkeypatch.setenv(download.MIRROR_ENV, server.url)
        monkeypatch.setenv("ONECYCLE_DATA", str(tmp_path / "data"))
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        for name in ("HF_ENDPOINT", "HF_TOKEN", "ONECYCLE_WIKITEXT_DIR"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))
        monkeypatch.setattr(CIFAR10, "train_list", [[n, batch_md5[n]] for n, _ in CIFAR10.train_list])
        monkeypatch.setattr(CIFAR10, "test_list", [[n, batch_md5[n]] for n, _ in CIFAR10.test_list])
        monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": batch_md5["batches.meta"]})
        counts = corpus_counts({"train": TRAIN, "valid": VALID, "test": TEST})
        monkeypatch.setattr(items.WikiText2, "published", counts)
        monkeypatch.setattr(items.StanfordCars, "published", {"train": 6, "test": 4, "classes": 3})
        prefix = hashlib.sha256(weights.getvalue()).hexdigest()[:8]
        monkeypatch.setattr(items.TorchvisionWeights, "expected", lambda self: download.Expected(sha256_prefix=prefix))
        yield server


def test_make_data_fetches_and_verifies_every_item_then_the_plan_finds_nothing_missing(internet, tmp_path, capsys):
    assert data_cli.main(["fetch"]) == 0  # suite=blog: every claim's data
    data = tmp_path / "data"
    assert sorted(p.name for p in (data / "cifar-10-batches-py").iterdir()) == sorted(
        ["batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6))])
    lines = read_wikitext_dir(data / "wikitext-2")  # a line per row; the hub keeps blank lines as ""
    assert {k: [line.split() for line in v] for k, v in lines.items()} == {
        k: [line.split() for line in v] for k, v in (("train", TRAIN), ("valid", VALID), ("test", TEST))}
    assert len(list((data / "stanford_cars").rglob("*.parquet"))) == 2
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth").is_file()
    leftovers = [p.name for p in data.rglob("*") if p.name.endswith(".part") or ".download" in p.name
                 or p.name == CIFAR10.filename or ".bad-" in p.name
                 or (p.name.startswith(".") and not p.name.endswith(".lock"))]
    assert leftovers == []
    out = capsys.readouterr().out
    assert out.count(": present, verified") == 4

    requests = len(internet.requests)
    assert data_cli.main(["fetch"]) == 0
    assert len(internet.requests) == requests  # verified items are not fetched again

    from runners.grid.__main__ import main as grid_main

    assert grid_main(["suite=nightly", "plan=true", f"results_dir={tmp_path / 'results'}"]) == 0
    assert "data: all 1 item(s) present and verified" in capsys.readouterr().out
    assert data_cli.main(["check"]) == 0  # the blog suite's four (its plan walks 120 cells: too slow here)


def test_an_interrupted_download_resumes_where_it_stopped(internet, tmp_path, capsys):
    archive = internet.files[f"/www.cs.toronto.edu{CIFAR10.url.split('toronto.edu')[1]}"]
    internet.cut_once[f"/www.cs.toronto.edu/~kriz/{CIFAR10.filename}"] = len(archive) // 2
    assert data_cli.main(["fetch", "tasks=cifar10_wrn22"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "interrupted after" in err and "resumes" in err
    part = tmp_path / "data" / f"{CIFAR10.filename}.part"
    assert part.stat().st_size == len(archive) // 2
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()  # nothing half-placed

    assert data_cli.main(["fetch", "tasks=cifar10_wrn22"]) == 0
    ranges = [r for path, r in internet.requests if path.endswith(CIFAR10.filename)]
    assert ranges == [None, f"bytes={len(archive) // 2}-"]
    assert not part.exists() and (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()


def test_a_server_ignoring_the_range_restarts_the_file(internet, tmp_path):
    archive_path = f"/www.cs.toronto.edu/~kriz/{CIFAR10.filename}"
    internet.cut_once[archive_path] = 1000
    internet.ignore_ranges = True
    assert data_cli.main(["fetch", "tasks=cifar10_wrn22"]) == 1
    assert data_cli.main(["fetch", "tasks=cifar10_wrn22"]) == 0  # a 200 for the range: written from 0
    assert (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_a_corrupt_download_is_rejected_and_nothing_is_placed(internet, tmp_path, capsys):
    internet.add(CIFAR10.url, b"not the archive" * 100)
    assert data_cli.main(["fetch", "tasks=cifar10_wrn22"]) == 1
    err = capsys.readouterr().err
    assert "md5" in err and "was removed" in err and err.count("error:") == 1
    assert not (tmp_path / "data").exists()  # nothing placed, nor the data root the fetch had made


def test_hub_files_failing_the_published_counts_are_not_placed(internet, tmp_path, capsys):
    internet.add_hub_file(items.WikiText2.repo, items.WikiText2.revision,
                          "wikitext-2-v1/test-00000-of-00001.parquet", wikitext_parquet(TEST[:2]))
    assert data_cli.main(["fetch", "tasks=awd_lstm_wt2"]) == 1
    err = capsys.readouterr().err
    assert "token counts differ: test 5 (published 9)" in err and "nothing was placed" in err
    assert not (tmp_path / "data" / "wikitext-2").exists()


def test_an_existing_copy_that_fails_its_check_is_moved_aside_not_deleted(internet, tmp_path):
    write_cifar10(tmp_path / "data", seed=7)  # other bytes: fails the (fixture) MD5s
    assert data_cli.main(["fetch", "tasks=cifar10_wrn22"]) == 0
    aside = [p for p in (tmp_path / "data").iterdir() if ".bad-" in p.name]
    assert len(aside) == 1 and (aside[0] / "data_batch_1").is_file()
    assert data_cli.main(["check", "tasks=cifar10_wrn22"]) == 0


def test_offline_each_missing_item_gets_one_line_with_its_url_and_destination(internet, monkeypatch, tmp_path,
                                                                            capsys):
    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9")  # the discard port: refused
    assert data_cli.main(["fetch"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 4
    for title, where in (("CIFAR-10", tmp_path / "data" / "cifar-10-batches-py"),
                         ("WikiText-2", tmp_path / "data" / "wikitext-2"),
                         ("Stanford Cars", tmp_path / "data" / "stanford_cars"),
                         ("resnet50", tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth")):
        line = next(e for e in errors if title in e)
        assert "cannot reach http://127.0.0.1:9/" in line and str(where) in line and "Rerun" in line


def test_hf_endpoint_points_the_hub_at_a_mirror(internet, monkeypatch, tmp_path):
    monkeypatch.delenv(download.MIRROR_ENV)
    monkeypatch.setenv("HF_ENDPOINT", f"{internet.url}/huggingface.co")
    assert data_cli.main(["fetch", "tasks=qrnn_wt2"]) == 0
    assert read_wikitext_dir(tmp_path / "data" / "wikitext-2")["valid"][1:] == VALID[1:]


def test_free_space_is_checked_before_anything_is_downloaded(internet, monkeypatch, capsys):
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: type("U", (), {"free": 1 << 20})())
    assert data_cli.main(["fetch", "tasks=cifar10_wrn22"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "GiB free" in err and internet.requests == []


def test_on_cuda_the_grid_fetches_missing_data_before_launching(internet, monkeypatch, tmp_path):
    from runners.grid.cells import cell_overrides, compose_many
    from runners.grid.data import ensure_data

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cells = compose_many(cell_overrides("nightly", [f"results_dir={tmp_path / 'results'}"])[0])
    ensure_data(cells, "nightly")
    assert (tmp_path / "data" / "cifar-10-batches-py" / "batches.meta").is_file()


def test_on_cuda_offline_the_grid_stops_with_the_command(internet, monkeypatch, tmp_path):
    from runners.grid.cells import cell_overrides, compose_many
    from runners.grid.data import ensure_data
    from results.errors import UserError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9")
    cells = compose_many(cell_overrides("nightly", [f"results_dir={tmp_path / 'results'}"])[0])
    with pytest.raises(UserError, match="could not be fetched.*make data SUITE=nightly"):
        ensure_data(cells, "nightly")
    assert not (tmp_path / "results").exists()


def test_without_cuda_or_network_the_grid_stops_at_once_with_the_command(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ONECYCLE_DATA": str(tmp_path / "data"), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "runners.grid", "suite=nightly", f"results_dir={tmp_path / 'r'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "make data SUITE=nightly" in errors[0]
    assert f"{tmp_path / 'data' / 'cifar-10-batches-py'}: missing" in done.stderr
    assert not (tmp_path / "r").exists()  # nothing launched, nothing written


def test_check_and_bad_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ONECYCLE_DATA", str(tmp_path))
    assert data_cli.main(["check", "tasks=cifar10_wrn22"]) == 1
    assert "fetch it with: python -m suites.data fetch tasks=cifar10_wrn22" in capsys.readouterr().err
    for suite in ("mini", "modern_mini"):  # the CPU twins: nothing to fetch (digits_finetune's
        assert data_cli.main(["check", f"suite={suite}"]) == 0  # config needs its pre-training run)
        assert "nothing to fetch" in capsys.readouterr().out
    for bad in (["pull"], ["fetch", "suite=nope"], ["fetch", "tasks=nope"], ["fetch", "colour=red"],
                ["fetch", "suite=blog", "tasks=qrnn_wt2"]):
        assert data_cli.main(bad) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


def test_expected_checks_size_digest_and_prefix(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert download.Expected(size=3, sha256=digest).problem(path) is None
    assert download.Expected(sha256_prefix=digest[:8]).problem(path) is None
    assert "expected 4" in download.Expected(size=4).problem(path)
    assert "md5" in download.Expected(md5="0" * 32).problem(path)
    assert download.Expected(sha256_prefix="0" * 8).problem(path).startswith("sha256")


def test_mirror_layout_and_hub_pages(monkeypatch):
    from suites.data.hub import next_page

    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:8000/")
    assert download.mirrored("https://huggingface.co/api/x?recursive=true") == \
        "http://127.0.0.1:8000/huggingface.co/api/x?recursive=true"
    assert next_page('<https://huggingface.co/api/t?cursor=abc>; rel="next"') == "https://huggingface.co/api/t?cursor=abc"
    assert next_page(None) is None
