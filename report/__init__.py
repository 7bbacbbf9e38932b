"""The report: run records in, one self-contained HTML page (plus CSV / Markdown tables) out.

Reads records only, through `results.records` and `results.targets`; never imports torch (a test holds
it to that), so it builds on any machine. Entry points: `build()` and `python -m report`.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["build"]


def build(suite: str, results_dir: str = "results", out_dir: str | None = None) -> Path:
    """Write `<results_dir>/reports/<suite>/index.html` (or into `out_dir`) with every table as CSV and
    Markdown beside it; return the page's path. Corrupt or unfinished records are listed, not counted."""
    # Imported here so that `import report` stays cheap (no pandas / matplotlib until a build).
    from .analysis import analyse
    from .html import render, write_page
    from .load import load_suite
    from .plots import all_figures
    from .tables import all_tables, export

    out = Path(out_dir) if out_dir else Path(results_dir) / "reports" / suite
    out.mkdir(parents=True, exist_ok=True)
    analysis = analyse(load_suite(suite, results_dir))
    tables = all_tables(analysis, out)
    export(tables, out)
    return write_page(render(analysis, tables, all_figures(analysis)), out)
