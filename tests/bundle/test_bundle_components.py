"""The bundle's components as users change them on the command line
(``python -m monai.bundle run``): a config file that swaps ``network_def`` for MONAI's
BasicUNet, an added key that the config refers to, a misspelt key, and a boolean given
as a string."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from bundle_helpers import run_bundle, tiny_overrides
from monai.networks.nets import BasicUNet

AL = ["active_learning.json", "data/phantom.json", "smoke.json"]
BASIC_UNET_ARGS = {"spatial_dims": 2, "in_channels": 1, "features": [8, 8, 16, 32, 64, 8]}
# The override file, exactly as a user would write it (no "_mode_": one module, copied per model).
BASIC_UNET = {"network_def": {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 2, "in_channels": 1,
                              "out_channels": "@num_classes", "features": [8, 8, 16, 32, 64, 8]}}
NUM_CLASSES = 4  # configs/data/phantom.json
HINT = re.compile(r"^alseg_monai stopped on bad input or settings \(full traceback: .*set ALSEG_TRACEBACK=1\)$")


def basic_unet() -> BasicUNet:
    return BasicUNet(out_channels=NUM_CLASSES, **BASIC_UNET_ARGS)


def write_json(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def printing(*expressions: str) -> list[str]:
    """A ``run`` override that builds the experiment and prints values instead of running it."""
    return [f"$print('VALUES', {', '.join(expressions)})"]


def printed(result) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("VALUES ")]
    assert len(lines) == 1, result.stdout[-3000:] + result.stderr[-3000:]
    return lines[0][len("VALUES "):]


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("components") / "phantom"


@pytest.fixture(scope="module")
def basic_unet_run(phantom_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("basic_unet")
    override = write_json(root / "basic_unet.json", BASIC_UNET)
    output = root / "run"
    result = run_bundle(AL + [str(override)], tiny_overrides(phantom_root, output, strategies=["random"]))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output


@pytest.mark.slow
def test_every_round_keeps_a_basic_unet_state_dict(basic_unet_run):
    checkpoints = sorted(basic_unet_run.glob("random/repeat_0/round_*/models/best_model.pt"))
    assert [p.parents[1].name for p in checkpoints] == ["round_0", "round_1"]
    for path in checkpoints:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network = basic_unet()
        network.load_state_dict(state, strict=True)  # every key, every shape: a BasicUNet's
        # ...and the round's own best-on-validation checkpoint holds the same weights
        best = torch.load(next((path.parent / "model_0").glob("best_*.pt")), map_location="cpu", weights_only=True)
        assert state.keys() == best.keys() and all(torch.equal(state[k], best[k]) for k in state)
        metrics = json.loads((path.parents[1] / "metrics.json").read_text(encoding="utf-8"))
        assert 0.0 <= metrics["dice"] <= 1.0


@pytest.mark.slow
def test_settings_record_the_basic_unet(basic_unet_run):
    settings = json.loads((basic_unet_run / "settings.json").read_text(encoding="utf-8"))
    network = settings["trainers"]["full"]["network_def"]
    assert network["module"] == "monai.networks.nets.basic_unet.BasicUNet"
    assert network["parameters"] == [[name, list(p.shape)] for name, p in basic_unet().named_parameters()]
    # the other label kinds keep their own networks
    assert "DualBranchUNet" in json.dumps(settings["trainers"]["scribble"]["network_def"])
    assert "UNet3D" in json.dumps(settings["trainers"]["volume"]["network_def"])


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_an_added_key_that_the_config_uses_is_accepted(where, phantom_root, tmp_path):
    if where == "command line":
        configs, added = AL, {"base_lr": 0.05, "optimizer#lr": "@base_lr"}
    else:  # 'optimizer_lr' is close to the key 'optimizer', but the config refers to it: not a typo
        added = {"optimizer_lr": 0.05, "optimizer#lr": "@optimizer_lr"}
        configs, added = AL + [str(write_json(tmp_path / "added.json", added))], {}
    overrides = tiny_overrides(phantom_root, tmp_path / "out", strategies=["random"], **added,
                               run=printing("@trainer.optimizer.keywords['lr']",
                                            "@scribble_trainer.optimizer.keywords['lr']"))
    result = run_bundle(configs, overrides, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert printed(result) == "0.05 0.05"
    assert "adds the key" not in result.stdout + result.stderr  # used: no warning either


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_a_misspelt_key_is_named_with_its_close_match(where, phantom_root, tmp_path):
    if where == "command line":
        configs, misspelt = AL, {"network_deff": BASIC_UNET["network_def"]}
    else:
        configs = AL + [str(write_json(tmp_path / "typo.json", {"network_deff": BASIC_UNET["network_def"]}))]
        misspelt = {}
    output = tmp_path / "out"
    result = run_bundle(configs, tiny_overrides(phantom_root, output, strategies=["random"], **misspelt),
                        timeout=300, env={"ALSEG_TRACEBACK": ""})
    assert result.returncode != 0
    last = result.stderr.rstrip("\n").splitlines()[-2:]
    assert HINT.match(last[0]), result.stderr[-3000:]
    assert last[1].startswith("ConfigError: unknown config key 'network_deff' "), result.stderr[-3000:]
    assert "'network_deff' is not a key of the top level" in last[1]
    assert "did you mean 'network_def'" in last[1]
    if where == "config file":
        assert str(tmp_path / "typo.json") in last[1]
    assert "Traceback" not in result.stderr
    assert not output.exists()  # refused before the run started


@pytest.mark.parametrize("text, value", [("false", False), ("true", True)])
def test_a_boolean_given_as_a_string_on_the_command_line(text, value, phantom_root, tmp_path):
    """``--progress false`` reaches the config as the string "false" (fire reads only
    ``False`` as a boolean): every component that takes ``progress`` reads it as a boolean."""
    run = ["$@experiment.prepare()"] + printing("@experiment.progress", "@trainer.progress",
                                                "@scribble_trainer.progress", "@volume_trainer.progress")
    overrides = tiny_overrides(phantom_root, tmp_path / "out", strategies=["random"], progress=text, run=run)
    result = run_bundle(AL, overrides, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert printed(result) == " ".join([str(value)] * 4)
    assert (tmp_path / "out" / "splits.json").is_file()  # prepared: the data were read and cached
