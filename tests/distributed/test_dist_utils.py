"""alseg_monai.utils.distributed in one process: identities without a process group, argument
errors, and the collective code paths on a real one-rank gloo group."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from alseg_monai import ConfigError, DataError
from alseg_monai import utils as u


def test_without_a_process_group_everything_is_the_single_process_identity():
    assert not u.is_distributed()
    assert (u.rank(), u.world_size(), u.is_main_process()) == (0, 1, True)
    u.barrier()
    obj = {"a": [1, 2]}
    assert u.broadcast_object(obj) is obj
    module = nn.Linear(2, 2)
    assert u.ddp_wrap(module) is module and u.unwrap_model(module) is module
    assert u.broadcast_module(module) is module
    assert u.rank_seed(17) == 17
    assert u.local_device() == torch.device("cpu")
    with u.main_process_first():
        ran = True
    assert ran
    assert u.main_process_only(lambda x: x + 1)(1) == 2


@pytest.mark.parametrize("n, shards", [(0, 2), (1, 3), (7, 2), (10, 3), (10, 10)])
def test_shards_are_contiguous_balanced_and_cover_every_record_once(n, shards):
    blocks = [u.shard_indices(n, shards, k) for k in range(shards)]
    assert np.array_equal(np.concatenate(blocks), np.arange(n))
    sizes = [len(b) for b in blocks]
    assert max(sizes) - min(sizes) <= 1
    assert u.shard_indices(n).tolist() == list(range(n))  # one process holds everything


def test_shard_indices_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="shard=2"):
        u.shard_indices(5, 2, 2)
    with pytest.raises(ConfigError, match="n=-1"):
        u.shard_indices(-1)


def test_gather_rows_puts_rows_in_record_order_and_checks_them():
    local = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert u.gather_rows(local, [0, 1, 2], 3) is local
    np.testing.assert_array_equal(u.gather_rows(local, [2, 0, 1], 3), local[[1, 2, 0]])
    np.testing.assert_array_equal(u.gather_rows(torch.from_numpy(local), [0, 1, 2], 3), local)
    assert u.gather_rows(["c", "a", "b"], [2, 0, 1], 3) == ["a", "b", "c"]
    with pytest.raises(DataError, match=r"2 indices for local rows of shape \(3, 2\)"):
        u.gather_rows(local, [0, 1], 3)
    with pytest.raises(DataError, match="exactly once"):
        u.gather_rows(local, [0, 1, 1], 3)
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        u.gather_rows(local, [0, 1, 3], 3)


def test_local_device_follows_local_rank_on_a_gpu_node(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert u.local_device() == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert u.local_device() == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ConfigError, match="LOCAL_RANK='x'"):
        u.local_device()
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ConfigError, match="2 visible GPU"):
        u.local_device()


def test_init_arguments_are_checked(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert u.init_distributed() == torch.device("cpu") and not u.is_distributed()  # not under torchrun
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    with pytest.raises(ConfigError, match="expected one of"):
        u.init_distributed(backend="tcp")
    with pytest.raises(ConfigError, match="needs CUDA"):
        u.init_distributed(backend="nccl")
    with pytest.raises(ConfigError, match="timeout_minutes"):
        u.init_distributed(timeout_minutes=0)
    assert not u.is_distributed()


def test_collective_paths_on_a_one_rank_group(one_rank_group):
    import ignite.distributed as idist

    assert u.is_distributed() and u.world_size() == 1 and idist.get_world_size() == 1
    assert u.init_distributed() == one_rank_group  # idempotent
    rows = np.random.default_rng(0).random((5, 3))
    np.testing.assert_array_equal(u.gather_rows(rows[[3, 4, 0, 1, 2]], [3, 4, 0, 1, 2], 5), rows)
    flags = u.gather_rows(np.array([True, False]), [1, 0], 2)
    assert flags.dtype == np.bool_ and flags.tolist() == [False, True]
    assert u.gather_rows(np.zeros((0, 4)), [], 0).shape == (0, 4)
    assert u.gather_rows(["b", "a"], [1, 0], 2) == ["a", "b"]
    assert u.broadcast_object([1, "x"]) == [1, "x"] and u.broadcast_object(None) is None
    assert u.main_process_only(lambda x: x + 1)(1) == 2
    with u.main_process_first():
        ran = True
    assert ran
    u.barrier()
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    u.broadcast_module(module)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    wrapped = u.ddp_wrap(module)
    assert isinstance(wrapped, nn.parallel.DistributedDataParallel) and u.unwrap_model(wrapped) is module
    assert u.rank_seed(17) == u.derive_seed(17, "rank", 0) != 17


def test_rank_zero_helpers_follow_ignites_rank(one_rank_group, monkeypatch):
    import ignite.distributed as idist

    monkeypatch.setattr(idist.utils._model, "get_rank", lambda: 1)  # rank 1, as ignite reports it
    assert u.rank() == 1 and not u.is_main_process()
    assert u.main_process_only(lambda: "written")() is None
    assert u.rank_seed(17) == u.derive_seed(17, "rank", 1)
    assert u.shard_indices(5, 2).tolist() == [3, 4]


def test_destroy_returns_to_a_single_process(one_rank_group):
    import ignite.distributed as idist

    u.destroy_distributed()
    assert not u.is_distributed() and idist.get_world_size() == 1
    u.destroy_distributed()  # no-op
