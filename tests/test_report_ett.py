"""Epochs-to-target rules of the report: per seed, censoring-aware medians, speed-ups, formatting."""
from __future__ import annotations

import itertools
from collections import Counter

import pytest

from report.bootstrap import distribution, resample_weight
from report.ett import (SeedETT, censored_median, fmt_cell, fmt_speed_up, km_median, median_ci, seed_ett,
                        speed_up, summarise_cell)
from results.targets import Target, seed_epochs_to_target


def free(ett, epochs=8, metrics=None, status="completed"):
    return {"budget_free": True, "epochs": epochs, "epochs_done": epochs, "max_epochs": 8, "status": status,
            "epochs_to_target": ett, "metrics": metrics or []}


def probe(budget, met, final=None, status="completed"):
    rows = [{"epoch": budget, "test_acc": final}] if final is not None else []
    return {"budget_free": False, "epochs": budget, "max_epochs": 8, "status": status,
            "target_met_at_end": met, "metrics": rows}


def s(value, censored=False, budget=8):
    return SeedETT(value, censored, 1, budget)


# --- per seed -------------------------------------------------------------------------------------

def test_budget_free_seed_uses_the_recorded_first_epoch():
    assert seed_ett([free(5)]) == SeedETT(5, False, 1, 8)


def test_budget_free_miss_is_censored_at_the_task_max_budget():
    assert seed_ett([free(None, epochs=6)]) == SeedETT(8, True, 1, 8)


def test_budget_free_seed_reads_its_longest_run():
    assert seed_ett([free(3, epochs=4), free(5, epochs=8)]).value == 5


def test_one_cycle_seed_is_the_smallest_budget_met_at_its_end():
    runs = [probe(8, True), probe(2, False), probe(4, True)]  # order on disk is arbitrary
    result = seed_ett(runs)
    assert (result.value, result.censored, result.probes, result.non_monotone) == (4, False, 3, False)


def test_one_cycle_seed_with_no_hit_is_censored_at_the_task_max_budget():
    assert seed_ett([probe(2, False), probe(5, False)]) == SeedETT(8, True, 2, 8)


def test_one_cycle_non_monotone_probes_are_flagged_not_hidden():
    result = seed_ett([probe(2, True), probe(4, False), probe(8, True)])
    assert result.value == 2 and result.non_monotone


def test_diverged_runs_are_misses():
    assert seed_ett([probe(2, False, status="diverged")]) == SeedETT(8, True, 1, 8)
    assert seed_ett([free(None, status="diverged")]) == SeedETT(8, True, 1, 8)
    assert seed_ett([probe(2, False, status="diverged"), probe(4, True)]).value == 4


def test_agrees_with_the_shared_definition():
    runs = [probe(2, False), probe(4, True), probe(8, True)]
    shared = seed_epochs_to_target(runs)
    assert (seed_ett(runs).value, seed_ett(runs).probes) == (shared.epochs, shared.probes)


def test_moved_target_recomputes_budget_free_from_metrics():
    rows = [{"epoch": e, "test_acc": a} for e, a in enumerate([0.5, 0.8, 0.9, 0.95], start=1)]
    run = free(3, epochs=4, metrics=rows)
    assert seed_ett([run], Target("test_acc", 0.75)).value == 2
    assert seed_ett([run], Target("test_acc", 0.9)).value == 3  # the recorded target: the recorded answer
    assert seed_ett([run], Target("test_acc", 0.99)) == SeedETT(8, True, 1, 8)


def test_moved_target_recomputes_probes_from_final_metric():
    runs = [probe(2, False, final=0.85), probe(4, True, final=0.93), probe(8, True, final=0.97)]
    assert seed_ett(runs, Target("test_acc", 0.8)).value == 2
    assert seed_ett(runs, Target("test_acc", 0.95)).value == 8
    assert seed_ett(runs, Target("test_acc", 0.99)).censored


def test_no_runs_is_an_error():
    with pytest.raises(ValueError):
        seed_ett([])


# --- censoring-aware median -----------------------------------------------------------------------

def test_km_median_without_censoring_is_the_ordinary_median():
    assert km_median([4, 2, 3], [False] * 3) == 3
    assert km_median([2, 3, 4, 5], [False] * 4) == 3.5  # the midpoint, not the lower middle value


def test_km_median_is_undefined_when_half_or_more_missed_before_it():
    assert km_median([2, 8, 8], [False, True, True]) is None
    assert km_median([2, 3, 8], [False, False, True]) == 3


def test_km_median_differs_from_dropping_misses():
    # Dropping the two misses would give median 2.5 (of [2, 3]) and 2 (of [2]): optimistic. The curve
    # sits at 0.5 from 3 to the last time observed, 8: its midpoint (R survival's convention).
    assert km_median([2, 3, 8, 8], [False, False, True, True]) == 5.5
    assert km_median([2, 8, 8], [False, True, True]) is None
    # A seed censored early (a short run that missed) leaves the risk set rather than counting as a hit.
    assert km_median([2, 4, 5, 6], [False, True, False, False]) == 5
    assert km_median([2, 4, 5, 6], [False, False, False, False]) == 4.5


