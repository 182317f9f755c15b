"""SimCLREncoder: shapes, projection head, and loading weights from local files."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import resnet18

from alseg_monai.contrastive import SimCLREncoder
from alseg_monai.errors import ConfigError, DataError


def test_shapes_and_paper_head():
    encoder = SimCLREncoder()
    x = torch.rand(3, 1, 64, 64)
    assert encoder.features(x).shape == (3, 512)
    assert encoder(x).shape == (3, 64)
    first, act, second = encoder.projection
    assert (first.in_features, first.out_features, first.bias) == (512, 512, None)
    assert isinstance(act, torch.nn.ReLU)
    assert (second.in_features, second.out_features, second.bias) == (512, 64, None)
    assert encoder.backbone.conv1.stride == (2, 2) and encoder.backbone.conv1.in_channels == 1


def test_three_channels_and_narrow_variant():
    encoder = SimCLREncoder(in_channels=3, feature_dim=64, projection_dim=16)
    x = torch.rand(2, 3, 32, 32)
    assert encoder.features(x).shape == (2, 64) and encoder(x).shape == (2, 16)
    with pytest.raises(DataError, match=r"\(B, 3, H, W\).*\(2, 1, 32, 32\)"):
        encoder(torch.rand(2, 1, 32, 32))
    with pytest.raises(ConfigError, match="feature_dim"):
        SimCLREncoder(feature_dim=100)


def test_round_trip_of_own_weights_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    source = SimCLREncoder(feature_dim=64)
    torch.save(source.state_dict(), tmp_path / "encoder.pt")
    torch.save({"model": source.state_dict(), "optimizer": {}}, tmp_path / "checkpoint.pt")
    x = torch.rand(2, 1, 32, 32)
    source.eval()
    for name in ("encoder.pt", "checkpoint.pt"):
        loaded = SimCLREncoder(feature_dim=64, weights_path=tmp_path / name).eval()
        assert torch.equal(loaded(x), source(x))


def test_backbone_only_weights_with_rgb_first_conv(tmp_path):
    torch.manual_seed(1)
    # torchvision-style ResNet-18 weights: 3-channel conv1 and an fc layer.
    rgb = resnet18(spatial_dims=2, n_input_channels=3, conv1_t_stride=2, bias_downsample=False, num_classes=1000)
    torch.save(rgb.state_dict(), tmp_path / "resnet18.pt")
    torch.manual_seed(2)
    encoder = SimCLREncoder()
    head = {k: v.clone() for k, v in encoder.projection.state_dict().items()}
    encoder.load_weights(tmp_path / "resnet18.pt")
    assert torch.allclose(encoder.backbone.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(encoder.backbone.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert all(torch.equal(v, encoder.projection.state_dict()[k]) for k, v in head.items())


def test_mismatched_or_missing_weights_raise(tmp_path):
    torch.save(SimCLREncoder(feature_dim=64).state_dict(), tmp_path / "narrow.pt")
    with pytest.raises(DataError, match=r"narrow\.pt.*shape mismatches.*backbone\.conv1\.weight"):
        SimCLREncoder(feature_dim=128, weights_path=tmp_path / "narrow.pt")
    state = SimCLREncoder(feature_dim=64).state_dict()
    del state["projection.2.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(DataError, match=r"missing \['projection\.2\.weight'\]"):
        SimCLREncoder(feature_dim=64, weights_path=tmp_path / "partial.pt")
    with pytest.raises(DataError, match="absent.pt"):
        SimCLREncoder(weights_path=tmp_path / "absent.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="expected a state dict"):
        SimCLREncoder(weights_path=tmp_path / "list.pt")
