"""Where datasets and caches live, and the atomic writes that keep a cache whole."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from results.layout import Layout

RESULTS_ENV = "ONECYCLE_RESULTS"  # the run records' root (as runners/config.py's results_dir)


def cache_root(configured: str | None) -> Path:
    """`task.cache_dir` when set, else <$ONECYCLE_RESULTS or results>/cache."""
    if configured:
        return Path(configured).expanduser()
    return Layout.at(os.environ.get(RESULTS_ENV) or "results").cache()


def config_hash(spec: dict) -> str:
    """A short stable key for a cache entry: sha1 of the spec as canonical JSON."""
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def publish_dir(build, final: Path) -> Path:
    """Build a directory with `build(tmp_dir)` beside `final`, then rename it into place, so readers
    see either no cache or a whole one (a killed build leaves only a temporary directory)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        if final.exists():  # another process finished first: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
