"""`python -m suites.data fake`: a rehearsal's data. Every item a task reads, fabricated in its real
on-disk format (random content, a few batches' worth) so that the full-size models and the real loaders
run end to end without the real data: CIFAR-10's python pickles, WikiText-2's token files with the
published training vocabulary (33,278 words: the models get their real embedding size), Stanford Cars
as hub parquet with JPEGs, and randomly initialised torchvision weights under the published file name.

Each item's directory, and the data root, hold FABRICATED.txt (suites/base.py `fabricated_at`): the
runs that read them are never measurements. Written as `make data` places an item (disk.py: built
beside, renamed into place), with a fixed seed, so a rerun finds the same bytes or leaves them alone.
"""
from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np

from results.errors import UserError

from ..base import FABRICATED_MARKER, DataNeed
from ..text.data import corpus_counts, read_wikitext_dir
from . import item_for, item_lock, unique
from .disk import BUILD, build_beside, check_writable, current_umask, remove_leftovers

MARKER_TEXT = ("fabricated by python -m suites.data fake for a rehearsal; random content in the real format; "
               "never a measurement\n")
SEED = 20180702
# Held-out sets small: a rehearsal evaluates every epoch of every run at full model size.
CIFAR_PER_BATCH, CIFAR_TEST = 64, 32  # 5 training batches of 64, one test batch of 32
# Two training images per class: the validation split (suites/splits.py) holds one out of some classes.
CARS_TRAIN, CARS_TEST, CARS_CLASSES = 392, 24, 196
WIKI_VOCABULARY = 33_278  # Merity et al. 2016, Table 1 (items.py WikiText2.published), <eos> and <unk> in
# Words drawn for wiki.valid.tokens and wiki.test.tokens (lines add <eos> and headings): validation above
# 2,001 tokens, so the blog's batch-1 evaluation (windows of blog_eval_bptt=2000, the tail dropped)
# scores one whole window; test less (a split shorter than a window is scored as one window).
WIKI_HELD_OUT = {"valid": 1_980, "test": 500}
# Frequent words, punctuation and WikiText's escapes: the rest of the vocabulary is made-up words, each
# used once, so the training split stays ~50k tokens (one word of the vocabulary per token, mostly).
WIKI_COMMON = ('the , . of and in to a was @-@ " \'s that for on is as with by he it at from his an were '
               'had which be this but are first not one their also its after has who they two her or '
               'new game song ( ) : ; season 1 2 3 000 @,@ @.@ film album').split()


def home(need: DataNeed) -> Path:
    """The directory an item owns, where its marker goes: the weights' folder, else the item itself."""
    return Path(need.path).parent if need.item.startswith("weights:") else Path(need.path)


def write_marker(directory: Path) -> None:
    (directory / FABRICATED_MARKER).write_text(MARKER_TEXT)


def state(need: DataNeed) -> str:
    """present | incomplete (ours, marked, failing the item's own check) | absent | unmarked (not ours)."""
    if (home(need) / FABRICATED_MARKER).is_file():
        return "present" if item_for(need.item).problem(Path(need.path), verify=False) is None else "incomplete"
    return "unmarked" if home(need).exists() or Path(need.path).exists() else "absent"


def refuse(root: Path, needs: list[DataNeed], real: list[Path]) -> None:
    """UserError, before anything is written, where fabricating under `root` could be taken for, or
    replace, real data: `root` is a path tasks read real data at (`real`) or above one (the root's marker
    would cover it), or an item already there is someone's (unmarked); or `root` cannot be written."""
    for path in real:
        if path == root or root in path.parents:
            raise UserError(f"data_root={root} is or holds {path}, where tasks read their real data: "
                            f"fabricated data never goes there; choose another data_root")
    for need in needs:
        if state(need) == "unmarked":
            raise UserError(f"{need.path} exists without {FABRICATED_MARKER}: someone's data, not "
                            f"fabricated; choose another data_root")
    check_writable(root / FABRICATED_MARKER, "fabricated data")


