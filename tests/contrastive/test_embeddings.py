"""embed, save_embeddings and load_embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from contrastive_data import PhantomSlices, make_records

from alseg_monai.contrastive import SimCLREncoder, embed, load_embeddings, save_embeddings
from alseg_monai.contrastive.embeddings import EMBEDDING_IDS_FILE, EMBEDDINGS_FILE
from alseg_monai.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def setup():
    records = make_records(num_patients=3, volumes_per_patient=2, slices_per_volume=4)
    torch.manual_seed(0)
    encoder = SimCLREncoder(feature_dim=64)
    # A few training-mode passes so BatchNorm running statistics are not the identity.
    with torch.no_grad():
        for _ in range(3):
            encoder(torch.rand(8, 1, 32, 32))
    return records, PhantomSlices(records, size=32), encoder


def test_embeddings_are_deterministic_and_batch_independent(setup):
    records, dataset, encoder = setup
    encoder.train()
    first = embed(encoder, dataset, batch_size=5, progress=False)
    assert encoder.training  # the caller's mode is restored
    second = embed(encoder, dataset, batch_size=5, progress=False)
    other_batches = embed(encoder, dataset, batch_size=24, progress=False)
    assert first.dtype == np.float32 and first.shape == (len(records), 64)
    assert np.array_equal(first, second)
    np.testing.assert_allclose(first, other_batches, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        direct = encoder.eval().features(torch.stack([dataset[3]["image"]])).numpy()
    np.testing.assert_allclose(first[3], direct[0], rtol=1e-4, atol=1e-5)
    assert np.linalg.matrix_rank(first) > 1


def test_save_load_round_trip(tmp_path, setup):
    records, dataset, encoder = setup
    features = embed(encoder, dataset, progress=False)
    ids = [r["id"] for r in records]
    save_embeddings(tmp_path, ids, features)
    assert json.loads((tmp_path / EMBEDDING_IDS_FILE).read_text(encoding="utf-8")) == ids
    loaded_ids, loaded = load_embeddings(tmp_path)
    assert loaded_ids == ids and loaded.dtype == np.float32 and np.array_equal(loaded, features)
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_inputs_and_files_raise(tmp_path, setup):
    records, dataset, encoder = setup
    with pytest.raises(ConfigError, match="batch_size"):
        embed(encoder, dataset, batch_size=0)
    with pytest.raises(DataError, match=r"\(len\(ids\)=2, F\)"):
        save_embeddings(tmp_path, ["a", "b"], np.zeros((3, 4)))
    with pytest.raises(DataError, match="unique"):
        save_embeddings(tmp_path, ["a", "a"], np.zeros((2, 4)))
    with pytest.raises(DataError, match=EMBEDDING_IDS_FILE):
        load_embeddings(tmp_path)
    save_embeddings(tmp_path, ["a", "b"], np.zeros((2, 4)))
    np.save(tmp_path / EMBEDDINGS_FILE, np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"\(3, 4\).*2 ids"):
        load_embeddings(tmp_path)
