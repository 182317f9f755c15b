"""Tables and plots of an AL run (paper Table 1, Fig. 2, 3 and 4)."""

from __future__ import annotations

from .plots import plot_curves, plot_embeddings, plot_overlay, plot_picks
from .study import write_study_report
from .tables import format_results_table, write_results_csv, write_results_md

__all__ = [
    "format_results_table",
    "plot_curves",
    "plot_embeddings",
    "plot_overlay",
    "plot_picks",
    "write_results_csv",
    "write_results_md",
    "write_study_report",
]
