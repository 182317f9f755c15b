"""train_encoder: a real ignite run on tiny slices lowers the loss, checkpoints and resumes."""

from __future__ import annotations

import tempfile

import pytest
import torch
from contrastive_data import PhantomSlices, make_records
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from alseg_monai.contrastive import (
    ContrastiveObjective,
    GroupBatchSampler,
    SimCLREncoder,
    train_encoder,
)
from alseg_monai.contrastive.handlers import ResumableDiskSaver, SetEpochHandler, latest_checkpoint
from alseg_monai.contrastive.trainer import build_contrastive_loader, create_contrastive_trainer
from alseg_monai.errors import ConfigError, DataError
from alseg_monai.utils import clean_stale_temp_files


class EpochLosses:
    """Collects the epoch means of the loss terms."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda eng: self.epochs.append(dict(eng.state.metrics)))


class CrashAt:
    """Raises at one iteration, as a killed process would stop."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED(once=self.iteration), self._crash)

    def _crash(self, engine) -> None:
        raise KeyboardInterrupt("simulated kill")


def small_encoder(seed: int = 0) -> SimCLREncoder:
    torch.manual_seed(seed)
    return SimCLREncoder(feature_dim=64)


@pytest.fixture(scope="module")
def data():
    records = make_records(num_patients=6, volumes_per_patient=2, slices_per_volume=4)
    return records, PhantomSlices(records, size=32)


def test_short_training_lowers_the_loss(tmp_path, data):
    records, dataset = data
    losses = EpochLosses()
    objective = ContrastiveObjective(slice_weight=0.2)
    encoder = train_encoder(
        dataset, records, tmp_path, epochs=6, groupings=("slice", "volume", "patient"), objective=objective,
        encoder=small_encoder(), lr=2e-3, progress=False, handlers=[losses],
    )
    assert len(losses.epochs) == 6
    assert set(losses.epochs[0]) == {"loss", "ntxent", "patient", "volume", "slice"}
    first, last = losses.epochs[0]["loss"], (losses.epochs[-1]["loss"] + losses.epochs[-2]["loss"]) / 2
    assert last < 0.95 * first, [e["loss"] for e in losses.epochs]
    assert not encoder.training
    saved = SimCLREncoder(feature_dim=64, weights_path=tmp_path / "encoder.pt")
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in encoder.state_dict().items())
    assert any((tmp_path / "tensorboard").iterdir())


def test_killed_run_resumes_to_the_same_weights(tmp_path, data):
    records, dataset = data
    common = dict(epochs=2, encoder=None, progress=False, seed=3)
    straight = train_encoder(dataset, records, tmp_path / "straight", **{**common, "encoder": small_encoder()})
    per_epoch = len(records) // 3
    with pytest.raises(KeyboardInterrupt):
        train_encoder(dataset, records, tmp_path / "killed", **{**common, "encoder": small_encoder()}, handlers=[CrashAt(per_epoch + 3)])
    assert latest_checkpoint(tmp_path / "killed").name == "checkpoint_1.pt"
    losses = EpochLosses()
    resumed = train_encoder(dataset, records, tmp_path / "killed", **{**common, "encoder": small_encoder(seed=99)}, handlers=[losses])
    assert len(losses.epochs) == 1  # only the second epoch ran again
    for key, value in straight.state_dict().items():
        assert torch.allclose(value.float(), resumed.state_dict()[key].float(), atol=1e-6), key
    assert sorted(p.name for p in (tmp_path / "killed").glob("checkpoint_*.pt")) == ["checkpoint_1.pt", "checkpoint_2.pt"]


def test_resume_after_a_kill_between_removing_the_old_checkpoint_and_writing_the_new(tmp_path, data):
    records, dataset = data
    common = dict(encoder=small_encoder(), progress=False, seed=3)
    train_encoder(dataset, records, tmp_path, epochs=2, **common)
    # Epoch 3's save removes checkpoint_1 first; killed before checkpoint_3 lands, the
    # run resumes from checkpoint_2, whose Checkpoint state still lists checkpoint_1.
    (tmp_path / "checkpoint_1.pt").unlink()
    train_encoder(dataset, records, tmp_path, epochs=3, **common)
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt")) == ["checkpoint_2.pt", "checkpoint_3.pt"]


