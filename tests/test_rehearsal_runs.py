"""A rehearsal's run side: the batch cap, the profile every run records, fabricated data kept out of real
suites (runners/profile.py, runners/run.py), and the grid's rehearsed cells (runners/grid/rehearsal.py)."""
import json
import warnings

import pytest

from conftest import TINY, compose_cfg, execute_at
from results import records
from results.errors import UserError
from suites.data.__main__ import main as data_main

CIFAR_TINY = ["task=cifar10_wrn22", "task.widen=1", "task.blocks_per_group=1", "task.batch_size=16",
              "task.eval_batch_size=64", "epochs=1", "progress=false"]


def run(results, *overrides):
    return execute_at(compose_cfg([*TINY, f"results_dir={results}", *overrides]))


def rows_without_times(path):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records.read_metrics(path / "metrics.jsonl")]


def test_limit_batches_caps_every_epoch_and_the_run_profiles_itself(results):
    path = run(results, "epochs=2", "limit_batches=2")
    assert [r["step"] for r in records.read_metrics(path / "metrics.jsonl")] == [2, 4]
    status = json.loads((path / "status.json").read_text())
    profile = status["profile"]
    assert profile["train_steps"] == 4 and profile["evaluations"] == 2 and profile["batch_size"] == 64
    assert profile["items_per_step"] == 64 and profile["flops_per_step"] > 0
    assert profile["train_step_s"] > 0 and profile["eval_s"] > 0 and profile["peak_host_bytes"] > 2 ** 20
    assert profile["checkpoint_bytes"] > 0 and profile["peak_device_bytes"] is None  # CPU
    assert status["fabricated_data"] is False


def test_an_uncapped_run_counts_no_flops_and_keeps_its_old_run_id(results):
    path = run(results, "epochs=1")
    assert json.loads((path / "status.json").read_text())["profile"]["flops_per_step"] is None
    config = {"seed": 0, "task": {"name": "t"}}
    assert records.run_id({**config, "limit_batches": None}) == records.run_id(config)
    assert records.run_id({**config, "limit_batches": 2}) != records.run_id(config)


def test_the_flop_count_leaves_training_as_it_was(results):
    """A cap above the epoch's batch count trains every batch: only the count differs, and it must not
    change a single recorded number (it runs in eval mode with every RNG restored)."""
    plain = run(results, "epochs=2", "deterministic=true")
    counted = run(results, "epochs=2", "deterministic=true", "limit_batches=100000")
    assert plain != counted  # another run id: the cap is part of it
    assert json.loads((counted / "status.json").read_text())["profile"]["flops_per_step"] > 0
    assert rows_without_times(counted) == rows_without_times(plain)


@pytest.fixture(scope="module")
def fabricated_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("fabricated") / "data"
    assert data_main(["fake", "tasks=cifar10_wrn22", f"data_root={root}"]) == 0
    return root


def test_fabricated_data_trains_only_a_rehearsal(results, fabricated_cifar, capsys):
    data = [f"task.data_dir={fabricated_cifar}", "task.verify_md5=false"]
    with pytest.raises(UserError, match="fabricated data .* only a rehearsal reads it"):
        execute_at(compose_cfg([*CIFAR_TINY, f"results_dir={results}", *data]))
    assert not (results / "runs" / "adhoc").exists() or not any((results / "runs" / "adhoc").iterdir())
    cfg = compose_cfg([*CIFAR_TINY, f"results_dir={results}", *data])
    cfg.suite = "x-rehearsal"  # as the grid's rehearsal names it (a `suite=` override picks a conf/suite)
    path = execute_at(cfg)
    status = json.loads((path / "status.json").read_text())
    assert status["status"] == "completed" and status["fabricated_data"] is True
    assert path.parent == results / "runs" / "x-rehearsal"


def test_the_pre_run_model_check_loads_pretrained_weights_without_a_warning_each(tmp_path):
    """Found by the rehearsal: checking a Cars run's optimizer over its model on the meta device loaded the
    ResNet-50 weights into meta parameters, one UserWarning per tensor (161 a run) in every grid log."""
    from omegaconf import OmegaConf

    from runners.checks import model_problems
    from runners.spec import resolve_run
    from runners.run import make_task

    root = tmp_path / "data"
    assert data_main(["fake", "tasks=cars_resnet50", f"data_root={root}"]) == 0
    base = ["task=cars_resnet50", f"results_dir={tmp_path}", "epochs=2", "task.batch_size=4"]
    overrides = OmegaConf.to_object(compose_cfg(base).task).fabricated(root)
    cfg = compose_cfg([*base, *(f"task.{k}={v}" for k, v in overrides.items())])
    task = make_task(resolve_run(cfg), "cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert model_problems(task, resolve_run(cfg).run, 0.01) == []
    assert not [w for w in caught if "meta parameter" in str(w.message)]


def test_the_flop_count_includes_fused_recurrent_layers():
    """Found by the rehearsal's AWD-LSTM profile (80 MFLOP a token, the decoder's alone): torch's
    FlopCounterMode counts no fused LSTM kernel (oneDNN's on CPU, cuDNN's on CUDA), so the prediction left
    out the network. Now forward 2 x steps x (W_ih + W_hh), the backward twice that."""
    import torch

    from runners.profile import step_flops

    class Summed:
        def loss(self, model, batch):
            return model(batch)[0].sum()

    seq, batch, inputs, hidden = 7, 3, 40, 115
    lstm = torch.nn.LSTM(inputs, hidden)
    expected = 3 * 2 * seq * batch * 4 * hidden * (inputs + hidden)
    assert step_flops(Summed(), lstm, torch.randn(seq, batch, inputs)) == expected


def test_a_staged_run_counts_each_stage_and_weights_them_by_their_share(results):
    """Found by the rehearsal's Cars profile (8.2 GFLOP an image: a ResNet-50 forward alone): the count of
    a staged run was taken in its first stage only, where the body is frozen and barely backpropagated."""
    from test_digits_twins import TINY_FINETUNE

    path = execute_at(compose_cfg([*TINY_FINETUNE, f"results_dir={results}", "limit_batches=1"]))
    profile = json.loads((path / "status.json").read_text())["profile"]
    head, everything = profile["flops_by_stage"]
    assert everything > 1.5 * head  # fine-tuning it all backpropagates through the body
    # digits_finetune's stages take 1 and 2 shares of a run's epochs
    assert profile["flops_per_step"] == pytest.approx((head + 2 * everything) / 3)


def test_a_rehearsals_tuning_trials_and_wsd_trunks_are_rehearsals_too():
    """Found by the rehearsal of suite=modern: every WSD cell failed, its trunk (suite <suite>-trunks)
    refused as a real suite reading fabricated data."""
    from results.tuning import trial_suite
    from runners.grid.wsd import TRUNK_SUITE

    for suite in ("modern-rehearsal", trial_suite("blog-rehearsal"), TRUNK_SUITE.format(suite="modern-rehearsal")):
        assert records.is_rehearsal(suite), suite
    for suite in ("modern", trial_suite("blog"), TRUNK_SUITE.format(suite="modern"), "rehearsal-tuning"):
        assert not records.is_rehearsal(suite), suite
