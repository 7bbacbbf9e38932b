"""The report from records made for the purpose: tables, exports, escaping, bad records, no torch."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import report
from report.analysis import analyse
from report.load import load_suite
from test_report_fixtures import fixture_id, write_cell, write_run, write_suite

ROOT = Path(__file__).resolve().parents[1]
EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build shared by the tests below (matplotlib is slow): a good suite plus every kind of bad run."""
    results = write_suite(tmp_path_factory.mktemp("results"))
    runs = results / "runs" / "mini"
    write_run(results, "mini", "still-running", status="running", seed=7)
    write_run(results, "mini", "crashed", status="failed", seed=8, error="RuntimeError: boom")
    bad_json = write_run(results, "mini", "bad-json", seed=9)
    (bad_json / "status.json").write_text("{not json")
    gap = write_run(results, "mini", "epoch-gap", seed=10)
    lines = (gap / "metrics.jsonl").read_text().splitlines()
    (gap / "metrics.jsonl").write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # epoch 3 missing
    write_run(results, "mini", "evil", task=EVIL, optimizer=EVIL, seed=0, reach_at=3)
    write_run(results, "mini", "old-target", seed=11, reach_at=3,
              target={"metric": "test_acc", "value": 0.5, "mode": "max"})
    (runs / "not-a-run").mkdir()
    page = report.build("mini", str(results), None)
    return results, page


def test_build_writes_the_page_where_the_docs_say(built):
    results, page = built
    assert page == results / "reports" / "mini" / "index.html"
    html = page.read_text()
    assert "<h1>" in html and "Epochs to target" in html and "Claims" in html


def test_every_table_has_csv_and_markdown(built):
    _, page = built
    for name in ("claims", "epochs_to_target", "speed_up", "final_metric", "best_metric", "probes", "seeds",
                 "excluded_runs"):
        assert (page.parent / f"{name}.csv").stat().st_size > 0
        assert (page.parent / f"{name}.md").read_text().count("|") > 4
    with open(page.parent / "epochs_to_target.csv") as fh:
        rows = {r["task"]: r for r in csv.DictReader(fh)}
    assert rows["digits_resnet"]["sgd · reference"] == "6 [6–7] 3/3"
    assert rows["digits_resnet"]["adamw · one_cycle"] == "2 [2–4] 3/3"


def test_twin_speed_up_is_tabled_but_never_judged_as_published(built):
    _, page = built
    speed = (page.parent / "speed_up.md").read_text()
    assert "3.00× [" in speed and "(3 vs 3 seeds)" in speed  # every interval shows its seed counts
    claims = (page.parent / "claims.md").read_text()
    cifar = next(line for line in claims.splitlines() if line.startswith("| cifar10_wrn22 "))
    assert "measured on digits_resnet, a mini twin of claim cifar10_wrn22" in cifar
    assert "| no published recipe |" in cifar and "reproduced" not in cifar
    cars = next(line for line in claims.splitlines() if line.startswith("| cars_resnet50/cars_blog"))
    assert "| not run |" in cars  # neither the task nor its twin ran


def test_bad_records_are_listed_and_never_counted(built):
    results, page = built
    records = load_suite("mini", results)
    kinds = {p.path.name: p.kind for p in records.problems}
    expected = {"still-running": "incomplete", "crashed": "failed", "bad-json": "corrupt",
                "epoch-gap": "corrupt", "old-target": "inconsistent"}
    assert kinds == {**{fixture_id(k): v for k, v in expected.items()}, "not-a-run": "corrupt"}
    assert not set(kinds) & set(records.runs["run_id"])
    excluded = (page.parent / "excluded_runs.csv").read_text()
    assert "RuntimeError: boom" in excluded and "epoch 4, expected 3" in excluded
    assert "not-a-run" in excluded  # a directory without status.json is listed, not skipped silently


def test_config_strings_are_escaped(built):
    _, page = built
    html = page.read_text()
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<script" not in html.lower()  # the page has no script of its own either


def test_cells_link_to_their_run_directories(built):
    _, page = built
    html = page.read_text()
    href = f"../../runs/mini/{fixture_id('digits-sgd-reference-s0-b8')}/"
    assert f'href="{href}"' in html
    assert (page.parent / href / "status.json").exists()


