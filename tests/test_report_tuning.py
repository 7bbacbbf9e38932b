"""The report's tuning pages (issue 13) from records made for the purpose (no training): the tuned values
and cost per cell, the LR x WD figure, the verdict against tuned baselines, and that the report shows the
recorded selection only — a poisoned test metric in a trial changes nothing, broken trials are listed."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

import report
from report.analysis import analyse
from report.gate import check, snapshot
from report.load import load_suite
from report.tuning import NOT_TUNED
from report.tuning_plot import TITLE, tuning_scatter
from test_report_fixtures import (STUDIES, fixture_id, write_study, write_suite, write_trial, write_tuned_cell,
                                  write_tuned_suite)

TWIN_ROW = "tuned/cifar10_wrn22/digits_resnet"
TUNING_EXPORTS = ("tuning", "tuned_claims", "fastest_tuned")


def rows(page: Path, name: str) -> dict[str, dict]:
    with open(page.parent / f"{name}.csv") as fh:
        reader = csv.DictReader(fh)
        return {row[reader.fieldnames[0]]: row for row in reader}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """The tuned mini (4 studies, their tuned cells, an older untuned cell) plus three broken trials."""
    results = write_tuned_suite(tmp_path_factory.mktemp("results"))
    trial = dict(lr=0.005, weight_decay=0.02)
    write_trial(results, "mini", "digits_resnet", "adamw", "reference", 7, score=None, status="failed",
                error="RuntimeError: boom", **trial)
    bad = write_trial(results, "mini", "digits_resnet", "adamw", "reference", 8, score=1.0, **trial)
    (bad / "status.json").write_text("{not json")
    write_trial(results, "mini", "digits_resnet", "adamw", "reference", 9, score=None, status="running", **trial)
    return results, report.build("mini", str(results))


def test_tuning_table_shows_the_recorded_values_and_cost(tuned):
    _, page = tuned
    row = rows(page, "tuning")["digits_resnet/sgd/reference"]
    assert (row["tuned LR"], row["tuned WD"], row["trials run / pruned"]) == ("0.5", "0.002", "4 / 1")
    assert (row["tuning cost (epochs)"], row["trial budget (epochs)"]) == ("26", "8")  # 3 x 8 + 2 (pruned)
    assert (row["LR space"], row["WD space"]) == ("[0.01, 1]", "[5e-05, 0.005]")
    assert row["best trial (score)"] == "2 (3)" and row["trial records"] == "3 completed · 1 pruned"
    one_cycle = rows(page, "tuning")["digits_resnet/sgd/one_cycle"]
    assert one_cycle["trial records"] == "2 completed · 1 diverged · 1 pruned"  # pruned: its own count
    note = (page.parent / "tuning.md").read_text()
    assert "Total tuning cost: 77 epochs over 4 cells (15 trials, 3 of them pruned)" in note
    assert "sampler: QMC sobol scrambled seed 0" in note and "validation (15 trial records)" in note
    assert "every other trial runs to its end): on;" in note
    assert "trials per cell (pruned ones included): 3 (1 cell), 4 (3 cells)" in note
    html = page.read_text()
    assert 'id="t-tuning"' in html and "Tuning protocol" in html and "trials pruned: 3" in html


def test_figure_has_one_panel_per_optimizer(tuned):
    results, page = tuned
    analysis = analyse(load_suite("mini", results))
    fig = tuning_scatter(analysis, "digits_resnet")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in panels] == ["sgd", "adamw"]
    points = [sum(len(c.get_offsets()) for c in ax.collections) for ax in panels]
    assert points == [8 + 2, 7 + 2]  # every trial of both schedules, plus each study's selection (star)
    assert "is the best decay independent of the LR" in fig._suptitle.get_text()
    html = page.read_text()
    assert f'alt="{TITLE}: digits_resnet"' in html and html.count("data:image/svg+xml;base64,") == 5


def test_a_decay_that_is_not_tuned_sits_on_its_own_row(tmp_path):
    write_study(tmp_path, "mini", "digits_resnet", "adam_l2", "one_cycle",
                [(0.001, 0.0, -0.9, "completed"), (0.01, 0.0, -0.8, "completed")], 0.003, 0.0, 4)
    write_tuned_cell(tmp_path, "mini", "adam_l2", "one_cycle", [2, 2], {"lr": 0.001})
    page = report.build("mini", str(tmp_path))
    assert rows(page, "tuning")["digits_resnet/adam_l2/one_cycle"]["WD space"] == "not tuned (0)"
    html = page.read_text()
    assert f"{TITLE}: could not be drawn" not in html and f'alt="{TITLE}: digits_resnet"' in html


def test_tuned_verdict_judges_only_the_tuned_cells_of_a_twin(tuned):
    results, page = tuned
    row = rows(page, "tuned_claims")[TWIN_ROW]
    assert row["task"] == "digits_resnet (mini twin)" and row["verdict"] == "reaches the figure, faster by less than claimed"  # 2.5x < 200 / 30
    assert "measured on digits_resnet, a mini twin of claim cifar10_wrn22" in row["our measurement"]
    assert "tuned sgd · reference (lr 0.5, wd 0.002): 5 [5–6] 3/3" in row["our measurement"]
    assert "tuned adamw · one_cycle (lr 0.003, wd 0.05): 2 [2] 3/3" in row["our measurement"]
    assert "tuned sgd · reference (3 seeds, 3 runs)" in row["cells judged"]
    assert "(A) within 8 epochs: median 2 (3/3 seeds reached): yes" in row["why"]
    assert "(B) faster: p = 0.05, exact rank test (3 vs 3 seeds, smallest p 0.05): yes" in row["why"]
    analysis = analyse(load_suite("mini", results))
    judged = {p.name for p in analysis.tuned[("digits_resnet", "sgd", "reference")].run_paths}
    assert judged == {fixture_id(f"digits-sgd-reference-s{s}-b8-tuned") for s in range(3)}
    # The grid tables show the tuned cell too: its seeds are never pooled with the older untuned runs.
    assert analysis.cell("digits_resnet", "sgd", "reference").summary.probes == 3
    assert rows(page, "epochs_to_target")["digits_resnet"]["sgd · reference"] == "5 [5–6] 3/3"
    assert fixture_id("digits-sgd-reference-s0-b8-untuned") not in page.read_text().split('id="t-fastest_tuned"')[0]


def test_untuned_suite_reads_not_tuned(tmp_path):
    write_suite(tmp_path)
    write_tuned_cell(tmp_path, "mini", "adamw", "reference", [3, 3], None)  # a cell record, tuned: false
    page = report.build("mini", str(tmp_path))
    row = rows(page, "tuned_claims")[TWIN_ROW]
    assert row["verdict"] == NOT_TUNED and row["cells judged"] == "none"
    assert rows(page, "fastest_tuned")["digits_resnet"]["is adamw · one_cycle the fastest?"] == NOT_TUNED
    assert rows(page, "tuning") == {}
    assert "grid.tuning.trials=0" in (page.parent / "tuning.md").read_text()
    assert page.read_text().count("data:image/svg+xml;base64,") == 4  # no tuning figure
    assert TWIN_ROW not in snapshot(analyse(load_suite("mini", tmp_path)))["verdicts"]  # nothing to drop


def test_full_task_is_judged_within_the_published_budget(tmp_path):
    write_tuned_suite(tmp_path, suite="blog", task="cifar10_wrn22")
    row = rows(report.build("blog", str(tmp_path)), "tuned_claims")["tuned/cifar10_wrn22"]
    assert row["task"] == "cifar10_wrn22" and "mini twin" not in row["our measurement"]
    assert "(A) within 30 epochs: median 2" in row["why"]  # the claim's budget, not the task's
    assert "(C) speed-up ≥ claimed 6.7×" in row["why"]  # the WRN paper's 200 epochs / the blog's 30


def test_fastest_tuned_cell(tuned, tmp_path):
    _, page = tuned
    row = rows(page, "fastest_tuned")["digits_resnet"]
    assert row["tuned cells"] == "4 of 4" and row["is adamw · one_cycle the fastest?"] == "yes"
    assert row["ranking"].startswith("1. adamw · one_cycle 2 [2] 3/3; 2. ")
    slow = write_tuned_suite(tmp_path, reach={("adamw", "one_cycle"): [6, 6, 6]})
    row = rows(report.build("mini", str(slow)), "fastest_tuned")["digits_resnet"]
    assert row["is adamw · one_cycle the fastest?"] == "no: adamw · reference is faster"


def _poison(results: Path, label: str) -> None:
    """A trial that looks perfect on the test set: test_acc = 1.0 in every row and in its status."""
    path = results / "runs" / "mini-tuning" / fixture_id(label)
    lines = (path / "metrics.jsonl").read_text().splitlines()
    (path / "metrics.jsonl").write_text("".join(json.dumps({**json.loads(x), "test_acc": 1.0}) + "\n" for x in lines))
    status = json.loads((path / "status.json").read_text())
    status.update(final={**status["final"], "test_acc": 1.0}, best={**status["best"], "test_acc": 1.0},
                  test_acc=1.0)
    (path / "status.json").write_text(json.dumps(status))


def _shown(results: Path) -> tuple[dict, str]:
    page = report.build("mini", str(results))
    tables = {name: (page.parent / f"{name}.csv").read_text() for name in TUNING_EXPORTS}
    figure = re.search(f'src="(data:[^"]+)" alt="{TITLE}: digits_resnet"', page.read_text())
    return tables, figure.group(1)


def test_a_poisoned_test_metric_changes_nothing_shown(tmp_path):
    write_tuned_suite(tmp_path)
    before = _shown(tmp_path)
    for (optimizer, schedule), (trials, *_) in STUDIES.items():
        for n in range(len(trials)):
            _poison(tmp_path, f"trial-digits_resnet-{optimizer}-{schedule}-{n}")
    assert not load_suite("mini", tmp_path).tuning.problems  # still whole records, counted
    assert _shown(tmp_path) == before


def test_broken_trial_dirs_are_listed_not_counted(tuned):
    results, page = tuned
    excluded = rows(page, "excluded_tuning")
    kinds = {name.split("/")[-1]: r["kind"] for name, r in excluded.items()}
    label = "trial-digits_resnet-adamw-reference-{}".format
    assert kinds == {fixture_id(label(7)): "failed", fixture_id(label(8)): "corrupt",
                     fixture_id(label(9)): "incomplete"}
    assert "RuntimeError: boom" in excluded[f"mini-tuning/{fixture_id(label(7))}"]["detail"]
    assert rows(page, "tuning")["digits_resnet/adamw/reference"]["trial records"] == "3 completed"
    tuning = load_suite("mini", results).tuning
    assert len(tuning.trials) == 15 and tuning.trial_dirs == 18
    assert sum(t.state == "pruned" for t in tuning.trials) == 3
    assert "3 tuning record(s) not counted" in page.read_text()


def test_gate_checks_the_tuned_verdicts(tuned, tmp_path):
    results, _ = tuned
    doc = snapshot(analyse(load_suite("mini", results)))
    assert doc["verdicts"][TWIN_ROW] == "reaches the figure, faster by less than claimed"
    assert doc["verdicts"]["cifar10_wrn22"] == "no published recipe"
    better = {**doc, "verdicts": {**doc["verdicts"], TWIN_ROW: "reproduced"}}
    result = check(analyse(load_suite("mini", results)), better)
    assert result.failures == [f"claim {TWIN_ROW}: verdict dropped from 'reproduced' to 'reaches the figure, faster by less than claimed'"]
    write_suite(tmp_path)  # the same suite untuned: the tuned verdict drops to "not tuned"
    assert not check(analyse(load_suite("mini", tmp_path)), {**doc, "cells": {}}).ok


def test_an_outcome_is_counted_only_with_every_trial_run_it_names(tmp_path):
    """Another machine's outcome file, or one whose trial runs are gone, is listed, never shown as a
    tuned value; a trial its study's outcome was not chosen from (an older protocol's) is superseded."""
    import shutil

    from report.tuning import load_tuning

    outcome = write_study(tmp_path, "mini", "digits_resnet", "sgd", "reference", STUDIES[("sgd", "reference")][0],
                          0.1, 5e-4, 8)
    write_trial(tmp_path, "mini", "digits_resnet", "sgd", "reference", 9, lr=0.2, weight_decay=1e-4, score=3.0,
                label="older-protocol-trial")
    records = load_tuning("mini", tmp_path)
    assert ("digits_resnet", "sgd", "reference") in records.outcomes
    assert [p.kind for p in records.problems] == ["superseded"]
    assert len(records.study(("digits_resnet", "sgd", "reference"))) == len(outcome["runs"])
    shutil.rmtree(tmp_path / "runs" / "mini-tuning" / outcome["runs"][0])
    records = load_tuning("mini", tmp_path)
    assert records.outcomes == {} and any(p.kind == "untrusted" for p in records.problems)
    older = {k: v for k, v in outcome.items() if k != "runs"}  # an outcome written before `runs`
    path = tmp_path / "grids" / "mini" / "tuning" / "digits_resnet__sgd__reference.json"
    path.write_text(json.dumps(older))
    assert load_tuning("mini", tmp_path).outcomes == {}
