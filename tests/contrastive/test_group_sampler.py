"""GroupBatchSampler (paper Algorithm 1): invariants over whole epochs."""

from __future__ import annotations

import warnings

import pytest
from contrastive_data import check_epoch, make_records
from ignite.engine import Engine
from torch.utils.data import DataLoader

from alseg_monai.contrastive import GroupBatchSampler
from alseg_monai.contrastive.handlers import SetEpochHandler
from alseg_monai.contrastive.sampler import paper_batch_size
from alseg_monai.errors import ConfigError, DataError

ALL = ("slice", "volume", "patient")


def uneven_records():
    """Patients with different numbers of volumes and slices."""
    records = []
    for p, (volumes, slices) in enumerate([(2, 6), (1, 9), (3, 3), (2, 4), (2, 7), (1, 5), (2, 2)]):
        for v in range(volumes):
            for z in range(slices):
                records.append({"patient": f"p{p}", "volume": f"p{p}_v{v}", "slice": z, "id": f"p{p}_v{v}_slice_{z}"})
    return records


@pytest.mark.parametrize(
    "groupings", [(), ("volume",), ("patient",), ("slice",), ("patient", "volume"), ("volume", "slice"), ALL]
)
def test_epoch_invariants(groupings):
    records = uneven_records()
    group_size = 1 + len(groupings)
    # Seven patients: plain batches (group size 1) of 8 would need eight.
    batch_size = paper_batch_size(group_size) if group_size > 1 else 4
    sampler = GroupBatchSampler(records, batch_size, groupings=groupings, seed=3)
    expected = [role for grouping, role in (("slice", "adjacent"), ("volume", "volume"), ("patient", "patient")) if grouping in groupings]
    assert sampler.roles == ("anchor", *expected)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) > 0
        check_epoch(records, sampler, batches)


def test_default_batch_size_is_the_papers():
    records = uneven_records()
    assert GroupBatchSampler(records, groupings=("patient", "volume")).batch_size == 9
    assert GroupBatchSampler(records, groupings=ALL).batch_size == 8
    assert GroupBatchSampler(records, groupings=("volume",)).batch_size == 8


def test_member_order_does_not_depend_on_groupings_order():
    records = uneven_records()
    a = GroupBatchSampler(records, 8, groupings=("patient", "slice", "volume"), seed=1)
    b = GroupBatchSampler(records, 8, groupings=("volume", "patient", "slice"), seed=1)
    assert a.roles == b.roles == ("anchor", "adjacent", "volume", "patient")
    assert list(a) == list(b)


def test_balanced_patients_use_every_anchor():
    records = make_records(num_patients=6, volumes_per_patient=2, slices_per_volume=5)
    sampler = GroupBatchSampler(records, 9, groupings=("patient", "volume"), seed=0)
    anchors = check_epoch(records, sampler, list(sampler))
    assert sorted(anchors) == list(range(len(records)))
    assert len(sampler) == len(records) // 3


def test_same_seed_and_epoch_same_batches_others_differ():
    records = uneven_records()
    a = GroupBatchSampler(records, 9, seed=5)
    b = GroupBatchSampler(records, 9, seed=5)
    c = GroupBatchSampler(records, 9, seed=6)
    a.set_epoch(2)
    b.set_epoch(2)
    c.set_epoch(2)
    assert list(a) == list(b)
    assert list(a) != list(c)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert len(a) == len(b)  # the epoch length never depends on the draws


def test_epoch_length_constant_for_uneven_patients():
    records = uneven_records()
    sampler = GroupBatchSampler(records, 8, groupings=ALL, seed=0)
    lengths = set()
    for epoch in range(10):
        sampler.set_epoch(epoch)
        lengths.add(len(list(sampler)))
    assert lengths == {len(sampler)}


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ranks_get_disjoint_batches_of_equal_count(num_replicas):
    records = uneven_records()
    whole = GroupBatchSampler(records, 9, seed=4)
    whole.set_epoch(1)
    full = list(whole)
    per_rank = []
    for rank in range(num_replicas):
        sampler = GroupBatchSampler(records, 9, seed=4, num_replicas=num_replicas, rank=rank)
        sampler.set_epoch(1)
        per_rank.append(list(sampler))
        assert len(per_rank[-1]) == len(sampler) == len(full) // num_replicas
    anchor_sets = [{b[i] for b in batches for i in range(0, 9, 3)} for batches in per_rank]
    for i in range(num_replicas):
        for j in range(i + 1, num_replicas):
            assert not anchor_sets[i] & anchor_sets[j]
    dealt = [b for batches in per_rank for b in batches]
    assert all(b in full for b in dealt)


