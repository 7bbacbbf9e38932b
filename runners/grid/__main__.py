"""CLI: `python -m runners.grid [suite=NAME] [plan=true] [hydra/launcher=...] [overrides]`.

Expands the suite into its cells (runners/grid/cells.py), checks every one before anything trains,
then runs them as ONE Hydra multirun — one job per cell, all tasks and recipe cells side by side, so N
joblib workers or a SLURM array never wait at a per-task barrier — and prints a summary with the
failures; the exit status is 1 when a cell failed. It builds no report: `make reproduce` runs the grid
and then `python -m report`. Without `suite=` it runs `blog` on a CUDA machine and `mini` otherwise,
and says which. `plan=true` walks every cell's search dry (runs done, to resume, to do, epochs left). `rehearsal=true`
runs every cell at full model size on fabricated data, a few batches each, as `<suite>-rehearsal`
(runners/grid/rehearsal.py).
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from results.errors import UserError
from results.layout import Layout
from results.records import write_text_atomic
from suites.data import survey

from ..overrides import check_overrides
from ..preflight import check_writable, nothing_left_if_refused
from ..spec import resolve_run
from .cells import CONF_DIR, cell_name, cell_overrides, compose_many, run_config, split_args
from .data import ensure_data, plan_lines, suite_needs
from .job import run_cell_job
from .plan import format_plan
from .preflight import check_storage
from .progress import start_progress
from .rehearsal import rehearse_cells, write_info
from .summary import summarise
from .watchdog import mark_parent

USAGE = ("usage: python -m runners.grid [suite=mini|nightly|blog|modern|modern_mini] [plan=true] "
         "[rehearsal=true] [hydra/launcher=...] [key=value ...]")


def parse_args(args: list[str]) -> tuple[str | None, dict[str, bool], list[str]]:
    """(suite, the flags plan and rehearsal, the overrides)."""
    suite, flags, rest = None, {"plan": False, "rehearsal": False}, []
    for arg in args:
        key, _, value = arg.partition("=")
        if arg in ("-h", "--help"):
            raise UserError(USAGE)
        if key == "suite":
            suite = value
        elif key in flags:
            if value.lower() not in ("true", "false"):
                raise UserError(f"{key} must be true or false, got {value!r}")
            flags[key] = value.lower() == "true"
        elif arg.startswith("-"):
            raise UserError(f"unknown option {arg!r}; overrides are key=value ({USAGE})")
        else:
            rest.append(arg)
    return suite, flags, rest


def default_suite() -> tuple[str, str]:
    import torch

    if torch.cuda.is_available():
        return "blog", f"a CUDA device is present ({torch.cuda.get_device_name(0)})"
    return "mini", "no CUDA device: the CPU-sized twins"


def check_suite(suite: str) -> None:
    known = sorted(p.stem for p in (CONF_DIR / "suite").glob("*.yaml"))
    if suite not in known:
        raise UserError(f"unknown suite {suite!r}; known: {', '.join(known)}")


def parallel_arguments(suite: str, args: list[str]) -> list[str]:
    """For a joblib launcher: the worker count and, with CUDA, one device per worker (grid.worker_devices)."""
    cfg = compose_many([[f"suite={suite}", *split_args(args, set())[1]]], with_hydra=True)[0]
    if "joblib" not in str(cfg.hydra.launcher.get("_target_", "")):
        return []
    import torch

    n_jobs = int(cfg.hydra.launcher.n_jobs)
    n_jobs = (os.cpu_count() or 1) if n_jobs < 1 else n_jobs
    extra = [f"grid.n_workers={n_jobs}"]
    if torch.cuda.is_available() and not cfg.grid.worker_devices:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        extra.append(f"grid.worker_devices=[{','.join(devices)}]")
    return extra


def check_cells(cells) -> None:
    """Bad input fails here, before anything trains (UserError names the cell and the key)."""
    for cfg in cells:
        try:
            problems = OmegaConf.to_object(cfg.grid).problems()
            if problems:
                raise UserError(problems[0])
            resolve_run(run_config(cfg))
        except UserError as exc:
            raise UserError(f"{cell_name(cfg)}: {exc}") from None


def write_cells(cells, results_dir: str, suite: str) -> Path:
    """The launch's cells, resolved, one file each (`<i>.yaml`) so that a job reads only its own, in a
    directory named by their content."""
    texts = [OmegaConf.to_yaml(OmegaConf.create(OmegaConf.to_container(c, resolve=True))) for c in cells]
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]
    directory = Layout.at(results_dir).launch(suite, digest)
    try:
        for i, text in enumerate(texts):
            if not (directory / f"{i}.yaml").exists():
                write_text_atomic(directory / f"{i}.yaml", text)
    except OSError as exc:  # results_dir itself was found writable: a read-only grids/ below it
        raise UserError(f"cannot write the launch's cells under {directory} "
                        f"({exc.strerror or exc})") from None
    return directory


def launch(suite: str, cells_dir: Path, count: int, launcher_args: list[str]) -> None:
    """The one Hydra multirun: a job per cell index (the launcher decides where each runs)."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    mark_parent()  # joblib workers end with this process (runners/grid/watchdog.py)
    GlobalHydra.instance().clear()
    app = hydra.main(config_path=str(CONF_DIR), config_name="grid", version_base="1.3")(run_cell_job)
    saved = sys.argv
    sys.argv = [saved[0] or "runners.grid", f"suite={suite}", *launcher_args,
                f"grid.cells_dir={cells_dir}", f"grid.cell=range(0,{count})"]
    try:
        app()
    finally:
        sys.argv = saved


