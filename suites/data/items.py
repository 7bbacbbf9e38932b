"""The data items `make data` fetches: each one's source, its check, and how it lands on disk.

An item is present only once verified: CIFAR-10 by torchvision's MD5 table, WikiText-2 and Stanford
Cars by their published counts, the ResNet-50 weights by the sha256 prefix in their file name. A
directory is built beside its destination and renamed into place whole; a destination that exists but
fails its check is moved aside (`<name>.bad-<time>`), never deleted: it may be someone's manual copy
(disk.py: placing, permissions, what a killed fetch left).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from results.errors import DatasetMissing

from ..text.data import SPLITS, corpus_counts, read_wikitext_dir
from ..vision.cars import detect, split_labels
from ..vision.resnet_head import weights_enum
from .disk import build_beside, place_dir
from .download import DataError, Expected, check_free_space, fetch_file
from .hub import file_url, list_files, token_header

GiB = 2 ** 30


def count_problem(what: str, got: dict, published: dict) -> str | None:
    wrong = [f"{k} {got.get(k)} (published {v:,})" for k, v in published.items() if got.get(k) != v]
    return f"{what} counts differ: {', '.join(wrong)}" if wrong else None


class Cifar10:
    """torchvision's own URL, archive MD5, per-file MD5 table and extraction; our resumable transfer."""

    title = "CIFAR-10 (python batches)"
    space = GiB // 2  # 163 MiB archive + 178 MiB extracted

    def manual(self, dest: Path) -> str:
        from torchvision.datasets import CIFAR10

        return f"download {CIFAR10.url} elsewhere and extract it into {dest.parent}"

    def problem(self, dest: Path, verify: bool) -> str | None:
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import check_integrity

        files = [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]
        absent = [name for name, _ in files if not (dest / name).is_file()]
        if absent:
            return "missing" if len(absent) == len(files) else f"incomplete: no {', '.join(absent)}"
        bad = [name for name, md5 in files if verify and not check_integrity(str(dest / name), md5)]
        return f"MD5 mismatch in {', '.join(bad)}" if bad else None

    def fetch(self, dest: Path) -> None:
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import extract_archive

        archive = fetch_file(CIFAR10.url, dest.parent / CIFAR10.filename, Expected(md5=CIFAR10.tgz_md5),
                             "CIFAR-10")

        def build(tmp: Path) -> Path:
            extract_archive(str(archive), str(tmp))
            if problem := self.problem(tmp / CIFAR10.base_folder, verify=True):
                raise_bad(self.title, archive, problem)
            return tmp / CIFAR10.base_folder

        build_beside(dest, build)
        archive.unlink()


class WikiText2:
    """The hub's parquet conversion of wikitext-2-v1 (Salesforce/wikitext at a pinned revision), each
    file checked against the hub's sha256, written as awd-lstm-lm's wiki.{train,valid,test}.tokens:
    one line per parquet row (the hub keeps every line of the original files, blank ones as "")."""

    title = "WikiText-2 v1 (tokenized)"
    space = GiB // 8
    repo, folder = "Salesforce/wikitext", "wikitext-2-v1"
    # The revision the hub's parquet files were converted at, as pinned by users of this mirror.
    revision = "b08601e04326c79dfdd32d625aee71d232d685c3"
    # Merity et al. 2016 (arXiv:1609.07843) Table 1; how they are counted: suites/text/data.py.
    published = {"vocabulary": 33_278, "train": 2_088_628, "valid": 217_646, "test": 245_569}
    hub_splits = {"train": "train", "valid": "validation", "test": "test"}

    def manual(self, dest: Path) -> str:
        return (f"put wiki.train.tokens, wiki.valid.tokens and wiki.test.tokens (wikitext-2-v1.zip, Merity et "
                f"al. 2016) into {dest}")

    def problem(self, dest: Path, verify: bool) -> str | None:
        absent = [f"wiki.{s}.tokens" for s in SPLITS if not (dest / f"wiki.{s}.tokens").is_file()]
        if absent:
            return "missing" if len(absent) == len(SPLITS) else f"incomplete: no {', '.join(absent)}"
        if verify:
            return count_problem("token", corpus_counts(read_wikitext_dir(dest)), self.published)
        return None

    def fetch(self, dest: Path) -> None:
        staging = dest.parent / f".{dest.name}.download"
        files = hub_files(self.repo, self.revision, self.folder, tuple(self.hub_splits.values()))
        paths = {split: fetch_hub_files(self.repo, self.revision, files[split], staging) for split in files}

        def build(tmp: Path) -> Path:
            import pyarrow.parquet as pq

            for split, hub_split in self.hub_splits.items():
                rows = [row.rstrip("\n") for path in paths[hub_split]
                        for row in pq.read_table(path, columns=["text"]).column("text").to_pylist()]
                (tmp / f"wiki.{split}.tokens").write_text("".join(f"{row}\n" for row in rows), "utf-8")
            if problem := self.problem(tmp, verify=True):
                raise_bad(self.title, staging, problem)
            return tmp

        build_beside(dest, build)
        shutil.rmtree(staging, ignore_errors=True)


