"""Bad input is refused before anything is written (issue 12): one `error: <key> ...` line on stderr, exit
code 2, no results directory — for a run (`python -m runners.train`) and for the grid, which checks every
cell before any trains. Mostly in-process (the entry points' own `main`), plus one real process of each."""
import os
import shutil
import subprocess
import sys

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException

from conftest import ROOT, TINY, compose_cfg, run_cli
from results.errors import UserError
from runners.spec import configured_lr, resolve_schedule, validate

RUN = ["task=digits_resnet", "optimizer=adamw", "schedule=one_cycle", "seed=0", "task.epochs=1", "device=cpu",
       *TINY]
NO_SUCH_CUDA = f"cuda:{torch.cuda.device_count()}"  # never present, whatever the machine
BAD_RUN = [  # (override, the key its error names)
    ("task.batch_size=0", "task.batch_size"), ("task.batch_size=-1", "task.batch_size"), ("seed=-1", "seed"),
    ("optimizer.kwargs.betas=[1.5,0.99]", "optimizer.kwargs.betas"),
    ("optimizer.kwargs.betas=[0.9]", "optimizer.kwargs.betas"),
    ("optimizer.kwargs.eps=-1", "optimizer.kwargs.eps"),
    ("task.width=0", "task.width"), ("optimizer._target_=torch.optim.Nope", "optimizer._target_"),
    (f"device={NO_SUCH_CUDA}", "device"), ("device=gpu", "device"), ("threads=-1", "threads"),
    ("optimizer.lr=inf", "optimizer.lr"),
    # Names that become path parts (issue 21 §3): the one rule, results/records.py name_problem.
    ("task.name=../../../../x", "task.name"), ("task.name=a/b", "task.name"), ("suite=../s", "suite"),
    ("optimizer.name=../o", "optimizer.name"), ("schedule.name=a/b", "schedule.name"),
    ("task=../task/digits_resnet", "task=../task/digits_resnet"), ("+recipe=../recipe/cifar10_blog", "recipe"),
    # Values that raised mid-run or trained to chance (issue 21 §4).
    ("schedule.div_final=0", "schedule.div_final"),
    ("schedule=one_cycle_phases schedule.lin_end_div=0", "schedule.lin_end_div"),
    ("optimizer=lion optimizer.lr=1e308", "optimizer.lr"),
    ("schedule.moms=[1.5,0.85,0.95]", "schedule.moms"), ("task.moms=[1.5,0.85]", "task.moms"),
    ("schedule=warmup schedule.warmup_epochs=inf", "schedule.warmup_epochs"),
    ("optimizer=muon optimizer.kwargs.momentum=1.5", "optimizer.kwargs.momentum"),
    ("optimizer=sf_adamw optimizer.kwargs.warmup_steps=-5", "optimizer.kwargs.warmup_steps"),
    ("schedule=constant schedule.momentum=1.0", "schedule.momentum"),
    # Known only once the task is built (its metrics, its model), yet refused before anything is written.
    ("optimizer=muon task.io_params=[nomatch.*]", "task.io_params"),
    ("optimizer=muon task.io_params=[*]", "task.io_params"), ("task.target.metric=foo", "task.target.metric"),
    # Hydra's own errors, one line each (runners/overrides.py).
    ("task=nope", "task/nope"), ("task", "'task'"), ("task.width=[1", "task.width"),
    ("task.width=wide", "task.width"), ("task.widht=3", "widht"), ("seed=abc", "seed"), ("seed=null", "seed"),
    ("optimizer=adamw,sgd", "optimizer=adamw,sgd"), ("hydra/launcher=nope", "hydra/launcher/nope"),
    ("+recipe=nope", "recipe/nope"), ("recipe=cifar10_blog", "recipe"), ("epochs=${nope}", "epochs"),
    ("results_dir=${oc.env:ONECYCLE_NO_SUCH_VARIABLE}", "results_dir"), ("~task", "task"), ("=3", "=3"),
    ("task.lr=3", "task.lr"), ("seed=range(a)", "seed"), ("--foo", "--foo"),
]


def one_error_line(stderr: str, key: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], stderr


def train_in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """`python -m runners.train ARGS`, in this process: (exit code, stderr)."""
    from runners import train

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["runners.train", *args])
    # Hydra finds ../conf from the script's file, as under `python -m`, not from the (conf-less) package.
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")
    try:
        train.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        GlobalHydra.instance().clear()
    return code, capsys.readouterr().err


@pytest.mark.parametrize("override,key", BAD_RUN)
def test_bad_run_input_is_one_error_and_writes_nothing(override, key, results, monkeypatch, capsys):
    code, err = train_in_process([*RUN, f"results_dir={results}", *override.split(" ")], monkeypatch, capsys)
    assert code == 2
    one_error_line(err, key)
    assert not results.exists()  # nor the runs/<suite>/ dir or the run's lock a task-level refusal needed


def test_a_nearly_full_results_dir_leaves_nothing(results, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 2**20))
    code, err = train_in_process([*RUN, f"results_dir={results}"], monkeypatch, capsys)
    assert code == 2
    one_error_line(err, "results_dir")
    assert not results.exists()  # the writability probe made it: removed again


def test_empty_results_dir_is_refused_not_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # an empty results_dir used to write ./runs here
    code, err = train_in_process([*RUN, "results_dir="], monkeypatch, capsys)
    assert code == 2
    one_error_line(err, "results_dir")
    assert list(tmp_path.iterdir()) == []


