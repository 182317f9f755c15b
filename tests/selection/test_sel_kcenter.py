"""K-Center Greedy: exactness against the textbook and brute force, the k-center objective,
input checks, and the memory estimate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sel_helpers import brute_force_kcenter, clustered, coverage_radius, textbook_kcenter

from alseg_monai.errors import ConfigError, DataError, ResourceError
from alseg_monai.selection import kcenter as kcenter_module
from alseg_monai.selection import kcenter_greedy, kcenter_memory_bytes
from alseg_monai.utils.threads import thread_limit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_textbook_with_labelled_set(seed):
    rng = np.random.default_rng(seed)
    # An offset and scale make float32 cancellation visible if distances were not re-checked.
    features = (rng.normal(size=(1500, 24)) * rng.uniform(0.1, 10) + rng.uniform(-50, 50)).astype(np.float32)
    labelled = rng.choice(1500, 25, replace=False)
    picks = kcenter_greedy(features, labelled, 120)
    np.testing.assert_array_equal(picks, textbook_kcenter(features, labelled, 120))


def test_equals_textbook_without_labelled_set_and_first_centre_is_seeded():
    features = np.random.default_rng(5).normal(size=(600, 8)).astype(np.float32)
    picks = kcenter_greedy(features, [], 60, seed=3)
    np.testing.assert_array_equal(picks, textbook_kcenter(features, [], 60, first=int(picks[0])))
    np.testing.assert_array_equal(picks, kcenter_greedy(features, [], 60, seed=3))
    firsts = {int(kcenter_greedy(features, [], 1, seed=s)[0]) for s in range(8)}
    assert len(firsts) > 1


def test_equals_brute_force_on_small_data():
    rng = np.random.default_rng(7)
    features = rng.normal(size=(150, 5)).astype(np.float32)
    labelled = [3, 50, 99]
    np.testing.assert_array_equal(kcenter_greedy(features, labelled, 40), brute_force_kcenter(features, labelled, 40))


def test_high_dimensional_data_takes_the_dense_pass_and_stays_exact():
    # Structureless 256-d noise: the projection bound prunes nothing, every pick is a full pass.
    rng = np.random.default_rng(11)
    features = rng.normal(size=(800, 256)).astype(np.float32)
    labelled = rng.choice(800, 10, replace=False)
    np.testing.assert_array_equal(kcenter_greedy(features, labelled, 50), textbook_kcenter(features, labelled, 50))


def test_wide_rows_like_raw_pixels_and_tiny_pools():
    # More columns than sampled rows (the principal axes come from the Gram matrix).
    rng = np.random.default_rng(8)
    wide = rng.random((200, 3000), dtype=np.float32)
    np.testing.assert_array_equal(kcenter_greedy(wide, [5, 6], 20), textbook_kcenter(wide, [5, 6], 20))
    tiny = rng.random((5, 40), dtype=np.float32)
    np.testing.assert_array_equal(kcenter_greedy(tiny, [2], 4), brute_force_kcenter(tiny, [2], 4))


def test_torch_path_equals_numpy_path():
    # The CUDA code path (torch ops and the torch brute-force search), run on CPU.
    rng = np.random.default_rng(3)
    features = (rng.normal(size=(900, 40)) + 5).astype(np.float32)
    labelled = rng.choice(900, 12, replace=False)
    ops = kcenter_module._TorchOps(torch.device("cpu"))
    state = kcenter_module._State(torch.from_numpy(features), ops)
    picks = kcenter_module._run(state, labelled, 80, seed=0, progress=False)
    np.testing.assert_array_equal(picks, kcenter_greedy(features, labelled, 80))


def test_ambiguous_nearest_centres_fall_back_to_exact_search():
    # The origin is equidistant from 8 labelled centres (+-e_i): more ties than the search's k.
    dim = 4
    centres = np.concatenate([np.eye(dim), -np.eye(dim)]).astype(np.float32)
    rng = np.random.default_rng(0)
    others = rng.normal(scale=3, size=(60, dim)).astype(np.float32)
    features = np.concatenate([centres, np.zeros((1, dim), np.float32), others])
    labelled = np.arange(2 * dim)
    picks = kcenter_greedy(features, labelled, 30)
    np.testing.assert_array_equal(picks, brute_force_kcenter(features, labelled, 30))


def test_duplicates_are_fine_and_picks_stay_distinct():
    base = np.random.default_rng(1).normal(size=(30, 6)).astype(np.float32)
    features = np.concatenate([base] * 4)  # every row four times
    labelled = [0, 30, 60, 1]  # duplicates inside the labelled set too
    picks = kcenter_greedy(features, labelled, len(features) - len(labelled))
    assert len(set(picks.tolist())) == len(picks)
    assert not set(picks.tolist()) & set(labelled)
    # The distinct vectors not yet labelled come first, one copy each, as in the textbook.
    distinct = picks[:28] % 30
    assert sorted(distinct.tolist()) == [i for i in range(30) if i not in (0, 1)]
    np.testing.assert_array_equal(picks[:28], textbook_kcenter(features, labelled, 28))


def test_beats_random_picks_on_the_kcenter_objective():
    features = clustered(n_clusters=30, per_cluster=20, dim=16, seed=4)
    rng = np.random.default_rng(0)
    labelled = rng.choice(len(features), 3, replace=False)
    budget = 30
    greedy = coverage_radius(features, np.concatenate([labelled, kcenter_greedy(features, labelled, budget)]))
    unlabelled = np.setdiff1d(np.arange(len(features)), labelled)
    random = [
        coverage_radius(features, np.concatenate([labelled, rng.choice(unlabelled, budget, replace=False)]))
        for _ in range(20)
    ]
    assert greedy < min(random)


def test_accepts_float64_and_torch_inputs():
    features = np.random.default_rng(2).normal(size=(200, 6))
    expected = kcenter_greedy(features.astype(np.float32), [1, 2], 15)
    np.testing.assert_array_equal(kcenter_greedy(features, [1, 2], 15), expected)
    np.testing.assert_array_equal(kcenter_greedy(torch.from_numpy(features), torch.tensor([1, 2]), 15), expected)


def test_budget_zero_and_full_pool():
    features = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    assert kcenter_greedy(features, [0], 0).shape == (0,)
    picks = kcenter_greedy(features, [0, 5], 18)
    assert sorted(picks.tolist()) == [i for i in range(20) if i not in (0, 5)]


@pytest.mark.parametrize(
    "features, labelled, budget, message",
    [
        (np.zeros((5, 2, 2)), [], 1, "2-D"),
        (np.zeros((5, 0)), [], 1, "at least one column"),
        (np.zeros((5, 2)), [0, 5], 1, r"\[0, 5\)"),
        (np.zeros((5, 2)), [-1], 1, r"\[0, 5\)"),
        (np.zeros((5, 2)), [1, 1], 1, "distinct"),
        (np.zeros((5, 2)), [0.5], 1, "integer"),
        (np.zeros((5, 2)), [0], 5, "between 0 and the 4"),
        (np.zeros((5, 2)), [], -1, "between 0 and the 5"),
        (np.zeros((5, 2)), [], 1.0, "integer"),
    ],
)
def test_bad_arguments_raise_config_error(features, labelled, budget, message):
    with pytest.raises(ConfigError, match=message):
        kcenter_greedy(features, labelled, budget)


def test_non_finite_features_raise_data_error():
    features = np.ones((10, 3), np.float32)
    features[4, 1] = np.nan
    with pytest.raises(DataError, match=r"rows \[4\]"):
        kcenter_greedy(features, [0], 2)


def test_resource_error_before_allocating():
    features = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    needed = kcenter_memory_bytes(100, 4, 1, 5)
    with pytest.raises(ResourceError, match="kcenter_greedy on 100 x 4"):
        kcenter_greedy(features, [0], 5, memory_limit=needed - 1)
    assert len(kcenter_greedy(features, [0], 5, memory_limit=needed)) == 5
    with pytest.raises(ConfigError, match="memory_limit"):
        kcenter_greedy(features, [0], 5, memory_limit=-3)


def test_resource_error_on_a_pool_too_large_for_this_machine():
    # A broadcast view: 10^9 x 512 rows that take no memory until converted.
    huge = np.broadcast_to(np.zeros(512, np.float32), (10**9, 512))
    with pytest.raises(ResourceError, match=r"needs about .* GiB"):
        kcenter_greedy(huge, [0], 10)


def test_memory_estimate_is_linear_in_points_and_counts_a_conversion_copy():
    base = kcenter_memory_bytes(1_000_000, 128, 1000, 10_000)
    double = kcenter_memory_bytes(2_000_000, 128, 1000, 10_000)
    per_point = double - base
    assert 0 < per_point < 1_000_000 * 128 * 4  # O(N) extra, far below another copy of the features
    assert kcenter_memory_bytes(1_000_000, 128, 1000, 10_000, copies_features=True) - base == 1_000_000 * 128 * 4
    # What the 1,000,000 x 128 benchmark needs beyond its features fits well under 3 GB.
    assert base < 1 * 2**30


def test_unknown_device_raises_config_error():
    with pytest.raises(ConfigError, match="device"):
        kcenter_greedy(np.zeros((4, 2), np.float32), [], 1, device="tpu")


# Threading: a run is single-threaded (contention-robust, issue 14).


def _thread_counts() -> dict[str, int]:
    """Threads of torch's intra-op pool and of every BLAS / OpenMP pool loaded in the process."""
    from threadpoolctl import threadpool_info

    return {"torch": torch.get_num_threads(), **{info["filepath"]: info["num_threads"] for info in threadpool_info()}}


