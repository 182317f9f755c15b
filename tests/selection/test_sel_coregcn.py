"""CoreGCN: the factorised adjacency equals the published dense one, picks are mapped
back to pool rows (the original used graph positions as pool indices), subsets."""

from __future__ import annotations

import numpy as np
import torch
from sel_helpers import TinySegNet, make_context

from alseg_monai.selection import coregcn as coregcn_module
from alseg_monai.selection import get_strategy, kcenter_greedy
from alseg_monai.selection.coregcn import SimilarityGraph, coregcn_select, sample_graph_nodes, train_gcn


def _dense_adjacency(x: np.ndarray) -> np.ndarray:
    # The published construction: A = X X^T - I, columns divided by their sums, + I.
    adj = x @ x.T - np.eye(len(x))
    adj = adj @ np.diag(1.0 / adj.sum(0))
    return adj + np.eye(len(x))


def test_factorised_graph_equals_the_dense_adjacency():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(30, 6)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    h = rng.normal(size=(30, 4))
    graph = SimilarityGraph(torch.from_numpy(x))
    np.testing.assert_allclose(graph(torch.from_numpy(h)).numpy(), _dense_adjacency(x) @ h, rtol=1e-10)


def _pool_with_outlier(n: int = 60, outlier: int = 37, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    features = np.abs(rng.normal(size=(n, 16))).astype(np.float32)
    features[:, :4] += 3.0  # every slice shares a direction...
    features[outlier] = 0.0
    features[outlier, 12] = 5.0  # ...but this one, orthogonal to all the labelled slices
    return features


def test_picks_are_pool_rows_not_graph_positions(monkeypatch):
    # Labelled rows 0, 5, 10, 15, 20 come before the outlier (row 37), so its position in
    # the graph's node list (unlabelled first) is 32: the original code would return row 32.
    features = _pool_with_outlier()
    labelled = np.array([0, 5, 10, 15, 20])
    monkeypatch.setattr(coregcn_module, "train_gcn", lambda node_features, is_labelled, **_: node_features)
    picks = coregcn_select(features, labelled, 4, subset_size=None)
    nodes = sample_graph_nodes(labelled, np.setdiff1d(np.arange(60), labelled), None, np.random.default_rng(0))
    assert picks[0] == 37 and np.flatnonzero(nodes == 37)[0] == 32
    positions = kcenter_greedy(features[nodes], np.arange(55, 60), 4)
    np.testing.assert_array_equal(picks, nodes[positions])


def test_trained_gcn_picks_the_outlier():
    features = _pool_with_outlier()
    for seed in range(3):
        assert coregcn_select(features, np.array([0, 5, 10, 15, 20]), 1, seed=seed, subset_size=None)[0] == 37


def test_subset_sampling_keeps_every_labelled_row_and_picks_inside_the_subset():
    rng = np.random.default_rng(1)
    labelled, unlabelled = np.array([3, 9]), np.setdiff1d(np.arange(100), [3, 9])
    nodes = sample_graph_nodes(labelled, unlabelled, 20, rng)
    assert len(nodes) == 22 and set(nodes[-2:]) == {3, 9} and len(set(nodes.tolist())) == 22
    assert np.all(np.diff(nodes[:20]) > 0)  # unlabelled nodes in pool order
    features = np.abs(rng.normal(size=(100, 8))).astype(np.float32)
    picks = coregcn_select(features, labelled, 5, seed=4, subset_size=20, epochs=10)
    expected_nodes = sample_graph_nodes(labelled, unlabelled, 20, np.random.default_rng(4))
    assert set(picks.tolist()) <= set(expected_nodes[:20].tolist())
    # A budget above the subset enlarges it.
    assert len(coregcn_select(features, labelled, 30, seed=4, subset_size=20, epochs=2)) == 30


def test_gcn_is_deterministic_under_a_seed():
    features = _pool_with_outlier()
    is_labelled = np.zeros(60, dtype=bool)
    is_labelled[:10] = True
    first = train_gcn(features, is_labelled, seed=2, epochs=30)
    assert first.shape == (60, 128)
    np.testing.assert_array_equal(first, train_gcn(features, is_labelled, seed=2, epochs=30))
    assert not np.array_equal(first, train_gcn(features, is_labelled, seed=3, epochs=30))


def test_strategy_uses_the_encoder_features_of_the_previous_model():
    model = TinySegNet(seed=0)
    context = make_context(n=40, num_labelled=6, models=[model])
    strategy = get_strategy("coregcn", epochs=5, hidden=8)
    picks = strategy.select(context, 4)
    assert len(picks) == 4 and not set(picks) & set(context.labelled)
    # The network is only used for inference: its BatchNorm statistics do not move.
    before = model.state_dict()["down.1.running_mean"].clone()
    strategy.select(context, 4)
    assert torch.equal(model.state_dict()["down.1.running_mean"], before)
