"""One table of the report (`Table`) and the helpers its builders share: report/tables.py and the sections
it gathers (modern.py, tuning_tables.py, rehearsal.py) build on this module, and it on none of them."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Table:
    name: str  # file stem of its CSV / Markdown export
    title: str
    note: str
    frame: pd.DataFrame  # display strings; the index is the row label
    links: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)  # (row, col) -> [(text, href)]
    classes: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, col) -> CSS class
    mark: str = ""  # set on every table of a rehearsal's page (report/rehearsal.py): shown with the table


def column_label(optimizer: str, schedule: str) -> str:
    return f"{optimizer} · {schedule}"


def run_links(cells, out_dir: Path) -> list[tuple[str, str]]:
    return [(p.name, Path(os.path.relpath(p.resolve(), out_dir.resolve())).as_posix() + "/")
            for cell in cells for p in cell.run_paths]
