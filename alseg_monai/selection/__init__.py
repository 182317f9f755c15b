"""Selection strategies: which slices to annotate next (paper Sec. 3.2.2 and baselines).

Every strategy answers ``select(context, budget) -> list of slice ids`` given a
:class:`SelectionContext`; built-ins are picked by name with :func:`get_strategy`
(``random``, ``coreset``, ``gcl_coreset``, ``ntxent_coreset``, ``bald``, ``variance_ratio``,
``stochastic_batches``, ``typiclust``, ``vaal``, ``coregcn``), and a user's own class
plugs in through a bundle ``_target_`` (see :mod:`alseg_monai.selection.registry`).
"""

from __future__ import annotations

from .bald import BALDStrategy
from .base import SelectionContext, Strategy, check_budget, check_selection, random_rows, top_rows
from .coregcn import (
    CoreGCN,
    CoreGCNStrategy,
    SimilarityGraph,
    coregcn_on_nodes,
    coregcn_select,
    sample_graph_nodes,
    train_gcn,
)
from .coreset import CoresetStrategy
from .gcl_coreset import EMBEDDING_KINDS, GCLCoresetStrategy, NTXentCoresetStrategy, fuse_pixels
from .geometry import FEATURE_GEOMETRIES, FIRST_CENTRES, feature_geometry, kmeanspp_rows, medoid_row
from .inference import (
    bottleneck_features,
    class_probabilities,
    ensemble_entropy,
    ensemble_variance_ratio,
    eval_mode,
    iterate_batches,
    seeded,
    shard_rows,
)
from .kcenter import kcenter_greedy, kcenter_memory_bytes
from .mc_dropout import DROPOUT_LAYERS, mc_dropout_bald, mc_dropout_mode
from .random_sampling import RandomStrategy
from .registry import available_strategies, get_strategy, register_strategy
from .resources import available_memory_bytes, ensure_memory, format_bytes, resolve_device
from .scores import bald_score, entropy_map, entropy_score, variance_ratio_score, vote_ratio_map
from .stochastic_batches import StochasticBatchesStrategy, best_group
from .typiclust import TypiClustStrategy, kmeans_labels, most_typical, typiclust_select
from .vaal import VAAL, VAALDiscriminator, VAALStrategy, discriminator_loss, train_vaal, vaal_scores, vae_loss
from .variance_ratio import VarianceRatioStrategy

__all__ = [
    "BALDStrategy",
    "CoreGCN",
    "CoreGCNStrategy",
    "CoresetStrategy",
    "DROPOUT_LAYERS",
    "EMBEDDING_KINDS",
    "FEATURE_GEOMETRIES",
    "FIRST_CENTRES",
    "GCLCoresetStrategy",
    "NTXentCoresetStrategy",
    "RandomStrategy",
    "SelectionContext",
    "SimilarityGraph",
    "StochasticBatchesStrategy",
    "Strategy",
    "TypiClustStrategy",
    "VAAL",
    "VAALDiscriminator",
    "VAALStrategy",
    "VarianceRatioStrategy",
    "available_memory_bytes",
    "available_strategies",
    "bald_score",
    "best_group",
    "bottleneck_features",
    "check_budget",
    "check_selection",
    "class_probabilities",
    "coregcn_on_nodes",
    "coregcn_select",
    "discriminator_loss",
    "ensemble_entropy",
    "ensemble_variance_ratio",
    "ensure_memory",
    "entropy_map",
    "entropy_score",
    "eval_mode",
    "feature_geometry",
    "format_bytes",
    "fuse_pixels",
    "get_strategy",
    "iterate_batches",
    "kcenter_greedy",
    "kcenter_memory_bytes",
    "kmeans_labels",
    "kmeanspp_rows",
    "mc_dropout_bald",
    "mc_dropout_mode",
    "medoid_row",
    "most_typical",
    "random_rows",
    "register_strategy",
    "resolve_device",
    "sample_graph_nodes",
    "seeded",
    "shard_rows",
    "top_rows",
    "train_gcn",
    "train_vaal",
    "typiclust_select",
    "vaal_scores",
    "vae_loss",
    "variance_ratio_score",
    "vote_ratio_map",
]
