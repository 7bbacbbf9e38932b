"""The report: run records in, one self-contained HTML page (plus CSV / Markdown tables) out.

Reads records only, through `results.records` and `results.targets`; never imports torch (a test holds
it to that), so it builds on any machine. Entry points: `build()` and `python -m report`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from results.errors import UserError
from results.layout import Layout
from results.records import write_text_atomic

__all__ = ["ReportError", "build", "not_writable"]

OUT_HINT = "make it writable, or give out_dir=DIR (a writable directory)"


class ReportError(UserError):
    """A report that cannot be written as asked; its text is one line for the user (the CLI exits 2)."""


def not_writable(path: Path, exc: OSError, hint: str) -> ReportError:
    """`<path> is not writable (<reason>); <hint>`, naming the path that failed when it is another."""
    reason = exc.strerror or str(exc)
    failed = exc.filename2 or exc.filename  # a rename names its target second (the temporary first)
    if failed and Path(failed) != Path(path):
        reason += f": {failed}"
    return ReportError(f"{path} is not writable ({reason}); {hint}")


def _writable_dir(out: Path) -> None:
    """Create `out` and prove a file can be made in it, before the (slow) analysis and any write: a
    read-only results dir then fails at once and leaves the old report as it was."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise not_writable(out, exc, OUT_HINT) from None


def build(suite: str, results_dir: str = "results", out_dir: str | None = None) -> Path:
    """Write `<results_dir>/reports/<suite>/index.html` (or into `out_dir`) with every table as CSV and
    Markdown beside it; return the page's path. Corrupt or unfinished records are listed, not counted.
    Raises ReportError when the output directory is not writable."""
    # Imported here, not on top, to keep pandas, matplotlib and jinja2 off paths that need none of them:
    # every report module's import runs this file first, and the CLI's check and baseline draw nothing.
    from .analysis import analyse
    from .html import PAGE, render
    from .load import load_suite
    from .plots import all_figures
    from .tables import all_tables, exports

    out = Path(out_dir) if out_dir else Layout.at(results_dir).reports(suite)
    _writable_dir(out)
    analysis = analyse(load_suite(suite, results_dir))
    tables = all_tables(analysis, out)
    # Everything is rendered before the first write (a failing table or figure writes nothing), and the
    # page is written last, so a new page never stands beside tables it lacks.
    files = {**exports(tables), PAGE: render(analysis, tables, all_figures(analysis))}
    _write_all(out, files)
    return out / PAGE


def _write_all(out: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        try:
            write_text_atomic(out / name, text)  # each file is whole: old or new, never a part
        except OSError as exc:
            raise not_writable(out, exc, OUT_HINT) from None
