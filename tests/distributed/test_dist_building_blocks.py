"""The distributed building blocks with two real ranks (torchrun, gloo, CPU): collectives,
sharded embedding and scoring, DDP encoder training with resume, a DDP segmentation round
with sharded validation, sharded test evaluation, and rank-0-only writes.

One torchrun launch runs every block (a launch costs seconds of imports); the tests
compare its per-rank results with each other and with single-process computations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from dist_child import perturb_batchnorm, pool_images, scoring_networks, state_checksum, toy_segmentation, toy_slices
from dist_helpers import rank_writes, torchrun, write_script

from alseg_monai.contrastive import SimCLREncoder, embed
from alseg_monai.evaluation import evaluate_volumes
from alseg_monai.segmentation import UNet2D
from alseg_monai.selection import (
    SelectionContext,
    bottleneck_features,
    ensemble_entropy,
    ensemble_variance_ratio,
    get_strategy,
)

pytestmark = pytest.mark.slow

ROWS = [9, 0, 3, 7, 1, 10, 4, 6, 2]
NETWORK = {"channels": (8, 16, 32), "dropout": (0.1, 0.2, 0.3)}
# Enough to learn the discs (validation Dice well above 0), so the score depends on the weights.
SEGMENTATION = {"num_classes": 2, "iterations": 20, "batch_size": 2, "num_models": 2, "val_interval": 10, "seed": 5,
                "augment": False, "lr": 0.05, "network_kwargs": NETWORK}

CHILD = '''
import copy, json, sys
from pathlib import Path

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Events
from torch import nn

from dist_child import (install_write_audit, perturb_batchnorm, pool_images, scoring_networks, state_checksum,
                        toy_segmentation, toy_slices)
from alseg_monai import utils as u
from alseg_monai.contrastive import SimCLREncoder, embed, train_encoder
from alseg_monai.errors import DataError
from alseg_monai.evaluation import evaluate_volumes
from alseg_monai.segmentation import train_round
from alseg_monai.segmentation.engines import create_evaluator
from alseg_monai.selection import (SelectionContext, bottleneck_features, ensemble_entropy, ensemble_variance_ratio,
                                   get_strategy, mc_dropout_bald)

out, runs = Path(sys.argv[1]), Path(sys.argv[1]) / "runs"
install_write_audit(runs, out)
u.init_distributed()
rank = u.rank()
result = {"rank": rank, "world_size": u.world_size()}

# collectives
n = 7
share = u.shard_indices(n)
table = np.arange(n * 3, dtype=np.float64).reshape(n, 3) ** 1.5
result["share"] = share.tolist()
result["gathered"] = u.gather_rows(table[share], share, n).tolist()
result["flags"] = u.gather_rows(table[share, 0] > 5, share, n).tolist()
result["ids"] = u.gather_rows([f"s{i}" for i in share], share, n)
one = u.shard_indices(1)
result["one_record"] = u.gather_rows(np.full((len(one), 2), 3.0, np.float32), one, 1).tolist()
# The rank without a record sends a (0, 0) float64 placeholder, as evaluate_volumes and embed do.
padded = u.gather_rows(np.full((1, 3), 7, np.int32) if len(one) else np.zeros((0, 0)), one, 1)
result["placeholder"] = [padded.tolist(), padded.dtype.str]
result["sum"] = idist.all_reduce(torch.tensor([1.0, float(rank)])).tolist()  # the group is registered with ignite
result["broadcast"] = u.broadcast_object({"from": rank})
try:
    u.gather_rows(np.zeros((1, 2)), np.array([0]), 2)
    result["overlap_error"] = None
except DataError as err:
    result["overlap_error"] = str(err)
marker = runs / "first.txt"
with u.main_process_first():
    if u.is_main_process():
        runs.mkdir(parents=True, exist_ok=True)
        marker.write_text("written by rank 0")
    result["saw_rank0_file"] = marker.is_file()
torch.manual_seed(100 + rank)
module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
module(torch.randn(5, 3))
result["module_before"] = state_checksum(module)
u.broadcast_module(module)
result["module_after"] = state_checksum(module)

# sharded scoring and selection
images, rows = pool_images(), np.array(%(rows)s)
nets = scoring_networks()
np.save(out / f"variance_ratio_{rank}.npy", ensemble_variance_ratio(nets, images, rows, batch_size=2))
np.save(out / f"entropy_{rank}.npy", ensemble_entropy(nets, images, rows, batch_size=2))
np.save(out / f"bottleneck_{rank}.npy", bottleneck_features(nets[0], images, rows, batch_size=2))
np.save(out / f"bald_{rank}.npy", mc_dropout_bald(nets[0], images, rows, num_samples=3, batch_size=2, seed=4))
pool = [{"id": f"s{i}"} for i in range(len(images))]
context = SelectionContext(pool, ["s5", "s8"], round=1, seed=3, models=lambda: nets, images=lambda: images)
result["variance_ratio_picks"] = list(get_strategy("variance_ratio", num_models=3, batch_size=2).select(context, 3))

# sharded embedding
torch.manual_seed(0)
encoder = SimCLREncoder(in_channels=1)
records, items = toy_slices()
np.save(out / f"embeddings_{rank}.npy", embed(encoder, items, batch_size=4, progress=False))

# DDP encoder training, then a resumed second epoch
batches, starts = [], []
class Record:
    def attach(self, engine):
        engine.add_event_handler(Events.STARTED, lambda e: starts.append(e.state.epoch))
        engine.add_event_handler(Events.ITERATION_COMPLETED,
                                 lambda e: batches.append([e.state.epoch, list(e.state.batch["id"])]))
first = train_encoder(items, records, runs / "encoder", epochs=1, seed=0, progress=False, handlers=[Record()])
result["encoder_epoch_1"] = state_checksum(first)
second = train_encoder(items, records, runs / "encoder", epochs=2, seed=0, progress=False, handlers=[Record()])
result["encoder_epoch_2"] = state_checksum(second)
result["encoder_batches"], result["encoder_starts"] = batches, starts

# DDP segmentation round, sharded validation and test evaluation
train, volumes = toy_segmentation()
seg = train_round(train, volumes, runs / "segmentation", **%(segmentation)s)
result["round_val_dice"] = seg.val_dice
result["round_best_index"] = seg.best_index
result["round_model"] = state_checksum(seg.model)
test = evaluate_volumes(seg.model, volumes, 2, csv_path=runs / "segmentation" / "test_dice.csv")
result["test_ids"], result["test_scores"] = test.ids, test.scores.tolist()
# A validator given rank-dependent BatchNorm statistics must still score rank 0's model.
probe = copy.deepcopy(seg.model)
perturb_batchnorm(probe, 1 + 3 * rank)
validator = create_evaluator(probe, volumes, 2)
validator.run()
result["probe_dice"] = validator.state.metrics["val_mean_dice"]

(out / f"result_{rank}.json").write_text(json.dumps(result))
u.destroy_distributed()
'''


@pytest.fixture(scope="module")
def launch(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("blocks")
    script = write_script(out, "child.py", CHILD % {"rows": ROWS, "segmentation": SEGMENTATION})
    torchrun([str(script), str(out)], timeout=600)
    return out


@pytest.fixture(scope="module")
def results(launch) -> list[dict]:
    return [json.loads((launch / f"result_{rank}.json").read_text(encoding="utf-8")) for rank in (0, 1)]


def test_collectives_reassemble_rows_in_record_order(results):
    n = 7
    table = np.arange(n * 3, dtype=np.float64).reshape(n, 3) ** 1.5
    assert results[0]["share"] + results[1]["share"] == list(range(n))
    for result in results:
        assert result["world_size"] == 2
        np.testing.assert_array_equal(result["gathered"], table)
        assert result["flags"] == (table[:, 0] > 5).tolist()
        assert result["ids"] == [f"s{i}" for i in range(n)]
        assert result["one_record"] == [[3.0, 3.0]]  # one rank had no row
        assert result["placeholder"] == [[[7, 7, 7]], np.dtype(np.int32).str]
        assert result["sum"] == [2.0, 1.0]
        assert result["broadcast"] == {"from": 0}
        assert "exactly once" in result["overlap_error"]
    assert results[1]["saw_rank0_file"]


def test_broadcast_module_leaves_every_rank_with_rank_zeros_model(results):
    assert results[0]["module_before"] != results[1]["module_before"]
    assert results[0]["module_after"] == results[1]["module_after"] == results[0]["module_before"]


def test_sharded_scores_equal_single_process_scores(launch):
    images, rows = pool_images(), np.array(ROWS)
    nets = scoring_networks()
    expected = {
        "variance_ratio": ensemble_variance_ratio(nets, images, rows, batch_size=2),
        "entropy": ensemble_entropy(nets, images, rows, batch_size=2),
        "bottleneck": bottleneck_features(nets[0], images, rows, batch_size=2),
    }
    for name, reference in expected.items():
        for rank in (0, 1):
            np.testing.assert_allclose(np.load(launch / f"{name}_{rank}.npy"), reference, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} on rank {rank}")
    bald = [np.load(launch / f"bald_{rank}.npy") for rank in (0, 1)]
    assert bald[0].shape == (len(ROWS),) and np.isfinite(bald[0]).all()
    np.testing.assert_array_equal(bald[0], bald[1])


def test_strategy_picks_agree_across_ranks_and_with_one_process(results):
    images, nets = pool_images(), scoring_networks()
    pool = [{"id": f"s{i}"} for i in range(len(images))]
    context = SelectionContext(pool, ["s5", "s8"], round=1, seed=3, models=lambda: nets, images=lambda: images)
    single = list(get_strategy("variance_ratio", num_models=3, batch_size=2).select(context, 3))
    assert results[0]["variance_ratio_picks"] == results[1]["variance_ratio_picks"] == single


def test_sharded_embeddings_equal_single_process_embeddings(launch):
    torch.manual_seed(0)
    encoder = SimCLREncoder(in_channels=1)
    _, items = toy_slices()
    reference = embed(encoder, items, batch_size=4, progress=False)
    for rank in (0, 1):
        gathered = np.load(launch / f"embeddings_{rank}.npy")
        assert gathered.shape == (len(items), 512)
        np.testing.assert_allclose(gathered, reference, rtol=1e-4, atol=1e-5)


def test_ddp_encoder_ranks_agree_train_disjoint_batches_and_resume(launch, results):
    for key in ("encoder_epoch_1", "encoder_epoch_2"):
        assert results[0][key] == results[1][key], key
    assert results[0]["encoder_epoch_1"] != results[0]["encoder_epoch_2"]
    # The second call resumed from rank 0's epoch-1 checkpoint on both ranks.
    assert results[0]["encoder_starts"] == results[1]["encoder_starts"] == [0, 1]
    saved = SimCLREncoder(in_channels=1)
    saved.load_state_dict(torch.load(launch / "runs/encoder/encoder.pt", weights_only=True))
    assert state_checksum(saved) == results[0]["encoder_epoch_2"]
    for epoch in (1, 2):
        # Batches are groups (anchor, volume member, patient member); each anchor is used once per epoch.
        anchors = [{i for e, ids in r["encoder_batches"] if e == epoch for i in ids[::3]} for r in results]
        assert anchors[0] and anchors[1] and not anchors[0] & anchors[1], f"epoch {epoch}: ranks shared anchors"


def test_ddp_round_keeps_one_model_validated_on_all_volumes(launch, results):
    assert results[0]["round_val_dice"] == results[1]["round_val_dice"]
    assert results[0]["round_best_index"] == results[1]["round_best_index"]
    assert results[0]["round_model"] == results[1]["round_model"]
    model = UNet2D(in_channels=1, num_classes=2, **NETWORK)
    model.load_state_dict(torch.load(launch / "runs/segmentation/best_model.pt", weights_only=True))
    assert state_checksum(model) == results[0]["round_model"]
    _, volumes = toy_segmentation()
    single = evaluate_volumes(model, volumes, 2)
    # The all-reduced validation score of the kept model is the score over every volume.
    best = results[0]["round_val_dice"][results[0]["round_best_index"]]
    assert best > 0.2
    assert best == pytest.approx(single.mean_dice, abs=1e-6)
    for result in results:
        assert result["test_ids"] == single.ids
        np.testing.assert_allclose(result["test_scores"], single.scores, atol=1e-9)
        assert result["probe_dice"] == pytest.approx(single.mean_dice, abs=1e-6)
    perturb_batchnorm(model, 4)
    assert evaluate_volumes(model, volumes, 2).mean_dice != pytest.approx(single.mean_dice, abs=1e-3)


def test_only_rank_zero_writes(launch):
    assert rank_writes(launch, 1) == []
    written = {Path(path).relative_to(launch / "runs").as_posix() for _, path in rank_writes(launch, 0)}
    for name in ("first.txt", "encoder/encoder.pt", "encoder/checkpoint_2.pt", "segmentation/best_model.pt",
                 "segmentation/round_summary.json", "segmentation/test_dice.csv"):
        assert name in written, name
