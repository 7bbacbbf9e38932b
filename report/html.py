"""Render the one-file HTML page (jinja2, autoescaped); build() writes it after its CSV / Markdown tables."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from .analysis import Analysis
from .modern import PREFIX as MODERN_PREFIX
from .modern import RULE as MODERN_RULE
from .plots import Figure
from .rehearsal import PROFILE_TABLE, banner, page_mark
from .table import Table

TEMPLATES = Path(__file__).with_name("templates")
PAGE = "index.html"
TUNING_TABLES = ("tuned_claims", "fastest_tuned", "tuning", "excluded_tuning")  # their own section


def environment_summary(analysis: Analysis) -> dict[str, str]:
    """Each environment field over the counted runs: its distinct values, most common first."""
    runs = analysis.records.runs
    fields = {"device": "env_device", "device name": "env_device_name", "torch": "env_torch",
              "CUDA": "env_cuda", "git SHA": "env_git_sha", "host": "env_host"}
    summary = {}
    for label, column in fields.items():
        values = Counter(str(v) for v in runs[column].dropna()) if column in runs else Counter()
        summary[label] = ", ".join(f"{v} ({n})" if len(values) > 1 else v for v, n in values.most_common()) or "—"
    kinds = {str(v).split(":")[0] for v in runs.get("env_device", [])}
    summary["hardware"] = " + ".join(sorted(k.upper() for k in kinds)) or "—"
    return summary


def run_counts(analysis: Analysis) -> dict[str, int]:
    records = analysis.records
    counts = {"run directories": records.total_dirs, "counted": len(records.runs)}
    counts.update({f"counted {k}": int(v) for k, v in records.runs["status"].value_counts().items()})
    counts.update({f"not counted: {k}": v for k, v in Counter(p.kind for p in records.problems).items()})
    tuning = analysis.tuning
    if tuning.trial_dirs:  # a pruned trial is final: counted as pruned, never as a result
        counts["tuning trial dirs"] = tuning.trial_dirs
        counts.update({f"trials {k}": v for k, v in sorted(Counter(t.state for t in tuning.trials).items())})
    counts["tasks"] = len(analysis.tasks)
    every = [*analysis.cells.values(), *analysis.recipes.values()]
    counts["seeds (max per cell)"] = max((c.summary.seeds for c in every), default=0)
    return counts


def _env() -> Environment:
    # Autoescape everything: task names, errors and paths come from configs and records (untrusted text).
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(analysis: Analysis, tables: list[Table], figures: list[Figure], built: dt.datetime | None = None) -> str:
    built = built or dt.datetime.now(dt.timezone.utc)
    by_name = {t.name: t for t in tables}
    modern = [t for t in tables if t.name.startswith(MODERN_PREFIX)]  # "Still the fastest?", its own section
    mark = page_mark(analysis.records)  # the tables carry it already (report/rehearsal.py); title, banner
    return _env().get_template("index.html.j2").render(
        suite=analysis.records.suite, built=built.isoformat(timespec="seconds"),
        mark=mark, banner=banner(analysis.records) if mark else "", profile=by_name.get(PROFILE_TABLE),
        env=environment_summary(analysis), counts=run_counts(analysis),
        claims=by_name["claims"], tuned=[by_name[n] for n in TUNING_TABLES],
        modern=modern, modern_rule=MODERN_RULE,
        tables=[t for t in tables if t.name not in ("claims", "excluded_runs", "seeds", PROFILE_TABLE,
                                                    *TUNING_TABLES) and t not in modern],
        seeds=by_name["seeds"], problems=by_name["excluded_runs"], tasks=analysis.tasks,
        targets=analysis.targets, max_epochs=analysis.max_epochs, figures=figures,
        has_runs=not analysis.records.runs.empty)

