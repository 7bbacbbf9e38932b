import json

import pytest

from results import records
from results.targets import Target, epochs_to_target, seed_epochs_to_target


def test_run_id_is_stable_and_ignores_output_only_keys():
    cfg = {"task": {"name": "t"}, "seed": 1, "results_dir": "a", "progress": True, "suite": "x"}
    same = {"seed": 1, "task": {"name": "t"}, "results_dir": "elsewhere", "progress": False, "suite": "y"}
    assert records.run_id(cfg) == records.run_id(same)
    assert records.run_id(cfg) != records.run_id({**cfg, "seed": 2})
    assert len(records.run_id(cfg)) == 12


def test_metrics_append_and_partial_tail_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for epoch in (1, 2):
        records.append_jsonl(path, {"epoch": epoch, "acc": 0.5 * epoch, "nan": float("nan")})
    with open(path, "a") as fh:
        fh.write('{"epoch": 3, "ac')  # a kill in the middle of a write
    rows = records.read_metrics(path)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["nan"] is None


@pytest.mark.parametrize("content,match", [
    ('{"epoch": 1}\nnot json\n{"epoch": 3}\n', "line 2 is not a metrics record"),
    ('{"epoch": 1}\n{"epoch": 3}\n', "has epoch 3, expected 2"),
    ('{"acc": 1}\n', "line 1"),
])
def test_corrupt_metrics_raise(tmp_path, content, match):
    path = tmp_path / "metrics.jsonl"
    path.write_text(content)
    with pytest.raises(records.CorruptRecord, match=match):
        records.read_metrics(path)


def test_status_atomic_write_and_corruption(tmp_path):
    path = tmp_path / "status.json"
    records.write_json_atomic(path, {"status": "running", "x": float("inf")})
    assert records.read_status(path) == {"status": "running", "x": None}
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind
    path.write_text('{"status": "runn')
    with pytest.raises(records.CorruptRecord, match="not valid JSON"):
        records.read_status(path)
    path.write_text(json.dumps({"status": "exploded"}))
    with pytest.raises(records.CorruptRecord, match="unknown 'status'"):
        records.read_status(path)


def test_keep_epochs_truncates(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"epoch": e} for e in (1, 2, 3)]
    for r in rows:
        records.append_jsonl(path, r)
    assert records.keep_epochs(path, rows, 2) == rows[:2]
    assert records.read_metrics(path) == rows[:2]


def test_epochs_to_target_modes():
    rows = [{"epoch": 1, "acc": 0.5, "ppl": 90}, {"epoch": 2, "acc": 0.96, "ppl": 70},
            {"epoch": 3, "acc": 0.97, "ppl": 68.7}, {"epoch": 4, "ppl": float("nan")}]
    assert epochs_to_target(rows, Target("acc", 0.96)) == 2
    assert epochs_to_target(rows, Target("ppl", 68.7, "min")) == 3
    assert epochs_to_target(rows, Target("acc", 0.99)) is None
    assert epochs_to_target(rows, Target("missing", 0)) is None
    with pytest.raises(ValueError, match="target.mode"):
        Target("acc", 1, "up")


def status(epochs, met, budget_free=False, ett=None, state="completed"):
    return {"status": state, "epochs": epochs, "max_epochs": 16, "budget_free": budget_free,
            "target_met_at_end": met, "epochs_to_target": ett, "epochs_done": epochs}


def test_seed_epochs_to_target_budget_search_and_budget_free():
    probes = [status(2, False), status(4, True), status(3, True), status(16, True),
              status(1, True, state="failed")]
    assert seed_epochs_to_target(probes).epochs == 3 and seed_epochs_to_target(probes).probes == 4
    missed = seed_epochs_to_target([status(16, False)])
    assert missed.censored and missed.max_epochs == 16
    free = seed_epochs_to_target([status(16, True, budget_free=True, ett=7)])
    assert free.epochs == 7 and not free.censored


def test_a_stripped_status_does_not_count_as_finished(tmp_path):
    """{"status": "completed", "epochs_done": 8} alone is not a finished run (issue 21 §5): the grid and
    train would skip it as done while the report could not read it."""
    from test_report_fixtures import write_run

    path = write_run(tmp_path, "mini", "r")
    status, rows = records.read_run(path)
    assert status["status"] == "completed"
    (path / records.STATUS_FILE).write_text(json.dumps({"status": "completed", "epochs_done": len(rows)}))
    with pytest.raises(records.CorruptRecord, match="lacks run_id, task"):
        records.read_run(path)


@pytest.mark.parametrize("damage", ["non-utf8", "directory"])
def test_a_record_that_is_not_text_is_corrupt_not_a_traceback(tmp_path, damage):
    from test_report_fixtures import write_run

    path = write_run(tmp_path, "mini", "r")
    metrics = path / records.METRICS_FILE
    metrics.unlink()
    if damage == "directory":
        metrics.mkdir()
    else:
        metrics.write_bytes(b'{"epoch": 1, "x": "\xff\xfe"}\n')
    with pytest.raises(records.CorruptRecord, match="unreadable"):
        records.read_run(path)


def test_a_tuning_outcome_round_trips_and_an_older_shape_fails_in_one_line():
    from results.tuning import TuningOutcome

    outcome = TuningOutcome(study="t/o/s", task="t", optimizer="o", schedule="s", lr=0.1, weight_decay=0.0,
                            best_trial=2, best_score=0.5, trials=4, pruned=1, cost_epochs=30, runs=["a", "b"],
                            space={"lr": [0.01, 1.0]}, budget=10, seed=1000, split="validation",
                            storage="sqlite", sampler="QMC sobol scrambled seed 0", pruning=False)
    assert TuningOutcome.from_mapping(outcome.record(), "x.json") == outcome
    older = {k: v for k, v in outcome.record().items() if k not in ("runs", "seed")}
    with pytest.raises(records.CorruptRecord, match=r"^x.json: a tuning outcome without runs, seed \(an older"):
        TuningOutcome.from_mapping(older, "x.json")
