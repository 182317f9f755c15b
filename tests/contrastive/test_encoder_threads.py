"""The encoder's CPU thread count (issue 14): ``EncoderSpec.train(threads=)``, ``embed(threads=)``
and the experiment's ``encoder_threads`` (bundle ``encoder#threads``) run the real training
and embedding with at most that many threads and restore the process's afterwards."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from contrastive_data import PhantomSlices, make_records

from alseg_monai.contrastive import ContrastiveObjective, EncoderSpec, GroupBatchSampler, SimCLREncoder, embed
from alseg_monai.errors import ConfigError


class ThreadRecordingEncoder(SimCLREncoder):
    """A SimCLR encoder that records torch's thread count at every forward pass."""

    seen: list[int] = []

    def forward(self, x):
        ThreadRecordingEncoder.seen.append(torch.get_num_threads())
        return super().forward(x)

    def features(self, x):
        ThreadRecordingEncoder.seen.append(torch.get_num_threads())
        return super().features(x)


@pytest.fixture
def two_threads():
    """Torch at two threads during the test, so a limit to one is visible; restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    ThreadRecordingEncoder.seen = []
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data():
    records = make_records(num_patients=3, volumes_per_patient=2, slices_per_volume=4)
    return records, PhantomSlices(records, size=32)


def _spec() -> EncoderSpec:
    return EncoderSpec(
        network=functools.partial(ThreadRecordingEncoder, feature_dim=32),
        loss=ContrastiveObjective(patient_weight=0.1, volume_weight=0.35),
        sampler=functools.partial(GroupBatchSampler, groupings=("patient", "volume"), batch_size=6),
        epochs=1,
        optimizer=functools.partial(torch.optim.Adam, lr=3e-4),
    )


@pytest.mark.parametrize("threads, expected", [(1, {1}), (None, {2}), (8, {2})])
def test_training_runs_with_at_most_the_given_threads(tmp_path, data, two_threads, threads, expected):
    records, dataset = data
    model = _spec().train(dataset, records, tmp_path, seed=0, progress=False, threads=threads)
    assert (tmp_path / "encoder.pt").is_file() and isinstance(model, SimCLREncoder)
    assert ThreadRecordingEncoder.seen and set(ThreadRecordingEncoder.seen) == expected
    assert torch.get_num_threads() == 2


def test_embedding_runs_with_the_given_threads_and_matches(data, two_threads):
    records, dataset = data
    torch.manual_seed(0)
    encoder = ThreadRecordingEncoder(feature_dim=32)
    one = embed(encoder, dataset, batch_size=5, progress=False, threads=1)
    assert set(ThreadRecordingEncoder.seen) == {1} and torch.get_num_threads() == 2
    ThreadRecordingEncoder.seen = []
    default = embed(encoder, dataset, batch_size=5, progress=False)
    assert set(ThreadRecordingEncoder.seen) == {2}
    assert one.shape == (len(records), 32)
    np.testing.assert_allclose(one, default, rtol=1e-4, atol=1e-5)


def test_threads_are_restored_when_training_fails(tmp_path, data, two_threads):
    records, dataset = data

    def failing_optimizer(parameters):
        assert torch.get_num_threads() == 1
        raise RuntimeError("optimizer failed")

    spec = dataclasses.replace(_spec(), optimizer=failing_optimizer)
    with pytest.raises(RuntimeError, match="optimizer failed"):
        spec.train(dataset, records, tmp_path, seed=0, progress=False, threads=1)
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_bad_thread_counts_are_refused_before_any_work(tmp_path, data, bad):
    records, dataset = data
    with pytest.raises(ConfigError, match=r"threads=.*positive integer"):
        _spec().train(dataset, records, tmp_path / "run", seed=0, progress=False, threads=bad)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"embed: threads=.*positive integer"):
        embed(SimCLREncoder(feature_dim=32), dataset, progress=False, threads=bad)
