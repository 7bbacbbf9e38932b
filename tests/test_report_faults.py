"""Faults of the report (project issue 12): an output it cannot write, a results dir or a suite without
runs (one `error:` line, exit 2, nothing written), and config strings that would break or inject into
its Markdown exports."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import report
from report.tables import md_escape, to_markdown
from test_report_fixtures import write_run, write_suite, write_trial

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
OUT_HINT = "; make it writable, or give out_dir=DIR (a writable directory)"
# A line break in a figure's legend (the records below carry one) has no glyph: harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "report", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's answer to a fault: exit 2 and exactly one `error: ...` line, never a traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (temporaries included) with its bytes: what a failed build must not change."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- an output the report cannot write ----------------------------------------------------------------

@pytest.mark.skipif(IS_ROOT, reason="root writes through `chmod a-w`: a read-only dir cannot be made as root "
                                    "(test_output_path_blocked_by_a_file covers the same path as root)")
@pytest.mark.parametrize("built_before", [False, True], ids=["no-report-yet", "old-report"])
def test_read_only_results_dir_is_one_error_line_and_writes_nothing(tmp_path, built_before):
    write_suite(tmp_path)
    if built_before:
        report.build("mini", str(tmp_path))
    before = snapshot(tmp_path)
    subprocess.run(["chmod", "-R", "a-w", str(tmp_path)], check=True)
    try:
        line = one_error_line(cli("suite=mini", f"results_dir={tmp_path}"))
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], check=True)  # so pytest can remove it
    assert line.startswith(f"error: {tmp_path / 'reports' / 'mini'} is not writable (Permission denied")
    assert line.endswith(OUT_HINT)
    assert snapshot(tmp_path) == before  # the old report (if any) as it was, no temporary left


def test_output_path_blocked_by_a_file_is_one_error_line(tmp_path):
    """The same failure as a read-only dir, made in a way root cannot write through: `reports` a file."""
    write_suite(tmp_path)
    (tmp_path / "reports").write_text("a file where the report dir goes\n")
    before = snapshot(tmp_path)
    line = one_error_line(cli("suite=mini", f"results_dir={tmp_path}"))
    assert line == f"error: {tmp_path / 'reports' / 'mini'} is not writable (Not a directory){OUT_HINT}"
    assert snapshot(tmp_path) == before


def test_a_file_that_cannot_be_replaced_leaves_no_temporary_and_no_page(tmp_path):
    """A write failing after the check (a directory where claims.md goes): one line naming it, every file
    whole, no temporary left, and no index.html (written last, so a page never lacks its tables)."""
    write_suite(tmp_path)
    out = tmp_path / "reports" / "mini"
    (out / "claims.md").mkdir(parents=True)
    line = one_error_line(cli("suite=mini", f"results_dir={tmp_path}"))
    assert line.startswith(f"error: {out} is not writable (Is a directory: {out / 'claims.md'})")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not (out / "index.html").exists()


def test_baseline_out_not_writable_is_one_error_line(tmp_path):
    write_suite(tmp_path, "nightly")
    (tmp_path / "blocked").write_text("a file, not a directory\n")
    line = one_error_line(cli("baseline", "suite=nightly", f"out={tmp_path / 'blocked' / 'b.json'}",
                              f"results_dir={tmp_path}"))
    assert line.startswith(f"error: {tmp_path / 'blocked'} is not writable (")
    assert line.endswith("; give out=PATH in a writable directory")


# --- nothing to report ---------------------------------------------------------------------------------

def test_missing_results_dir_is_one_error_line(tmp_path):
    missing = tmp_path / "nowhere"
    line = one_error_line(cli("suite=mini", f"results_dir={missing}"))
    assert line == (f"error: results dir {missing} does not exist; give results_dir=DIR, the directory the "
                    "runs wrote their records to")
    assert not missing.exists()  # not created by the report either


@pytest.mark.parametrize("command", [["suite=nope"], ["baseline", "suite=nope", "out=OUT"],
                                     ["check", "suite=nope", "baseline=report/baselines/nightly.json"]],
                         ids=["build", "baseline", "check"])
def test_suite_without_runs_is_one_error_line(tmp_path, command):
    write_suite(tmp_path, "mini")
    args = [a.replace("OUT", str(tmp_path / "b.json")) for a in command]
    line = one_error_line(cli(*args, f"results_dir={tmp_path}"))
    assert line == (f"error: suite 'nope' has no runs under {tmp_path / 'runs' / 'nope'}; run it first "
                    "(python -m runners.grid suite=nope) or pick a suite with runs there: mini")
    assert not (tmp_path / "reports").exists() and not (tmp_path / "b.json").exists()


# --- Markdown exports ----------------------------------------------------------------------------------

EVIL_OPTIMIZER = "<script>alert(1)</script>"
EVIL_TASK = "task|one\nsecond <b>line</b>"
EVIL_SCHEDULE = "sched\\|ule\r\n`code` *bold*"
EVIL_RECIPE = "[click](javascript:alert(1)) _em_ & <img src=x onerror=alert(1)>"


def bare(text: str, line: str) -> int:
    """How often `text` occurs unescaped in `line`: behind an even run of backslashes (`\\|` is text,
    `\\\\|` a cell border, as GFM splits a row)."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*" + re.escape(text), line))


