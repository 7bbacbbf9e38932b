"""CLI: `python -m runners.train task=T optimizer=O schedule=S seed=N [overrides]`.

The last line printed is `run_dir=<path>`. Bad input ends with one `error: ...` line and exit code 2.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from results.errors import UserError
from suites import TASK_SCHEMAS

from .config import register_configs, run_path
from .run import execute

register_configs(TASK_SCHEMAS)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        execute(cfg)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"run_dir={run_path(cfg)}")


if __name__ == "__main__":
    main()
