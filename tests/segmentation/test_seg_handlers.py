"""Handlers on real ignite engines: validation schedule, best checkpoint, restore, poly decay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import Evaluator
from torch import nn

from alseg_monai.errors import ConfigError
from alseg_monai.segmentation import BestCheckpointSaver, IterationValidationHandler
from alseg_monai.segmentation.handlers import VAL_METRIC, RestoreBestHandler


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
    saver = BestCheckpointSaver(network, tmp_path, trainer)
    RestoreBestHandler(saver, network).attach(trainer)
    with pytest.raises(Exception, match="no checkpoint was saved"):
        run()
    assert saver.best_score is None and saver.best_path is None


@pytest.mark.parametrize("seed", range(6))
def test_best_checkpoint_is_the_earliest_best_score(tmp_path, seed):
    # The rule of the hand-written saver ignite's Checkpoint replaced: strict improvement,
    # so the first of equal best scores; scores on a coarse grid make ties common.
    scores = np.random.default_rng(seed).integers(0, 4, 7).astype(float) / 4
    network = nn.Linear(1, 1)
    validator = ScriptedEvaluator(scores.tolist())
    trainer, run = _trainer(network, 2 * len(scores))
    saver = BestCheckpointSaver(network, tmp_path, trainer)
    saver.attach(validator)
    IterationValidationHandler(2, validator).attach(trainer)
    RestoreBestHandler(saver, network).attach(trainer)
    run()
    best_iteration = 2 * (int(np.argmax(scores)) + 1)  # np.argmax: the first maximum
    assert saver.best_score == scores.max()
    assert [p.name for p in tmp_path.iterdir()] == [f"best_network_{best_iteration}_{VAL_METRIC}={scores.max():.4f}.pt"]
    assert saver.best_path == tmp_path / saver.best_path.name
    assert network.weight.item() == best_iteration


def test_the_default_poly_decay_steps_every_iteration():
    """create_trainer's default schedule: the paper's ``lr (1 - t / T) ** 0.9`` per iteration."""
    from torch.utils.data import DataLoader

    from alseg_monai.segmentation.engines import create_trainer

    network = nn.Conv2d(1, 2, 1)
    batches = [{"image": torch.rand(1, 1, 4, 4), "label": torch.randint(0, 2, (1, 1, 4, 4))}] * 10
    trainer = create_trainer(network, DataLoader(batches, batch_size=None), _mean_loss, iterations=10, amp=False)
    lrs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: lrs.append(trainer.optimizer.param_groups[0]["lr"]))
    trainer.run()
    expected = [0.01 * (1 - t / 10) ** 0.9 for t in range(1, 11)]
    assert lrs == pytest.approx(expected, abs=1e-12)


def _mean_loss(prediction, target):
    return prediction.float().mean()

