"""CLI: `python -m runners.grid [suite=NAME] [plan=true] [overrides]` (`make reproduce SUITE=NAME`).

Runs a suite (conf/suite/NAME.yaml: the Hydra sweep it declares) as Hydra multiruns, one job per
(task, optimizer, schedule, seed) — see runners/grid_job.py for what a job does — then prints a summary
with the failures and builds the report. Without `suite=` it runs `blog` on a CUDA machine and `mini`
otherwise, and says which. `plan=true` prints the runs done, to resume and to do, and the epochs left,
without training. Launchers: the default runs jobs one after another in this process;
`hydra/launcher=local_parallel` (joblib: one worker per GPU, or per CPU slot), `hydra/launcher=slurm`
(submitit), `hydra/launcher=submitit_local` (submitit's local executor). Overrides apply to every job;
a swept key (`optimizer=adamw,sgd`, `seed=0`, `task=...`) replaces the suite's sweep of that key.

Cost (how the suites were sized):
  mini    — measured on the shared 2-core CPU (load average 4-8 from other work), with the four twins
            present then (digits_resnet, digits_wrn, digits_finetune, synth_awd_lstm): 32 cells, 99 runs
            (probes), 512 epochs, 12.3 min wall. Epoch cost is the driver (median s/epoch from the
            records: digits_wrn 0.4, digits_finetune 0.7, digits_resnet@width16 and synth LSTM ~2 under
            that load); a fifth twin adds ~1/4. 1 seed keeps it < 15 min; seed=range(3) triples it.
  nightly — the CIFAR-10 claim as published (+recipe=cifar10_blog, 30 epochs; +recipe=cifar10_wrn_paper,
            <= 200 epochs, stopped at the target) and the grid's cifar10_wrn22 x adamw x one_cycle, 1 seed.
            plan=true with the target assumed at 30 of 100 epochs: search 1,2,4,8,16,32 + 24,28,30,29 = 174
            epochs, + 30 + <= 200 = ~404 epochs x ~8 s/epoch = ~54 min. The 8 s is assumed, not measured:
            WRN-22-6 is ~1.55 GMAC/image forward, x3 for training x 50k images = ~0.47 PFLOP/epoch, at
            ~60-100 TFLOP/s effective bf16 on one A100/H100-class GPU with GPU-resident data.
  blog    — 4 claims x 4 optimizers x 2 schedules x 3 seeds + the published recipe cells x 3 seeds (each
            one run at its own budget): plan=true prices it from grid.epoch_seconds (assumed: CIFAR 8 s,
            Cars 20 s — JPEG decode-bound —, AWD-LSTM 45 s, QRNN 25 s per epoch; awd-lstm-lm's README gives
            180 s / 90 s per WT2 epoch on a 2017 GP100 at batch 20) until records give measured ones:
            ~127 GPU-hours (~17.1k epochs): LM claims ~104 h (38.5 h of it the 750/500-epoch NT-ASGD
            reference recipes), Cars ~14.4 h, CIFAR ~9 h (1.7 h of it the blog's two runs and the WRN
            paper's). One GPU: ~5.3 days; the cells are independent, so N GPUs / SLURM divide it.
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
    n_jobs = (os.cpu_count() or 1) if n_jobs < 1 else n_jobs
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
    tasks = list(dict.fromkeys(l.task for l in launches))
    print(f"suite {suite}: {cells} cells in {len(launches)} multirun(s) over {len(tasks)} task(s): {', '.join(tasks)}")
    if plan:
        print("\n".join(format_plan(launches)))
        return 0
    started, since = time.perf_counter(), time.time()
    for item in launches:
        launch(item.arguments)
    lines, failures = summarise(launches, since)
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
