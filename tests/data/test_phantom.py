"""The synthetic ACDC-layout phantom: layout, anatomy, reproducibility, the paper's slice statistic."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from alseg_monai.data.phantom import (
    PHANTOM_GROUPS,
    PHANTOM_MANIFEST,
    make_phantom,
    mean_pairwise_deviation,
    normalise_volume,
    slice_deviation_statistics,
)
from alseg_monai.errors import ConfigError, DataError
from alseg_monai.utils import atomic_write_json, read_json

SIZE = 64
NUM_PATIENTS = 6
INFO_LINE = re.compile(r"^([A-Za-z]+): (\S+)$")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("phantom"), NUM_PATIENTS, image_size=SIZE, seed=3, progress=False)


def read_info(folder: Path) -> dict[str, str]:
    lines = (folder / "Info.cfg").read_text(encoding="utf-8").splitlines()
    matches = [INFO_LINE.match(line) for line in lines]
    assert all(matches), f"Info.cfg lines not in ACDC 'Key: value' form: {lines}"
    return {m.group(1): m.group(2) for m in matches}


def load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def frames(root: Path):
    """(patient, frame label ED/ES, image, gt, scribble, nifti image) for every volume."""
    for folder in sorted(root.glob("patient*")):
        info = read_info(folder)
        for phase in ("ED", "ES"):
            stem = folder / f"{folder.name}_frame{int(info[phase]):02d}"
            img = nib.load(f"{stem}.nii.gz")
            yield (folder.name, phase, np.asarray(img.dataobj), load(Path(f"{stem}_gt.nii.gz")),
                   load(Path(f"{stem}_scribble.nii.gz")), img)


def test_acdc_layout_files_and_info_cfg(phantom):
    folders = sorted(p.name for p in phantom.iterdir() if p.is_dir())
    assert folders == [f"patient{i:03d}" for i in range(1, NUM_PATIENTS + 1)]
    for name in folders:
        info = read_info(phantom / name)
        assert list(info) == ["ED", "ES", "Group", "Height", "NbFrame", "Weight"]
        ed, es, num_frames = int(info["ED"]), int(info["ES"]), int(info["NbFrame"])
        assert ed == 1 and 2 <= es <= num_frames
        assert info["Group"] in PHANTOM_GROUPS
        assert 100 < float(info["Height"]) < 220 and 30 < float(info["Weight"]) < 150
        expected = {"Info.cfg"} | {
            f"{name}_frame{frame:02d}{suffix}.nii.gz" for frame in (ed, es) for suffix in ("", "_gt", "_scribble")
        }
        assert {p.name for p in (phantom / name).iterdir()} == expected


def test_volumes_read_back_with_nibabel(phantom):
    for patient, phase, image, gt, scribble, nifti in frames(phantom):
        depth = image.shape[2]
        assert image.shape == gt.shape == scribble.shape == (SIZE, SIZE, depth)
        assert 8 <= depth <= 14
        assert image.dtype == np.int16 and gt.dtype == np.uint8 and scribble.dtype == np.uint8
        # MR-like magnitudes, not a [0, 1] image
        assert image.min() >= 0 and image.max() > 100
        assert set(np.unique(gt)) <= {0, 1, 2, 3} and set(np.unique(gt[..., 0])) == {0, 1, 2, 3}
        assert set(np.unique(scribble)) <= {0, 1, 2, 3, 4}
        annotated = scribble != 4
        np.testing.assert_array_equal(scribble[annotated], gt[annotated])
        zooms = nifti.header.get_zooms()
        assert 1.0 < zooms[0] == zooms[1] < 6.0 and 5.0 <= zooms[2] <= 10.0, (patient, phase, zooms)


def test_es_is_contracted(phantom):
    volumes = {(patient, phase): gt for patient, phase, _, gt, _, _ in frames(phantom)}
    for patient in {patient for patient, _ in volumes}:
        ed, es = volumes[patient, "ED"], volumes[patient, "ES"]
        assert ed.shape == es.shape, patient
        assert np.count_nonzero(es == 3) < np.count_nonzero(ed == 3), f"{patient}: ES LV cavity not smaller"
        assert np.count_nonzero(es == 1) < np.count_nonzero(ed == 1), f"{patient}: ES RV not smaller"


def test_structures_shrink_towards_apex_and_rv_vanishes(phantom):
    for patient, phase, _, gt, _, _ in frames(phantom):
        base, apex = gt[..., 0], gt[..., -1]
        assert np.any(base == 1), f"{patient} {phase}: no RV at the base"
        assert not np.any(apex == 1), f"{patient} {phase}: RV in the apical slice"
        assert np.count_nonzero(apex >= 2) < np.count_nonzero(base >= 2), f"{patient} {phase}: LV does not shrink"
        assert np.any(apex >= 2), f"{patient} {phase}: no heart in the apical slice"


def test_patients_differ_more_than_their_slices(phantom):
    """The paper's statistic (Sec. 3.2.1; ACDC: 0.217 overall, 0.159 patient, 0.166 volume, 0.115 adjacent)."""
    stats = slice_deviation_statistics((patient, image) for patient, _, image, *_ in frames(phantom))
    print(
        f"\nmean pairwise |deviation| of normalised slices ({NUM_PATIENTS} patients, {SIZE}x{SIZE}): "
        + ", ".join(f"{key} {value:.3f}" for key, value in stats.items())
        + "  (paper, ACDC: overall 0.217, patient 0.159, volume 0.166, adjacent 0.115)"
    )
    assert stats["patient"] < stats["overall"]
    assert stats["volume"] < stats["overall"]
    assert stats["adjacent"] < stats["volume"]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = make_phantom(tmp_path / "a", 2, image_size=32, seed=11, progress=False)
    second = make_phantom(tmp_path / "b", 2, image_size=32, seed=11, progress=False)
    other = make_phantom(tmp_path / "c", 2, image_size=32, seed=12, progress=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*.nii.gz"))
    assert len(files) == 12
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    first_images = [load(p) for p in sorted(first.rglob("*frame??.nii.gz"))]
    other_images = [load(p) for p in sorted(other.rglob("*frame??.nii.gz"))]
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(first_images, other_images))