def run(args: list[str]) -> int:
    suite, flags, rest = parse_args(args)
    check_overrides(rest)  # before any is parsed or composed: one line for a malformed one
    if suite is None:
        suite, why = default_suite()
        print(f"suite={suite}: {why} (choose with suite=NAME)")
    check_suite(suite)
    extra = parallel_arguments(suite, rest)
    overrides, absent = cell_overrides(suite, [*rest, *extra])
    if absent:
        print(f"note: tasks not present here, skipped: {', '.join(absent)}")
    if not overrides:
        raise UserError(f"suite {suite!r} has no task present here (looked for conf/task/<name>.yaml)")
    declared = cells = compose_many(overrides)
    runs_suite = suite  # where the records go: a rehearsal's are `<suite>-rehearsal`
    if flags["rehearsal"]:
        cells, runs_suite = rehearse_cells(declared, suite)
    check_cells(cells)
    check_storage(cells)
    results_dir = cells[0].results_dir
    tasks = list(dict.fromkeys(c.task.name for c in cells))
    print(f"suite {runs_suite}: {len(cells)} cells in one multirun over {len(tasks)} task(s): {', '.join(tasks)}")
    if flags["plan"]:
        print("\n".join(format_plan(cells) + plan_lines(survey(suite_needs(cells)), runs_suite)))
        return 0
    with nothing_left_if_refused(Path(results_dir)):  # the results_dir the probe made, if data is missing
        check_writable(results_dir)  # before data is fetched and any cell file written
        if not flags["rehearsal"]:  # a rehearsal's data was checked as fabricated (rehearse_cells)
            ensure_data(cells, suite)
    if flags["rehearsal"]:
        write_info(declared, runs_suite)
    started, since = time.perf_counter(), time.time()
    launcher_args = [a for a in [*rest, *extra] if a.split("=", 1)[0].lstrip("+~").startswith(("hydra", "grid."))
                     or a.split("=", 1)[0] == "results_dir"]
    if runs_suite != suite:  # Hydra's own files beside the rehearsal's, not the suite's
        launcher_args.append(f"hydra.sweep.dir={Path(results_dir).resolve() / 'grids' / runs_suite / 'hydra'}")
    cells_dir = write_cells(cells, results_dir, runs_suite)
    launch(suite, cells_dir, len(cells), [*launcher_args, *start_progress(cells, cells_dir)])
    lines, failures = summarise(cells, since)
    print(f"\nsummary of suite {runs_suite} ({time.perf_counter() - started:.0f} s):")
    print("\n".join(lines))
    if failures:
        print("failures:\n" + "\n".join(failures))
    print(f"records: {results_dir}/runs/{runs_suite}/ (runs), {results_dir}/grids/{runs_suite}/cells/ (searches)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