def bare_pipes(line: str) -> int:
    return bare("|", line)


@pytest.fixture(scope="module")
def evil_exports(tmp_path_factory) -> dict[str, str]:
    """A report from records whose optimizer, task, schedule, recipe and error carry markup, pipes and
    line breaks; every Markdown file it writes, by name."""
    results = tmp_path_factory.mktemp("results")
    for seed in range(2):
        write_run(results, "evil", f"grid-s{seed}", task=EVIL_TASK, optimizer=EVIL_OPTIMIZER,
                  schedule=EVIL_SCHEDULE, seed=seed, reach_at=3)
        write_run(results, "evil", f"recipe-s{seed}", task=EVIL_TASK, optimizer=EVIL_OPTIMIZER,
                  schedule=EVIL_SCHEDULE, seed=seed, reach_at=3, recipe=EVIL_RECIPE)
    write_run(results, "evil", "crashed", status="failed", seed=5, error=f"boom | {EVIL_OPTIMIZER}\nline 2")
    # Tuning records with the same strings (issue 13): a broken trial and an outcome, so every tuning
    # export has rows to check.
    write_trial(results, "evil", EVIL_TASK, EVIL_OPTIMIZER, EVIL_SCHEDULE, 0, lr=0.1, weight_decay=0.01,
                score=None, status="failed", error=f"trial {EVIL_OPTIMIZER}", label="evil-trial")
    done = write_trial(results, "evil", EVIL_TASK, EVIL_OPTIMIZER, EVIL_SCHEDULE, 1, lr=0.1, weight_decay=0.01,
                       score=-0.9, label="evil-trial-done")
    outcome = {"task": EVIL_TASK, "optimizer": EVIL_OPTIMIZER, "schedule": EVIL_SCHEDULE, "lr": 0.1,
               "weight_decay": 0.01, "trials": 1, "pruned": 0, "sampler": EVIL_RECIPE, "storage": EVIL_RECIPE,
               "runs": [done.name]}  # an outcome counts only with the trial runs it names
    (results / "grids" / "evil" / "tuning").mkdir(parents=True)
    (results / "grids" / "evil" / "tuning" / "evil.json").write_text(json.dumps(outcome))
    page = report.build("evil", str(results))
    return {p.name: p.read_text() for p in sorted(page.parent.glob("*.md"))}


def test_markdown_exports_carry_no_markup_from_records(evil_exports):
    assert len(evil_exports) == 13  # 9 + the tuning ones: tuned_claims, fastest_tuned, tuning, excluded_tuning
    for name, text in evil_exports.items():
        assert "<script" not in text.lower() and "<img" not in text.lower(), name
        rows = [line for line in re.split(r"\r\n|\r|\n", text) if line.startswith("|")]
        assert not [r for r in rows if "<" in r or bare("](", r) or bare("][", r)], name  # no tag, no link
    seeds = evil_exports["seeds.md"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in seeds and "sched\\\\\\|ule \\`code\\` \\*bold\\*" in seeds
    assert "\\[click\\](javascript:alert(1)) \\_em\\_ &amp; &lt;img" in evil_exports["published_runs.md"]
    assert "boom \\| &lt;script&gt;alert(1)&lt;/script&gt; line 2" in evil_exports["excluded_runs.md"]


def test_markdown_table_rows_are_never_broken(evil_exports):
    """Each file: a title, a note, then one table to its end; every row has its header's cell borders."""
    for name, text in evil_exports.items():
        lines = re.split(r"\r\n|\r|\n", text.rstrip("\n"))
        start = next(i for i, line in enumerate(lines) if line.startswith("| "))
        header, separator, *rows = lines[start:]
        assert separator == "|" + "---|" * (bare_pipes(header) - 1), name
        assert rows, name
        for row in rows:
            assert row.startswith("| ") and row.endswith(" |"), (name, row)
            assert bare_pipes(row) == bare_pipes(header), (name, row)


@pytest.mark.parametrize("value, expected", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("a|b", "a\\|b"),
    ("a\\|b", "a\\\\\\|b"),  # the backslash escaped too: the pipe stays text
    ("one\ntwo\r\nthree\rfour\u2028five", "one two three four five"),
    ("`x` *y* _z_ a & b", "\\`x\\` \\*y\\* \\_z\\_ a &amp; b"),
    ("[x](javascript:alert(1)) [y][z]", "\\[x\\](javascript:alert(1)) \\[y\\]\\[z\\]"),
    ("digits_resnet", "digits_resnet"),  # intraword `_` is never emphasis
    ("6 [6–7] 3/3", "6 [6–7] 3/3"),  # brackets with no `](` or `][`: no link can form
    (3, "3"), (-0.5, "-0.5"), (1e-05, "1e-05"),
])
def test_md_escape(value, expected):
    assert md_escape(value) == expected


def test_to_markdown_escapes_header_labels_and_values():
    frame = pd.DataFrame({"col|<b>": ["v|<i>\nx"]}, index=["row|<u>"])
    frame.index.name = "name|<s>"
    header, separator, row = to_markdown(frame).splitlines()
    assert header == "| name\\|&lt;s&gt; | col\\|&lt;b&gt; |" and separator == "|---|---|"
    assert row == "| row\\|&lt;u&gt; | v\\|&lt;i&gt; x |"
