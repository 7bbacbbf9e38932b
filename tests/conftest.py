"""Shared helpers: compose the real Hydra config in-process and run experiments on tiny settings."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# A digits run small enough for a test: a narrow net, few epochs, no progress bar.
TINY = ["task.width=8", "task.blocks=1", "progress=false"]


def compose_cfg(overrides: list[str], config_dir: Path = CONF):
    return compose_all([overrides], config_dir)[0]


def compose_all(override_lists: list[list[str]], config_dir: Path = CONF) -> list:
    """Many configs under one Hydra initialisation (the slow part)."""
    from runners.config import register_configs
    from suites import TASK_SCHEMAS

    register_configs(TASK_SCHEMAS)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return [compose(config_name="config", overrides=o) for o in override_lists]


def run_cli(args: list[str], cwd: Path = ROOT, timeout: int = 300, env: dict | None = None):
    """`python -m runners.train ARGS` in a subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "runners.train", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def pytest_configure(config):
    # Registered here, not in pyproject.toml (whose change would reinstall the venv): `make test` leaves
    # these out, `make test-full-size` (CI's second step) runs them.
    config.addinivalue_line("markers", "full_size: a rehearsal at full model size (minutes; make test-full-size)")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def one_thread():
    """On a shared 2-core machine two intra-op threads spin against other processes; one is faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def execute_at(cfg) -> Path:
    """Run `cfg` (runners.run.execute) and return its run directory, whose records the test reads."""
    from runners.spec import resolve_run
    from runners.run import execute

    execute(resolve_run(cfg))
    return resolve_run(cfg).path
