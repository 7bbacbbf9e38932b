"""matplotlib's pyplot as every figure of the report draws with it (report/plots.py, tuning_plot.py):
the Agg backend and one style, set once on import."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display, ever: the report builds on headless machines
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "onecycle-bench", "font.size": 9, "axes.grid": True,
                     "grid.alpha": 0.3})
