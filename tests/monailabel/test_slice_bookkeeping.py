"""The MONAI Label app's slice bookkeeping, in process (no server, no training).

Where a saved label's slices come from (explicit ``slices``, the pending request, the
non-empty slices of a label that arrives unasked), a refused label, both scopes and all
three strategies never serving a slice twice. Skipped without the ``monailabel`` extra.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("monailabel.interfaces.app", reason="needs the monailabel extra: pip install -e '.[monailabel]'")
nib = pytest.importorskip("nibabel")
np = pytest.importorskip("numpy")

from alseg_monai.data import make_phantom  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "monailabel" / "alseg"
CONF = {"bundle_configs": "data/phantom.json", "image_size": "32", "feature_dim": "16", "budget": "3",
        "device": "cpu"}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("phantom"), 4, image_size=32, seed=0, slices=(4, 6), progress=False)


@pytest.fixture
def app(phantom, tmp_path, monkeypatch):
    from monailabel.config import settings
    from monailabel.utils.others.class_utils import get_class_of_subclass_from_file

    monkeypatch.setattr(settings, "MONAI_LABEL_SESSIONS", False)
    monkeypatch.setattr(settings, "MONAI_LABEL_DATASTORE_AUTO_RELOAD", False)
    monkeypatch.setattr(settings, "MONAI_LABEL_AUTO_UPDATE_SCORING", False)
    studies = tmp_path / "studies"
    studies.mkdir()
    for image in sorted(phantom.glob("patient*/patient*_frame??.nii.gz")):
        shutil.copy(image, studies / image.name)
    app_dir = tmp_path / "app"
    shutil.copytree(APP, app_dir, ignore=shutil.ignore_patterns("model", "logs", "bin", "__pycache__"))
    cls = get_class_of_subclass_from_file("main", str(app_dir / "main.py"), "MONAILabelApp")
    instance = cls(app_dir=str(app_dir), studies=str(studies), conf=dict(CONF))
    instance.phantom = phantom
    instance.studies_dir = studies
    return instance


def _save(app, image_id, slices, tmp_path, params=None, shape=None, nonzero_everywhere=False):
    """Save the phantom's truth on ``slices`` (zeros elsewhere) as the image's final label."""
    truth = nib.load(str(app.phantom / image_id.split("_")[0] / f"{image_id}_gt.nii.gz"))
    array = np.asarray(truth.dataobj)
    label = array.copy() if nonzero_everywhere else np.zeros_like(array)
    label[..., slices] = array[..., slices]
    if shape is not None:
        label = np.zeros(shape, dtype=array.dtype)
    path = tmp_path / f"upload_{image_id}.nii.gz"
    nib.save(nib.Nifti1Image(label, truth.affine), str(path))
    label_id = app.datastore().save_label(image_id, str(path), "final", dict(params or {}))
    return app.on_save_label(image_id, label_id)


def _registry(app) -> dict:
    return json.loads((app.studies_dir / ".alseg" / "slices.json").read_text())


def test_a_label_covers_the_served_slices_or_the_explicit_ones(app, tmp_path):
    served = app.next_sample({"strategy": "gcl_coreset"})
    image_id, slices = served["id"], served["slices"]
    assert len(slices) == 3 and served["encoder"] == "untrained"
    assert sorted(int(z) for z in _registry(app)["images"][image_id]["pending"]) == slices
    info = app.datastore().get_image_info(image_id)
    assert info["alseg_pending_slices"] == slices and info["alseg_annotated_slices"] == []
    assert info["alseg_pending_positions"] == served["slice_positions"]

    # An explicit claim covers exactly its slices; the rest of the request stays pending.
    result = _save(app, image_id, slices, tmp_path, params={"slices": slices[:1]})["alseg"]
    assert result == {"covered": slices[:1], "annotated": slices[:1], "source": "params"}
    entry = _registry(app)["images"][image_id]
    assert sorted(int(z) for z in entry["pending"]) == slices[1:]

    # Without params the pending slices are covered; earlier slices keep their stored content.
    result = _save(app, image_id, slices[1:], tmp_path)["alseg"]
    assert result["covered"] == slices[1:] and result["annotated"] == slices and result["source"] == "request"
    info = app.datastore().get_image_info(image_id)
    assert info["alseg_pending_slices"] == [] and info["alseg_annotated_slices"] == slices
    merged = np.asarray(nib.load(str(app.studies_dir / ".alseg" / "labels" / f"{image_id}.nii.gz")).dataobj)
    truth = np.asarray(nib.load(str(app.phantom / image_id.split("_")[0] / f"{image_id}_gt.nii.gz")).dataobj)
    np.testing.assert_array_equal(merged[..., slices], truth[..., slices])
    others = [z for z in range(truth.shape[2]) if z not in slices]
    assert not merged[..., others].any()
    # The datastore's final label is the merged one, and saving it again changes nothing.
    stored = np.asarray(nib.load(app.datastore().get_label_uri(image_id, "final")).dataobj)
    np.testing.assert_array_equal(stored, merged)
    assert app.on_save_label(image_id, image_id) == {"alseg": {"note": "no new final label to process"}}


def test_a_label_saved_unasked_covers_its_nonempty_slices(app, tmp_path):
    image_id = "patient002_frame01"
    truth = np.asarray(nib.load(str(app.phantom / "patient002" / f"{image_id}_gt.nii.gz")).dataobj)
    result = _save(app, image_id, [], tmp_path, nonzero_everywhere=True)["alseg"]
    expected = [z for z in range(truth.shape[2]) if truth[..., z].any()]
    assert result == {"covered": expected, "annotated": expected, "source": "existing"}


def test_a_label_of_the_wrong_shape_is_refused(app, tmp_path):
    from monailabel.interfaces.exception import MONAILabelException

    served = app.next_sample({"strategy": "random"})
    with pytest.raises(MONAILabelException):
        _save(app, served["id"], served["slices"], tmp_path, shape=(8, 8, 2))
    entry = _registry(app)["images"][served["id"]]
    assert entry["annotated"] == [] and "shape" in entry["label_error"]
    # The request stays pending: a corrected label still covers it.
    assert sorted(int(z) for z in entry["pending"]) == served["slices"]


@pytest.mark.parametrize("strategy,scope", [("gcl_coreset", "global"), ("coreset", "volume"), ("random", "global")])
def test_no_slice_is_served_twice_until_the_pool_is_exhausted(app, strategy, scope):
    total = sum(nib.load(str(p)).shape[2] for p in app.studies_dir.glob("*.nii.gz"))
    seen = set()
    for _ in range(total + 1):
        served = app.next_sample({"strategy": strategy, "scope": scope})
        if not served:
            break
        assert served["al_strategy"] == strategy and served["scope"] == scope
        assert 1 <= len(served["slices"]) <= 3
        picks = {(served["id"], z) for z in served["slices"]}
        assert not picks & seen
        seen |= picks
    else:
        pytest.fail("the strategy kept serving slices past the pool's size")
    assert len(seen) == total


def test_the_gcl_batch_fits_the_patients_there_are():
    import sys

    sys.path.insert(0, str(APP))
    try:
        from lib.train import _fit_sampler
    finally:
        sys.path.remove(str(APP))
        for name in [m for m in sys.modules if m == "lib" or m.startswith("lib.")]:
            del sys.modules[name]
    from alseg_monai.contrastive import GroupBatchSampler

    sampler = functools.partial(GroupBatchSampler, groupings=["patient", "volume"], batch_size=None)
    assert _fit_sampler(sampler, 3) is sampler
    assert _fit_sampler(sampler, 2).keywords["batch_size"] == 6
    assert _fit_sampler(functools.partial(GroupBatchSampler, groupings=["volume"], batch_size=None),
                        1).keywords["batch_size"] == 2
