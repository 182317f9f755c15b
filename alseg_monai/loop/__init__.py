"""The AL loop: the experiment composed from the bundle's components, one loop per
(strategy, repeat), oracles, budgets, on-disk state, workflows and the report."""

from __future__ import annotations

from .config import check_bundle_overrides, load_config, load_experiment
from .data import ExperimentData
from .experiment import ActiveLearningExperiment
from .loop import ActiveLearningLoop, Oracle, RoundTraining
from .models import load_round_models, load_state
from .oracle import AnnotationPending, HumanOracle, SimulatedOracle
from .workflows import (
    ResizeToSourced,
    TestDiceSaver,
    inference_datalist,
    load_round_network,
    read_labelled_list,
    round_kind,
)

__all__ = [
    "ActiveLearningExperiment",
    "ActiveLearningLoop",
    "AnnotationPending",
    "ExperimentData",
    "HumanOracle",
    "Oracle",
    "ResizeToSourced",
    "RoundTraining",
    "SimulatedOracle",
    "TestDiceSaver",
    "check_bundle_overrides",
    "inference_datalist",
    "load_config",
    "load_experiment",
    "load_round_models",
    "load_round_network",
    "load_state",
    "read_labelled_list",
    "round_kind",
]