def test_slice_range_is_honoured(tmp_path):
    root = make_phantom(tmp_path, 3, image_size=32, slices=(4, 5), progress=False)
    depths = {load(p).shape[2] for p in root.rglob("*_gt.nii.gz")}
    assert depths <= {4, 5}


def test_complete_phantom_with_same_parameters_is_reused(phantom):
    before = {p: p.stat().st_mtime_ns for p in phantom.rglob("*") if p.is_file()}
    assert make_phantom(phantom, NUM_PATIENTS, image_size=SIZE, seed=3, progress=False) == phantom
    after = {p: p.stat().st_mtime_ns for p in phantom.rglob("*") if p.is_file()}
    assert after == before


def test_other_parameters_or_interrupted_run_regenerate(tmp_path):
    root = make_phantom(tmp_path, 3, image_size=32, progress=False)
    make_phantom(root, 2, image_size=32, progress=False)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["patient001", "patient002"]
    manifest = read_json(root / PHANTOM_MANIFEST)
    assert manifest["complete"] is True and manifest["parameters"]["num_patients"] == 2
    # A file lost since: the phantom is incomplete and is written again.
    (root / "patient002" / "Info.cfg").unlink()
    make_phantom(root, 2, image_size=32, progress=False)
    assert (root / "patient002" / "Info.cfg").is_file()
    # An interrupted run leaves complete = false: the next call must redo it.
    atomic_write_json(root / PHANTOM_MANIFEST, {**read_json(root / PHANTOM_MANIFEST), "complete": False})
    (root / "patient001" / "left_over.txt").write_text("from the interrupted run")
    make_phantom(root, 2, image_size=32, progress=False)
    assert not (root / "patient001" / "left_over.txt").exists()
    assert len(list(root.glob("patient001/*.nii.gz"))) == 6
    assert read_json(root / PHANTOM_MANIFEST)["complete"] is True


def test_refuses_a_foreign_folder_unless_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "patient150").mkdir()
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        make_phantom(tmp_path, 1, image_size=32, progress=False)
    assert not (tmp_path / "patient001").exists()
    make_phantom(tmp_path, 1, image_size=32, overwrite=True, progress=False)
    assert (tmp_path / "patient001" / "Info.cfg").is_file()
    # Replacing that phantom later removes only the folders it wrote.
    make_phantom(tmp_path, 2, image_size=32, progress=False)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (tmp_path / "patient150").is_dir() and (tmp_path / "patient002" / "Info.cfg").is_file()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_patients": 0}, "num_patients"),
        ({"image_size": 16}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"slices": (2, 5)}, "slices"),
        ({"slices": (9, 8)}, "slices"),
        ({"slices": 8}, "slices"),
    ],
)
def test_bad_parameters_raise_config_error(tmp_path, kwargs, name):
    arguments = {"num_patients": 1, "image_size": 32, "progress": False, **kwargs}
    with pytest.raises(ConfigError, match=name):
        make_phantom(tmp_path / "out", **arguments)


def test_root_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        make_phantom(target, 1, image_size=32, progress=False)


def test_mean_pairwise_deviation_matches_all_pairs():
    slices = np.random.default_rng(0).random((7, 5, 4))
    pairs = [np.abs(a - b).mean() for a, b in itertools.combinations(slices, 2)]
    assert mean_pairwise_deviation(slices) == pytest.approx(np.mean(pairs), rel=1e-12)
    with pytest.raises(DataError, match=r"\(1, 5, 4\)"):
        mean_pairwise_deviation(slices[:1])


