"""Names that become path parts (suite, task, optimizer, schedule, recipe) follow one rule
(results/records.py name_problem) and are refused with one line before anything is read or written."""
from __future__ import annotations

import pytest

from report.__main__ import main
from results.records import name_problem
from test_report_fixtures import write_suite


@pytest.mark.parametrize("name", ["../../victim", "a/b", ".hidden", "", "x\\y", "..", "bad name"])
def test_a_name_that_is_not_a_single_plain_path_part_is_refused(name):
    assert name_problem("suite", name) is not None


@pytest.mark.parametrize("name", ["mini", "modern_mini", "blog-rehearsal", "cifar10_wrn22", "v1.2"])
def test_ordinary_names_pass(name):
    assert name_problem("suite", name) is None


@pytest.mark.parametrize("argv", [["suite=../../victim"], ["export", "tensorboard", "suite=../victim"],
                                  ["baseline", "suite=a/b", "out=x.json"]])
def test_the_report_refuses_a_suite_outside_the_results_dir_and_writes_nothing(tmp_path, capsys, argv):
    results = write_suite(tmp_path / "R", "mini")
    (tmp_path / "victim" / "runs").mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main([*argv, f"results_dir={results}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: suite ") and "cannot name a directory" in err[0]
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    import pandas as pd

    from report.tables import Table, exports

    frame = pd.DataFrame({"note": ['=HYPERLINK("http://x","y")', "-0.93", "+cmd", "@SUM(A1)", "plain"]},
                         index=["=1+1", "b", "c", "d", "e"])
    frame.index.name = "id"
    text = exports([Table("t", "T", "", frame)])["t.csv"]
    assert "'=HYPERLINK" in text and "'=1+1" in text and "'+cmd" in text and "'@SUM" in text
    assert "\nb,-0.93\n" in text and text.startswith("id,note\n")
