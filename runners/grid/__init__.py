"""The grid: a suite's cells run as one Hydra multirun (`python -m runners.grid`, `make reproduce`).

cells.py   the suite expanded into its cells (and their record paths)
job.py     one cell's job: its runs or its budget search, and the cell record
plan.py    `plan=true`: the same search walked dry, priced
summary.py the records read back after the launch
"""
