"""Every built-in strategy: budget distinct unlabelled ids, deterministic under a seed,
different under another seed where it draws at random, random first round for
model-based strategies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sel_helpers import TinySegNet, make_context, synthetic_images

from alseg_monai.errors import ConfigError
from alseg_monai.selection import get_strategy, kcenter_greedy

# Small settings so each strategy runs in about a second on one core.
SETTINGS = {
    "random": {},
    "coreset": {},
    "gcl_coreset": {},
    "ntxent_coreset": {},
    "bald": {"num_samples": 3},
    "variance_ratio": {"num_models": 3},
    "stochastic_batches": {"num_models": 3},
    "typiclust": {"min_cluster_size": 1},
    "vaal": {"epochs": 2, "batch_size": 8, "channels": (4, 8), "latent_dim": 4},
    "coregcn": {"epochs": 20, "hidden": 8, "subset_size": 20},
}


@pytest.fixture(scope="module")
def models():
    nets = []
    for seed in range(3):
        net = TinySegNet(seed=seed)
        net.train()
        with torch.no_grad():
            net(torch.from_numpy(synthetic_images(8, seed=seed)))
        nets.append(net)
    return nets


def _select(name: str, models, seed: int = 0, budget: int = 5, **context_kwargs):
    context = make_context(n=40, num_labelled=6, seed=seed, models=models, **context_kwargs)
    return context, get_strategy(name, **SETTINGS[name]).select(context, budget)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_budget_distinct_unlabelled_ids_and_deterministic(name, models):
    context, first = _select(name, models)
    assert len(first) == 5 and len(set(first)) == 5
    assert not set(first) & set(context.labelled)
    assert set(first) <= set(context.ids)
    _, again = _select(name, models)
    assert again == first


@pytest.mark.parametrize("name", ["random", "stochastic_batches", "coregcn", "vaal"])
def test_randomised_strategies_differ_under_another_seed(name, models):
    picks = {tuple(_select(name, models, seed=seed)[1]) for seed in range(4)}
    assert len(picks) > 1


@pytest.mark.parametrize("name", ["bald", "variance_ratio", "stochastic_batches", "coregcn"])
def test_model_based_strategies_take_a_random_first_round(name):
    context, picks = _select(name, models=[], round=0)
    rng = get_strategy(name).rng(context, "first_round")
    expected = rng.choice(context.unlabelled_indices, 5, replace=False)
    assert picks == [context.ids[i] for i in expected]
    assert len({tuple(_select(name, [], seed=s, round=0)[1]) for s in range(4)}) > 1


def test_rounds_draw_independent_random_streams():
    _, round1 = _select("random", [], round=1)
    _, round2 = _select("random", [], round=2)
    assert round1 != round2


def test_gcl_coreset_is_kcenter_on_the_embeddings():
    context = make_context(n=40, num_labelled=6)
    paper = get_strategy("gcl_coreset", geometry="euclidean").select(context, 5)
    rows = kcenter_greedy(context.embeddings(), context.labelled_indices, 5)
    assert paper == [context.ids[i] for i in rows]
    # The default measures the cosine geometry: K-Center on unit-length rows.
    unit = context.embeddings() / np.linalg.norm(context.embeddings(), axis=1, keepdims=True)
    rows = kcenter_greedy(unit, context.labelled_indices, 5)
    assert get_strategy("gcl_coreset").select(context, 5) == [context.ids[i] for i in rows]


def test_gcl_coreset_pixel_weight_fuses_pixels():
    context = make_context(n=40, num_labelled=6)
    plain = get_strategy("gcl_coreset").select(context, 8)
    heavy = get_strategy("gcl_coreset", pixel_weight=100.0).select(context, 8)
    pixels_only = get_strategy("coreset").select(context, 8)
    assert heavy != plain
    # With a large weight the pixels dominate the metric: the picks approach coreset's.
    assert len(set(heavy) & set(pixels_only)) > len(set(plain) & set(pixels_only))


def test_coreset_is_kcenter_on_flattened_images():
    context, picks = _select("coreset", [])
    rows = kcenter_greedy(context.images().reshape(40, -1), context.labelled_indices, 5)
    assert picks == [context.ids[i] for i in rows]


def test_bald_picks_the_most_uncertain_slices(models):
    context, picks = _select("bald", models)
    from alseg_monai.selection import mc_dropout_bald

    strategy = get_strategy("bald", **SETTINGS["bald"])
    scores = mc_dropout_bald(
        models[0],
        context.images(),
        context.unlabelled_indices,
        num_samples=3,
        seed=strategy.seed_for(context, "mc_dropout"),
    )
    best = context.unlabelled_indices[np.argsort(-scores, kind="stable")[:5]]
    assert picks == [context.ids[i] for i in best]


def test_variance_ratio_needs_an_ensemble(models):
    with pytest.raises(ConfigError, match=">= 2 networks"):
        _select("variance_ratio", models[:1])


def test_stochastic_batches_takes_the_most_uncertain_group(models):
    from alseg_monai.selection import ensemble_entropy
    from alseg_monai.selection.stochastic_batches import best_group

    context, picks = _select("stochastic_batches", models, budget=6)
    strategy = get_strategy("stochastic_batches", **SETTINGS["stochastic_batches"])
    shuffled = strategy.rng(context, "groups").permutation(context.unlabelled_indices)
    groups = shuffled[: (len(shuffled) // 6) * 6].reshape(-1, 6)
    scores = ensemble_entropy(models, context.images(), groups.ravel())
    group_means = scores.reshape(groups.shape).mean(1)
    chosen = groups[best_group(groups, scores)]
    assert picks == [context.ids[i] for i in chosen]
    assert group_means[best_group(groups, scores)] == group_means.max()
