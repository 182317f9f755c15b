"""K-Center Greedy's GPU search paths, run on CPU: the faiss adapter for torch blocks (what
a faiss-gpu index runs behind) and the choice between faiss-gpu and the torch search."""

from __future__ import annotations

import faiss
import numpy as np
import torch

from alseg_monai.selection import kcenter as kcenter_module
from alseg_monai.selection import kcenter_greedy


def _problem(seed: int = 3):
    rng = np.random.default_rng(seed)
    features = (rng.normal(size=(700, 24)) + 4).astype(np.float32)
    return features, rng.choice(700, 9, replace=False)


def test_faiss_search_of_torch_blocks_gives_the_cpu_picks(monkeypatch):
    features, labelled = _problem()
    built = []

    def cpu_index(centres: torch.Tensor, device: torch.device):
        index = faiss.IndexFlatL2(centres.shape[1])
        index.add(centres.numpy())
        built.append((tuple(centres.shape), device.type))
        return index, None

    def torch_path_with_faiss(ops, centres, centre_norms, k):
        index, _ = cpu_index(centres, ops.device)
        return kcenter_module._faiss_torch_search(index, k, ops.device)

    monkeypatch.setattr(kcenter_module, "_search_function", torch_path_with_faiss)
    state = kcenter_module._State(torch.from_numpy(features), kcenter_module._TorchOps(torch.device("cpu")))
    picks = kcenter_module._run(state, labelled, 60, seed=0, progress=False)
    assert built == [((9, 24), "cpu")]
    monkeypatch.undo()
    np.testing.assert_array_equal(picks, kcenter_greedy(features, labelled, 60))


def test_cuda_uses_faiss_gpu_when_installed_and_torch_otherwise(monkeypatch):
    centres = torch.from_numpy(_problem()[0][:5])
    norms = (centres.double() ** 2).sum(1)
    cuda_ops = kcenter_module._TorchOps(torch.device("cuda", 1))
    built = []

    def fake_gpu_index(points, device):
        built.append(device)
        index = faiss.IndexFlatL2(points.shape[1])
        index.add(points.numpy())
        return index, "resources"

    monkeypatch.setattr(kcenter_module, "_gpu_flat_index", fake_gpu_index)
    monkeypatch.setattr(kcenter_module, "_faiss_gpus", lambda: 1)
    search = kcenter_module._search_function(cuda_ops, centres, norms, 2)
    assert built == [torch.device("cuda", 1)] and search.gpu_resources == "resources"
    monkeypatch.setattr(kcenter_module, "_faiss_gpus", lambda: 0)
    assert kcenter_module._search_function(cuda_ops, centres, norms, 2).__qualname__.startswith("_torch_search")
    cpu_search = kcenter_module._search_function(kcenter_module._NumpyOps(), centres.numpy(), norms.numpy(), 2)
    assert cpu_search.__qualname__.startswith("_faiss_search") and len(built) == 1
    assert kcenter_module._faiss_gpus() == (faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0)
