"""CoreGCN (Caramalau, Bhattarai and Kim, "Sequential Graph Convolutional Network for
Active Learning", CVPR 2021): the paper's "CoreGCN" baseline.

The labelled slices and a random subset of unlabelled ones (10,000 in the published
code) are nodes of a graph whose adjacency is the similarity of their L2-normalised
features from the previous round's segmentation encoder,
``A = (X X^T - I) diag(colsum)^-1 + I``. A two-layer GCN (hidden 128, dropout 0.3) is
trained for 200 epochs (Adam 1e-3, weight decay 5e-4) to tell labelled (1) from
unlabelled (0) nodes, with the unlabelled term weighted by lambda = 1.2. K-Center
Greedy on the GCN's hidden features, labelled nodes as centres, then picks the slices
(as the paper and REFERENCE describe; one public release ran it on the input features).

Two fixes over the published code: the picks (positions among the graph's nodes) are
mapped back to pool rows through the node list (the original used them as pool indices,
which made its picks effectively random), and A is never formed: since X X^T has rank
<= F, ``A H`` is computed as ``X (X^T (H / colsum)) - H / colsum + H`` in O(S F h), so
the graph can span the whole pool if wanted.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import SelectionContext, Strategy, non_negative_float, positive_int, random_rows
from .inference import bottleneck_features, seeded
from .kcenter import kcenter_greedy
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["CoreGCNStrategy"]

logger = logging.getLogger(__name__)

# An isolated node has a zero column sum (the published code divides by zero there).
_MIN_COLUMN_SUM = 1e-8


class SimilarityGraph:
    """The CoreGCN adjacency of (S, F) L2-normalised node features, applied without forming it.

    ``graph(h)`` = A @ h for (S, k) ``h``, A = (X X^T - I) diag(c)^-1 + I, c the column
    sums of X X^T - I.
    """

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features
        column_sums = features @ features.sum(0) - 1.0
        self.inverse_sums = 1.0 / column_sums.clamp_min(_MIN_COLUMN_SUM)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        scaled = h * self.inverse_sums[:, None]
        return self.features @ (self.features.T @ scaled) - scaled + h


class _GraphConvolution(nn.Module):
    """Kipf and Welling's layer: A (h W) + b, initialised U(-1/sqrt(out), 1/sqrt(out)) as published."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(out_features)
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, h: torch.Tensor, graph: SimilarityGraph) -> torch.Tensor:
        return graph(h @ self.weight) + self.bias


class CoreGCN(nn.Module):
    """GCN of CoreGCN: (S, F) node features -> ((S,) labelled logits, (S, hidden) features)."""

    def __init__(self, in_features: int, hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.first = _GraphConvolution(in_features, hidden)
        self.last = _GraphConvolution(hidden, 1)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, graph: SimilarityGraph) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.relu(self.first(x, graph))
        hidden = F.dropout(hidden, self.dropout, training=self.training)
        return self.last(hidden, graph)[:, 0], hidden


def _gcn_loss(logits: torch.Tensor, is_labelled: torch.Tensor, lambda_loss: float) -> torch.Tensor:
    # -mean log s(labelled) - lambda mean log(1 - s(unlabelled)), in a numerically stable form.
    return -F.logsigmoid(logits[is_labelled]).mean() - lambda_loss * F.logsigmoid(-logits[~is_labelled]).mean()


