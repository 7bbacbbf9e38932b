"""The claims judged as published: each blog recipe cell against the claim's published baseline recipe,
on records made for the purpose (no training)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

import report
from report.analysis import analyse
from report.load import load_suite
from test_report_fixtures import fixture_id, write_cell, write_recipe, write_run


def claims_rows(page: Path) -> dict[str, dict]:
    with open(page.parent / "claims.csv") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def blog_page(tmp_path_factory):
    """A blog suite: the CIFAR claim's three recipes and grid cells, the Cars recipe with our stand-in
    baseline, and the AWD-LSTM recipes (perplexity)."""
    results = tmp_path_factory.mktemp("results")
    cifar = "cifar10_wrn22"
    write_recipe(results, "blog", cifar, "cifar10_blog", [30, 30, 30], 30)
    write_recipe(results, "blog", cifar, "cifar10_blog18", [18, 18, None], 18, metric="test_acc_tta")
    write_recipe(results, "blog", cifar, "cifar10_wrn_paper", [130, 140, 150], 200, optimizer="sgd",
                 schedule="step", budget_free=True)
    # Grid cells of the same task: compared in the grid tables, never read by the claims' verdicts.
    write_cell(results, "blog", "adamw", "one_cycle", [2, 2, 2], task=cifar)
    write_cell(results, "blog", "sgd", "reference", [8, 8, 8], task=cifar)
    write_recipe(results, "blog", "cars_resnet50", "cars_blog", [60, 60], 60, optimizer="adam_l2")
    for seed in (0, 1):  # our stand-in baseline: never at the target in 600 epochs
        write_run(results, "blog", f"cars-sgd-s{seed}", task="cars_resnet50", seed=seed, epochs=600)
    write_recipe(results, "blog", "awd_lstm_wt2", "awd_lstm_blog", [90, 90, 90], 90, optimizer="adam_l2",
                 perplexity=True)
    write_recipe(results, "blog", "awd_lstm_wt2", "awd_lstm_reference", [300, 320, 310], 750,
                 optimizer="ntasgd", schedule="reference", budget_free=True, perplexity=True)
    return results, report.build("blog", str(results))


def test_cifar_run_is_judged_against_the_wrn_paper_run_not_the_grid(blog_page):
    _, page = blog_page
    row = claims_rows(page)["cifar10_wrn22/cifar10_blog"]
    assert "blog run: 30 [30] 3/3" in row["our measurement"]
    assert "the WRN paper's SGD run (Zagoruyko & Komodakis 2016): 140 [130–150] 3/3" in row["our measurement"]
    assert "speed-up 4.67× [" in row["our measurement"] and "(3 vs 3 seeds)" in row["our measurement"]
    # (C): 4.67 >= the claimed 100 / 30
    assert row["verdict"] == "reproduced" and "(C) speed-up ≥ claimed 3.3×: yes" in row["why"]
    judged = row["runs judged"]
    assert "+recipe=cifar10_blog (3 seeds, 3 runs)" in judged and "+recipe=cifar10_wrn_paper" in judged
    assert "adamw · one_cycle" not in judged and "sgd · reference" not in judged


def test_the_18_epoch_tta_run_keeps_its_own_target_and_row(blog_page):
    results, page = blog_page
    row = claims_rows(page)["cifar10_wrn22/cifar10_blog18"]
    assert "blog run: 18 [18–>18] 2/3" in row["our measurement"]
    assert "(A) 2/3 seeds at the target within 18 epochs (need 2): yes" in row["why"]
    assert row["verdict"] == "reproduced"  # 140 / 18 = 7.8 >= 100 / 18 = 5.6
    records = load_suite("blog", results)
    assert not [p for p in records.problems if p.kind == "inconsistent"]  # its TTA target is its own
    cell = analyse(records).recipe("cifar10_wrn22", "cifar10_blog18")
    assert cell.target.metric == "test_acc_tta"


def test_published_figures_are_shown_beside_ours(blog_page):
    _, page = blog_page
    row = claims_rows(page)["cifar10_wrn22/cifar10_blog"]
    assert "test_acc: blog 0.9425, ours 0.91 ± 0 (3 seeds)" in row["our measurement"]
    awd = claims_rows(page)["awd_lstm_wt2/awd_lstm_blog"]
    assert "val_ppl_blog: blog 68.7, ours not recorded" in awd["our measurement"]


def test_cars_has_no_published_baseline_so_c_is_not_judged(blog_page):
    _, page = blog_page
    row = claims_rows(page)["cars_resnet50/cars_blog"]
    assert "ours: SGD + step schedule (no published baseline)" in row["baseline"]
    assert "(C) no published baseline: not judged" in row["why"]
    assert "speed-up ≥ 10.00× [10.00–10.00]" in row["our measurement"]  # ours never got there: a bound
    assert "(2 vs 2 seeds)" in row["our measurement"]


def test_language_claim_is_judged_against_awd_lstm_lms_nt_asgd_run(blog_page):
    _, page = blog_page
    row = claims_rows(page)["awd_lstm_wt2/awd_lstm_blog"]
    assert "awd-lstm-lm's SGD + NT-ASGD run: 310 [300–320] 3/3" in row["our measurement"]
    assert "speed-up 3.44×" in row["our measurement"]
    assert row["verdict"] == "partly"  # faster, but 3.4x < the claimed 750 / 90 = 8.3x
    assert claims_rows(page)["qrnn_wt2/qrnn_blog"]["verdict"] == "not run"


def test_published_runs_table_and_run_links(blog_page):
    _, page = blog_page
    with open(page.parent / "published_runs.csv") as fh:
        rows = {r["recipe"]: r for r in csv.DictReader(fh)}
    assert rows["+recipe=cifar10_wrn_paper"]["epochs to target"] == "140 [130–150] 3/3"
    assert rows["+recipe=cifar10_blog18"]["target"] == "test_acc_tta ≥ 0.9"
    html = page.read_text()
    assert f'href="../../runs/blog/{fixture_id("cifar10_wrn_paper-s0")}/"' in html  # each verdict links the runs it read


def test_recipe_cells_never_mix_with_grid_cells(blog_page):
    results, _ = blog_page
    analysis = analyse(load_suite("blog", results))
    assert analysis.cell("cifar10_wrn22", "adamw", "one_cycle").summary.seeds == 3
    assert ("cifar10_wrn22", "adamw", "one_cycle_phases") not in analysis.cells
    assert {k for k in analysis.recipes if k[0] == "cifar10_wrn22"} == {
        ("cifar10_wrn22", r) for r in ("cifar10_blog", "cifar10_blog18", "cifar10_wrn_paper")}
    assert analysis.max_epochs["cifar10_wrn22"] == 8  # the grid's budget, not a recipe's


def test_a_run_with_one_seed_has_no_interval(tmp_path):
    write_recipe(tmp_path, "blog", "cifar10_wrn22", "cifar10_blog", [30], 30)
    write_recipe(tmp_path, "blog", "cifar10_wrn22", "cifar10_wrn_paper", [150], 200, optimizer="sgd",
                 schedule="step", budget_free=True)
    row = claims_rows(report.build("blog", str(tmp_path)))["cifar10_wrn22/cifar10_blog"]
    assert "speed-up 5.00× (1 vs 1 seeds: no interval)" in row["our measurement"]
    assert row["verdict"] == "partly" and "no interval" in row["why"]


def test_a_full_task_without_its_recipes_is_not_run_rather_than_a_grid_verdict(tmp_path):
    write_cell(tmp_path, "blog", "adamw", "one_cycle", [2, 2], task="cifar10_wrn22")
    write_cell(tmp_path, "blog", "sgd", "reference", [8, 8], task="cifar10_wrn22")
    write_run(tmp_path, "blog", "twin", task="digits_wrn", reach_at=3)  # a twin is ignored then
    rows = claims_rows(report.build("blog", str(tmp_path)))
    assert rows["cifar10_wrn22/cifar10_blog"]["verdict"] == "not run"
    assert "no counted run of +recipe=cifar10_blog and the WRN paper" in rows["cifar10_wrn22/cifar10_blog"][
        "our measurement"]
