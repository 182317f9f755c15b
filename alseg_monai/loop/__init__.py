"""The AL loop: budgets, oracles, on-disk state, the experiment and its report."""

from __future__ import annotations

from .budgets import DAVIS_BUDGETS, DEFAULT_BUDGETS, PRETRAINED_BUDGETS, check_budgets, round_sizes
from .config import check_bundle_overrides, check_keys
from .experiment import ActiveLearningExperiment, AnnotationPending, StrategySpec
from .models import load_round_models
from .oracle import HumanOracle, SimulatedOracle
from .report import write_run_report
from .state import RoundPaths, RunPaths, check_settings
from .workflows import evaluate_checkpoint, read_labeled_list, segment_volumes, train_labeled_round

__all__ = [
    "DAVIS_BUDGETS",
    "DEFAULT_BUDGETS",
    "PRETRAINED_BUDGETS",
    "ActiveLearningExperiment",
    "AnnotationPending",
    "HumanOracle",
    "RoundPaths",
    "RunPaths",
    "SimulatedOracle",
    "StrategySpec",
    "check_budgets",
    "check_bundle_overrides",
    "check_keys",
    "check_settings",
    "evaluate_checkpoint",
    "load_round_models",
    "read_labeled_list",
    "round_sizes",
    "segment_volumes",
    "train_labeled_round",
    "write_run_report",
]
