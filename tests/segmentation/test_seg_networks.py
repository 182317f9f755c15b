"""Networks: output shapes, DMPLS branches, bottleneck features, the factory and local weight loading."""

from __future__ import annotations

import pytest
import torch

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.segmentation import DualBranchUNet, ResNet50UNet, UNet2D, UNet3D
from alseg_monai.segmentation.networks import NETWORKS, get_network
from alseg_monai.segmentation.resnet_unet import load_pretrained_weights

SMALL = {"channels": (4, 8, 16, 32, 64), "dropout": (0.05, 0.1, 0.2, 0.3, 0.5)}


@pytest.mark.parametrize("size", [(32, 32), (48, 40), (37, 29)])
def test_unet2d_shapes(size):
    network = UNet2D(in_channels=2, num_classes=3, **SMALL)
    x = torch.rand(3, 2, *size)
    assert network(x).shape == (3, 3, *size)
    assert network.bottleneck_features(x).shape == (3, 64)


def test_unet2d_paper_configuration():
    network = UNet2D()
    widths = [block[0].conv.out_channels for block in network.encoder.blocks]
    assert widths == [16, 32, 64, 128, 256]
    rates = [block[0].adn.D.p for block in network.encoder.blocks]
    assert rates == pytest.approx([0.05, 0.1, 0.2, 0.3, 0.5])
    assert network(torch.rand(2, 1, 64, 64)).shape == (2, 4, 64, 64)


def test_dual_branch_train_returns_pair_eval_returns_main():
    torch.manual_seed(0)
    network = DualBranchUNet(in_channels=1, num_classes=4, **SMALL)
    x = torch.rand(2, 1, 32, 32)
    main, aux = network.train()(x)
    assert main.shape == aux.shape == (2, 4, 32, 32)
    assert not torch.allclose(main, aux)  # separate decoders, dropout on the aux features
    network.eval()
    out = network(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 32, 32)
    assert torch.allclose(out, network.decoder(network.encoder(x)))
    assert network.bottleneck_features(x).shape == (2, 64)


def test_unet3d_shapes_and_size_check():
    network = UNet3D(in_channels=1, num_classes=4, channels=(4, 8, 16), strides=((2, 2, 1), (2, 2, 1)),
                     num_res_units=1)
    assert network(torch.rand(1, 1, 16, 12, 7)).shape == (1, 4, 16, 12, 7)
    with pytest.raises(DataError, match=r"\(4, 4, 1\)"):
        network(torch.rand(1, 1, 18, 16, 5))
    with pytest.raises(ConfigError, match="strides"):
        UNet3D(channels=(4, 8, 16), strides=((2, 2, 1),))


def test_shape_errors_print_the_shape():
    network = UNet2D(in_channels=1, **SMALL)
    with pytest.raises(DataError, match=r"\(2, 3, 32, 32\)"):
        network(torch.rand(2, 3, 32, 32))
    with pytest.raises(DataError, match="minimum 16"):
        network(torch.rand(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="dropout"):
        UNet2D(channels=(4, 8), dropout=(0.1,))


def test_get_network_by_name():
    assert set(NETWORKS) == {"unet", "dmpls", "unet3d", "resnet50_unet"}
    assert isinstance(get_network("dmpls", num_classes=3, **SMALL), DualBranchUNet)
    with pytest.raises(ConfigError, match="unknown name 'vnet'"):
        get_network("vnet")
    with pytest.raises(ConfigError, match="invalid arguments"):
        get_network("unet", depth=3)


@pytest.fixture(scope="module")
def resnet_unet():
    torch.manual_seed(0)
    return ResNet50UNet(in_channels=1, num_classes=3)


def test_resnet50_unet_shapes(resnet_unet):
    x = torch.rand(2, 1, 64, 48)
    assert resnet_unet(x).shape == (2, 3, 64, 48)
    assert resnet_unet.bottleneck_features(x).shape == (2, 2048)


def test_resnet50_unet_loads_a_whole_network_file(resnet_unet, tmp_path):
    path = tmp_path / "net.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet_unet.state_dict().items()}}, path)
    torch.manual_seed(1)
    loaded = ResNet50UNet(in_channels=1, num_classes=3, weights_path=path)
    for key, value in resnet_unet.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_resnet50_unet_loads_an_rgb_encoder_file(resnet_unet, tmp_path):
    encoder = {k: v.clone() for k, v in resnet_unet.encoder.state_dict().items()}
    rgb = encoder["conv1.weight"].repeat(1, 3, 1, 1) / 3  # an ImageNet-style 3-channel stem
    encoder["conv1.weight"] = rgb
    encoder["fc.weight"], encoder["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = tmp_path / "encoder.pth"
    torch.save(encoder, path)
    loaded = ResNet50UNet(in_channels=1, num_classes=3, weights_path=path)
    assert torch.allclose(loaded.encoder.conv1.weight, rgb.sum(dim=1, keepdim=True))
    assert torch.equal(loaded.encoder.layer4[2].conv3.weight, resnet_unet.encoder.layer4[2].conv3.weight)


def test_resnet50_unet_rejects_bad_files(resnet_unet, tmp_path):
    with pytest.raises(DataError, match="file not found"):
        ResNet50UNet(weights_path=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable"):
        ResNet50UNet(weights_path=garbage)
    wrong = tmp_path / "wrong.pt"
    torch.save(UNet2D(**SMALL).state_dict(), wrong)
    with pytest.raises(DataError, match="keys do not match.*missing"):
        load_pretrained_weights(resnet_unet, wrong)
    other_classes = tmp_path / "five_classes.pt"
    torch.save(ResNet50UNet(num_classes=5).state_dict(), other_classes)
    with pytest.raises(DataError, match="shape mismatches 2"):
        load_pretrained_weights(resnet_unet, other_classes)
