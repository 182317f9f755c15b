"""The tutorial notebooks, executed as a user runs them: a Jupyter kernel started from the
``tutorials/`` folder, every cell in order (nbclient), with ``ALSEG_TUTORIAL_SMOKE=1`` for
tiny settings. A cell that raises fails the test; the files each notebook promises are
then checked on disk."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
NOTEBOOKS = ["01_quickstart_phantom", "02_your_own_acdc_data", "03_scribbles_dmpls", "04_custom_strategy",
             "05_components"]
REPORT_FILES = ("results.csv", "results.md", "curves.png", "embeddings.png", "overlay.png")


def read_notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(str(TUTORIALS / f"{name}.ipynb"), as_version=4)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def kernel_environment(tmp_path_factory):
    """A ``python3`` kernelspec running this interpreter (it shadows any other ``python3``
    spec, so the notebooks import this checkout's alseg_monai), and the smoke settings."""
    jupyter_path = tmp_path_factory.mktemp("jupyter")
    spec = jupyter_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "alseg_monai tutorials", "language": "python",
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(jupyter_path), os.environ.get("JUPYTER_PATH")])))
        patch.setenv("ALSEG_TUTORIAL_SMOKE", "1")
        patch.delenv("ALSEG_BUNDLE", raising=False)  # the notebooks must find the bundle from tutorials/
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            patch.setenv(variable, "1")
        yield patch


