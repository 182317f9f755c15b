"""Every strategy on a real (phantom) dataset read from disk through the data layer, with
the project's own UNet as the previous round's network."""

from __future__ import annotations

import pytest
import torch

from alseg_monai.data import SliceCache, make_phantom, read_dataset
from alseg_monai.segmentation.unet import UNet2D
from alseg_monai.selection import SelectionContext, check_selection, get_strategy

BUILT_IN = [
    "random",
    "coreset",
    "gcl_coreset",
    "bald",
    "variance_ratio",
    "stochastic_batches",
    "typiclust",
    "vaal",
    "coregcn",
]

QUICK = {
    "bald": {"num_samples": 3},
    "variance_ratio": {"num_models": 2},
    "stochastic_batches": {"num_models": 2},
    "typiclust": {"min_cluster_size": 1},
    "vaal": {"epochs": 1, "batch_size": 8, "channels": (4, 8), "latent_dim": 4},
    "coregcn": {"epochs": 5, "hidden": 8},
}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = make_phantom(
        tmp_path_factory.mktemp("phantom") / "ACDC", num_patients=2, image_size=32, seed=0, progress=False
    )
    index = read_dataset("acdc", root)
    cache = SliceCache.from_index(index, 32, progress=False)
    return index, cache


def _networks(num_classes: int, channels: int) -> list[torch.nn.Module]:
    nets = []
    for seed in range(2):
        torch.manual_seed(seed)
        nets.append(UNet2D(in_channels=channels, num_classes=num_classes, channels=(4, 8, 16), dropout=(0.1, 0.2, 0.3)))
    return nets


@pytest.mark.parametrize("name", BUILT_IN)
def test_strategy_on_phantom_slices(phantom, name):
    index, cache = phantom
    pool = index.slices
    images = cache.images(pool)
    embeddings = images.reshape(len(images), -1)[:, ::16]  # stands in for GCL embeddings
    labelled = [record["id"] for record in pool[::5]]
    context = SelectionContext(
        pool,
        labelled,
        round=1,
        seed=7,
        num_classes=index.num_classes,
        device="cpu",
        embeddings=lambda: embeddings,
        images=lambda: images,
        models=lambda: _networks(index.num_classes, index.channels),
    )
    picks = get_strategy(name, **QUICK.get(name, {})).select(context, 4)
    assert check_selection(context, picks, 4) == picks
    assert all(pick.startswith(("patient001_", "patient002_")) for pick in picks)
