"""A two-rank active-learning experiment through the Python API (torchrun, gloo, CPU):
both ranks select the same slices, rank 0's files are the only ones written, and the
picks equal those of a single process given the same embeddings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from dist_helpers import HERE, rank_writes, torchrun, write_script
from experiments import tiny_experiment

from alseg_monai.contrastive import embed
from alseg_monai.data import SliceDataset, make_phantom
from alseg_monai.loop import load_state
from alseg_monai.utils.fresh import build_network

pytestmark = pytest.mark.slow

# Bundle keys over tests/experiments.py's tiny settings (32 x 32 slices, budgets 0.1 and 0.2).
SETTINGS = {
    "seed": 3, "evaluation#bootstrap": 20,
    "segmentation#iterations_scale": 50, "segmentation#min_iterations": 6, "segmentation#models_per_round": 2,
    "segmentation#val_interval": 3, "segmentation#batch_size": 4,
}
STRATEGIES = ("gcl_coreset", "variance_ratio")

CHILD = '''
import json, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, %(tests)r)  # tests/experiments.py
from dist_child import install_write_audit
from experiments import tiny_experiment
from alseg_monai import utils as u
from alseg_monai.selection import get_strategy

out, phantom = Path(sys.argv[1]), sys.argv[2]
install_write_audit(out / "run", out)
u.init_distributed()

picks = []
class Recording:
    """A strategy recording what this rank selected, before the loop broadcasts rank 0's picks."""
    def __init__(self, name):
        self.inner = get_strategy(name)
        self.min_models = getattr(self.inner, "min_models", 0)
        self.name = name
    def select(self, context, budget):
        ids = list(self.inner.select(context, budget))
        picks.append([self.name, context.round, ids, sorted(context.labelled)])
        return ids

class ByRank:
    """A strategy whose picks depend on the rank: the loop must train every rank on rank 0's."""
    def select(self, context, budget):
        rng = np.random.default_rng([u.rank(), context.round])
        ids = [context.ids[i] for i in rng.choice(context.unlabelled_indices, budget, replace=False)]
        picks.append(["by_rank", context.round, ids, sorted(context.labelled)])
        return ids

settings = json.loads(%(settings)r)
strategies = [{"name": name, "strategy": Recording(name)} for name in %(strategies)r]
strategies.append({"name": "by_rank", "strategy": ByRank()})
experiment = tiny_experiment(phantom, out / "run", strategies=strategies, **settings)
rows = experiment.run()
np.save(out / f"embeddings_{u.rank()}.npy", experiment.embeddings())
(out / f"result_{u.rank()}.json").write_text(json.dumps({"rows": rows, "picks": picks}, default=str))
u.destroy_distributed()
'''


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("phantom"), 6, image_size=32, seed=1, progress=False)


@pytest.fixture(scope="module")
def launch(phantom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("experiment")
    script = write_script(out, "child.py", CHILD % {"settings": json.dumps(SETTINGS), "strategies": STRATEGIES,
                                                    "tests": str(HERE.parent)})
    torchrun([str(script), str(out), str(phantom)], timeout=600)
    return out


@pytest.fixture(scope="module")
def results(launch) -> list[dict]:
    return [json.loads((launch / f"result_{rank}.json").read_text(encoding="utf-8")) for rank in (0, 1)]


def selection(run: Path, strategy: str, round_index: int) -> dict:
    return json.loads((run / strategy / "repeat_0" / f"round_{round_index}" / "selection.json").read_text(encoding="utf-8"))


def test_ranks_select_the_same_slices_and_record_the_same_rounds(launch, results):
    picks = [[p for p in r["picks"] if p[0] in STRATEGIES] for r in results]
    assert picks[0] == picks[1]
    assert [(name, k) for name, k, _, _ in picks[0]] == [(s, k) for s in STRATEGIES for k in (0, 1)]
    for name, round_index, ids, _ in picks[0]:
        assert selection(launch / "run", name, round_index)["added"] == ids
    assert results[0]["rows"] == results[1]["rows"]
    names = [*STRATEGIES, "by_rank"]
    assert [(r["strategy"], r["round"]) for r in results[0]["rows"]] == [(s, k) for s in names for k in (0, 1)]


def test_every_rank_trains_on_rank_zeros_picks(launch, results):
    own = [{k: (ids, labelled) for name, k, ids, labelled in r["picks"] if name == "by_rank"} for r in results]
    assert own[0][0][0] != own[1][0][0]  # the ranks' own picks differ...
    written = selection(launch / "run", "by_rank", 0)["added"]
    assert written == own[0][0][0]
    assert own[0][1][1] == own[1][1][1] == sorted(written)  # ...but both went on with rank 0's


def test_only_rank_zero_wrote_files_and_the_report_once(launch):
    assert rank_writes(launch, 1) == []
    renamed = [Path(p).relative_to(launch / "run").as_posix() for event, p in rank_writes(launch, 0)
               if event == "os.rename"]
    assert renamed.count("results.csv") == 1
    for name in ("settings.json", "splits.json", "encoder/encoder.pt", "encoder/embeddings.npy",
                 "gcl_coreset/repeat_0/round_1/metrics.json", "variance_ratio/repeat_0/round_1/models/best_model.pt"):
        assert name in renamed, name


def test_gathered_embeddings_equal_one_process_embedding_with_the_saved_encoder(launch, phantom, tmp_path):
    gathered = [np.load(launch / f"embeddings_{rank}.npy") for rank in (0, 1)]
    np.testing.assert_array_equal(gathered[0], gathered[1])
    np.testing.assert_array_equal(gathered[0], np.load(launch / "run/encoder/embeddings.npy"))
    experiment = tiny_experiment(phantom, tmp_path / "single", strategies=["random"], **SETTINGS)
    experiment.prepare()
    encoder = build_network(experiment.encoder_spec("gcl").network, 0)  # the run's encoder_def
    encoder.load_state_dict(torch.load(launch / "run/encoder/encoder.pt", weights_only=True))
    reference = embed(encoder, SliceDataset(experiment.pool, experiment.cache, keys=("image",)), progress=False)
    np.testing.assert_allclose(gathered[0], reference, rtol=1e-4, atol=1e-5)


def test_two_rank_picks_equal_single_process_picks_given_the_same_embeddings(launch, phantom, tmp_path):
    single = tmp_path / "single"
    (single / "encoder").mkdir(parents=True)
    for name in ("embeddings.npy", "embedding_ids.json"):
        shutil.copy(launch / "run/encoder" / name, single / "encoder" / name)
    settings = {**SETTINGS, "segmentation#models_per_round": 1, "experiment#report": False}
    experiment = tiny_experiment(phantom, single, strategies=["gcl_coreset"], **settings)
    rows = experiment.run()
    for round_index in (0, 1):
        assert selection(single, "gcl_coreset", round_index) == selection(launch / "run", "gcl_coreset", round_index)
    # The sharded test evaluation of the two-rank run equals one process scoring its kept model.
    metrics = json.loads((launch / "run/gcl_coreset/repeat_0/round_1/metrics.json").read_text(encoding="utf-8"))
    model = load_state(experiment.trainers["full"].build(),  # the run's network_def
                       launch / "run/gcl_coreset/repeat_0/round_1/models/best_model.pt")
    assert experiment.evaluate_model(model, None).mean_dice == pytest.approx(metrics["dice"], abs=1e-9)
    assert len(rows) == 2
