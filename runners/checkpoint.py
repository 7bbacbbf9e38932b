"""Per-epoch checkpoints: model, optimizer, position, RNG states — loadable with weights_only=True."""
from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from results import records


def rng_state() -> dict:
    """Every RNG a run draws from, as tensors and plain Python values (weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic (records.write_atomic): a kill during the save leaves the previous checkpoint intact.
    Serialised in memory first: torch.save reports a full disk as an opaque RuntimeError, a plain
    write as ENOSPC (records.DiskFull)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    records.write_atomic(path, lambda fh: fh.write(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict | None:
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
