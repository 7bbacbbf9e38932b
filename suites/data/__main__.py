"""CLI: `python -m suites.data fetch|check|fake [suite=NAME | tasks=a,b] [data_root=DIR]` (`make data`).

`fetch` gets and verifies what the suite's (default: blog, every claim) or the named tasks' data needs
are missing, then lists them all; `check` only lists. Exit 0 when everything is present and verified,
1 when something is not (one `error:` line per item, with its URL and destination), 2 on bad input (a
destination that cannot be written included: refused before anything is written).
For these two, `data_root=DIR` is $ONECYCLE_DATA: the tasks read the same place when it is exported.

`fake` writes a rehearsal's data instead (fake.py): each need fabricated in its real format under DIR
(default <$ONECYCLE_RESULTS or results>/rehearsal/data), marked FABRICATED.txt, where the task's
`fabricated(DIR)` overrides point it (suites/base.py). It refuses, exit 2 and nothing written, the real
data root (or a directory above it or a task's real data) and a DIR holding an item without its marker.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from results.errors import UserError
from results.layout import Layout

from .. import TASK_SCHEMAS
from ..base import DATA_ENV, DataNeed, TaskConf, data_root
from ..vision.paths import RESULTS_ENV
from . import fake, fetch, print_failures, survey

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
USAGE = "usage: python -m suites.data fetch|check|fake [suite=NAME | tasks=a,b] [data_root=DIR]"


def suite_tasks(suite: str) -> list[str]:
    """The tasks a suite's grid sweeps and its recipe cells train (conf/suite/<suite>.yaml)."""
    path = CONF_DIR / "suite" / f"{suite}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "suite").glob("*.yaml"))
        raise UserError(f"unknown suite {suite!r}; known: {', '.join(known)}")
    grid = (yaml.safe_load(path.read_text()) or {}).get("grid", {})
    tasks = str(grid.get("sweep", {}).get("task", "")).split(",")
    return list(dict.fromkeys(t.strip() for t in [*tasks, *grid.get("recipes", {})] if t.strip()))


def typed_task(name: str) -> TaskConf | None:
    """conf/task/<name>.yaml typed by its schema (as Hydra composes it); None for a task that reads
    nothing from disk."""
    path = CONF_DIR / "task" / f"{name}.yaml"
    if name not in TASK_SCHEMAS or not path.is_file():
        raise UserError(f"unknown task {name!r}; known: {', '.join(sorted(TASK_SCHEMAS))}")
    schema = TASK_SCHEMAS[name]
    if schema.data_needs is TaskConf.data_needs:  # generated or bundled data (its config may need more
        return None                               # than its own yaml to compose, e.g. a pre-training run)
    values = {k: v for k, v in (yaml.safe_load(path.read_text()) or {}).items() if k != "defaults"}
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as exc:
        raise UserError(f"conf/task/{name}.yaml: {exc}".splitlines()[0]) from None


def task_needs(name: str) -> list[DataNeed]:
    """The needs of conf/task/<name>.yaml."""
    conf = typed_task(name)
    return conf.data_needs() if conf else []


def fabricated_needs(name: str, root: Path) -> list[DataNeed]:
    """The needs of conf/task/<name>.yaml once pointed at the fabricated data under `root`."""
    conf = typed_task(name)
    return dataclasses.replace(conf, **conf.fabricated(root)).data_needs() if conf else []


def parse(argv: list[str]) -> tuple[str, list[str], str, str | None]:
    if not argv or argv[0] not in ("fetch", "check", "fake"):
        raise UserError(USAGE)
    args = {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("suite", "tasks", "data_root") or not value:
            raise UserError(f"unexpected argument {arg!r}; {USAGE}")
        args[key] = value
    if "suite" in args and "tasks" in args:
        raise UserError("give suite=NAME or tasks=a,b, not both")
    tasks = args["tasks"].split(",") if "tasks" in args else suite_tasks(args.get("suite", "blog"))
    what = f"tasks {args['tasks']}" if "tasks" in args else f"suite {args.get('suite', 'blog')}"
    if "data_root" in args and argv[0] != "fake":  # fake's is where it writes, never the real root
        os.environ[DATA_ENV] = str(Path(args["data_root"]).expanduser().resolve())
    return argv[0], tasks, what, args.get("data_root")


def run_fake(tasks: list[str], what: str, given: str | None) -> int:
    root = Path(given or Layout.at(os.environ.get(RESULTS_ENV) or "results").rehearsal_data())
    root = root.expanduser().resolve()
    needs = [need for task in tasks for need in fabricated_needs(task.strip(), root)]
    real = [data_root(None).resolve(), *(Path(n.path).resolve() for t in tasks for n in task_needs(t.strip()))]
    if needs:
        fake.refuse(root, needs, real)  # before a line is printed: a refusal is its one error line
    print(f"fabricated data for {what} (data root {root}):")
    if not needs:
        print("  nothing to fabricate: these tasks generate or bundle their data")
        return 0
    total = fake.fabricate(root, needs, real)
    print(f"  total {fake.mib(total)}; point a task at it with its fabricated(root) overrides (suites/base.py)")
    return 0


def run(argv: list[str]) -> int:
    command, tasks, what, given_root = parse(argv)
    if command == "fake":
        return run_fake(tasks, what, given_root)
    needs = [need for task in tasks for need in task_needs(task.strip())]
    print(f"data for {what} (data root {data_root(None).resolve()}):")
    if not needs:
        print("  nothing to fetch: these tasks generate or bundle their data")
        return 0
    failures = fetch(needs) if command == "fetch" else []
    statuses = survey(needs)
    print("\n".join(s.line() for s in statuses))
    print_failures(failures)
    missing = [s for s in statuses if s.problem is not None]
    if missing and command == "check":
        print(f"fetch it with: {command_for(argv)}", file=sys.stderr)
    return 1 if missing else 0


def command_for(argv: list[str]) -> str:
    return "python -m suites.data fetch " + " ".join(argv[1:])


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