def fabricate(root: Path, needs: list[DataNeed], real: list[Path], log=print) -> int:
    """Write every need under `root` that is not present (`refuse` first); their total size in bytes."""
    needs = unique(needs)
    refuse(root, needs, real)
    root.mkdir(parents=True, exist_ok=True)
    if not (root / FABRICATED_MARKER).is_file():
        write_atomically(root / FABRICATED_MARKER, MARKER_TEXT.encode())
    total = 0
    for need in needs:
        was = state(need)
        if was != "present":
            write_one(need, was)
        size = item_size(need)
        total += size
        done = "present" if was == "present" else "written"
        log(f"  {item_for(need.item).title:<32} {Path(need.path)}: {done}, fabricated, {mib(size)}")
    return total


def write_one(need: DataNeed, was: str) -> None:
    """Under the item's lock (two writers at once: one writes, the other finds it present)."""
    owned = home(need)
    with item_lock(owned):
        remove_leftovers(owned, log=lambda _: None)
        if state(need) == "present":
            return
        if was == "incomplete" and not need.item.startswith("weights:"):
            shutil.rmtree(owned)  # ours (marked): rewritten whole
        if need.item.startswith("weights:") and owned.is_dir():  # a marked folder: add the file
            for killed in owned.glob(f".{Path(need.path).name}.{BUILD}*"):  # a killed writer's
                killed.unlink()
            write_atomically(Path(need.path), weights_bytes(need.item))
            return
        build_beside(owned, lambda tmp: build(need, tmp / owned.name))


def build(need: DataNeed, out: Path) -> Path:
    """The item's owned directory, written at `out` and checked as `make data` checks a present one."""
    out.mkdir()
    dest = out / Path(need.path).name if need.item.startswith("weights:") else out
    if dest != out:
        dest.write_bytes(weights_bytes(need.item))
    else:
        WRITERS[need.item](out)
    write_marker(out)
    if problem := item_for(need.item).problem(dest, verify=False):
        raise RuntimeError(f"fabricated {need.item} fails its own check: {problem}")  # a bug here
    return out


def write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{BUILD}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide it from a shared group
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def item_size(need: DataNeed) -> int:
    path = Path(need.path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def mib(size: int) -> str:
    return f"{size / 2 ** 20:.1f} MiB"


# --- CIFAR-10: torchvision reads the python batches with pickle.load(f, encoding="latin1").

class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's str, as the real batches hold their keys, names and pixels: loaded
    with encoding="latin1" (torchvision) they are str, with encoding="bytes" b'data' etc., as the real."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_str8(self, obj: bytes) -> None:
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256
                   else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_str8


def py2_pickle(obj, path: Path) -> None:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue())


def cifar10(out: Path) -> None:
    """data_batch_1..5 and test_batch ({data: uint8 (n, 3072) channel-major, labels, batch_label,
    filenames}) and batches.meta ({label_names, num_cases_per_batch, num_vis}), as the python version."""
    rng = np.random.default_rng(SEED)
    names = [(f"data_batch_{i}", f"training batch {i} of 5", CIFAR_PER_BATCH) for i in range(1, 6)]
    for name, label, n in [*names, ("test_batch", "testing batch 1 of 1", CIFAR_TEST)]:
        labels = [int(v) for v in rng.permutation(np.arange(n) % 10)]  # every class in every batch
        py2_pickle({b"batch_label": label.encode(), b"labels": labels,
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"filenames": [f"fabricated_{name}_{i:05d}.png".encode() for i in range(n)]}, out / name)
    classes = "airplane automobile bird cat deer dog frog horse ship truck".split()
    py2_pickle({b"num_cases_per_batch": CIFAR_PER_BATCH, b"label_names": [c.encode() for c in classes],
                b"num_vis": 3072}, out / "batches.meta")


# --- WikiText-2: awd-lstm-lm's wiki.{train,valid,test}.tokens, counted by suites/text/data.py.

def made_up_words(n: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    """n distinct pronounceable words, a third capitalised (WikiText keeps case: names, titles)."""
    onsets = "b c d f g h j k l m n p r s t v w z ch sh th br st".split()
    vowels = "a e i o u ai ea ou".split()
    words: dict[str, None] = {}
    while len(words) < n:
        word = "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))]
                       for _ in range(rng.integers(2, 5)))
        word = word.capitalize() if rng.random() < 1 / 3 else word
        if word not in taken:
            words[word] = None
    return list(words)


