"""CLI: `python -m runners.train task=T optimizer=O schedule=S seed=N [overrides]`.

The last line printed is `run_dir=<path>`. Bad input ends with one `error: ...` line and exit code 2 —
Hydra's own errors too: the config is composed with Hydra's compose API (runners/overrides.py), whose
errors are exceptions to word, rather than by `hydra.main`, which prints them over a dozen lines and
exits 1. Hydra's flags (--help, --cfg job, -m, ...) still go through `hydra.main`.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from results.errors import UserError
from suites import TASK_SCHEMAS

from .config import register_configs
from .overrides import compose_run
from .run import execute
from .spec import resolve_run

register_configs(TASK_SCHEMAS)
# Hydra's command-line flags, each handled by hydra.main (any other argument starting '-' is refused).
HYDRA_FLAGS = ("-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "--resolve", "-p", "--package",
               "-r", "--run", "-m", "--multirun", "-cp", "--config-path", "-cn", "--config-name", "-cd",
               "--config-dir", "--experimental-rerun", "-i", "--info", "-sc", "--shell-completion")


def run(cfg: DictConfig) -> None:
    try:
        spec = resolve_run(cfg)  # the one reading of the config
        execute(spec)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"run_dir={spec.path}")


hydra_main = hydra.main(config_path="../conf", config_name="config", version_base="1.3")(run)


def main() -> None:
    args = sys.argv[1:]
    flags = [a for a in args if a.startswith("-")]
    try:
        if flags:
            unknown = [f for f in flags if f.split("=", 1)[0] not in HYDRA_FLAGS]
            if unknown:
                raise UserError(f"unknown option {unknown[0]!r}; overrides are key=value (Hydra's flags: "
                                f"--help, --cfg job, -m, ...)")
        else:
            cfg = compose_run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if flags:
        hydra_main()
    else:
        run(cfg)


if __name__ == "__main__":
    main()
