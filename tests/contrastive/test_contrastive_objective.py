"""ContrastiveObjective (paper Eq. 5) and the batch group ids it reads."""

from __future__ import annotations

import pytest
import torch
from contrastive_data import PhantomSlices, make_records

from alseg_monai.contrastive import (
    ContrastiveObjective,
    GroupBatchSampler,
    GroupNTXentLoss,
    SimCLREncoder,
)
from alseg_monai.contrastive.groups import batch_group_ids
from alseg_monai.contrastive.trainer import build_contrastive_loader
from alseg_monai.errors import ConfigError, DataError


def test_group_ids_follow_records_and_layout():
    roles = ("anchor", "adjacent", "volume", "patient")
    patients = ["a", "a", "a", "a", "b", "b", "b", "b"]
    volumes = ["a1", "a1", "a1", "a2", "b2", "b2", "b2", "b1"]
    ids = batch_group_ids(patients, volumes, roles)
    assert ids["patient"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert ids["volume"].tolist() == [0, 0, 0, 1, 3, 3, 3, 2]
    # anchor + adjacent share a slice group; the volume and patient members are alone.
    assert ids["slice"].tolist() == [0, 0, 2, 3, 4, 4, 6, 7]
    no_adjacent = batch_group_ids(patients[:6], volumes[:6], ("anchor", "volume", "patient"))
    assert no_adjacent["slice"].tolist() == list(range(6))


def test_group_ids_reject_bad_layouts():
    with pytest.raises(DataError, match="whole number of groups"):
        batch_group_ids(["a"] * 5, ["v"] * 5, ("anchor", "volume"))
    with pytest.raises(DataError, match="roles"):
        batch_group_ids(["a"] * 4, ["v"] * 4, ("volume", "anchor"))
    with pytest.raises(DataError, match="volumes"):
        batch_group_ids(["a"] * 4, ["v"] * 3, ("anchor", "volume"))


def test_total_is_the_weighted_sum_of_group_losses():
    gen = torch.Generator().manual_seed(0)
    z, z_aug = torch.randn(8, 16, generator=gen), torch.randn(8, 16, generator=gen)
    ids = batch_group_ids(list("aaaabbbb"), ["a1", "a1", "a1", "a2", "b1", "b1", "b2", "b2"], ("anchor", "adjacent", "volume", "patient"))
    objective = ContrastiveObjective(ntxent_weight=1.0, patient_weight=0.1, volume_weight=0.35, slice_weight=0.2, temperature=0.3)
    out = objective(z, z_aug, **ids)
    loss = GroupNTXentLoss(0.3)
    own = torch.arange(8)
    expected = {
        "ntxent": loss(z, z_aug, own, own),
        "patient": loss(z, z_aug, ids["patient"], ids["patient"]),
        "volume": loss(z, z_aug, ids["volume"], ids["patient"]),
        "slice": loss(z, z_aug, ids["slice"], ids["patient"]),
    }
    for name, value in expected.items():
        assert out[name].item() == pytest.approx(value.item(), rel=1e-6)
    total = expected["ntxent"] + 0.1 * expected["patient"] + 0.35 * expected["volume"] + 0.2 * expected["slice"]
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    assert len({round(out[n].item(), 5) for n in expected}) == 4


def test_zero_weight_terms_are_skipped_and_settings_checked():
    objective = ContrastiveObjective()
    assert objective.active_terms == ("ntxent", "patient", "volume")
    z = torch.randn(6, 4)
    out = objective(z, z + 0.1, torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 0, 1, 2, 2, 3]))
    assert set(out) == {"loss", "ntxent", "patient", "volume"}
    with pytest.raises(DataError, match="slice"):
        ContrastiveObjective(slice_weight=1.0)(z, z, torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ConfigError, match=">= 0"):
        ContrastiveObjective(volume_weight=-1.0)
    with pytest.raises(ConfigError, match="at least one"):
        ContrastiveObjective(0, 0, 0, 0)


def test_gradients_reach_every_encoder_parameter():
    records = make_records(num_patients=3, volumes_per_patient=2, slices_per_volume=3)
    sampler = GroupBatchSampler(records, 9, groupings=("patient", "volume"), seed=0)
    loader = build_contrastive_loader(PhantomSlices(records, size=32), sampler, seed=0)
    batch = next(iter(loader))
    torch.manual_seed(0)
    encoder = SimCLREncoder(feature_dim=64)
    x = torch.cat([batch["view_1"], batch["view_2"]])
    z, z_aug = encoder(x).chunk(2)
    out = ContrastiveObjective()(z, z_aug, **batch_group_ids(batch["patient"], batch["volume"], sampler.roles))
    out["loss"].backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
