"""Integration with the data layer: the sampler and a training run on phantom ACDC slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from contrastive_data import check_epoch
from ignite.engine import Events

from alseg_monai.contrastive import (
    ContrastiveObjective,
    GroupBatchSampler,
    SimCLREncoder,
    embed,
    load_embeddings,
    save_embeddings,
    train_encoder,
)
from alseg_monai.data import SliceCache, SliceDataset, make_phantom, read_dataset


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = make_phantom(tmp_path_factory.mktemp("phantom") / "ACDC", num_patients=6, image_size=32, seed=1, slices=(4, 6), progress=False)
    index = read_dataset("acdc", root)
    cache = SliceCache(index.volumes, image_size=32, num_classes=index.num_classes, ignore_index=index.ignore_index, progress=False)
    return index, SliceDataset(index.slices, cache, keys=("image",))


@pytest.mark.parametrize("groupings, batch_size", [(("patient", "volume"), 9), (("slice", "volume", "patient"), 8), (("volume",), 8)])
def test_sampler_invariants_on_phantom_records(phantom, groupings, batch_size):
    index, _ = phantom
    records = index.slices
    assert len({r["volume"] for r in records}) == 2 * len({r["patient"] for r in records})  # ED and ES
    sampler = GroupBatchSampler(records, batch_size, groupings=groupings, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) > 0
        check_epoch(records, sampler, batches)


def test_training_on_phantom_slices_lowers_loss_and_writes_embeddings(phantom, tmp_path):
    index, dataset = phantom
    losses = []

    class Record:
        def attach(self, engine):
            engine.add_event_handler(Events.EPOCH_COMPLETED, lambda eng: losses.append(eng.state.metrics["loss"]))

    torch.manual_seed(0)
    encoder = train_encoder(
        dataset, index.slices, tmp_path / "encoder", epochs=5, objective=ContrastiveObjective(),
        encoder=SimCLREncoder(feature_dim=64), lr=2e-3, seed=0, progress=False, handlers=[Record()],
    )
    assert (losses[-1] + losses[-2]) / 2 < 0.95 * losses[0], losses
    features = embed(encoder, dataset, batch_size=16, progress=False)
    assert features.shape == (len(index.slices), 64) and np.isfinite(features).all()
    save_embeddings(tmp_path / "embeddings", [r["id"] for r in index.slices], features)
    ids, loaded = load_embeddings(tmp_path / "embeddings")
    assert ids == [r["id"] for r in index.slices] and np.array_equal(loaded, features)