class StanfordCars:
    """The hub's parquet mirror tanganke/stanford_cars at a pinned revision (image bytes + label
    columns), each file checked against the hub's sha256; the split counts are checked too."""

    title = "Stanford Cars (parquet)"
    space = 3 * GiB  # ~1.9 GiB of parquet, plus the staging copy's headroom
    repo = "tanganke/stanford_cars"
    revision = "9abf6cf7d6dfa7b95152a0d6e791ea9435b47a40"
    # Krause et al. 2013: 8,144 training and 8,041 test images of 196 classes.
    published = {"train": 8_144, "test": 8_041, "classes": 196}

    def manual(self, dest: Path) -> str:
        return (f"run `huggingface-cli download {self.repo} --repo-type dataset --revision {self.revision} "
                f"--local-dir {dest}` elsewhere and copy {dest} here")

    def problem(self, dest: Path, verify: bool) -> str | None:
        return self.check(dest.parent, verify)

    def check(self, root: Path, verify: bool) -> str | None:
        """As the task looks: any layout under root/stanford_cars or root (suites/vision/cars.py)."""
        try:
            layout, directory = detect(root)
        except DatasetMissing:
            return "missing"
        if not verify:
            return None
        labels = split_labels(layout, directory)
        counts = {"train": len(labels["train"]), "test": len(labels["test"]),
                  "classes": len(set(labels["train"]))}
        return count_problem(f"{layout} layout", counts, self.published)

    def fetch(self, dest: Path) -> None:
        staging = dest.parent / f".{dest.name}.download"
        files = hub_files(self.repo, self.revision, "", ("train", "test"))
        fetch_hub_files(self.repo, self.revision, [f for group in files.values() for f in group], staging)
        # Checked where they lie (the check reads a root's own layout too) and placed by one rename: no
        # build directory, so a fetch killed here keeps the downloads for the next try.
        if problem := self.check(staging, verify=True):
            raise_bad(self.title, staging, problem)
        place_dir(staging, dest)


class TorchvisionWeights:
    """Pretrained weights through torchvision's weights API: its URL, and the sha256 prefix torch.hub
    puts in the file name (`resnet50-0676ba61.pth`), checked as `torch.hub.load_state_dict_from_url`
    with check_hash=True does."""

    space = GiB // 4

    def __init__(self, arch: str, weights: str):
        self.arch, self.weights = arch, weights
        self.title = f"{arch} {weights} weights"

    def url(self) -> str:
        return weights_enum(self.arch, self.weights).url

    def manual(self, dest: Path) -> str:
        return f"download {self.url()} elsewhere and put it at {dest}"

    def expected(self) -> Expected:
        from torch.hub import HASH_REGEX

        match = HASH_REGEX.search(Path(self.url()).name)
        return Expected(sha256_prefix=match.group(1) if match else None)

    def problem(self, dest: Path, verify: bool) -> str | None:
        if not dest.is_file():
            return "missing"
        problem = self.expected().problem(dest) if verify else None
        return f"not the published file: {problem}" if problem else None

    def fetch(self, dest: Path) -> None:
        fetch_file(self.url(), dest, self.expected(), self.title)


def hub_files(repo: str, revision: str, folder: str, splits: tuple[str, ...]) -> dict[str, list]:
    """The repo's parquet files by split, a split being the file name's first word (`train-0000...`)."""
    listed = [f for f in list_files(repo, revision, folder) if f.path.endswith(".parquet")]
    found = {s: [f for f in listed if re.match(rf"{s}\b", Path(f.path).name)] for s in splits}
    if empty := [s for s, group in found.items() if not group]:
        raise DataError(f"{repo} at {revision} lists no parquet file for split(s) {', '.join(empty)}")
    return found


def fetch_hub_files(repo: str, revision: str, files: list, staging: Path) -> list[Path]:
    """Each file into `staging` (its repo path kept), resumable, checked against its size and sha256."""
    check_free_space(staging.parent, int(sum(f.size for f in files) * 1.1), f"{repo}'s files")
    urls = [file_url(repo, revision, f.path) for f in files]
    return [fetch_file(url, staging / f.path, Expected(f.size, sha256=f.sha256), f"{repo}/{f.path}",
                       private=token_header(url)) for url, f in zip(urls, files)]


def raise_bad(title: str, where: Path, problem: str) -> None:
    raise DataError(f"{title}: the downloaded files ({where}) fail their check: {problem}; nothing was "
                    f"placed. The source no longer matches the published data: report it")
