"""The segmentation round's distributed pieces in one process: the reshuffle at every data
pass, the DistributedSampler of the training loader, and rank-0 checkpoint writing."""

from __future__ import annotations

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from ignite.handlers import DiskSaver
from torch.utils.data import DataLoader, DistributedSampler

from alseg_monai.segmentation import SupervisedSegLoss, UNet2D
from alseg_monai.segmentation.engines import create_trainer
from alseg_monai.segmentation.handlers import ReshuffleHandler
from alseg_monai.segmentation.trainer import create_train_loader


def _orders(reshuffle: bool) -> list[list[int]]:
    data = list(range(8))
    sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=3)
    orders: list[list[int]] = []
    engine = Engine(lambda _, batch: orders.append(batch.tolist()))
    if reshuffle:
        ReshuffleHandler(sampler).attach(engine)
    engine.run(DataLoader(data, batch_size=4, sampler=sampler), max_epochs=1, epoch_length=4)
    return orders


def test_reshuffle_handler_draws_a_new_order_at_every_data_pass():
    assert len({tuple(o) for o in _orders(reshuffle=False)}) == 1  # what a one-epoch round would repeat
    orders = _orders(reshuffle=True)
    assert len(orders) == 4 and len({tuple(o) for o in orders}) > 1


def test_distributed_round_loader_reshuffles_and_only_rank_zero_saves(one_rank_group, tmp_path, monkeypatch):
    items = [{"image": torch.rand(1, 8, 8), "label": torch.randint(0, 2, (1, 8, 8))} for _ in range(4)]
    loader = create_train_loader(items, None, batch_size=2, seed=1)
    assert isinstance(loader.sampler, DistributedSampler) and loader.sampler.num_replicas == 1
    network = UNet2D(in_channels=1, num_classes=2, channels=(2, 4), dropout=(0.0, 0.0))
    trainer = create_trainer(network, loader, SupervisedSegLoss(), iterations=6)
    trainer.run()
    assert loader.sampler.epoch == 3  # MONAI's epoch 1, then two restarts of the loader

    # The checkpoint writer of BestCheckpointSaver (segmentation/handlers.py).
    DiskSaver(tmp_path / "rank0", atomic=True, require_empty=False)({"w": torch.ones(1)}, "c.pt")
    monkeypatch.setattr(idist.utils._model, "get_rank", lambda: 1)  # rank 1, as ignite reports it
    DiskSaver(tmp_path / "rank1", atomic=True, require_empty=False)({"w": torch.ones(1)}, "c.pt")
    assert (tmp_path / "rank0/c.pt").is_file() and not (tmp_path / "rank1").exists()
