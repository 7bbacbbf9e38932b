"""A rehearsal's report (fabricated data, a few batches per cell): the mark on every table, the profile
table's numbers, the gate that compares nothing, and a real suite that never pools fabricated runs."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

import report
from report.__main__ import main
from report.analysis import analyse
from report.gate import check, load_baseline, snapshot
from report.load import load_suite
from report.rehearsal import MARK, PROFILE_TABLE, failed_cells, plan_hours, predict_epoch_s
from results.records import load_run
from test_report_fixtures import cell_record, fixture_id, write_run, write_suite, write_trial

SUITE = "blog-rehearsal"
MIB = 2**20


def profile(step_s: float, eval_s: float, host_mib: float, checkpoint_mib: float, flops: float | None,
            items: int = 8, device: str = "cpu", device_bytes: int | None = None, batch: int = 8) -> dict:
    return {"device": device, "device_name": device, "batch_size": batch, "train_steps": 2,
            "train_step_s": step_s, "evaluations": 2, "eval_s": eval_s, "peak_host_bytes": int(host_mib * MIB),
            "peak_device_bytes": device_bytes, "checkpoint_bytes": int(checkpoint_mib * MIB),
            "flops_per_step": flops, "items_per_step": items}


def write_plan(results: Path, tasks: dict) -> None:
    path = results / "grids" / SUITE / "rehearsal.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "suite": "blog", "rehearsal_suite": SUITE, "data_root": "/fake",
                                "caps": {"epochs": 2, "batches": 2, "batch_size": 8, "trials": 2},
                                "tasks": tasks}))


IMAGES = {"train": 50000, "eval": 10000, "unit": "image"}
TOKENS = {"train": 2_000_000, "eval": 200_000, "unit": "token"}
PLAN = {"digits_resnet": {"full_batch_size": 128, "batch_size": 8, "assumed_epoch_s": 8.0, "precision": "fp32",
                          "published_items": IMAGES},
        "wt2_lm": {"full_batch_size": 64, "batch_size": 8, "assumed_epoch_s": 1.0, "precision": "bf16",
                   "published_items": TOKENS}}


def write_rehearsal(results: Path, plan: dict | None = PLAN) -> Path:
    """digits_resnet: three profiled SGD seeds (FLOPs per image 1, 2 and 3 G) and one AdamW run with no
    profile (an old record); wt2_lm: one run on a GPU at 0.5 GFLOP per token."""
    runs = [profile(0.2, 1.0, 100, 10, 8e9), profile(0.4, 3.0, 300, 12, 16e9), profile(0.9, 2.0, 200, 11, 24e9)]
    for seed, prof in enumerate(runs):
        write_run(results, SUITE, f"sgd-{seed}", seed=seed, reach_at=3, fabricated_data=True, profile=prof)
    write_run(results, SUITE, "adamw-0", optimizer="adamw", schedule="one_cycle", epochs=4, reach_at=2,
              fabricated_data=True)
    write_run(results, SUITE, "lm-0", task="wt2_lm", reach_at=2, fabricated_data=True,
              profile=profile(0.05, 0.5, 900, 40, 3.2e10, items=64, device="cuda:0", device_bytes=2**30))
    if plan is not None:
        write_plan(results, plan)
    return results


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    results = write_rehearsal(tmp_path_factory.mktemp("results"))
    return results, report.build(SUITE, str(results), None)


def read_csv(path: Path) -> dict[str, dict]:
    with open(path) as fh:
        return {row[next(iter(row))]: row for row in csv.DictReader(fh)}


def test_rehearsal_page_is_marked_in_title_banner_and_every_table(built):
    _, page = built
    html = page.read_text()
    assert re.search(r"<title>[^<]*" + re.escape(MARK), html)
    assert re.search(r'<p class="banner" id="rehearsal"><strong class="mark">' + re.escape(MARK), html)
    before_tables = re.split(r"<table\b", html)[:-1]  # the text before each table, from the last one's end
    assert len(before_tables) > 5
    for i, text in enumerate(before_tables):
        assert MARK in text.rsplit("</table>", 1)[-1], f"table {i + 1} has no mark above it"
    sections = re.findall(r'<section class="table".*?</section>', html, flags=re.S)
    assert sections and all(MARK in s for s in sections)  # the empty ones ("None.") too


def test_every_export_carries_the_mark(built):
    _, page = built
    csvs = sorted(page.parent.glob("*.csv"))
    assert len(csvs) > 5
    for path in csvs:
        with open(path) as fh:
            reader = csv.DictReader(fh)
            assert "rehearsal" in reader.fieldnames, path.name
            assert all(row["rehearsal"] == MARK for row in reader), path.name
        assert MARK in path.with_suffix(".md").read_text()


def test_prediction_matches_a_hand_computation():
    # 2 GFLOP per image × (50,000 + 10,000 / 3 images) / (495 TFLOP/s × 0.4) = 0.53872 s.
    assert predict_epoch_s(2e9, 50000, 10000, 495) == pytest.approx(0.538720, rel=1e-5)
    assert predict_epoch_s(2e9, 50000, 10000, 67) == pytest.approx(3.980100, rel=1e-5)


def test_the_plans_epochs_are_priced_at_the_assumed_and_the_predicted_epoch_time():
    # 1,800 epochs at 8 s assumed = 4 h; at a predicted 2 s - 16 s: 1 h - 8 h.
    assert plan_hours(1800, 8.0, [("TF32", 2.0), ("FP32", 16.0)]) == "1,800: 4.0 h; 1.0 h – 8.0 h"
    assert plan_hours(None, 8.0, []) == "—" and plan_hours(10, None, []) == "10: —; —"


def test_profile_table_takes_max_and_median_and_predicts(built):
    _, page = built
    rows = read_csv(page.parent / f"{PROFILE_TABLE}.csv")
    digits, lm = rows["digits_resnet"], rows["wt2_lm"]
    assert digits["runs profiled"] == "3 of 4"  # the AdamW run has no profile: tolerated, not counted
    assert digits["peak host memory (MiB)"] == "300.0" and digits["checkpoint (MiB)"] == "12.0"  # max
    assert digits["peak device memory (MiB)"] == "n/a (CPU)"
    assert digits["time per training step"] == "0.4 s at batch 8 (full 128)"  # median of 0.2, 0.4, 0.9
    assert digits["time per evaluation"] == "2 s"  # median of 1, 3, 2
    assert digits["FLOPs per item"] == "2 GFLOP per image"  # median of 1, 2, 3 G
    assert digits["predicted epoch on NVIDIA H100 SXM5"] == "0.539 s – 3.98 s (TF32–FP32, fp32)"
    assert digits["plan assumes"] == "8 s"
    assert digits["plan / predicted"] == "2–15× plan pessimistic"  # 8 / 3.98 .. 8 / 0.539
    # bf16: one figure, 0.5 GFLOP per token × (2e6 + 2e5 / 3) / (989e12 × 0.4) = 2.61 s; the plan's 1 s is shorter.
    assert lm["peak device memory (MiB)"] == "1,024.0"
    assert lm["predicted epoch on NVIDIA H100 SXM5"] == "2.61 s (BF16, bf16)"
    assert lm["plan / predicted"] == "0.38× plan optimistic"
    html = page.read_text()
    assert "Data loading and host overhead are not in it" in html and "is an assumption" in html


def test_rehearsal_without_its_plan_file_or_any_profile_still_builds(tmp_path):
    results = tmp_path / "r"
    write_run(results, SUITE, "bare", reach_at=3)  # no profile, no fabricated_data: an older record
    records = load_suite(SUITE, results)
    assert records.rehearsal and records.plan is None  # the name says it is one
    page = report.build(SUITE, str(results), str(tmp_path / "out"))
    row = read_csv(page.parent / f"{PROFILE_TABLE}.csv")["digits_resnet"]
    assert row["runs profiled"] == "0 of 1" and row["predicted epoch on NVIDIA H100 SXM5"] == "—"
    assert MARK in page.read_text().split("<title>", 1)[1].split("</title>", 1)[0]


def test_a_corrupt_plan_is_listed_and_the_suite_stays_a_rehearsal(tmp_path):
    write_rehearsal(tmp_path, plan=None)
    (tmp_path / "grids" / SUITE).mkdir(parents=True)
    (tmp_path / "grids" / SUITE / "rehearsal.json").write_text("{not json")
    records = load_suite(SUITE, tmp_path)
    assert records.rehearsal and [p.kind for p in records.problems] == ["corrupt"]


# --- The gate: a rehearsal is never compared, never a baseline; it checks only that every cell ran.

def test_rehearsal_gate_compares_nothing_and_passes_when_every_cell_ran(tmp_path, capsys):
    write_rehearsal(tmp_path)
    strict = {"format": 1, "suite": "blog", "cells": {"digits_resnet/sgd/reference": {"median": 1}},
              "verdicts": {"cifar10_wrn22": "reproduced"}}
    result = check(analyse(load_suite(SUITE, tmp_path)), strict)  # the baseline is never read
    assert result.ok and result.checked == 5 and "compared with no baseline" in result.notes[0]
    assert main(["check", f"suite={SUITE}", f"results_dir={tmp_path}"]) == 0
    baseline = tmp_path / "nightly.json"
    baseline.write_text(json.dumps(strict))
    assert main(["check", f"suite={SUITE}", f"baseline={baseline}", f"results_dir={tmp_path}"]) == 0
    assert "not read: a rehearsal is never compared" in capsys.readouterr().out


def test_rehearsal_gate_fails_on_a_failed_run_a_failed_cell_and_a_planned_task_not_run(tmp_path, capsys):
    write_rehearsal(tmp_path, plan={**PLAN, "cifar10_wrn22": {"published_items": IMAGES}})
    write_run(tmp_path, SUITE, "crashed", seed=3, status="failed", error="CUDA out of memory",
              fabricated_data=True)
    cells = tmp_path / "grids" / SUITE / "cells"
    cell_record("wt2_lm/+lm_blog/seed0", status="failed", error="ValueError: bad shape").write(cells / "x.json")
    assert main(["check", f"suite={SUITE}", f"results_dir={tmp_path}"]) == 1
    out = capsys.readouterr().out
    assert f"FAILED: {fixture_id('crashed')}: failed: CUDA out of memory" in out
    assert "FAILED: cell wt2_lm/+lm_blog/seed0: failed: ValueError: bad shape" in out
    assert "FAILED: task cifar10_wrn22: in the rehearsal plan, no counted run" in out
    assert "gate: FAILED (6 run records, 3 failure(s))" in out


def test_baseline_refuses_a_rehearsal(tmp_path, capsys):
    write_rehearsal(tmp_path)
    out = tmp_path / "b.json"
    assert main(["baseline", f"suite={SUITE}", f"out={out}", f"results_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: suite 'blog-rehearsal' is a rehearsal") and not out.exists()
    doc = snapshot(analyse(load_suite(SUITE, tmp_path)))  # as if written by hand: the gate will not read it
    out.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="never a baseline"):
        load_baseline(out)


def test_a_real_suite_is_still_gated_against_its_baseline(tmp_path, capsys):
    write_suite(tmp_path, "nightly")
    assert main(["check", "suite=nightly", f"results_dir={tmp_path}"]) == 2  # only a rehearsal needs none
    assert "missing baseline=" in capsys.readouterr().err


# --- Never pooled: a real suite's run that read fabricated data is listed, never counted, and marks the page.

@pytest.fixture(scope="module")
def polluted(tmp_path_factory):
    results = write_suite(tmp_path_factory.mktemp("polluted"), "mini")
    write_run(results, "mini", "fake", seed=5, reach_at=1, fabricated_data=True)  # would pull the median down
    return results, report.build("mini", str(results), None)


def test_real_suite_with_a_fabricated_run_lists_it_and_never_counts_it(polluted):
    results, page = polluted
    records = load_suite("mini", results)
    assert not records.rehearsal and [p.name for p in records.fabricated] == [fixture_id("fake")]
    assert fixture_id("fake") not in set(records.runs["run_id"])
    excluded = read_csv(page.parent / "excluded_runs.csv")[fixture_id("fake")]
    assert excluded["kind"] == "fabricated" and "not a measurement" in excluded["detail"]
    ett = read_csv(page.parent / "epochs_to_target.csv")["digits_resnet"]
    assert ett["sgd · reference"] == "6 [6–7] 3/3"  # seed 5's epoch 1 left out
    assert not (page.parent / f"{PROFILE_TABLE}.csv").exists()  # not a rehearsal: no profile table


def test_real_suite_with_a_fabricated_run_is_marked(polluted):
    _, page = polluted
    html = page.read_text()
    assert MARK in html.split("</title>", 1)[0] and 'id="rehearsal"' in html
    assert "1 run(s) of this suite read fabricated data" in html
    assert all(MARK in s for s in re.findall(r'<section class="table".*?</section>', html, flags=re.S))


def test_real_suite_with_a_fabricated_run_fails_its_gate_and_is_never_a_baseline(polluted, tmp_path, capsys):
    results, _ = polluted
    clean = write_suite(tmp_path / "clean", "mini")
    baseline = snapshot(analyse(load_suite("mini", clean)))
    result = check(analyse(load_suite("mini", results)), baseline)
    assert result.failures == [f"1 run(s) read fabricated data, not a measurement (left out of every number): "
                               f"{fixture_id('fake')}"]
    assert main(["baseline", "suite=mini", f"out={tmp_path / 'b.json'}", f"results_dir={results}"]) == 2
    assert "read fabricated data" in capsys.readouterr().err


def test_a_real_suites_fabricated_tuning_trial_is_not_counted(tmp_path):
    write_suite(tmp_path, "mini")
    write_trial(tmp_path, "mini", "digits_resnet", "sgd", "reference", 0, lr=0.1, weight_decay=5e-4, score=3.0,
                fabricated_data=True)
    records = load_suite("mini", tmp_path)
    assert records.tuning.trials == [] and [p.kind for p in records.tuning.problems] == ["fabricated"]
    assert len(records.fabricated) == 1


def test_tensorboard_hparams_carry_the_mark(tmp_path):
    pytest.importorskip("tensorboard")
    from report.export import hparams

    fake = write_run(tmp_path, SUITE, "fake", fabricated_data=True)
    old = write_run(tmp_path, "mini", "old")
    assert hparams(load_run(fake))["fabricated_data"] is True
    assert "fabricated_data" not in hparams(load_run(old))  # absent in old records: left out, not False


def test_a_cell_record_of_an_older_shape_is_named_not_half_read(tmp_path):
    cells = tmp_path / "grids" / SUITE / "cells"
    cells.mkdir(parents=True)
    (cells / "old.json").write_text(json.dumps({"cell": "wt2_lm/+lm_blog/seed0", "status": "failed"}))
    [line] = failed_cells(tmp_path, SUITE)
    assert line.startswith("cell record old.json:") and "without task" in line and "older version" in line
