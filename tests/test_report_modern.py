""""Still the fastest?" (report/modern.py) from fixture records of a modern suite (no training): the rows
per pair, the fastest mark, censored seeds, the verdict line in each case (a challenger faster with
overlapping intervals, the claim still fastest with intervals apart, a tie, the claim censored), the
section absent on a suite with only the blog's pairs, and the page built."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

import report
from report.analysis import analyse
from report.load import load_suite
from report.modern import modern_cells, modern_tables, verdict
from test_report_fixtures import write_cell, write_suite, write_tuned_cell

SUITE = "modern_mini"
PROBES = (2, 3, 4, 5, 6, 8)  # 1cycle-like budgets probed: a seed's epochs-to-target is the first >= reach

# task -> (optimizer, schedule) -> each seed's epoch at the target (None: never, censored at 8)
REACH = {
    "digits_resnet": {("adamw", "one_cycle"): [3, 3, 4], ("sf_adamw", "warmup"): [2, 2, 3],
                      ("lion", "one_cycle"): [4, 5, None], ("muon", "one_cycle"): [None, None, None],
                      ("adamw", "cosine"): [3, 4, 4], ("adamw", "wsd"): [4, 4, 5]},
    "digits_wrn": {("adamw", "one_cycle"): [2, 2, 2], ("lion", "one_cycle"): [6, 6, 6]},
    "synth_qrnn": {("adamw", "one_cycle"): [3, 3, 3], ("muon", "one_cycle"): [3, 3, 3]},
    "digits_finetune": {("adamw", "one_cycle"): [2, None, None], ("adamw", "cosine"): [4, 4, None]},
}


def write_modern(results: Path) -> Path:
    for task, cells in REACH.items():
        for (optimizer, schedule), reach in cells.items():
            free = schedule == "warmup"  # schedule-free: one run per seed, stopped at the target
            write_cell(results, SUITE, optimizer, schedule, reach, task=task, tag=task,  # labels: unique
                       budgets=(8,) if free else PROBES, budget_free=free)
    return results


def read_csv(path: Path) -> dict[str, dict]:
    with open(path) as fh:
        reader = csv.DictReader(fh)
        return {row[reader.fieldnames[0]]: row for row in reader}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    results = write_modern(tmp_path_factory.mktemp("results"))
    return results, analyse(load_suite(SUITE, results)), report.build(SUITE, str(results))


def test_one_row_per_pair_fastest_first_with_intervals_and_censoring(built):
    _, _, page = built
    rows = read_csv(page.parent / "still_fastest_digits_resnet.csv")
    assert list(rows) == ["sf_adamw + warmup", "adamw + one_cycle", "adamw + cosine", "adamw + wsd",
                          "lion + one_cycle", "muon + one_cycle"]
    first = rows["sf_adamw + warmup"]
    assert (first["median epochs to target"], first["interval (coverage)"]) == ("2", "[2–3] range, 75% coverage")
    assert first["rank"] == "1 ★ fastest"
    assert first["per seed"] == "2, 2, 3" and first["censored seeds"] == "none"
    assert first["seeds (reached)"] == "3 (3 reached)" and first["tuned"] == "no"
    lion = rows["lion + one_cycle"]
    assert lion["median epochs to target"] == "5" and lion["per seed"] == "4, 5, >8"
    assert lion["censored seeds"] == "1 of 3: seed 2 (> 8)" and lion["interval (coverage)"] == "[4–≥8] range, 75% coverage"
    muon = rows["muon + one_cycle"]
    assert (muon["median epochs to target"], muon["interval (coverage)"], muon["rank"]) == ("> 8", "[≥8] range, 75% coverage",
                                                                                           "6")
    assert muon["seeds (reached)"] == "3 (0 reached)"
    assert [rows[p]["rank"] for p in ("adamw + cosine", "adamw + wsd")] == ["3", "3"]  # a shared rank


def test_a_faster_challenger_whose_seeds_interleave_is_not_resolved(built):
    _, analysis, _ = built
    assert verdict(modern_cells(analysis, "digits_resnet")) == (
        "sf_adamw + warmup is faster than adamw + one_cycle: median 2 vs 3 epochs (p = 0.15, exact rank test "
        "(3 vs 3 seeds, smallest p 0.05): not resolved)")


def test_the_claim_still_fastest_by_every_seed_is_resolved_at_5_percent(built):
    _, analysis, _ = built
    assert verdict(modern_cells(analysis, "digits_wrn")) == (
        "adamw + one_cycle is still the fastest (median 2 vs lion + one_cycle 6; p = 0.05, exact rank test "
        "(3 vs 3 seeds, smallest p 0.05): resolved)")


def test_a_tie_is_called_a_tie(built):
    _, analysis, page = built
    assert verdict(modern_cells(analysis, "synth_qrnn")).startswith(
        "adamw + one_cycle ties with muon + one_cycle for the fastest (median 3; p = 1, exact rank test")
    ranks = [r["rank"] for r in read_csv(page.parent / "still_fastest_synth_qrnn.csv").values()]
    assert ranks == ["1 ★ tied fastest", "1 ★ tied fastest"]


def test_a_censored_claim_is_slower_and_its_misses_are_named(built):
    _, analysis, _ = built
    text = verdict(modern_cells(analysis, "digits_finetune"))
    assert text.startswith("adamw + cosine is faster than adamw + one_cycle: median 4 vs > 8 epochs "
                           "(p = 0.5, exact rank test (3 vs 3 seeds")
    assert text.endswith("; not reached: adamw + cosine 1 of 3 seeds censored (> 8), adamw + one_cycle 2 of 3 "
                         "seeds censored (> 8)")


def test_one_seed_has_no_interval_and_is_not_resolved(tmp_path):
    write_cell(tmp_path, SUITE, "adamw", "one_cycle", [2], budgets=PROBES)
    write_cell(tmp_path, SUITE, "lion", "one_cycle", [6], budgets=PROBES)
    analysis = analyse(load_suite(SUITE, tmp_path))
    assert verdict(modern_cells(analysis, "digits_resnet")) == (
        "adamw + one_cycle is still the fastest (median 2 vs lion + one_cycle 6; p = 0.5, exact rank test "
        "(1 vs 1 seeds: its smallest p is 0.5 > 5%, too few seeds to resolve))")
    assert modern_tables(analysis)[0].frame["interval (coverage)"].tolist() == ["— (1 seed: no interval)"] * 2


def test_two_seeds_are_too_few_to_resolve_even_when_every_seed_is_apart(tmp_path):
    """A 2-seed page (mini) never says 'resolved': the smallest p of 2 vs 2 is 1/6."""
    write_cell(tmp_path, SUITE, "adamw", "one_cycle", [2, 2], budgets=PROBES)
    write_cell(tmp_path, SUITE, "lion", "one_cycle", [6, 6], budgets=PROBES)
    text = verdict(modern_cells(analyse(load_suite(SUITE, tmp_path)), "digits_resnet"))
    assert "too few seeds to resolve" in text and ": resolved" not in text


def test_the_page_has_the_section_rule_and_verdicts(built):
    _, _, page = built
    html = page.read_text()
    assert html.count('id="still-fastest"') == 1 and "<h2>Still the fastest?</h2>" in html
    assert "Fastest: the lowest median epochs-to-target over seeds" in html
    for task in REACH:
        assert f'id="t-still_fastest_{task}"' in html and f"<h3>Still the fastest? {task}</h3>" in html
    assert "Verdict: sf_adamw + warmup is faster than adamw + one_cycle" in html
    assert html.index('id="still-fastest"') < html.index('id="t-epochs_to_target"')
    md = (page.parent / "still_fastest_digits_wrn.md").read_text()
    assert "Verdict: adamw + one_cycle is still the fastest (median 2 vs lion + one_cycle 6;" in md
    assert "| adamw + one_cycle | 3 (3 reached) | 2 | [2] range, 75% coverage | 2, 2, 2 | none | no | 1 ★ fastest |" in md


def test_a_tuned_cell_says_so(tmp_path):
    write_tuned_cell(tmp_path, SUITE, "adamw", "one_cycle", [2, 2], {"lr": 0.01, "weight_decay": 0.1})
    write_tuned_cell(tmp_path, SUITE, "lion", "one_cycle", [4, 4], None)
    frame = modern_tables(analyse(load_suite(SUITE, tmp_path)))[0].frame
    assert frame["tuned"].to_dict() == {"adamw + one_cycle": "yes", "lion + one_cycle": "no"}


def test_absent_on_a_suite_with_only_the_blogs_pairs(tmp_path):
    write_suite(tmp_path)  # sgd + reference, adamw + one_cycle: one modern pair only
    assert modern_tables(analyse(load_suite("mini", tmp_path))) == []
    page = report.build("mini", str(tmp_path))
    assert 'id="still-fastest"' not in page.read_text()
    assert not list(page.parent.glob("still_fastest_*"))
