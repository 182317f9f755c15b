"""GroupNTXentLoss (paper Eq. 4) against MONAI's NT-Xent and a literal double loop."""

from __future__ import annotations

import math

import pytest
import torch
from monai.losses import ContrastiveLoss

from alseg_monai.contrastive import GroupNTXentLoss
from alseg_monai.contrastive.loss import group_masks
from alseg_monai.errors import ConfigError, DataError


def literal_eq4(z, z_aug, groups, patients, temperature, augmented_anchors=False):
    """Eq. 4 written out: loops over anchors i, positives j and denominator terms k."""
    reps = torch.cat([z, z_aug]).double()
    n = z.shape[0]
    g = [int(v) for v in groups] * 2
    p = [int(v) for v in patients] * 2

    def sim(a, b):
        return float(torch.dot(reps[a], reps[b]) / (reps[a].norm() * reps[b].norm())) / temperature

    anchors = range(n, 2 * n) if augmented_anchors else range(n)
    partners = range(n) if augmented_anchors else range(n, 2 * n)
    terms = []
    for i in anchors:
        denominator = sum(math.exp(sim(i, k)) for k in range(2 * n) if k != i and (g[k] == g[i] or p[k] != p[i]))
        for j in partners:
            if g[j] == g[i]:
                terms.append(-math.log(math.exp(sim(i, j)) / denominator))
    return sum(terms) / len(terms)


GROUPINGS = {
    # name: (groups, patients) for N = 8
    "identity": ([0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7]),
    "pairs_same_patient": ([0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 1, 1, 2, 2, 3, 3]),
    "volumes_within_patients": ([0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 0, 0, 1, 1, 1, 1]),
    "uneven_groups": ([5, 5, 5, 9, 9, 2, 7, 7], [1, 1, 1, 1, 3, 3, 4, 4]),
    "singletons_shared_patient": ([0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 1, 1, 2, 2, 2]),
}


@pytest.mark.parametrize("name", sorted(GROUPINGS))
@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_matches_literal_double_loop_both_directions(name, temperature):
    gen = torch.Generator().manual_seed(len(name))
    z, z_aug = torch.randn(8, 16, generator=gen, dtype=torch.float64), torch.randn(8, 16, generator=gen, dtype=torch.float64)
    groups, patients = (torch.tensor(v) for v in GROUPINGS[name])
    forward = literal_eq4(z, z_aug, groups, patients, temperature)
    backward = literal_eq4(z, z_aug, groups, patients, temperature, augmented_anchors=True)
    one_way = GroupNTXentLoss(temperature, symmetric=False)(z, z_aug, groups, patients)
    both = GroupNTXentLoss(temperature, symmetric=True)(z, z_aug, groups, patients)
    assert one_way.item() == pytest.approx(forward, rel=1e-10, abs=1e-10)
    assert both.item() == pytest.approx(0.5 * (forward + backward), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("n", [1, 2, 7, 16])
@pytest.mark.parametrize("temperature", [0.5, 0.2, 1.0])
def test_identity_groups_equal_monai_ntxent(n, temperature):
    gen = torch.Generator().manual_seed(n)
    z, z_aug = torch.randn(n, 64, generator=gen), torch.randn(n, 64, generator=gen)
    ids = torch.arange(n)
    ours = GroupNTXentLoss(temperature)(z, z_aug, ids, ids)
    monai = ContrastiveLoss(temperature=temperature)(z, z_aug)
    assert ours.item() == pytest.approx(monai.item(), abs=1e-5)


def test_different_groupings_give_different_losses():
    # The original code's positive mask started from all ones, making every group loss equal.
    gen = torch.Generator().manual_seed(0)
    z, z_aug = torch.randn(8, 32, generator=gen), torch.randn(8, 32, generator=gen)
    loss = GroupNTXentLoss(0.5)
    values = {name: loss(z, z_aug, torch.tensor(g), torch.tensor(p)).item() for name, (g, p) in GROUPINGS.items()}
    rounded = {round(v, 6) for v in values.values()}
    assert len(rounded) == len(values), values
    # With every slice its own patient the denominators agree, so only the positives can differ.
    own_patient = torch.arange(8)
    groupings = ([0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 0, 0, 1, 1, 1, 1])
    by_groups = [loss(z, z_aug, torch.tensor(g), own_patient).item() for g in groupings]
    assert len({round(v, 6) for v in by_groups}) == 3, by_groups


def test_masks_follow_eq4():
    groups, patients = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 0, 1])
    positive, allowed = group_masks(groups, patients)
    n = 4
    for i in range(2 * n):
        for k in range(2 * n):
            gi, gk, pi, pk = groups[i % n], groups[k % n], patients[i % n], patients[k % n]
            assert bool(positive[i, k]) == ((i < n) != (k < n) and bool(gi == gk))
            assert bool(allowed[i, k]) == (i != k and bool(gi == gk or pi != pk))
    # Slice 2 (patient 0, group 1) never sees slices 0, 1 (patient 0, group 0) in its denominator.
    assert not allowed[2, [0, 1, 4, 5]].any()


def test_finite_at_low_temperature_and_large_norms():
    gen = torch.Generator().manual_seed(1)
    z = (1e4 * torch.randn(16, 64, generator=gen)).requires_grad_()
    z_aug = (1e4 * torch.randn(16, 64, generator=gen)).requires_grad_()
    groups = torch.arange(16) // 2
    value = GroupNTXentLoss(temperature=0.05)(z, z_aug, groups, groups // 2)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(z.grad).all() and torch.isfinite(z_aug.grad).all()


def test_half_precision_inputs_are_computed_in_float32():
    gen = torch.Generator().manual_seed(2)
    z, z_aug = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    ids = torch.arange(6)
    full = GroupNTXentLoss(0.05)(z, z_aug, ids, ids)
    half = GroupNTXentLoss(0.05)(z.half(), z_aug.half(), ids, ids)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), rel=1e-2)


def test_shape_errors_print_shapes():
    loss = GroupNTXentLoss()
    z = torch.randn(4, 8)
    with pytest.raises(DataError, match=r"\(4, 8\).*\(3, 8\)"):
        loss(z, torch.randn(3, 8), torch.arange(4), torch.arange(4))
    with pytest.raises(DataError, match=r"groups must have shape \(4,\).*\(5,\)"):
        loss(z, z, torch.arange(5), torch.arange(4))
    with pytest.raises(DataError, match="integer"):
        loss(z, z, torch.arange(4).float(), torch.arange(4))
    with pytest.raises(DataError, match=r"\(4, 8, 1\)"):
        loss(z[..., None], z[..., None], torch.arange(4), torch.arange(4))


def test_temperature_must_be_positive():
    with pytest.raises(ConfigError, match="temperature"):
        GroupNTXentLoss(temperature=0.0)