def test_bad_run_input_in_a_real_process(results):
    proc = run_cli([*RUN, f"results_dir={results}", "optimizer._target_=torch.optim.Nope"])
    assert proc.returncode == 2
    one_error_line(proc.stderr, "optimizer._target_")  # hydra's own log line of the failed import stays out
    assert not results.exists()


@pytest.mark.parametrize("overrides,match", [
    (["++task.lr.adamw=-3"], r"task.lr\[adamw\] must be > 0"),
    (["+optimizer.kwargs.foo=1"], r"optimizer.kwargs \['foo'\] must be arguments of torch.optim.Adam"),
    (["+optimizer.kwargs.weight_decay=0.1"], "optimizer.kwargs.weight_decay is not allowed"),
    (["optimizer=sgd", "optimizer.kwargs.momentum=-1"], r"optimizer.kwargs.momentum must be in \[0, 1\)"),
    (["threads=0"], "threads must be null or >= 1"),
    (["task=digits_finetune", "task.pretrain.task.batch_size=0"], "task.pretrain.task.batch_size must be"),
    (["task=digits_finetune", "task.pretrain.optimizer.kwargs.eps=0"], "task.pretrain.optimizer.kwargs.eps"),
    (["task=digits_wrn", "task.test_size=5"], r"task.test_size must be in \[10, 1787\]"),
    (["task=synth_qrnn", "task.dropout_input=1.0"], r"task.dropout_input must be in \[0, 1\)"),
    (["task=synth_awd_lstm", "task.branching=40"], r"task.branching must be in \[2, vocab_size"),
    (["task=cifar10_wrn22", "task.pad_mode=x"], "task.pad_mode must be one of"),
    (["task=cars_resnet50", "task.layout=x"], "task.layout must be one of"),
])
def test_task_and_optimizer_checks_name_the_key(overrides, match):
    cfg = compose_cfg(["device=cpu", *overrides])
    with pytest.raises(UserError, match=match):
        validate(cfg, resolve_schedule(cfg), (configured_lr(cfg) or [None])[0])


GRID = ["suite=mini", "task=digits_resnet", "optimizer=adamw", "schedule=one_cycle"]


@pytest.mark.parametrize("override,key", [
    ("seed=-1", "seed"), (f"device={NO_SUCH_CUDA}", "device"), ("task.batch_size=0", "task.batch_size"),
    ("optimizer.kwargs.betas=[1.5,0.99]", "optimizer.kwargs.betas"),
    ("grid.ladder_factor=1", "grid.ladder_factor"),
    ("grid.ladder_start=0", "grid.ladder_start"), ("grid.assumed_fraction=1.5", "grid.assumed_fraction"),
    ("grid.tuning.trials=-1", "grid.tuning.trials"), ("task.widht=3", "widht"), ("suite=nope", "unknown suite"),
    ("task.name=../../../../x", "task.name"), ("task.name=a/b", "task.name"),
    ("task=../task/digits_resnet", "task=../task/digits_resnet"), ("optimizer=adamw,../sgd", "optimizer"),
    ("grid.tuning.trials=2 grid.tuning.storage=garbage", "grid.tuning.storage"),
    ("grid.tuning.trials=2 grid.tuning.storage=nosuchdialect://h/db", "grid.tuning.storage"),
    ("grid.tuning.trials=2 grid.tuning.storage=sqlite:////no/such/dir/t.db", "grid.tuning.storage"),
    ("task", "'task'"), ("task.width=[1", "task.width"), ("seed=range(a)", "seed"), ("=3", "=3"),
    ("~task", "task"), ("epochs=${nope}", "epochs"), ("task.width=wide", "task.width"),
])
def test_bad_grid_input_is_refused_before_any_cell_trains(override, key, results, capsys):
    from runners.grid.__main__ import main

    assert main([*GRID, f"results_dir={results}", *override.split(" ")]) == 2
    one_error_line(capsys.readouterr().err, key)
    assert not results.exists()


def without_privileges() -> list[str]:
    """A command prefix that binds root by file permissions (its capabilities dropped), as
    tests/test_data_safety.py does; nothing for another user."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("root without setpriv cannot give up writing through read-only directories")
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]


def test_a_read_only_results_dir_is_refused_before_the_grid_writes(tmp_path):
    results = tmp_path / "ro"
    results.mkdir()
    results.chmod(0o555)
    try:
        proc = subprocess.run([*without_privileges(), sys.executable, "-m", "runners.grid", *GRID,
                               "grid.tuning.trials=0", f"results_dir={results}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300, env=dict(os.environ))
    finally:
        results.chmod(0o755)
    assert proc.returncode == 2, proc.stderr[-2000:]
    one_error_line(proc.stderr, "is not writable")
    assert list(results.iterdir()) == []


def test_bad_grid_input_in_a_real_process(results):
    proc = subprocess.run([sys.executable, "-m", "runners.grid", *GRID, f"results_dir={results}", "seed=-1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 2
    one_error_line(proc.stderr, "seed")
    assert not results.exists()


@pytest.mark.parametrize("group", ["task", "optimizer", "schedule"])
def test_unknown_choice_lists_only_real_options(group):
    """The ConfigStore schemas live under schema/, so Hydra's list of options holds choices only."""
    with pytest.raises(HydraException) as info:
        compose_cfg([f"{group}=nope"])
    message = str(info.value)
    assert f"Available options in '{group}'" in message and "_schema" not in message
    listed = {line.strip() for line in message.split("Config search path")[0].splitlines()[3:]}
    assert listed == {p.stem for p in (ROOT / "conf" / group).glob("*.yaml")}
