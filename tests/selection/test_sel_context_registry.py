"""SelectionContext (lazy providers, checks), result validation and the strategy registry."""

from __future__ import annotations

import numpy as np
import pytest
from sel_helpers import make_context, pool_records

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.selection import (
    SelectionContext,
    Strategy,
    available_strategies,
    check_selection,
    get_strategy,
    register_strategy,
)
from alseg_monai.selection import registry as registry_module

BUILT_IN = [
    "bald",
    "coregcn",
    "coreset",
    "gcl_coreset",
    "ntxent_coreset",
    "random",
    "stochastic_batches",
    "typiclust",
    "vaal",
    "variance_ratio",
]


def test_providers_are_lazy_and_evaluated_once():
    calls = {"embeddings": 0, "images": 0}

    def embeddings():
        calls["embeddings"] += 1
        return np.zeros((8, 3))

    def images():
        calls["images"] += 1
        return np.zeros((8, 1, 4, 4))

    context = SelectionContext(pool_records(8), [], embeddings=embeddings, images=images)
    assert calls == {"embeddings": 0, "images": 0}
    first = context.embeddings()
    assert context.embeddings() is first and first.dtype == np.float32
    assert calls == {"embeddings": 1, "images": 0}
    assert context.models() == []


def test_rows_and_masks_follow_the_pool_order():
    pool = pool_records(6)
    context = SelectionContext(pool, [pool[4]["id"], pool[1]["id"]], round=2, seed=9)
    assert context.ids == [r["id"] for r in pool]
    np.testing.assert_array_equal(context.labelled_indices, [1, 4])
    np.testing.assert_array_equal(context.unlabelled_indices, [0, 2, 3, 5])
    assert len(context) == 6 and "round=2" in repr(context)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(embeddings=lambda: np.zeros((5, 3))), DataError, r"N = 8 pool slices, got \(5, 3\)"),
        (dict(images=lambda: np.zeros((8, 4, 4))), DataError, r"\(N, C, H, W\).*got \(8, 4, 4\)"),
    ],
)
def test_provider_shapes_are_checked(kwargs, error, message):
    context = SelectionContext(pool_records(8), [], **kwargs)
    with pytest.raises(error, match=message):
        (context.embeddings if "embeddings" in kwargs else context.images)()


def test_missing_provider_names_what_is_needed():
    context = SelectionContext(pool_records(4), [])
    with pytest.raises(ConfigError, match="needs embeddings"):
        context.embeddings()


@pytest.mark.parametrize(
    "pool, labelled, kwargs, error, message",
    [
        (pool_records(3), ["nope"], {}, DataError, "not in the pool: \\['nope'\\]"),
        (pool_records(3) + pool_records(1), [], {}, DataError, "unique"),
        ([{"patient": "p"}], [], {}, DataError, "string 'id'"),
        (pool_records(3), [], {"round": -1}, ConfigError, "round"),
        (pool_records(3), [], {"seed": 1.5}, ConfigError, "seed"),
        (pool_records(3), [], {"images": np.zeros(3)}, ConfigError, "callable"),
    ],
)
def test_bad_contexts_are_rejected(pool, labelled, kwargs, error, message):
    with pytest.raises(error, match=message):
        SelectionContext(pool, labelled, **kwargs)


def test_check_selection_rejects_bad_answers():
    context = make_context(n=12, num_labelled=1)
    good = [context.ids[1], context.ids[2]]
    assert check_selection(context, good, 2) == good
    cases = [
        ([context.ids[1]], "returned 1 ids, expected budget = 2"),
        ([context.ids[1], "ghost"], "not pool slice ids"),
        ([context.ids[1], context.ids[1]], "repeated"),
        ([context.ids[0], context.ids[1]], "already labelled"),
    ]
    for ids, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_selection(context, ids, 2, who="mine")


def test_registry_lists_every_built_in_strategy():
    assert set(BUILT_IN) <= set(available_strategies())
    for name in BUILT_IN:
        strategy = get_strategy(name)
        assert strategy.name == name and callable(strategy.select)


def test_unknown_strategy_lists_the_known_names():
    with pytest.raises(ConfigError, match="unknown name 'kcentre'.*'gcl_coreset'"):
        get_strategy("kcentre")


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError, match="takes \\['geometry', 'first_centre', 'embedding', 'encoder', 'pixel_weight'"):
        get_strategy("gcl_coreset", pixel_wieght=1.0)
    with pytest.raises(ConfigError, match="pixel_weight"):
        get_strategy("gcl_coreset", pixel_weight=-1)
    with pytest.raises(ConfigError, match="num_samples"):
        get_strategy("bald", num_samples=1)


def test_budget_is_checked():
    context = make_context(n=12, num_labelled=1)
    strategy = get_strategy("random")
    assert strategy.select(context, 0) == []
    with pytest.raises(ConfigError, match="budget"):
        strategy.select(context, 12)
    with pytest.raises(ConfigError, match="budget"):
        strategy.select(context, -1)


def test_a_users_strategy_registers_and_plugs_in(monkeypatch):
    # Register into a copy, so the test's strategy does not outlive it.
    monkeypatch.setattr(registry_module, "_STRATEGIES", dict(registry_module._STRATEGIES))

    @register_strategy("test_last_rows")
    class LastRows(Strategy):
        def __init__(self, offset: int = 0) -> None:
            self.offset = offset

        def select_rows(self, context, budget):
            return context.unlabelled_indices[::-1][self.offset : self.offset + budget]

    context = make_context(n=12, num_labelled=1)
    assert "test_last_rows" in available_strategies()
    assert get_strategy("test_last_rows", offset=1).select(context, 2) == [context.ids[10], context.ids[9]]

    class Broken(Strategy):
        name = "broken"

        def select_rows(self, context, budget):
            return np.zeros(budget, dtype=int)  # row 0 is labelled

    with pytest.raises(ConfigError, match="broken: returned already labelled"):
        Broken().select(context, 1)
    with pytest.raises(ConfigError, match="already registered"):
        register_strategy("random")(LastRows)
