"""Evaluation: 3D Dice on whole volumes, bootstrap error bars and annotation cost."""

from __future__ import annotations

# dice first: segmentation's validation engine imports it while this package may
# still be initialising (evaluation.volumes needs segmentation.inference).
from .dice import CONVENTIONS, mean_over_classes, volume_dice
from .bootstrap import bootstrap_error, bootstrap_means
from .repeats import Interval, mean_interval, paired_difference
from .cost import LABEL_KINDS, annotation_cost, cumulative_costs, volume_cost
from .volumes import VolumeEvaluation, evaluate_volumes, write_dice_csv

__all__ = [
    "CONVENTIONS",
    "Interval",
    "LABEL_KINDS",
    "VolumeEvaluation",
    "annotation_cost",
    "bootstrap_error",
    "bootstrap_means",
    "cumulative_costs",
    "evaluate_volumes",
    "mean_interval",
    "mean_over_classes",
    "paired_difference",
    "volume_cost",
    "volume_dice",
    "write_dice_csv",
]