def test_page_is_self_contained(built):
    _, page = built
    html = page.read_text()
    assert html.count('src="data:image/svg+xml;base64,') >= 4
    assert "http://" not in html and "https://" not in html and "<link" not in html


def test_header_shows_environment_and_counts(built):
    _, page = built
    html = page.read_text()
    assert "abc123" in html and "2.14.1" in html and "CPU" in html
    assert "counted: 13" in html  # 3 reference seeds + 3 seeds x 3 probes + the evil run


def test_analysis_counts_probes_per_cell(built):
    results, _ = built
    cell = analyse(load_suite("mini", results)).cell("digits_resnet", "adamw", "one_cycle")
    assert (cell.summary.probes, cell.summary.seeds) == (9, 3)


def test_lower_is_better_twin_gets_its_verdict_and_plots(tmp_path):
    """A perplexity task (mode min) — the WikiText-2 claims' twins — through the whole build."""
    for optimizer, schedule, reach in (("sgd", "reference", [6, 7]), ("adamw", "one_cycle", [2, 2]),
                                       ("adam_l2", "one_cycle", [4, None])):
        write_cell(tmp_path, "mini", optimizer, schedule, reach, task="synth_awd_lstm", perplexity=True)
    page = report.build("mini", str(tmp_path))
    with open(page.parent / "epochs_to_target.csv") as fh:
        row = next(csv.DictReader(fh))
    # KM medians: the midpoint where the curve sits at one half (R survival's convention)
    assert (row["sgd · reference"], row["adam_l2 · one_cycle"]) == ("6.5 [6–7] 2/2", "6 [4–>8] 1/2")
    claims = (page.parent / "claims.md").read_text()
    awd = next(line for line in claims.splitlines() if line.startswith("| awd_lstm_wt2"))
    assert "mini twin of claim awd_lstm_wt2" in awd and "| no published recipe |" in awd
    assert page.read_text().count("data:image/svg+xml;base64,") == 4
    best = (page.parent / "best_metric.md").read_text()
    assert "synth_awd_lstm (val_ppl)" in best and "108" in best  # 200 - 100 x 0.92


def test_a_figure_that_cannot_be_drawn_costs_that_figure_not_the_page(tmp_path):
    write_suite(tmp_path)
    run = tmp_path / "runs" / "mini" / fixture_id("digits-sgd-reference-s0-b8")  # the run the LR plot reads
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row["lr_trace"] = [["not", "a", "number"]]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    html = report.build("mini", str(tmp_path)).read_text()
    assert "LR and momentum applied: could not be drawn (ValueError" in html
    assert html.count("data:image/svg+xml;base64,") == 3


def test_empty_suite_builds_a_page_saying_so(tmp_path):
    page = report.build("nothing", str(tmp_path))
    html = page.read_text()
    assert 'id="no-runs"' in html and "not run" in html


def test_import_and_build_never_load_torch(tmp_path):
    write_suite(tmp_path)
    code = ("import sys, report; report.build('mini', sys.argv[1]); "
            "import report.__main__, report.gate, report.browser; "
            "loaded = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'runners', 'suites'))]; "
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_builds_and_rejects_bad_arguments(tmp_path):
    write_suite(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "report", "suite=mini", f"results_dir={tmp_path}",
                         "screenshot=false"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith(f"report={tmp_path}/reports/mini/index.html")
    bad = subprocess.run([sys.executable, "-m", "report", "suite=mini", "colour=red"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "colour" in bad.stderr


def test_claims_file_names_the_four_claims_and_their_twins():
    from report.claims import load_claims

    claims = {c["id"]: c for c in load_claims()["claims"]}
    assert set(claims) == {"cifar10_wrn22", "cars_resnet50", "awd_lstm_wt2", "qrnn_wt2"}
    assert claims["cars_resnet50"]["twins"][0] == "digits_finetune"
    assert claims["qrnn_wt2"]["twins"] == ["synth_qrnn"]
    assert json.dumps(claims)  # plain data only
