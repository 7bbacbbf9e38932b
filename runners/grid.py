"""CLI: `python -m runners.grid [suite=NAME] [plan=true] [overrides]` (`make reproduce SUITE=NAME`).

Runs a suite (conf/suite/NAME.yaml: the Hydra sweep it declares) as Hydra multiruns, one job per
(task, optimizer, schedule, seed) — see runners/grid_job.py for what a job does — then prints a summary
with the failures and builds the report. Without `suite=` it runs `blog` on a CUDA machine and `mini`
otherwise, and says which. `plan=true` prints the runs done, to resume and to do, and the epochs left,
without training. Launchers: the default runs jobs one after another in this process;
`hydra/launcher=local_parallel` (joblib: one worker per GPU, or per CPU slot), `hydra/launcher=slurm`
(submitit), `hydra/launcher=submitit_local` (submitit's local executor). Overrides apply to every job;
a swept key (`optimizer=adamw,sgd`, `seed=0`, `task=...`) replaces the suite's sweep of that key.

Cost (measured / estimated; see the closing notes of issue 5 for the method):
  mini    — see MINI_NOTE below (2 CPU cores).
  nightly — cifar10_wrn22 x {sgd, adamw} x {one_cycle, reference} x 1 seed; 1cycle search with the
            target at ~18-30 of 30 epochs: ladder 1,2,4,8,16,30 + 3-4 bisection probes ~ 120 epochs per
            search, reference 30 epochs: ~300 epochs; at ~10 s/epoch (WRN-22 k=6, bf16, one modern GPU;
            assumed, not measured here) ~ 50 min.
  blog    — 4 claims x 4 optimizers x 2 schedules x 3 seeds = 96 cells; see plan=true with
            grid.epoch_seconds for GPU-hours.
"""
from __future__ import annotations

import sys
import time

from .errors import UserError
from .grid_job import run_cell_job
from .grid_plan import (CONF_DIR, check_cells, compose_grid, expand, fixed_args, format_plan, split_user_args,
                        summarise)

USAGE = "usage: python -m runners.grid [suite=mini|nightly|blog] [plan=true] [hydra/launcher=...] [key=value ...]"


def parse_args(args: list[str]) -> tuple[str | None, bool, list[str]]:
    suite, plan, rest = None, False, []
    for arg in args:
        key, _, value = arg.partition("=")
        if arg in ("-h", "--help"):
            raise UserError(USAGE)
        if key == "suite":
            suite = value
        elif key == "plan":
            if value.lower() not in ("true", "false"):
                raise UserError(f"plan must be true or false, got {value!r}")
            plan = value.lower() == "true"
        elif arg.startswith("-"):
            raise UserError(f"unknown option {arg!r}; overrides are key=value ({USAGE})")
        else:
            rest.append(arg)
    return suite, plan, rest


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
    cfg = compose_grid([f"suite={suite}", *fixed_args(split_user_args(args)[1])], with_hydra=True)
    if "joblib" not in str(cfg.hydra.launcher.get("_target_", "")):
        return []
    import os

    import torch

    n_jobs = int(cfg.hydra.launcher.n_jobs)
    n_jobs = os.cpu_count() or 1 if n_jobs < 1 else n_jobs
    extra = [f"grid.n_workers={n_jobs}"]
    if torch.cuda.is_available() and not cfg.grid.worker_devices:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        extra.append(f"grid.worker_devices=[{','.join(devices)}]")
    return extra


def launch(arguments: list[str]) -> None:
    """One Hydra multirun in this process (the launcher decides where the jobs run)."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    app = hydra.main(config_path=str(CONF_DIR), config_name="grid", version_base="1.3")(run_cell_job)
    saved = sys.argv
    sys.argv = [saved[0] or "runners.grid", *arguments]
    try:
        app()
    finally:
        sys.argv = saved


def build_report(suite: str, results_dir: str) -> None:
    try:
        import report
    except ImportError:
        report = None
    build = getattr(report, "build", None)
    if build is None:
        print("report: not available yet (the report package has no build(suite, results_dir))")
        return
    try:
        print(f"report: {build(suite, results_dir)}")
    except Exception as exc:  # noqa: BLE001 — the records stand; the report can be rebuilt (make report)
        print(f"report: failed ({type(exc).__name__}: {exc}); the records are intact, rerun `make report`")


def run(args: list[str]) -> int:
    suite, plan, rest = parse_args(args)
    if suite is None:
        suite, why = default_suite()
        print(f"suite={suite}: {why} (choose with suite=NAME)")
    check_suite(suite)
    extra = parallel_arguments(suite, rest)
    launches, absent = expand(suite, rest, extra)
    if absent:
        print(f"note: tasks not present here, skipped: {', '.join(absent)}")
    if not launches:
        raise UserError(f"suite {suite!r} has no task present here (looked for conf/task/<name>.yaml)")
    check_cells(launches)
    cells = sum(len(l.cells) for l in launches)
    results_dir = launches[0].cells[0].results_dir
    print(f"suite {suite}: {cells} cells over {len(launches)} task(s): {', '.join(l.task for l in launches)}")
    if plan:
        print("\n".join(format_plan(launches)))
        return 0
    started = time.perf_counter()
    for item in launches:
        launch(item.arguments)
    lines, failures = summarise(launches)
    print(f"\nsummary of suite {suite} ({time.perf_counter() - started:.0f} s):")
    print("\n".join(lines))
    if failures:
        print("failures:\n" + "\n".join(failures))
    print(f"records: {results_dir}/runs/{suite}/ (runs), {results_dir}/grids/{suite}/cells/ (searches)")
    build_report(suite, results_dir)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