def execute(name: str, work: Path, patch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run every cell of notebook ``name`` with its outputs under ``work``; raises on a failing cell."""
    patch.setenv("ALSEG_TUTORIAL_DIR", str(work))
    notebook = read_notebook(name)
    before = sorted(TUTORIALS.rglob("*"))
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()
    assert sorted(TUTORIALS.rglob("*")) == before, "a notebook wrote into the tutorials folder"
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs)


def has_image(notebook: nbformat.NotebookNode) -> bool:
    return any("image/png" in out.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.outputs)


# What must not leak into committed outputs: this machine's paths and timestamps.
LEAKS = re.compile(r"/work/|/tmp/|/root/|/home/|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_cleared_or_executed_by_make_tutorials_and_settings_first(name):
    # The notebooks are being committed with their outputs (`make tutorials`, issue 25):
    # each is either still cleared or executed top to bottom in one kernel, without
    # errors, execution timestamps or machine paths in its outputs.
    notebook = read_notebook(name)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if any(cell.outputs or cell.execution_count is not None for cell in code):
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), \
            f"{name}: not executed top to bottom in one kernel; run `make tutorials`"
        assert not any(out.output_type == "error" for cell in code for out in cell.outputs), f"{name}: a cell failed"
        assert not any("execution" in cell.metadata for cell in code), f"{name}: execution timestamps committed"
        leaks = sorted({m.group(0) for m in LEAKS.finditer(outputs_text(notebook))})
        assert not leaks, f"{name}: outputs leak {leaks}; run `make tutorials`"
    assert "ALSEG_TUTORIAL_SMOKE" in code[0].source, f"{name}: the first code cell must hold the settings"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    assert notebook.metadata.kernelspec.name == "python3"


def test_readme_lists_every_notebook():
    readme = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    assert sorted(p.stem for p in TUTORIALS.glob("*.ipynb")) == NOTEBOOKS
    assert all(f"{name}.ipynb" in readme for name in NOTEBOOKS)


@pytest.mark.slow
def test_01_quickstart(kernel_environment, tmp_path):
    notebook = execute("01_quickstart_phantom", tmp_path, kernel_environment)
    run = tmp_path / "01_quickstart" / "run"
    for name in REPORT_FILES:
        assert (run / name).stat().st_size > 0, name
    rows = read_rows(run / "results.csv")
    assert sorted((r["strategy"], float(r["budget"])) for r in rows) == [
        ("gcl_coreset", 0.1), ("gcl_coreset", 0.2), ("random", 0.1), ("random", 0.2)]
    text = outputs_text(notebook)
    assert text.count("round done:") == len(rows), "the second (resumed) run must not redo any round"
    assert "identical results.csv" in text and has_image(notebook)


@pytest.mark.slow
def test_02_acdc(kernel_environment, tmp_path):
    notebook = execute("02_your_own_acdc_data", tmp_path, kernel_environment)
    work = tmp_path / "02_acdc"
    assert sorted(p.name for p in (work / "ACDC" / "testing").iterdir()) == ["patient101", "patient102"]
    assert not list((work / "ACDC").rglob("*_scribble.nii.gz")), "scribbles belong in their own folder"
    splits = json.loads((work / "run" / "splits.json").read_text(encoding="utf-8"))
    assert splits == {"train": [f"patient00{k}" for k in range(1, 5)], "val": ["patient081", "patient082"],
                      "test": ["patient101", "patient102"]}, "the bundle must use the paper's layout split"
    assert {r["strategy"] for r in read_rows(work / "run" / "results.csv")} == {"gcl_coreset", "random"}
    assert "wsl4mis_h5 dataset" in outputs_text(notebook)


@pytest.mark.slow
def test_03_scribbles(kernel_environment, tmp_path):
    notebook = execute("03_scribbles_dmpls", tmp_path, kernel_environment)
    rows = {r["strategy"]: r for r in read_rows(tmp_path / "03_scribbles" / "run" / "results.csv")}
    assert set(rows) == {"gcl_coreset_full", "gcl_coreset_scribble", "random_volumes"}
    scribble = rows["gcl_coreset_scribble"]
    assert scribble["label_kind"] == "scribble"
    # results.csv keeps 6 significant digits
    assert float(scribble["cost"]) == pytest.approx(int(scribble["labelled"]) / 15, rel=1e-5)
    assert float(rows["gcl_coreset_full"]["cost"]) == int(rows["gcl_coreset_full"]["labelled"])
    assert rows["random_volumes"]["unit"] == "volume"
    assert int(rows["random_volumes"]["labelled"]) >= int(rows["gcl_coreset_full"]["labelled"])
    assert "pseudo_dice" in outputs_text(notebook) and has_image(notebook)


@pytest.mark.slow
def test_04_custom_strategy(kernel_environment, tmp_path):
    notebook = execute("04_custom_strategy", tmp_path, kernel_environment)
    work = tmp_path / "04_custom_strategy"
    assert {r["strategy"] for r in read_rows(work / "api_run" / "results.csv")} == {"model_entropy", "random"}
    assert {r["strategy"] for r in read_rows(work / "bundle_run" / "results.csv")} == {"model_entropy"}
    assert (work / "my_strategies.py").is_file() and (work / "my_strategy.json").is_file()
    assert "replayed round 1: the same" in outputs_text(notebook)
    assert "bundle run = API run" in outputs_text(notebook)
    assert "returned repeated ids" in outputs_text(notebook)
    assert has_image(notebook)


@pytest.mark.slow
def test_05_components(kernel_environment, tmp_path):
    notebook = execute("05_components", tmp_path, kernel_environment)
    work = tmp_path / "05_components"
    run = work / "run"
    components = json.loads((work / "my_components.json").read_text(encoding="utf-8"))
    assert components["network_def"]["_target_"] == "monai.networks.nets.SegResNet"
    assert components["loss"]["_target_"] == "DiceFocalLoss"
    rows = read_rows(run / "results.csv")
    assert sorted((r["strategy"], float(r["budget"])) for r in rows) == [
        ("coreset", 0.1), ("coreset", 0.2), ("random", 0.1), ("random", 0.2)]
    full = json.loads((run / "settings.json").read_text(encoding="utf-8"))["trainers"]["full"]
    assert full["network_def"]["factory"] == "monai.networks.nets.segresnet.SegResNet"
    assert full["loss"]["module"] == "monai.losses.dice.DiceFocalLoss"
    assert any(t["class"].endswith(".RandGaussianNoised") for t in full["train_transforms"]["transforms"])
    # every round's kept model loads strictly into a fresh network built from the notebook's JSON
    import torch

    from alseg_monai.loop import load_config

    config = load_config(["data/phantom.json", "smoke.json", str(work / "my_components.json")])
    make_network = config.get_parsed_content("network_def")
    checkpoints = sorted(run.glob("*/repeat_0/round_*/models/best_model.pt"))
    assert len(checkpoints) == len(rows)
    for checkpoint in checkpoints:
        network = make_network()
        assert type(network).__name__ == "SegResNet"
        network.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
    text = outputs_text(notebook)
    assert text.count("load strictly into a fresh SegResNet") == len(rows)
    assert "different settings for ['trainers']" in text
    assert "the default network refuses it" in text
