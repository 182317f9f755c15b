"""TypiClust: runs (the original crashed), k, small clusters, typicality, cluster order."""

from __future__ import annotations

import numpy as np
import pytest

from alseg_monai.selection import typiclust as typiclust_module
from alseg_monai.selection.typiclust import most_typical, typiclust_select


def _blobs(sizes, dim=4, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (len(sizes), dim))
    points = [c + spread * rng.normal(size=(s, dim)) for c, s in zip(centres, sizes)]
    owner = np.repeat(np.arange(len(sizes)), sizes)
    return np.concatenate(points).astype(np.float32), owner


def test_runs_on_a_pool_and_returns_distinct_unlabelled_rows():
    features = np.random.default_rng(0).normal(size=(3000, 32)).astype(np.float32)
    labelled = np.arange(0, 3000, 100)
    picks = typiclust_select(features, labelled, 40, seed=1)
    assert len(set(picks.tolist())) == 40 and not set(picks.tolist()) & set(labelled.tolist())
    np.testing.assert_array_equal(picks, typiclust_select(features, labelled, 40, seed=1))


def test_number_of_clusters_is_labelled_plus_budget_capped(monkeypatch):
    seen = []
    real = typiclust_module.kmeans_labels

    def spy(features, k, iterations, seed):
        seen.append(k)
        return real(features, k, iterations, seed)

    monkeypatch.setattr(typiclust_module, "kmeans_labels", spy)
    features = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    typiclust_select(features, np.arange(7), 5)
    typiclust_select(features, np.arange(7), 5, max_clusters=9)
    assert seen == [12, 9]


def test_most_typical_is_the_point_with_the_closest_neighbours():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(41, 3)).astype(np.float32)
    distances = np.sqrt(((features[:, None].astype(np.float64) - features[None]) ** 2).sum(-1))
    k = 20
    mean_knn = np.sort(distances, axis=1)[:, 1 : k + 1].mean(1)
    assert most_typical(features, k) == int(np.argmin(mean_knn))
    # Small sets use n // 2 neighbours; a single point is its own most typical.
    assert most_typical(features[:5], 20) == int(np.argmin(np.sort(distances[:5, :5], 1)[:, 1:3].mean(1)))
    assert most_typical(features[:1], 20) == 0


def test_small_clusters_are_dropped_and_fewest_labelled_come_first(monkeypatch):
    # Three clusters of 30 and two of 3; one labelled slice in each of the first two clusters.
    # The clustering is fixed to the true blobs: this tests the visiting rule, not k-means.
    features, owner = _blobs([30, 30, 30, 3, 3])
    monkeypatch.setattr(typiclust_module, "kmeans_labels", lambda features, k, iterations, seed: owner)
    labelled = np.array([0, 30])
    picks = typiclust_select(features, labelled, 3, seed=0)
    assert owner[picks[0]] == 2  # the only large cluster without a label
    assert set(owner[picks].tolist()) <= {0, 1, 2}  # clusters of <= 5 slices never visited
    kept = typiclust_select(features, labelled, 3, seed=0, min_cluster_size=2)
    assert sorted(owner[kept].tolist()) == [2, 3, 4]  # now the small ones have the fewest labels


def test_picks_the_typical_core_not_the_outskirts():
    rng = np.random.default_rng(5)
    core = rng.normal(scale=0.1, size=(40, 2))
    outskirts = rng.normal(scale=3.0, size=(10, 2))
    features = np.concatenate([core, outskirts]).astype(np.float32)
    pick = typiclust_select(features, [], 1, seed=0)[0]
    assert pick < 40


def test_budget_beyond_the_large_clusters_falls_back_to_small_ones(monkeypatch):
    features, owner = _blobs([8, 8, 2])
    monkeypatch.setattr(typiclust_module, "kmeans_labels", lambda features, k, iterations, seed: owner)
    picks = typiclust_select(features, [0], 17, seed=0)
    assert sorted(picks.tolist()) == list(range(1, 18))
    assert set(owner[picks[-2:]].tolist()) == {2}  # the small cluster only once the others are used up


def test_bad_features_raise():
    with pytest.raises(Exception, match=r"\(N, D\)"):
        typiclust_select(np.zeros(10), [], 1)


def test_runs_single_threaded_with_the_same_picks_and_restores_the_pools(monkeypatch):
    """Issue 14: the k-means and per-pick kNN run on one thread (contention), same picks as unlimited."""
    import faiss  # noqa: F401  (its pools listed before the snapshot)
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    def counts():
        return {"torch": torch.get_num_threads(), **{i["filepath"]: i["num_threads"] for i in threadpool_info()}}

    rng = np.random.default_rng(4)
    features = (rng.normal(size=(2000, 64)) + rng.normal(size=(1, 64)) * 2).astype(np.float32)
    labelled = rng.choice(2000, 20, replace=False)
    seen = []
    real = typiclust_module.most_typical
    monkeypatch.setattr(typiclust_module, "most_typical", lambda f, k=20: (seen.append(counts()), real(f, k))[1])
    previous = torch.get_num_threads()
    with threadpool_limits(limits=2):
        torch.set_num_threads(2)
        try:
            before = counts()
            limited = typiclust_select(features, labelled, 30, seed=2)
            assert seen and all(set(c.values()) == {1} for c in seen)
            assert counts() == before
            monkeypatch.setattr(typiclust_module, "_THREADS", None)
            seen.clear()
            unlimited = typiclust_select(features, labelled, 30, seed=2)
            assert seen[0] == before
        finally:
            torch.set_num_threads(previous)
    np.testing.assert_array_equal(limited, unlimited)
