"""Helpers of the contrastive tests: tiny in-memory slice records and datasets."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def make_records(num_patients: int, volumes_per_patient: int = 2, slices_per_volume: int = 4) -> list[dict]:
    """Slice records shaped like the data layer's (id, patient, volume, slice)."""
    records = []
    for p in range(num_patients):
        for v in range(volumes_per_patient):
            volume = f"patient{p:03d}_frame{v + 1:02d}"
            for z in range(slices_per_volume):
                records.append({"id": f"{volume}_slice_{z}", "patient": f"patient{p:03d}", "volume": volume, "slice": z})
    return records


class PhantomSlices(Dataset):
    """(1, S, S) images in [0, 1]: a disk whose radius depends on the patient, centre on the volume, brightness on z."""

    def __init__(self, records: list[dict], size: int = 32, seed: int = 0) -> None:
        self.records = records
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[:size, :size] / size
        patients = sorted({r["patient"] for r in records})
        volumes = sorted({r["volume"] for r in records})
        radius = {p: 0.12 + 0.25 * i / max(1, len(patients) - 1) for i, p in enumerate(patients)}
        centre = {v: rng.uniform(0.35, 0.65, size=2) for v in volumes}
        self.images = []
        for r in records:
            cy, cx = centre[r["volume"]]
            disk = ((yy - cy) ** 2 + (xx - cx) ** 2) < radius[r["patient"]] ** 2
            image = 0.3 + 0.6 * disk * (0.5 + 0.1 * r["slice"]) + 0.05 * rng.standard_normal((size, size))
            self.images.append(torch.as_tensor(np.clip(image, 0, 1)[None], dtype=torch.float32))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], **self.records[index]}


def check_epoch(records, sampler, batches):
    """Every invariant of one epoch's batches; returns the anchors."""
    roles, g = sampler.roles, sampler.group_size
    anchors = []
    for batch in batches:
        assert len(batch) == sampler.batch_size
        patients_in_batch = []
        for start in range(0, len(batch), g):
            group = dict(zip(roles, (records[i] for i in batch[start : start + g])))
            anchor = group["anchor"]
            anchors.append(batch[start])
            patients_in_batch.append(anchor["patient"])
            assert all(member["patient"] == anchor["patient"] for member in group.values())
            if "adjacent" in group:
                assert group["adjacent"]["volume"] == anchor["volume"]
                assert abs(group["adjacent"]["slice"] - anchor["slice"]) == 1
            if "volume" in group:
                assert group["volume"]["volume"] == anchor["volume"]
                assert group["volume"]["slice"] != anchor["slice"]
            if "patient" in group:
                assert group["patient"] is not anchor
        assert len(set(patients_in_batch)) == len(patients_in_batch), "patients repeat within a batch"
    assert len(set(anchors)) == len(anchors), "an anchor is used twice in one epoch"
    return anchors