def test_cell_summary_and_its_format():
    summary = summarise_cell([s(2), s(3), s(8, censored=True)])
    assert (summary.median, summary.low, summary.high, summary.reached, summary.seeds) == (3, 2, 8, 2, 3)
    assert fmt_cell(summary) == "3 [2–>8] 2/3"
    assert fmt_cell(summarise_cell([s(8, True), s(8, True), s(2)])) == "> 8 [2–>8] 1/3"
    assert fmt_cell(summarise_cell([s(8, True)])) == "> 8 [>8] 0/1"
    assert fmt_cell(summarise_cell([s(5), s(5)])) == "5 [5] 2/2"


# --- speed-up ---------------------------------------------------------------------------------------

def test_speed_up_ratio_of_medians_with_a_ci_around_it():
    result = speed_up([s(2), s(2), s(3)], [s(6), s(6), s(7)])
    assert result.ratio == pytest.approx(3.0)
    assert result.bound == "" and 1 < result.low <= result.ratio <= result.high
    assert result == speed_up([s(2), s(2), s(3)], [s(6), s(6), s(7)])  # exact: the same every time
    assert fmt_speed_up(result).startswith("3.00× [") and fmt_speed_up(result).endswith("(3 vs 3 seeds)")


def test_censored_baseline_makes_the_speed_up_a_lower_bound():
    result = speed_up([s(2), s(2)], [s(8, True), s(8, True)])
    assert result.bound == ">=" and result.ratio == pytest.approx(4.0)
    assert fmt_speed_up(result).startswith("≥ 4.00×")


def test_censored_cell_makes_the_speed_up_an_upper_bound_and_both_censored_none():
    assert speed_up([s(8, True)] * 2, [s(4), s(4)]).bound == "<="
    assert speed_up([s(8, True)] * 2, [s(8, True)] * 2).ratio is None
    assert fmt_speed_up(speed_up([s(8, True)], [s(8, True)])) == "—"


def test_median_ci_brackets_the_values_and_says_its_coverage():
    ci = median_ci([s(2), s(3), s(4)])
    assert (ci.low, ci.high) == (2, 4) and ci.coverage == 0.75


# --- the exact bootstrap ---------------------------------------------------------------------------

def brute_force(items, statistic):
    """Every ordered resample (n^n of them), each with probability n^-n: the definition."""
    n, out = len(items), {}
    for picks in itertools.product(range(n), repeat=n):
        value = statistic([items[i] for i in picks])
        out[value] = out.get(value, 0.0) + n ** -n
    return out


def test_multiset_weights_sum_to_one():
    for n in range(1, 7):
        total = sum(resample_weight(list(Counter(c).values()), n)
                    for c in itertools.combinations_with_replacement(range(n), n))
        assert total == pytest.approx(1.0)


@pytest.mark.parametrize("seeds", [[s(2), s(4)], [s(2), s(3), s(8, True)], [s(5), s(6), s(6), s(9)]])
def test_enumerated_distribution_equals_the_brute_force_one(seeds):
    dist = distribution(seeds, censored_median)
    assert dist.exact
    expected = brute_force(seeds, censored_median)
    assert dist.probabilities.keys() == expected.keys()
    for value, prob in expected.items():
        assert dist.probabilities[value] == pytest.approx(prob)


def test_two_seeds_have_three_resamples():
    # {2,2}: 1/4, {2,4}: 1/2 (KM median: the midpoint, 3), {4,4}: 1/4
    assert distribution([s(2), s(4)], censored_median).probabilities == pytest.approx(
        {2.0: 0.25, 3.0: 0.5, 4.0: 0.25})


def test_speed_up_interval_is_the_exact_percentile_interval():
    cell, base = [s(2), s(3), s(3)], [s(5), s(6), s(9)]
    weights = {}  # ratio -> probability, from the 27 x 27 ordered resamples
    for b, pb in brute_force(base, censored_median).items():
        for c, pc in brute_force(cell, censored_median).items():
            weights[b / c] = weights.get(b / c, 0.0) + pb * pc

    def quantile(q):  # the smallest ratio whose cumulative probability reaches q
        acc = 0.0
        for ratio in sorted(weights):
            acc += weights[ratio]
            if acc >= q - 1e-12:
                return ratio

    result = speed_up(cell, base)
    assert (result.low, result.high) == (quantile(0.025), quantile(0.975))
    assert result.low < result.ratio < result.high and result.seeds == (3, 3) and result.exact


def test_one_seed_gives_no_interval_and_says_so():
    result = speed_up([s(2)], [s(6), s(6), s(7)])
    assert result.ratio == pytest.approx(3.0) and result.low is None and result.high is None
    assert fmt_speed_up(result) == "3.00× (1 vs 3 seeds: no interval)"
    assert median_ci([s(2)]) is None


def test_many_seeds_fall_back_to_sampling_and_say_so():
    result = speed_up([s(2)] * 6 + [s(3)] * 6, [s(6)] * 12)
    assert not result.exact and fmt_speed_up(result).endswith("95% bootstrap, sampled] (12 vs 12 seeds)")