def train_gcn(
    features: np.ndarray,
    is_labelled: np.ndarray,
    hidden: int = 128,
    dropout: float = 0.3,
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    epochs: int = 200,
    lambda_loss: float = 1.2,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Train CoreGCN on (S, F) node features (L2-normalised here) and return its (S, hidden)
    eval-mode hidden features. ``is_labelled`` (S,) bool marks the labelled nodes; both
    classes must be present. Deterministic given ``seed``."""
    device = torch.device(device)
    x = F.normalize(torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device), dim=1)
    labelled_mask = torch.as_tensor(np.asarray(is_labelled, dtype=bool), device=device)
    graph = SimilarityGraph(x)
    with seeded(seed, device):
        model = CoreGCN(x.shape[1], hidden, dropout).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        model.train()
        for _ in range(epochs):
            optimizer.zero_grad()
            logits, _ = model(x, graph)
            _gcn_loss(logits, labelled_mask, lambda_loss).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        _, hidden_features = model(x, graph)
    return hidden_features.cpu().numpy()


def sample_graph_nodes(
    labelled: np.ndarray, unlabelled: np.ndarray, subset_size: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Pool rows of the graph: a random subset of ``subset_size`` unlabelled rows (all when
    None or larger than the pool), in pool order, then the labelled rows."""
    if subset_size is not None and subset_size < len(unlabelled):
        unlabelled = np.sort(rng.choice(unlabelled, size=subset_size, replace=False))
    return np.concatenate([unlabelled, labelled]).astype(np.int64)


def coregcn_on_nodes(
    node_features: np.ndarray,
    nodes: np.ndarray,
    num_labelled: int,
    budget: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    **gcn_settings: float,
) -> np.ndarray:
    """CoreGCN picks given the (S, F) features of the graph's ``nodes`` (pool rows, the last
    ``num_labelled`` labelled): (budget,) pool rows.

    ``gcn_settings`` go to :func:`train_gcn`. The picks of K-Center Greedy are positions
    in ``nodes`` and are mapped back to pool rows here.
    """
    is_labelled = np.zeros(len(nodes), dtype=bool)
    is_labelled[len(nodes) - num_labelled :] = True
    hidden = train_gcn(node_features, is_labelled, seed=seed, device=device, **gcn_settings)
    positions = kcenter_greedy(hidden, np.flatnonzero(is_labelled), budget, seed=seed, device=device)
    return nodes[positions]


def coregcn_select(
    features: np.ndarray,
    labelled: np.ndarray,
    budget: int,
    seed: int = 0,
    subset_size: int | None = 10000,
    device: torch.device | str = "cpu",
    **gcn_settings: float,
) -> np.ndarray:
    """CoreGCN on (N, F) pool ``features``: (budget,) unlabelled pool rows in pick order."""
    labelled = np.asarray(labelled, dtype=np.int64)
    mask = np.zeros(len(features), dtype=bool)
    mask[labelled] = True
    subset = None if subset_size is None else max(subset_size, budget)
    nodes = sample_graph_nodes(labelled, np.flatnonzero(~mask), subset, np.random.default_rng(seed))
    return coregcn_on_nodes(features[nodes], nodes, len(labelled), budget, seed, device, **gcn_settings)


@register_strategy("coregcn")
class CoreGCNStrategy(Strategy):
    """CoreGCN over ``bottleneck_features`` of the previous round's first network; a random
    round when no network (or no labelled slice) exists yet.

    Args:
        subset_size: unlabelled slices sampled into the graph (published: 10,000; None:
            all; raised to the budget when smaller).
        hidden: GCN hidden units (published: 128).
        dropout: GCN dropout (published: 0.3).
        lr: Adam learning rate (published: 1e-3).
        weight_decay: Adam weight decay (published: 5e-4).
        epochs: full-graph training epochs (published: 200).
        lambda_loss: weight of the unlabelled term of the loss (published: 1.2).
        batch_size: slices per forward pass of the segmentation network.
    """

    def __init__(
        self,
        subset_size: int | None = 10000,
        hidden: int = 128,
        dropout: float = 0.3,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        epochs: int = 200,
        lambda_loss: float = 1.2,
        batch_size: int = 64,
    ) -> None:
        self.subset_size = None if subset_size is None else positive_int(subset_size, "coregcn.subset_size")
        self.hidden = positive_int(hidden, "coregcn.hidden")
        self.dropout = non_negative_float(dropout, "coregcn.dropout", below=1.0)
        self.lr = non_negative_float(lr, "coregcn.lr")
        self.weight_decay = non_negative_float(weight_decay, "coregcn.weight_decay")
        self.epochs = positive_int(epochs, "coregcn.epochs")
        self.lambda_loss = non_negative_float(lambda_loss, "coregcn.lambda_loss")
        self.batch_size = positive_int(batch_size, "coregcn.batch_size")

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        models = context.models()
        if not models or len(context.labelled_indices) == 0:
            return random_rows(context, budget, self.rng(context, "first_round"))
        subset = None if self.subset_size is None else max(self.subset_size, budget)
        nodes = sample_graph_nodes(
            context.labelled_indices, context.unlabelled_indices, subset, self.rng(context, "nodes")
        )
        device = resolve_device(context.device)
        node_features = bottleneck_features(models[0], context.images(), nodes, self.batch_size, device)
        logger.info("coregcn: graph of %d nodes, %d features", len(nodes), node_features.shape[1])
        return coregcn_on_nodes(
            node_features,
            nodes,
            len(context.labelled_indices),
            budget,
            seed=self.seed_for(context, "gcn"),
            device=device,
            hidden=self.hidden,
            dropout=self.dropout,
            lr=self.lr,
            weight_decay=self.weight_decay,
            epochs=self.epochs,
            lambda_loss=self.lambda_loss,
        )