@pytest.fixture
def two_threads():
    """Every thread pool at two threads during the test, so a limit to one is visible; restored after."""
    import importlib

    from threadpoolctl import threadpool_limits

    importlib.import_module("faiss")  # loaded before the snapshot, so its pools are listed too
    previous = torch.get_num_threads()
    with threadpool_limits(limits=2):
        torch.set_num_threads(2)
        try:
            yield _thread_counts()
        finally:
            torch.set_num_threads(previous)


def _record_threads(monkeypatch) -> dict[str, list]:
    """Wrap the one-off work and the per-pick update to record the thread counts they run with."""
    seen: dict[str, list] = {"state": [], "initial": [], "picks": []}
    state_class, initial_minima = kcenter_module._State, kcenter_module._initial_minima
    add_pick = kcenter_module._add_pick

    def state(x, ops):
        seen["state"].append(_thread_counts())
        return state_class(x, ops)

    def initial(state, labelled):
        seen["initial"].append(_thread_counts())
        initial_minima(state, labelled)

    def pick(state, row):
        if len(seen["picks"]) < 3:
            seen["picks"].append(_thread_counts())
        add_pick(state, row)

    monkeypatch.setattr(kcenter_module, "_State", state)
    monkeypatch.setattr(kcenter_module, "_initial_minima", initial)
    monkeypatch.setattr(kcenter_module, "_add_pick", pick)
    return seen