@pytest.mark.parametrize("saver, fails", [(lambda d: DiskSaver(d, atomic=True, require_empty=False), True),
                                          (ResumableDiskSaver, False)])
def test_resumable_disk_saver_accepts_a_listed_file_already_gone(tmp_path, saver, fails):
    checkpoint = Checkpoint({"network": torch.nn.Linear(1, 1)}, saver(tmp_path), n_saved=1)
    engine = Engine(lambda *_: None)
    engine.state.iteration = 1
    checkpoint(engine)
    (tmp_path / "network_1.pt").unlink()  # listed by the Checkpoint, gone from disk
    engine.state.iteration = 2
    if fails:  # what ignite's own DiskSaver does, the reason ResumableDiskSaver exists
        with pytest.raises(FileNotFoundError):
            checkpoint(engine)
    else:
        checkpoint(engine)
        assert [p.name for p in tmp_path.iterdir()] == ["network_2.pt"]


def test_stale_disk_saver_temp_files_are_cleaned(tmp_path):
    # A DiskSaver(atomic=True) killed mid-write leaves its NamedTemporaryFile behind.
    with tempfile.NamedTemporaryFile(delete=False, dir=tmp_path) as handle:
        handle.write(b"half a checkpoint")
    (tmp_path / "checkpoint_1.pt").write_bytes(b"kept")
    (tmp_path / "tmp_notes.txt").write_bytes(b"kept")
    assert clean_stale_temp_files(tmp_path) == [tmp_path / handle.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1.pt", "tmp_notes.txt"]


def test_finished_run_is_loaded_not_retrained_and_can_be_extended(tmp_path, data):
    records, dataset = data
    first = train_encoder(dataset, records, tmp_path, epochs=1, encoder=small_encoder(), progress=False)
    losses = EpochLosses()
    again = train_encoder(dataset, records, tmp_path, epochs=1, encoder=small_encoder(seed=5), progress=False, handlers=[losses])
    assert losses.epochs == []
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())
    train_encoder(dataset, records, tmp_path, epochs=2, encoder=small_encoder(seed=5), progress=False, handlers=[losses])
    assert len(losses.epochs) == 1


def test_bad_settings_raise(tmp_path, data):
    records, dataset = data
    with pytest.raises(ConfigError, match="slice_weight"):
        train_encoder(dataset, records, tmp_path, epochs=1, objective=ContrastiveObjective(slice_weight=1.0), progress=False)
    with pytest.raises(DataError, match="records has"):
        train_encoder(dataset, records[:-1], tmp_path, epochs=1, progress=False)
    with pytest.raises(ConfigError, match="epochs"):
        train_encoder(dataset, records, tmp_path, epochs=0, progress=False)
    with pytest.raises(ValueError, match="multiple of the group size"):
        train_encoder(dataset, records, tmp_path, epochs=1, batch_size=8, progress=False)


def test_resume_refuses_a_checkpoint_of_another_encoder(tmp_path, data):
    records, dataset = data
    train_encoder(dataset, records, tmp_path, epochs=1, encoder=small_encoder(), progress=False)
    torch.manual_seed(0)
    with pytest.raises(DataError, match="cannot resume"):
        train_encoder(dataset, records, tmp_path, epochs=2, encoder=SimCLREncoder(feature_dim=128), progress=False)


def test_building_blocks_run_channels_last(data):
    records, dataset = data
    sampler = GroupBatchSampler(records, 9, groupings=("patient", "volume"), seed=0)
    loader = build_contrastive_loader(dataset, sampler, seed=0)
    encoder = small_encoder()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-4, weight_decay=1e-6)
    engine = create_contrastive_trainer(encoder, ContrastiveObjective(), optimizer, sampler.roles, channels_last=True)
    SetEpochHandler(sampler).attach(engine)
    before = encoder.backbone.conv1.weight.detach().clone()
    state = engine.run(loader, max_epochs=1, epoch_length=2)
    assert set(state.output) == {"loss", "ntxent", "patient", "volume"}
    assert all(isinstance(v, float) and v == v for v in state.output.values())
    assert encoder.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(before, encoder.backbone.conv1.weight)
    with pytest.raises(ConfigError, match="amp needs a CUDA device"):
        create_contrastive_trainer(encoder, ContrastiveObjective(), optimizer, sampler.roles, amp=True)
