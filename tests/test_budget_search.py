"""Budget search on synthetic monotone functions: exact answers, bounded probes, edge cases."""
import math

import pytest

from runners.budget import ladder, search_budget


def threshold(b_star: int, calls: list):
    def reaches(budget: int) -> bool:
        calls.append(budget)
        return budget >= b_star
    return reaches


@pytest.mark.parametrize("max_budget", [1, 2, 3, 7, 8, 30, 90, 100, 750])
def test_finds_every_threshold_exactly_within_the_probe_bound(max_budget):
    rungs = ladder(max_budget)
    bound = math.ceil(math.log2(max_budget)) + len(rungs)
    for b_star in range(1, max_budget + 1):
        calls = []
        result = search_budget(threshold(b_star, calls), max_budget)
        assert result.budget == b_star
        assert not result.censored
        assert len(result.probes) == len(calls) <= bound
        assert len(set(calls)) == len(calls), "no budget is probed twice"
        assert [p.budget for p in result.probes] == calls


def test_never_hit_is_censored_after_the_ladder_only():
    calls = []
    result = search_budget(threshold(10**9, calls), 30)
    assert result.censored and result.budget is None and result.max_budget == 30
    assert calls == ladder(30) == [1, 2, 4, 8, 16, 30]
    assert all(not p.hit and p.phase == "ladder" for p in result.probes)


def test_always_hit_takes_one_probe():
    calls = []
    result = search_budget(threshold(0, calls), 30)
    assert result.budget == 1 and calls == [1]


def test_ladder_start_and_factor():
    assert ladder(90, start=5, factor=3) == [5, 15, 45, 90]
    assert ladder(4, start=8) == [4]
    assert ladder(10, factor=1.1) == list(range(1, 11))  # integer rungs still strictly increase
    calls = []
    # Budgets below the first rung are never probed: always-hit answers the first rung.
    assert search_budget(threshold(0, calls), 90, start=5).budget == 5 and calls == [5]
    assert search_budget(threshold(17, []), 90, start=5, factor=3).budget == 17


def test_bisection_brackets_last_miss_and_first_hit():
    result = search_budget(threshold(11, []), 30)
    ladder_part = [p for p in result.probes if p.phase == "ladder"]
    assert [(p.budget, p.hit) for p in ladder_part] == [(1, False), (2, False), (4, False), (8, False),
                                                       (16, True)]
    assert all(8 < p.budget < 16 for p in result.probes if p.phase == "bisect")


def test_non_monotone_outcomes_still_end_on_a_hit_above_a_miss():
    outcomes = {1: False, 2: False, 4: True, 3: False, 8: True}
    result = search_budget(lambda b: outcomes[b], 8)
    assert result.budget == 4
    assert (3, False) in [(p.budget, p.hit) for p in result.probes]


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        ladder(0)
    with pytest.raises(ValueError):
        ladder(10, factor=1.0)
