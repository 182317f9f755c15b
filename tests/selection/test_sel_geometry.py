"""Feature geometries and first centres of K-Center Greedy (the study issue's options)."""

from __future__ import annotations

import numpy as np
import pytest

from alseg_monai import ConfigError, DataError
from alseg_monai.selection import (
    GCLCoresetStrategy,
    NTXentCoresetStrategy,
    SelectionContext,
    feature_geometry,
    get_strategy,
    kcenter_greedy,
)
from alseg_monai.selection.geometry import kmeanspp_rows, medoid_row


def _pool(n):
    return [{"id": f"s{i}", "patient": f"p{i % 3}", "volume": f"v{i % 6}", "slice": i} for i in range(n)]


def test_cosine_geometry_removes_the_norm():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(50, 8))
    scaled = directions * rng.uniform(1, 100, size=(50, 1))
    assert np.allclose(feature_geometry(scaled, "cosine"), feature_geometry(directions, "cosine"), atol=1e-6)
    assert np.allclose(np.linalg.norm(feature_geometry(scaled, "cosine"), axis=1), 1.0, atol=1e-6)
    zero = feature_geometry(np.zeros((3, 4)), "cosine")  # no direction: stays at the origin, no NaN
    assert np.all(zero == 0)


def test_standardized_geometry_has_unit_variance_and_keeps_constant_dimensions_finite():
    rng = np.random.default_rng(1)
    x = np.c_[rng.normal(5, 30, size=(40, 3)), np.full((40, 1), 7.0)]
    z = feature_geometry(x, "standardized")
    assert np.allclose(z[:, :3].mean(0), 0, atol=1e-5) and np.allclose(z[:, :3].std(0), 1, atol=1e-5)
    assert np.all(z[:, 3] == 0)
    assert feature_geometry(x, "euclidean").dtype == np.float32


def test_geometry_errors_name_the_problem():
    with pytest.raises(ConfigError, match="geometry"):
        feature_geometry(np.ones((2, 2)), "manhattan")
    with pytest.raises(DataError, match="NaN"):
        feature_geometry(np.array([[np.nan, 1.0]]), "cosine")
    with pytest.raises(DataError, match=r"\(N, D\)"):
        feature_geometry(np.ones(4), "cosine")


def test_medoid_is_the_least_total_distance_row():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    totals = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)).sum(1)
    assert medoid_row(x) == int(np.argmin(totals))


def test_kmeanspp_draws_distinct_rows_deterministically_and_avoids_duplicates():
    rng = np.random.default_rng(3)
    x = np.repeat(rng.normal(size=(4, 3)), 10, axis=0)  # 4 distinct points, 10 copies each
    rows = kmeanspp_rows(x, 4, seed=5)
    assert len(set(rows.tolist())) == 4 and np.array_equal(rows, kmeanspp_rows(x, 4, seed=5))
    # Every draw after the first has zero weight on copies of drawn points: 4 distinct points.
    assert len({tuple(np.round(x[r], 6)) for r in rows}) == 4
    assert len(set(kmeanspp_rows(x, 12, seed=5).tolist())) == 12  # beyond them, uniform among the rest
    with pytest.raises(ConfigError, match="count"):
        kmeanspp_rows(x, 41)


def test_strategy_first_centres_and_paper_variant():
    rng = np.random.default_rng(4)
    # Norms spread 1x-50x: raw farthest-first goes after the long vectors, cosine does not.
    directions = rng.normal(size=(120, 16))
    features = (directions * np.geomspace(1, 50, 120)[:, None]).astype(np.float32)
    context = SelectionContext(_pool(120), [], seed=3, embeddings=lambda: features)
    paper = get_strategy("gcl_coreset", geometry="euclidean", first_centre="random")
    picks = paper.select_rows(context, 6)
    unit = feature_geometry(features, "euclidean")
    assert np.array_equal(picks, kcenter_greedy(unit, [], 6, seed=paper.seed_for(context, "kcenter")))
    assert np.median(picks) > 90  # the raw metric chases the large norms
    medoid = GCLCoresetStrategy(geometry="cosine", first_centre="medoid").select_rows(context, 6)
    assert medoid[0] == medoid_row(feature_geometry(features, "cosine"))
    seeded = GCLCoresetStrategy(first_centre="kmeans++")
    assert np.array_equal(seeded.select_rows(context, 6), seeded.select_rows(context, 6))
    assert len(set(seeded.select_rows(context, 6).tolist())) == 6
    # With labelled slices, every first-centre rule is plain K-Center from them.
    labelled = SelectionContext(_pool(120), ["s0", "s1"], seed=3, embeddings=lambda: features)
    assert np.array_equal(GCLCoresetStrategy(first_centre="medoid").select_rows(labelled, 4),
                          GCLCoresetStrategy(first_centre="random").select_rows(labelled, 4))


def test_strategy_options_are_checked_and_name_their_encoder():
    with pytest.raises(ConfigError, match="gcl_coreset.geometry"):
        GCLCoresetStrategy(geometry="l3")
    with pytest.raises(ConfigError, match="first_centre"):
        GCLCoresetStrategy(first_centre="centroid")
    with pytest.raises(ConfigError, match="embedding"):
        GCLCoresetStrategy(embedding="logits")
    assert GCLCoresetStrategy().encoder == "gcl" and NTXentCoresetStrategy().encoder == "ntxent"
    assert get_strategy("ntxent_coreset").name == "ntxent_coreset"
    assert GCLCoresetStrategy(encoder="mine").encoder == "mine"
