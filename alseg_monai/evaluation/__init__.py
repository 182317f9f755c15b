"""Evaluation: whole-volume prediction, 3D Dice, bootstrap error bars and annotation cost."""

from __future__ import annotations

from .bootstrap import bootstrap_error
from .cost import annotation_cost
from .dice import volume_dice
from .inference import predict, save_prediction_nifti
from .volumes import evaluate_volumes

__all__ = [
    "annotation_cost",
    "bootstrap_error",
    "evaluate_volumes",
    "predict",
    "save_prediction_nifti",
    "volume_dice",
]