def wiki_lines(stream: list[str], rng: np.random.Generator) -> list[str]:
    """WikiText's line style: " = Title = " headings between blank lines, paragraphs of sentences,
    each line with a leading and a trailing space, a blank line being one space."""
    lines, at = [], 0
    while at < len(stream):
        title, at = stream[at:at + 2], at + 2
        lines += [" ", f" = {' '.join(title)} = ", " "]
        for _ in range(rng.integers(2, 6)):
            length = int(rng.integers(60, 160))
            words, at = stream[at:at + length], at + length
            if words:
                lines += [f" {' '.join(words)} . ", " "]
    return lines


def wikitext2(out: Path) -> None:
    """The training split uses every one of WIKI_VOCABULARY words (with <eos> and <unk>); the held-out
    splits only training words, as WikiText's (its rare words are <unk> already)."""
    rng = np.random.default_rng(SEED)
    special = {"<unk>", "<eos>", "=", "."}  # the last two come with the headings and the sentences
    common = [w for w in dict.fromkeys(WIKI_COMMON) if w not in special]
    rare = made_up_words(WIKI_VOCABULARY - len(common) - len(special), rng, set(common) | special)
    # Every word at least once, the frequent ones ~12k times in all, <unk> now and then; shuffled.
    zipf = 1 / np.arange(1, len(common) + 1)
    stream = np.array([*rare, *common, *rng.choice(common, 12_000, p=zipf / zipf.sum()), *["<unk>"] * 400])
    stream = [str(w) for w in rng.permutation(stream)]
    splits = {"train": wiki_lines(stream, rng)}
    for split in ("valid", "test"):
        splits[split] = wiki_lines([str(w) for w in rng.choice(stream, WIKI_HELD_OUT[split])], rng)
    for split, lines in splits.items():
        (out / f"wiki.{split}.tokens").write_text("".join(f"{line}\n" for line in lines), "utf-8")
    vocabulary = corpus_counts(read_wikitext_dir(out))["vocabulary"]
    if vocabulary != WIKI_VOCABULARY:
        raise RuntimeError(f"fabricated WikiText-2 vocabulary {vocabulary}, not {WIKI_VOCABULARY}")


# --- Stanford Cars: the hub mirror's parquet (image {bytes, path}, label), read by suites/vision/cars.py.

def jpeg(rng: np.random.Generator) -> bytes:
    """A random image of varied size and aspect, blocky (random at 1/8 scale) so it compresses."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import encode_jpeg

    height, width = int(rng.integers(96, 160)), int(rng.integers(128, 240))
    small = torch.from_numpy(rng.integers(0, 256, (1, 3, height // 8 + 1, width // 8 + 1)).astype(np.float32))
    image = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[0]
    with warnings.catch_warnings():  # torchvision 0.29 deprecates torchvision.io for TorchCodec
        warnings.simplefilter("ignore", DeprecationWarning)
        return encode_jpeg(image.round().clamp(0, 255).to(torch.uint8), quality=90).numpy().tobytes()


def stanford_cars(out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    (out / "data").mkdir()
    for split, labels in (("train", np.arange(CARS_TRAIN) % CARS_CLASSES),
                          ("test", rng.integers(0, CARS_CLASSES, CARS_TEST))):
        images = [{"bytes": jpeg(rng), "path": f"fabricated_{split}_{i:05d}.jpg"} for i in range(len(labels))]
        table = pa.table({"image": pa.array(images, type=image_type), "label": pa.array(labels, type=pa.int64())})
        pq.write_table(table, out / "data" / f"{split}-00000-of-00001.parquet")


WRITERS = {"cifar10": cifar10, "wikitext2": wikitext2, "stanford_cars": stanford_cars}


# --- Weights: a randomly initialised torchvision model's state dict, as torch.hub's file holds one.

def weights_bytes(item: str) -> bytes:
    import torch
    import torchvision

    arch = item.removeprefix("weights:").partition("/")[0]
    with torch.random.fork_rng(devices=[]):  # seeded without moving the caller's generator
        torch.manual_seed(SEED)
        state = torchvision.models.get_model(arch, weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()
