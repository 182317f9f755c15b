"""Tables and plots of an AL run (paper Table 1, Fig. 2, 3 and 4)."""

from __future__ import annotations

from .plots import pca_2d, plot_curves, plot_embeddings, plot_overlay, plot_picks
from .study import StudyCell, format_study_tables, plot_study, summarize_study, write_study_report
from .tables import RESULT_COLUMNS, format_results_table, write_results_csv, write_results_md

__all__ = [
    "RESULT_COLUMNS",
    "StudyCell",
    "format_results_table",
    "format_study_tables",
    "pca_2d",
    "plot_curves",
    "plot_embeddings",
    "plot_overlay",
    "plot_picks",
    "plot_study",
    "summarize_study",
    "write_results_csv",
    "write_results_md",
    "write_study_report",
]
