"""UntrackedDataset: the segmentation augmentation's items without MetaTensor tracking."""

from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import Dataset, MetaTensor, get_track_meta

from alseg_monai.data import UntrackedDataset
from alseg_monai.data.untracked import untracked_meta

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "slice_active_learning" / "configs"


def _items(n=40):
    rng = np.random.default_rng(0)
    return [{"image": MetaTensor(rng.random((1, 32, 32), dtype=np.float32)),
             "label": MetaTensor(rng.integers(0, 4, (1, 32, 32)))} for _ in range(n)]


def _augmentation(seed):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "active_learning.json"))
    transform = parser.get_parsed_content("train_transforms")
    transform.set_random_state(seed=seed)
    return transform


def test_items_equal_the_tracked_transforms_and_the_flag_is_restored():
    items = _items()
    tracked = Dataset(items, transform=_augmentation(3))
    untracked = UntrackedDataset(items, transform=_augmentation(3))
    for i in range(len(items)):
        a, b = tracked[i], untracked[i]
        for key in ("image", "label"):
            assert torch.equal(torch.as_tensor(a[key]), b[key]) and a[key].dtype == b[key].dtype
        assert not isinstance(b["image"], MetaTensor)  # nothing tracked, nothing to carry
    assert get_track_meta()


def test_the_flag_is_restored_after_an_error():
    def failing(_):
        assert not get_track_meta()
        raise RuntimeError("boom")

    try:
        UntrackedDataset([{"image": torch.zeros(1)}], transform=failing)[0]
    except RuntimeError:
        pass
    assert get_track_meta()
    with untracked_meta():
        assert not get_track_meta()
    assert get_track_meta()


def test_contrastive_views_equal_the_tracked_ones():
    from alseg_monai.contrastive.augment import TwoViewsd

    rng = np.random.default_rng(1)
    items = [{"image": torch.as_tensor(rng.random((1, 32, 32), dtype=np.float32)), "patient": "p"} for _ in range(12)]
    tracked, untracked = Dataset(items, transform=TwoViewsd("image")), UntrackedDataset(items, transform=TwoViewsd("image"))
    # Seeded after construction: MONAI's Dataset wraps a transform in a Compose, which reseeds it.
    tracked.transform.set_random_state(seed=5)
    untracked.transform.set_random_state(seed=5)
    for i in range(len(items)):
        a, b = tracked[i], untracked[i]
        for view in ("view_1", "view_2"):
            assert torch.equal(torch.as_tensor(a[view]), b[view])
