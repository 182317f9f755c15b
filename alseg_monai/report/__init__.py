"""Tables and plots of an AL run (paper Table 1, Fig. 2, 3 and 4)."""

from __future__ import annotations

from .plots import pca_2d, plot_curves, plot_embeddings, plot_overlay
from .tables import RESULT_COLUMNS, format_results_table, write_results_csv, write_results_md

__all__ = [
    "RESULT_COLUMNS",
    "format_results_table",
    "pca_2d",
    "plot_curves",
    "plot_embeddings",
    "plot_overlay",
    "write_results_csv",
    "write_results_md",
]
