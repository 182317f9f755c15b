"""Handlers on real ignite engines: validation schedule, best checkpoint, restore, poly decay."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import Evaluator
from torch import nn

from alseg_monai.errors import ConfigError
from alseg_monai.segmentation import (
    AtomicDiskSaver,
    BestCheckpointSaver,
    IterationValidationHandler,
    RestoreBestHandler,
    poly_lr_handler,
)
from alseg_monai.segmentation.handlers import VAL_METRIC


class ScriptedEvaluator(Evaluator):
    """A MONAI evaluator whose metric is read from a script, one value per run."""

    def __init__(self, scores):
        super().__init__(device="cpu", val_data_loader=[0], iteration_update=lambda engine, batch: None)
        self.scores = list(scores)
        self.runs = []

        @self.on(Events.EPOCH_COMPLETED)
        def _metric(engine):
            engine.state.metrics[VAL_METRIC] = self.scores[len(self.runs)]
            self.runs.append(engine.state.metrics[VAL_METRIC])


def _trainer(network, iterations):
    def step(engine, batch):
        with torch.no_grad():  # a recognisable change of the weights at every iteration
            network.weight.fill_(float(engine.state.iteration))

    trainer = Engine(step)
    return trainer, lambda: trainer.run(range(iterations), max_epochs=1)


def test_validation_every_interval_and_at_the_end():
    validator = ScriptedEvaluator([0.1] * 10)
    trainer, run = _trainer(nn.Linear(1, 1), 7)
    seen = []
    validator.add_event_handler(Events.STARTED, lambda _: seen.append(trainer.state.iteration))
    IterationValidationHandler(3, validator).attach(trainer)
    run()
    assert seen == [3, 6, 7]


def test_no_duplicate_final_validation():
    validator = ScriptedEvaluator([0.1] * 10)
    trainer, run = _trainer(nn.Linear(1, 1), 6)
    IterationValidationHandler(3, validator).attach(trainer)
    run()
    assert len(validator.runs) == 2
    with pytest.raises(ConfigError, match="val_interval"):
        IterationValidationHandler(0, validator)


def test_best_checkpoint_is_kept_and_restored(tmp_path):
    network = nn.Linear(1, 1)
    validator = ScriptedEvaluator([0.2, 0.5, 0.5, 0.4])
    trainer, run = _trainer(network, 8)
    saver = BestCheckpointSaver(network, tmp_path, trainer)
    saver.attach(validator)
    IterationValidationHandler(2, validator).attach(trainer)
    RestoreBestHandler(saver, network).attach(trainer)
    run()
    assert validator.runs == [0.2, 0.5, 0.5, 0.4]
    assert saver.best_score == 0.5
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [saver.best_path.name] and "_4_" in files[0]  # the first 0.5, at iteration 4
    assert network.weight.item() == 4.0  # restored, not the final weights (8)


def test_restore_without_checkpoint_fails_clearly(tmp_path):
    network = nn.Linear(1, 1)
    trainer, run = _trainer(network, 2)
    RestoreBestHandler(BestCheckpointSaver(network, tmp_path, trainer), network).attach(trainer)
    with pytest.raises(Exception, match="no checkpoint was saved"):
        run()


def test_atomic_disk_saver(tmp_path):
    saver = AtomicDiskSaver(tmp_path / "ckpt")
    saver({"w": torch.ones(2)}, "a.pt")
    assert torch.equal(torch.load(tmp_path / "ckpt" / "a.pt")["w"], torch.ones(2))
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["a.pt"]
    saver.remove("a.pt")
    assert not list((tmp_path / "ckpt").iterdir())


def test_poly_lr_decay_per_iteration():
    network = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01)
    trainer = Engine(lambda engine, batch: optimizer.step())
    poly_lr_handler(optimizer, 10, power=0.9).attach(trainer)
    lrs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: lrs.append(optimizer.param_groups[0]["lr"]))
    trainer.run(range(10), max_epochs=1)
    expected = [0.01 * (1 - t / 10) ** 0.9 for t in range(1, 11)]
    assert lrs == pytest.approx(expected, abs=1e-12)
