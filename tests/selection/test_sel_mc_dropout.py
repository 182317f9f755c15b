"""MC dropout and ensemble inference: BatchNorm frozen, dropout on, no augmentation,
streaming scores equal to the whole-tensor scores, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sel_helpers import TinySegNet, synthetic_images
from torch import nn

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.selection import (
    bald_score,
    bottleneck_features,
    ensemble_entropy,
    ensemble_variance_ratio,
    mc_dropout_bald,
)
from alseg_monai.selection.inference import class_probabilities
from alseg_monai.selection.mc_dropout import mc_dropout_mode
from alseg_monai.selection.scores import entropy_score, variance_ratio_score


def _trained_like(seed: int = 0) -> TinySegNet:
    # Give BatchNorm non-trivial running statistics, as after training.
    model = TinySegNet(seed=seed)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(synthetic_images(8, seed=seed + 10)))
    model.inputs.clear()
    return model


def test_mc_dropout_mode_keeps_batchnorm_in_eval_and_dropout_active():
    model = _trained_like()
    x = torch.from_numpy(synthetic_images(4))
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    with mc_dropout_mode(model):
        first, second = model(x), model(x)
        assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
        assert all(m.training for m in model.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d)))
    assert not torch.allclose(first, second)
    for key, value in stats.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.training  # the mode it had before is restored


def test_mc_dropout_mode_needs_dropout():
    with pytest.raises(ConfigError, match="no dropout layer"):
        with mc_dropout_mode(nn.Sequential(nn.Conv2d(1, 2, 1))):
            pass


def test_streamed_bald_equals_bald_of_stacked_samples_and_sees_no_augmentation():
    model = _trained_like()
    images = synthetic_images(10)
    rows = np.array([7, 1, 4, 9, 2])
    streamed = mc_dropout_bald(model, images, rows, num_samples=6, batch_size=2, seed=5)
    # Every pass saw exactly the requested slices, unaugmented: 3 batches x 6 passes.
    assert len(model.inputs) == 18
    for i, x in enumerate(model.inputs):
        batch = i // 6
        np.testing.assert_array_equal(x.numpy(), images[rows[2 * batch : 2 * batch + 2]])
    # Replay the same dropout masks on stacked samples: same seed, same order of passes.
    torch.manual_seed(5)
    stacked = []
    with mc_dropout_mode(model):
        for start in range(0, len(rows), 2):
            x = torch.from_numpy(images[rows[start : start + 2]])
            stacked.append(torch.stack([class_probabilities(model, x).double() for _ in range(6)]))
    np.testing.assert_allclose(streamed, bald_score(torch.cat(stacked, dim=1)).numpy(), atol=1e-10)


def test_bald_is_deterministic_under_a_seed_and_leaves_the_global_rng_alone():
    model = _trained_like()
    images = synthetic_images(6)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = mc_dropout_bald(model, images, num_samples=4, seed=1)
    assert torch.equal(torch.rand(1), before)
    assert np.array_equal(first, mc_dropout_bald(model, images, num_samples=4, seed=1))
    assert not np.array_equal(first, mc_dropout_bald(model, images, num_samples=4, seed=2))
    assert np.all(first > 0)


def test_ensemble_scores_equal_whole_tensor_scores():
    models = [_trained_like(seed) for seed in range(3)]
    images = synthetic_images(7)
    x = torch.from_numpy(images)
    with torch.no_grad():
        for m in models:
            m.eval()
        probs = torch.stack([class_probabilities(m, x) for m in models])
    np.testing.assert_allclose(
        ensemble_variance_ratio(models, images, batch_size=3), variance_ratio_score(probs).numpy()
    )
    np.testing.assert_allclose(
        ensemble_entropy(models, images, batch_size=3), entropy_score(probs.mean(0)).numpy(), rtol=1e-5
    )
    # Eval mode throughout: scoring twice gives the same values (dropout off).
    np.testing.assert_array_equal(ensemble_entropy(models, images), ensemble_entropy(models, images))


def test_dual_branch_output_contributes_its_main_branch():
    class DualBranch(TinySegNet):
        def forward(self, x):
            main = super().forward(x)
            return main, -main

    model = DualBranch()
    model.eval()
    x = torch.from_numpy(synthetic_images(2))
    expected = torch.softmax(TinySegNet.forward(model, x), dim=1)
    torch.testing.assert_close(class_probabilities(model, x), expected)


def test_wrong_network_output_raises_data_error():
    with pytest.raises(DataError, match=r"expected \(B, C, H, W\) logits"):
        class_probabilities(nn.Flatten(), torch.zeros(2, 1, 4, 4))


def test_bottleneck_features_shape_and_rows():
    model = _trained_like()
    images = synthetic_images(9)
    features = bottleneck_features(model, images, rows=np.array([8, 0, 3]), batch_size=2)
    assert features.shape == (3, 16) and features.dtype == np.float32
    np.testing.assert_allclose(features[1], bottleneck_features(model, images[:1])[0], rtol=1e-5)
    with pytest.raises(DataError, match="bottleneck_features"):
        bottleneck_features(nn.Conv2d(1, 2, 1), images)