def _single(counts: list[dict]) -> bool:
    return bool(counts) and all(set(c.values()) == {1} for c in counts)


@pytest.mark.parametrize("with_labelled", [True, False])
def test_run_is_single_threaded_and_thread_pools_are_restored(monkeypatch, two_threads, with_labelled):
    before = two_threads
    assert before["torch"] == 2
    seen = _record_threads(monkeypatch)
    features = clustered(12, 30, 16, seed=4)
    labelled = [0, 5, 70] if with_labelled else []
    kcenter_greedy(features, labelled, 25)
    assert len(seen["picks"]) == 3 and _single(seen["picks"]) and _single(seen["state"])
    assert _single(seen["initial"]) if with_labelled else seen["initial"] == []
    assert _thread_counts() == before


def test_loop_only_limit_leaves_the_one_off_work_its_threads(monkeypatch, two_threads):
    # _THREADS None, _PICK_THREADS 1: the intermediate setting bench_contention.py compares.
    monkeypatch.setattr(kcenter_module, "_THREADS", None)
    seen = _record_threads(monkeypatch)
    kcenter_greedy(clustered(12, 30, 16, seed=6), [0, 5, 70], 25)
    assert seen["state"] == [two_threads] and seen["initial"] == [two_threads]
    assert _single(seen["picks"])
    assert _thread_counts() == two_threads


@pytest.mark.parametrize("where", ["_add_pick", "_initial_minima", "_State"])
def test_thread_pools_are_restored_after_an_error(monkeypatch, two_threads, where):
    calls = []

    def failing(*args):
        calls.append(args)
        if where != "_add_pick" or len(calls) == 2:
            assert torch.get_num_threads() == 1
            raise RuntimeError(f"stop in {where}")
        return original(*args)

    original = getattr(kcenter_module, where)
    monkeypatch.setattr(kcenter_module, where, failing)
    with pytest.raises(RuntimeError, match=f"stop in {where}"):
        kcenter_greedy(clustered(12, 30, 16, seed=5), [3], 10)
    assert _thread_counts() == two_threads


def test_thread_limit_restores_even_on_keyboard_interrupt(two_threads):
    with pytest.raises(KeyboardInterrupt):
        with thread_limit(1):
            assert set(_thread_counts().values()) == {1}
            raise KeyboardInterrupt
    assert _thread_counts() == two_threads
    with thread_limit(None):  # None: the pools are left alone
        assert _thread_counts() == two_threads


@pytest.mark.parametrize("with_labelled", [True, False])
def test_picks_are_the_same_without_the_thread_limits(monkeypatch, two_threads, with_labelled):
    rng = np.random.default_rng(21)
    # Wide enough (N x 32 projection, 300-d rows, 30 labelled) that the BLAS and faiss calls would use both threads.
    features = (rng.normal(size=(3000, 300)) + rng.normal(size=(1, 300)) * 3).astype(np.float32)
    labelled = rng.choice(3000, 30, replace=False) if with_labelled else []
    limited = kcenter_greedy(features, labelled, 60, seed=3)
    monkeypatch.setattr(kcenter_module, "_THREADS", None)
    loop_only = kcenter_greedy(features, labelled, 60, seed=3)
    monkeypatch.setattr(kcenter_module, "_PICK_THREADS", None)
    seen = _record_threads(monkeypatch)
    unlimited = kcenter_greedy(features, labelled, 60, seed=3)
    assert seen["picks"][0] == two_threads  # the switches the benchmark uses really leave the pools alone
    np.testing.assert_array_equal(limited, unlimited)
    np.testing.assert_array_equal(limited, loop_only)
    np.testing.assert_array_equal(limited[:20], textbook_kcenter(features, labelled, 20, first=int(limited[0])))
