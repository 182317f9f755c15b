"""Low-budget selection that resists outliers, each against its paper's definition on
hand-checkable cases: ProbCover (Yehuda et al. 2022: purity-chosen delta, greedy maximum
coverage of delta-balls), K-Center Greedy that skips the sparsest slices, and the
features TypiClust and ProbCover measure (GCL embeddings, NT-Xent ones or pixels)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sel_helpers import brute_force_kcenter, make_context

from alseg_monai.errors import ConfigError
from alseg_monai.selection import (
    feature_geometry,
    get_strategy,
    kcenter_greedy,
    knn_sparseness,
    probcover_select,
    purity_delta,
)
from alseg_monai.selection.outliers import dense_candidates
from alseg_monai.selection.probcover import ball_graph
from alseg_monai.selection.typiclust import typiclust_select

# Five points on a line: two groups, the second one far away.
LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]], dtype=np.float32)
LINE_LABELS = np.array([0, 0, 0, 1, 1])


def brute_distances(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))


def purity(x: np.ndarray, labels: np.ndarray, delta: float) -> float:
    """The paper's definition: the share of balls B(x, delta) whose members all have x's label."""
    inside = brute_distances(x) < delta
    return float(np.mean([(labels[row] == labels[i]).all() for i, row in enumerate(inside)]))


def greedy_cover(x: np.ndarray, labelled: list[int], budget: int, delta: float) -> list[int]:
    """Textbook greedy maximum coverage, first maximum on ties; stops at full coverage."""
    balls = brute_distances(x) < delta
    covered = balls[labelled].any(0) if labelled else np.zeros(len(x), bool)
    picks = []
    for _ in range(budget):
        gains = (balls & ~covered).sum(1)
        gains[labelled + picks] = -1
        if gains.max() <= 0:
            break
        picks.append(int(np.argmax(gains)))
        covered |= balls[picks[-1]]
    return picks


def test_purity_delta_by_hand():
    # Distances to the nearest point of the other group: 10, 9, 8, 8, 9.
    assert purity_delta(LINE, LINE_LABELS, 1.0) == 8.0  # every ball pure: delta <= 8
    assert purity_delta(LINE, LINE_LABELS, 0.6) == 9.0  # 3 of 5 pure: the rows at 10, 9, 9
    assert purity(LINE, LINE_LABELS, 8.0) == 1.0 and purity(LINE, LINE_LABELS, 8.5) == 0.6


@pytest.mark.parametrize("alpha", [0.5, 0.8, 0.95])
def test_purity_delta_is_the_largest_radius_meeting_alpha(alpha):
    x = np.random.default_rng(3).normal(size=(60, 4)).astype(np.float32)
    labels = np.random.default_rng(4).integers(0, 3, 60)
    delta = purity_delta(x, labels, alpha)
    assert purity(x, labels, delta) >= alpha
    larger = np.unique(brute_distances(x))
    assert purity(x, labels, larger[larger > delta][0] + 1e-6) < alpha


def test_purity_needs_two_clusters_and_a_fraction():
    with pytest.raises(ConfigError, match="two clusters"):
        purity_delta(LINE, np.zeros(5), 0.95)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        purity_delta(LINE, LINE_LABELS, 1.5)


def test_ball_graph_matches_the_distance_matrix():
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    offsets, members = ball_graph(x, 0.9)
    inside = brute_distances(x) < 0.9
    for i in range(50):
        assert sorted(members[offsets[i]:offsets[i + 1]]) == list(np.flatnonzero(inside[i]))


def test_probcover_by_hand():
    # Balls of radius 1.5: {0,1}, {0,1,2}, {1,2}, {3,4}, {3,4}. Row 1 covers 3, then row 3
    # (lowest of 3 and 4) covers 2; then everything is covered and the rest is uniform.
    picks = probcover_select(LINE, [], 3, delta=1.5, seed=0)
    assert list(picks[:2]) == [1, 3] and picks[2] in (0, 2, 4)
    # A labelled row covers its ball from the start: with row 0 labelled, row 3's ball
    # (2 new) and row 1's ball (only row 2 new) give 3 first.
    assert list(probcover_select(LINE, [0], 2, delta=1.5)) == [3, 1]


@pytest.mark.parametrize("labelled", [[], [0, 5, 9]])
def test_probcover_is_greedy_max_coverage(labelled):
    x = np.random.default_rng(1).normal(size=(80, 2)).astype(np.float32)
    expected = greedy_cover(x, labelled, 12, 0.45)
    picks = probcover_select(x, labelled, 12, 0.45, seed=3)
    assert list(picks[:len(expected)]) == expected
    assert len(set(picks)) == 12 and not set(picks) & set(labelled)


def test_probcover_after_full_coverage_draws_with_its_seed():
    first = probcover_select(LINE, [], 4, delta=100.0, seed=7)
    assert first[0] == 0  # one ball covers all; then uniform
    assert list(first) == list(probcover_select(LINE, [], 4, delta=100.0, seed=7))
    assert len({tuple(probcover_select(LINE, [], 4, delta=100.0, seed=s)) for s in range(6)}) > 1


def test_probcover_strategy_on_gcl_embeddings_in_cosine_geometry():
    context = make_context(n=40, num_labelled=6)
    strategy = get_strategy("probcover", purity_clusters=3)
    assert (strategy.encoder, strategy.embedding, strategy.geometry) == ("gcl", "backbone", "cosine")
    features = feature_geometry(context.embeddings(), "cosine")
    delta = strategy.radius(context, features)
    expected = probcover_select(features, context.labelled_indices, 5, delta,
                                seed=strategy.seed_for(context, "uniform"))
    assert strategy.select(context, 5) == [context.ids[r] for r in expected]
    assert get_strategy("probcover", delta=0.5).radius(context, features) == 0.5


def test_probcover_and_typiclust_on_pixels_need_no_encoder():
    context = make_context(n=40, num_labelled=6)
    for name in ("probcover", "typiclust"):
        strategy = get_strategy(name, features="pixels")
        assert strategy.encoder is None
        with pytest.raises(ConfigError, match="uses no encoder"):
            get_strategy(name, features="pixels", encoder="gcl")
    flat = context.images().reshape(40, -1)
    typi = get_strategy("typiclust", features="pixels", min_cluster_size=1)
    expected = typiclust_select(feature_geometry(flat, "cosine"), context.labelled_indices, 5,
                                seed=typi.seed_for(context, "kmeans"), min_cluster_size=1)
    assert typi.select(context, 5) == [context.ids[r] for r in expected]


def test_typiclust_embeddings_and_geometry_are_explicit():
    context = make_context(n=40, num_labelled=6)
    default = get_strategy("typiclust", min_cluster_size=1)
    assert (default.features, default.encoder, default.geometry) == ("embeddings", "gcl", "cosine")
    assert get_strategy("typiclust", encoder="ntxent").encoder == "ntxent"
    raw = get_strategy("typiclust", min_cluster_size=1, geometry="euclidean")
    expected = typiclust_select(context.embeddings(), context.labelled_indices, 5,
                                seed=raw.seed_for(context, "kmeans"), min_cluster_size=1)
    assert raw.select(context, 5) == [context.ids[r] for r in expected]
    with pytest.raises(ConfigError, match="typiclust.geometry"):
        get_strategy("typiclust", geometry="manhattan")


def test_knn_sparseness_by_hand():
    # Mean distance to the 2 nearest others: (1+2)/2, (1+1)/2, (1+2)/2, (1+8)/2, (1+9)/2.
    np.testing.assert_allclose(knn_sparseness(LINE, 2), [1.5, 1.0, 1.5, 4.5, 5.0])
    duplicates = np.array([[0.0], [0.0], [0.0], [3.0]], dtype=np.float32)
    np.testing.assert_allclose(knn_sparseness(duplicates, 1), [0.0, 0.0, 0.0, 3.0])


def test_robust_kcenter_never_picks_the_outliers():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(60, 2))
    far = np.array([[40.0, 0.0], [0.0, -40.0], [-40.0, 30.0]])
    x = np.concatenate([dense, far]).astype(np.float32)
    plain = kcenter_greedy(x, [0], 4)
    assert set(plain[:3]) == {60, 61, 62}  # farthest-first goes to the outliers
    keep = dense_candidates(x, np.array([0]), 4, outliers=0.05)
    assert not keep[60:].any() and keep[:60].all()
    rows = np.flatnonzero(keep)
    expected = rows[brute_force_kcenter(x[rows], [0], 4)]
    context = make_context(n=63, num_labelled=1, embeddings=lambda: x)
    robust = get_strategy("gcl_coreset", geometry="euclidean", outliers=0.05)
    assert robust.select(context, 4) == [context.ids[r] for r in expected]


def test_robust_kcenter_lets_outliers_back_when_the_budget_needs_them():
    keep = dense_candidates(LINE, np.array([0, 1]), 2, outliers=0.6)
    assert keep.sum() == 4 and keep[[0, 1]].all()  # 3 unlabelled, budget 2: one barred only
    assert not keep[4]  # the sparsest


def test_robust_kcenter_with_no_outliers_is_plain_kcenter():
    context = make_context(n=40, num_labelled=6)
    for first_centre, labelled in itertools.product(("random", "medoid", "kmeans++"), (6, 0)):
        ctx = make_context(n=40, num_labelled=labelled)
        plain = get_strategy("gcl_coreset", first_centre=first_centre).select(ctx, 5)
        assert get_strategy("gcl_coreset", first_centre=first_centre, outliers=0.0).select(ctx, 5) == plain
    with pytest.raises(ConfigError, match="outliers"):
        get_strategy("gcl_coreset", outliers=1.0)
    assert len(get_strategy("gcl_coreset", outliers=0.2).select(context, 5)) == 5


def test_schedule_from_coverage_to_uncertainty():
    schedule = get_strategy("schedule", stages=[{"strategy": "typiclust", "until": 0.25, "min_cluster_size": 1},
                                                {"strategy": "bald", "num_samples": 3}])
    context = make_context(n=40, num_labelled=6)
    assert schedule.encoder == "gcl"
    typi = get_strategy("typiclust", min_cluster_size=1)
    assert schedule.select(context, 4) == typi.select(context, 4)
    # Beyond 25 %, BALD; with no model yet it draws its random first round.
    bald = get_strategy("bald", num_samples=3)
    assert schedule.select(context, 6) == bald.select(context, 6)
