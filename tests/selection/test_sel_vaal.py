"""VAAL: discriminator targets (labelled -> 1, unlabelled -> 0; the original code inverted
them), the slices it picks, and its networks' shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sel_helpers import pool_records

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.selection import SelectionContext, get_strategy
from alseg_monai.selection.vaal import VAAL, VAALDiscriminator, discriminator_loss, train_vaal, vaal_scores


def test_discriminator_loss_targets_labelled_one_unlabelled_zero():
    labelled, unlabelled = torch.tensor([2.0, 1.0]), torch.tensor([-1.5, 0.5])
    expected = F.binary_cross_entropy(torch.sigmoid(labelled), torch.ones(2)) + F.binary_cross_entropy(
        torch.sigmoid(unlabelled), torch.zeros(2)
    )
    torch.testing.assert_close(discriminator_loss(labelled, unlabelled), expected)
    confident_right = discriminator_loss(torch.full((4,), 5.0), torch.full((4,), -5.0))
    confident_wrong = discriminator_loss(torch.full((4,), -5.0), torch.full((4,), 5.0))
    assert confident_right < 0.1 < 10 < confident_wrong


def _two_mode_pool(n: int = 20, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2n disc slices then n stripe slices; the first n discs are labelled."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (np.hypot(yy - size / 2, xx - size / 2) < size / 3).astype(np.float32)
    stripes = ((xx // 2) % 2).astype(np.float32)
    discs = disc * rng.uniform(0.8, 1, (2 * n, 1, 1, 1)) + 0.05 * rng.normal(size=(2 * n, 1, size, size))
    striped = stripes * rng.uniform(0.8, 1, (n, 1, 1, 1)) + 0.05 * rng.normal(size=(n, 1, size, size))
    return np.concatenate([discs, striped]).astype(np.float32), np.arange(n)


@pytest.mark.parametrize("seed", [0, 1])
def test_picks_the_unlabelled_slices_least_like_the_labelled_ones(seed):
    # Labelled slices are all discs; the unlabelled ones are discs and stripes. A
    # discriminator trained with the right targets calls stripes "unlabelled" (lowest
    # output) and VAAL picks them; with the original inverted targets it picks discs.
    images, labelled = _two_mode_pool()
    pool = pool_records(len(images))
    context = SelectionContext(pool, [pool[i]["id"] for i in labelled], round=1, seed=seed, images=lambda: images)
    settings = dict(epochs=16, batch_size=16, channels=(8, 16), latent_dim=8)  # 60 x 16 / 16 = 60 iterations
    picks = get_strategy("vaal", **settings).select(context, 5)
    assert set(picks) <= {pool[i]["id"] for i in range(40, 60)}


def test_discriminator_ranks_labelled_above_unlabelled_of_their_kind_above_the_rest():
    images, labelled = _two_mode_pool()
    unlabelled = np.arange(20, 60)
    vae, discriminator = train_vaal(
        images, labelled, unlabelled, 60, seed=3, channels=(8, 16), latent_dim=8, batch_size=16
    )
    scores = vaal_scores(vae, discriminator, images, np.arange(60))
    assert scores[:20].mean() > scores[20:40].mean() > scores[40:].mean()


def test_networks_shapes():
    vae = VAAL(in_channels=2, image_size=32, latent_dim=6, channels=(4, 8, 8))
    recon, z, mu, logvar = vae(torch.randn(3, 2, 32, 32))
    assert recon.shape == (3, 2, 32, 32) and z.shape == mu.shape == logvar.shape == (3, 6)
    assert VAALDiscriminator(6)(mu).shape == (3,)
    with pytest.raises(DataError, match=r"expected \(B, C, 32, 32\)"):
        vae(torch.randn(3, 2, 16, 16))
    with pytest.raises(ConfigError, match="multiple of 2\\*\\*3"):
        VAAL(in_channels=1, image_size=20, channels=(4, 8, 8))


def test_image_size_resizes_slices_for_vaal():
    images, labelled = _two_mode_pool(n=4, size=18)
    pool = pool_records(len(images))
    context = SelectionContext(pool, [pool[i]["id"] for i in labelled], round=1, images=lambda: images)
    settings = dict(epochs=1, batch_size=4, channels=(4, 4), latent_dim=4)
    with pytest.raises(ConfigError, match="set vaal.image_size"):
        get_strategy("vaal", **settings).select(context, 2)
    assert len(get_strategy("vaal", image_size=16, **settings).select(context, 2)) == 2


def test_first_round_without_labels_is_random():
    images, _ = _two_mode_pool(n=4)
    pool = pool_records(len(images))
    context = SelectionContext(pool, [], seed=3, images=lambda: images)
    strategy = get_strategy("vaal")
    expected = strategy.rng(context, "first_round").choice(np.arange(len(pool)), 3, replace=False)
    assert strategy.select(context, 3) == [pool[i]["id"] for i in expected]
