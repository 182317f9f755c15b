"""Selection strategies: which slices to annotate next (paper Sec. 3.2.2 and baselines).

Every strategy answers ``select(context, budget) -> list of slice ids`` given a
:class:`SelectionContext`; built-ins are picked by name with :func:`get_strategy`
(``random``, ``coreset``, ``gcl_coreset``, ``ntxent_coreset``, ``bald``, ``variance_ratio``,
``stochastic_batches``, ``typiclust``, ``probcover``, ``vaal``, ``coregcn``, and ``schedule``, which
switches between them by budget), and a user's own class
plugs in through a bundle ``_target_`` (see :mod:`alseg_monai.selection.registry`).
"""

from __future__ import annotations

from .bald import BALDStrategy
from .base import SelectionContext, Strategy, check_selection
from .coregcn import CoreGCNStrategy
from .coreset import CoresetStrategy
from .gcl_coreset import GCLCoresetStrategy, NTXentCoresetStrategy
from .geometry import feature_geometry
from .inference import bottleneck_features, ensemble_entropy, ensemble_variance_ratio
from .kcenter import kcenter_greedy, kcenter_memory_bytes
from .mc_dropout import mc_dropout_bald
from .outliers import knn_sparseness
from .probcover import ProbCoverStrategy, probcover_select, purity_delta
from .random_sampling import RandomStrategy
from .random_volumes import RandomVolumesStrategy
from .registry import available_strategies, get_strategy, register_strategy
from .schedule import ScheduledStrategy
from .scores import bald_score, entropy_map
from .stochastic_batches import StochasticBatchesStrategy
from .typiclust import TypiClustStrategy
from .vaal import VAALStrategy
from .variance_ratio import VarianceRatioStrategy

__all__ = [
    "BALDStrategy",
    "CoreGCNStrategy",
    "CoresetStrategy",
    "GCLCoresetStrategy",
    "NTXentCoresetStrategy",
    "ProbCoverStrategy",
    "RandomStrategy",
    "RandomVolumesStrategy",
    "ScheduledStrategy",
    "SelectionContext",
    "StochasticBatchesStrategy",
    "Strategy",
    "TypiClustStrategy",
    "VAALStrategy",
    "VarianceRatioStrategy",
    "available_strategies",
    "bald_score",
    "bottleneck_features",
    "check_selection",
    "ensemble_entropy",
    "ensemble_variance_ratio",
    "entropy_map",
    "feature_geometry",
    "get_strategy",
    "kcenter_greedy",
    "kcenter_memory_bytes",
    "knn_sparseness",
    "mc_dropout_bald",
    "probcover_select",
    "purity_delta",
    "register_strategy",
]