def test_normalise_volume_clips_and_scales():
    volume = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    normalised = normalise_volume(volume)
    assert normalised.min() == 0.0 and normalised.max() == 1.0
    threshold = np.percentile(volume, 99.0)
    assert np.all(normalised[volume >= threshold] == 1.0)
    assert np.all(normalise_volume(np.full((3, 3, 2), 7.0)) == 0.0)


def test_deviation_statistics_checks_its_input():
    volume = np.zeros((8, 8, 3))
    with pytest.raises(DataError, match="at least 2 patients"):
        slice_deviation_statistics([("p1", volume), ("p1", volume)])
    with pytest.raises(DataError, match=r"\(6, 8\)"):
        slice_deviation_statistics([("p1", volume), ("p2", np.zeros((6, 8, 3)))])


def test_acdc_reader_reads_the_phantom(phantom):
    """The data layer's ACDC reader and cache take the phantom as it is written."""
    from alseg_monai.data import SliceCache, read_dataset

    index = read_dataset("acdc", phantom)
    assert index.num_classes == 4 and index.ignore_index == 4
    assert len(index.volumes) == 2 * NUM_PATIENTS
    for volume in index.volumes:
        info = read_info(phantom / volume["patient"])
        assert volume["id"] == f"{volume['patient']}_frame{int(info[volume['phase']]):02d}"
        assert volume["scribble"] is not None and volume["label"] is not None
        depth = load(Path(volume["label"])).shape[2]
        zs = [s["slice"] for s in index.slices if s["volume"] == volume["id"]]
        assert zs == list(range(depth)) == list(range(volume["num_slices"]))
    cache = SliceCache.from_index(index, image_size=32, progress=False)
    record = index.slices[0]
    sample = cache.slice(record)
    assert sample["image"].shape == (1, 32, 32) and 0.0 <= sample["image"].min() < sample["image"].max() <= 1.0
    assert set(np.unique(sample["label"])) <= {0, 1, 2, 3}
    assert set(np.unique(sample["scribble"])) <= {0, 1, 2, 3, 4}


def test_variability_one_is_the_phantom_as_it_was(tmp_path):
    plain = make_phantom(tmp_path / "a", 2, image_size=32, seed=5, progress=False)
    knob = make_phantom(tmp_path / "b", 2, image_size=32, seed=5, progress=False, variability=1.0)
    assert "variability" not in read_json(plain / PHANTOM_MANIFEST)["parameters"]  # old phantoms are reused
    for rel in sorted(p.relative_to(plain) for p in plain.rglob("*.nii.gz")):
        assert (plain / rel).read_bytes() == (knob / rel).read_bytes(), rel
    scaled = make_phantom(tmp_path / "a", 2, image_size=32, seed=5, progress=False, variability=0.5)
    assert read_json(scaled / PHANTOM_MANIFEST)["parameters"]["variability"] == 0.5


def test_variability_scales_every_between_patient_parameter_about_its_centre():
    from alseg_monai.data.phantom import _sample_patient, _sample_scaled_patient
    from alseg_monai.data.synthetic import CentredRNG, RecordingRNG

    recorder = RecordingRNG(np.random.default_rng(8))
    drawn = _sample_patient(recorder, 64, (8, 14))
    centre = _sample_patient(CentredRNG(recorder.discrete), 64, (8, 14))
    half = _sample_scaled_patient(8, 64, (8, 14), 0.5)
    assert (half.group, half.num_slices, half.texture_seed) == (drawn.group, drawn.num_slices, drawn.texture_seed)
    assert half.endo_radius == pytest.approx(centre.endo_radius + 0.5 * (drawn.endo_radius - centre.endo_radius))
    assert half.values["myo"] == pytest.approx(0.5 * (drawn.values["myo"] + centre.values["myo"]))
    assert half.bias == pytest.approx(tuple(0.5 * b for b in drawn.bias))  # normal(0, .): centre 0
    np.testing.assert_array_equal(half.jitter_centre, drawn.jitter_centre)  # within-patient: kept
    assert half.es_cavity == drawn.es_cavity
    # With none, patients of one pathology group share their anatomy and appearance.
    same_group = [_sample_scaled_patient(s, 64, (8, 14), 0.0) for s in range(40)]
    nor = [p for p in same_group if p.group == "NOR"]
    assert len(nor) >= 2 and len({(p.endo_radius, p.scale, p.values["myo"]) for p in nor}) == 1


def test_variability_widens_the_gap_between_patients(tmp_path):
    gaps = []
    for level in (0.0, 0.5, 1.5):
        root = make_phantom(tmp_path / str(level), 6, image_size=32, seed=2, progress=False, variability=level)
        stats = slice_deviation_statistics((patient, image) for patient, _, image, *_ in frames(root))
        gaps.append(stats["overall"] - stats["patient"])
    assert gaps[0] < gaps[1] < gaps[2]


@pytest.mark.parametrize("value", [-0.1, 2.5, "high", True, float("nan")])
def test_variability_out_of_range_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="variability"):
        make_phantom(tmp_path, 2, image_size=32, progress=False, variability=value)