def test_drop_last_false_adds_one_smaller_batch_of_distinct_patients():
    records = uneven_records()
    kept = GroupBatchSampler(records, 9, seed=2, drop_last=False)
    dropped = GroupBatchSampler(records, 9, seed=2)
    batches = list(kept)
    assert len(batches) == len(dropped) + 1
    tail = batches[-1]
    assert 0 < len(tail) < 9 and len(tail) % 3 == 0
    assert len({records[tail[i]]["patient"] for i in range(0, len(tail), 3)}) == len(tail) // 3
    assert batches[:-1] == list(dropped)


def test_batch_size_must_be_a_multiple_of_the_group_size():
    records = uneven_records()
    with pytest.raises(ValueError, match="multiple of the group size 3"):
        GroupBatchSampler(records, 8, groupings=("patient", "volume"))
    with pytest.raises(ConfigError):
        GroupBatchSampler(records, 0, groupings=())


def test_bad_settings_and_records_raise():
    records = uneven_records()
    with pytest.raises(ConfigError, match="groupings"):
        GroupBatchSampler(records, 8, groupings=("organ",))
    with pytest.raises(ConfigError, match="groupings"):
        GroupBatchSampler(records, 9, groupings=("volume", "volume"))
    with pytest.raises(ConfigError, match="distinct patients"):
        GroupBatchSampler(records, 8 * 3, groupings=("volume", "patient"))
    with pytest.raises(ConfigError, match="rank"):
        GroupBatchSampler(records, 9, num_replicas=2, rank=2)
    with pytest.raises(DataError, match="record 1"):
        GroupBatchSampler([records[0], {"patient": "p0", "slice": 0}], 1, groupings=())
    with pytest.raises(DataError, match="more than once"):
        GroupBatchSampler(records + [dict(records[0])], 9)
    moved = [dict(r) for r in records]
    moved[0]["patient"] = "p1"
    with pytest.raises(DataError, match="more than one patient"):
        GroupBatchSampler(moved, 9)


def test_one_slice_volume_and_one_slice_patient_fall_back_to_the_anchor():
    records = make_records(num_patients=4, volumes_per_patient=2, slices_per_volume=3)
    records.append({"patient": "patient000", "volume": "patient000_frame09", "slice": 0, "id": "single_volume"})
    records.append({"patient": "lonely", "volume": "lonely_frame01", "slice": 0, "id": "single_patient"})
    with pytest.warns(UserWarning, match=r"2 volume\(s\) of one slice.*1 patient\(s\) of one slice"):
        sampler = GroupBatchSampler(records, 8, groupings=ALL, seed=0, drop_last=False)
    single_volume, single_patient = len(records) - 2, len(records) - 1
    seen = set()
    for epoch in range(12):
        sampler.set_epoch(epoch)
        for batch in sampler:
            for start in range(0, len(batch), 4):
                anchor, adjacent, volume, patient = batch[start : start + 4]
                if anchor == single_volume:
                    assert adjacent == volume == anchor and records[patient]["patient"] == "patient000"
                    assert patient != anchor
                    seen.add("volume")
                if anchor == single_patient:
                    assert adjacent == volume == patient == anchor
                    seen.add("patient")
    assert seen == {"volume", "patient"}


def test_one_volume_patients_need_no_fallback():
    records = make_records(num_patients=5, volumes_per_patient=1, slices_per_volume=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = GroupBatchSampler(records, 9, groupings=("patient", "volume"), seed=0)
    check_epoch(records, sampler, list(sampler))


def test_set_epoch_handler_redraws_batches_in_an_ignite_run():
    records = uneven_records()
    sampler = GroupBatchSampler(records, 9, seed=7)
    loader = DataLoader(list(range(len(records))), batch_sampler=sampler, collate_fn=list)
    seen: dict[int, list] = {}
    engine = Engine(lambda eng, batch: seen.setdefault(eng.state.epoch, []).append(batch))
    SetEpochHandler(sampler).attach(engine)
    engine.run(loader, max_epochs=3)
    assert sorted(seen) == [1, 2, 3]
    for epoch, batches in seen.items():
        assert batches == sampler.epoch_batches(epoch - 1)
    assert seen[1] != seen[2] != seen[3]


def test_state_dict_round_trip():
    records = uneven_records()
    a = GroupBatchSampler(records, 9, seed=1)
    a.set_epoch(4)
    b = GroupBatchSampler(records, 9, seed=1)
    b.load_state_dict(a.state_dict())
    assert list(a) == list(b)
