"""The suite's data, checked before a grid launches: a grid whose cells would all fail for a missing
dataset never starts. On a CUDA machine what is missing is fetched (suites/data, as `make data`);
elsewhere, or when the fetch fails (offline), the grid stops at once with the one command to run."""
from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf

from results.errors import UserError
from suites.data import Status, fetch, make_command, survey


def suite_needs(cells: list[DictConfig]) -> list:
    """Every cell's task's needs, each task config asked once."""
    seen, needs = set(), []
    for cfg in cells:
        key = OmegaConf.to_yaml(cfg.task)
        if key not in seen:
            seen.add(key)
            needs += OmegaConf.to_object(cfg.task).data_needs()
    return needs


def plan_lines(statuses: list[Status], suite: str) -> list[str]:
    if not statuses:
        return ["data: none needed (the tasks generate or bundle their data)"]
    missing = [s for s in statuses if s.problem is not None]
    if not missing:
        return [f"data: all {len(statuses)} item(s) present and verified"]
    return ([f"data: {len(missing)} of {len(statuses)} item(s) missing; fetch with `{make_command(suite)}`:"]
            + [s.line() for s in missing])


def ensure_data(cells: list[DictConfig], suite: str) -> None:
    """Return when every need is present; fetch on CUDA; else raise one UserError with the command."""
    statuses = survey(suite_needs(cells))
    missing = [s for s in statuses if s.problem is not None]
    if not missing:
        return
    print(f"suite {suite} needs data that is not here:", file=sys.stderr)
    print("\n".join(s.line() for s in missing), file=sys.stderr)
    import torch

    if torch.cuda.is_available():
        print(f"fetching it first (as `{make_command(suite)}`)", file=sys.stderr)
        failures = fetch([s.need for s in missing])
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        if not failures:
            return
        raise UserError(f"the data of suite {suite} could not be fetched (above); run `{make_command(suite)}` "
                        f"where the network allows, then rerun")
    raise UserError(f"the data of suite {suite} is missing (above); fetch and verify it with "
                    f"`{make_command(suite)}` (python -m suites.data fetch suite={suite}), then rerun")
