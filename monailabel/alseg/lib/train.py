"""The train task: the GCL encoder on the datastore's images, then the segmentation model
on the annotated slices, both from the bundle's components.

MONAI Label runs it in a subprocess (``POST /train/segmentation``; ``run_sync=true``
runs it in the server). Steps:

1. **Encoder** (self-supervised, needs no label): the bundle's ``encoders#gcl``
   (:class:`alseg_monai.contrastive.EncoderSpec`: SimCLR ResNet-18, NT-Xent + patient and
   volume group losses, group batch sampler, augmentation, Adam) trained on every slice
   of every datastore volume. Patients come from ``--conf patient_regex`` (or the image
   info's ``patient``); with one volume per patient the patient grouping is dropped,
   as the paper does. Skipped when ``encoder.pt`` was trained on the same images for at
   least as many epochs (request ``"train_encoder"``: ``auto`` (default), ``always``,
   ``never``; ``"encoder_epochs"``).
2. **Segmentation**: a :class:`alseg_monai.segmentation.RoundTrainer` (the class of the
   bundle's ``trainer``) of the bundle's ``network_def``, ``loss``, ``optimizer``,
   ``lr_scheduler`` and ``train_transforms``, one model, on the annotated slices only
   (the registry's, with the app's merged labels), for ``iterations`` iterations (request
   or ``--conf``; default the bundle's rule ``max(min_iterations, iterations_scale x
   annotated fraction)``). There is no validation split in a datastore: the model is
   scored once, after its last iteration, on the annotated slices themselves (``fit_dice``
   in the summary, a check that it learnt them, not a test score), so the last weights
   are kept. Skipped, with a note, while no slice is annotated.

Outputs (atomic): ``<state_dir>/model/encoder.pt`` + ``encoder.json``,
``segmentation.pt`` + ``segmentation.json``. The strategies and the infer task load the
new files on their next call.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import tempfile
import time

import numpy as np
import torch
from monailabel.interfaces.tasks.train import TrainTask

from alseg_monai.contrastive.sampler import paper_batch_size
from alseg_monai.data.records import slice_id
from alseg_monai.segmentation import BestCheckpointSaver, IterationValidationHandler, RoundTrainer
from alseg_monai.segmentation.trainer import iterations_for
from alseg_monai.utils import atomic_write_json, read_json, torch_save_atomic

from .volumes import load_datastore, merged_label_path, read_label

logger = logging.getLogger(__name__)

ENCODER_MODES = ("auto", "always", "never")


def _read(path):
    try:
        return read_json(path)
    except Exception:
        return None


def _fit_sampler(sampler, num_patients: int):
    """The bundle's group sampler, its batch shrunk to whole groups of the patients there
    are when the datastore holds fewer patients than a batch has groups (the paper's 9
    slices = 3 groups of 3 need 3 patients)."""
    if not isinstance(sampler, functools.partial):
        return sampler
    group_size = 1 + len(sampler.keywords.get("groupings", ("patient", "volume")))
    batch_size = sampler.keywords.get("batch_size") or paper_batch_size(group_size)
    if batch_size // group_size <= num_patients:
        return sampler
    fitted = group_size * max(1, num_patients)
    logger.warning("alseg train: %d patient(s) only; GCL batches of %d slices instead of %d", num_patients, fitted,
                   batch_size)
    return functools.partial(sampler.func, *sampler.args, **{**sampler.keywords, "batch_size": fitted})


class SegmentationTrain(TrainTask):
    """GCL encoder + slice-supervised segmentation from the bundle's components."""

    def __init__(self, state) -> None:
        super().__init__("GCL encoder on all datastore slices, then the segmentation network on the annotated slices")
        self.state = state

    def config(self):
        config = self.state.config
        return {"train_encoder": "auto", "encoder_epochs": int(config.encoder_spec().epochs),
                "iterations": config.option("iterations", int, 0)}

    def stats(self):
        config = self.state.config
        return {"encoder": _read(config.encoder_summary_path), "segmentation": _read(config.segmentation_summary_path)}

    def __call__(self, request, datastore):
        start = time.perf_counter()
        volumes = load_datastore(datastore, self.state.volumes)
        if not volumes:
            raise ValueError("alseg train: the datastore holds no readable 3D volume")
        result = {"encoder": self.train_encoder(volumes, request),
                  "segmentation": self.train_segmentation(volumes, request)}
        result["seconds"] = round(time.perf_counter() - start, 2)
        logger.info("alseg train: %s", result)
        return result

    # ---- step 1 ----------------------------------------------------------------------
    def train_encoder(self, volumes, request) -> dict:
        config = self.state.config
        mode = str(request.get("train_encoder", "auto"))
        if mode not in ENCODER_MODES:
            raise ValueError(f"train_encoder: expected one of {ENCODER_MODES}, got {mode!r}")
        spec = config.encoder_spec()
        epochs = int(request.get("encoder_epochs", spec.epochs))
        images = sorted(v.image_id for v in volumes)
        summary = _read(config.encoder_summary_path) if config.encoder_path.is_file() else None
        network = repr(spec.network)
        if mode == "never" or (mode == "auto" and summary and summary.get("images") == images
                               and summary.get("network") == network and int(summary.get("epochs", 0)) >= epochs):
            return {"skipped": True, "reason": "up to date" if summary else "train_encoder=never", **(summary or {})}

        infos = {v.image_id: self._image_info(v.image_id) for v in volumes}
        records, items = [], []
        for v in volumes:
            patient = config.patient_of(v.image_id, infos[v.image_id])
            for z in range(v.num_slices):
                records.append({"id": slice_id(v.image_id, z), "patient": patient, "volume": v.image_id, "slice": z})
                items.append({"image": torch.as_tensor(v.image[..., z]), "patient": patient, "volume": v.image_id})
        patients = {r["patient"] for r in records}
        if len(patients) == len(volumes) and "patient" in spec.groupings():
            spec = spec.without_patient_grouping()
        spec = dataclasses.replace(spec, epochs=epochs, sampler=_fit_sampler(spec.sampler, len(patients)))
        begin = time.perf_counter()
        config.model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="encoder-", dir=config.state_dir) as work:
            encoder = spec.train(items, records, work, seed=config.seed, device=config.device, num_workers=0,
                                 progress=False)
        torch_save_atomic({k: v.detach().cpu() for k, v in encoder.state_dict().items()}, config.encoder_path)
        summary = {"images": images, "network": network, "slices": len(records), "patients": len(patients),
                   "epochs": epochs, "groupings": list(spec.groupings()),
                   "seconds": round(time.perf_counter() - begin, 2), "ts": int(time.time())}
        atomic_write_json(config.encoder_summary_path, summary)
        return summary

    def _image_info(self, image_id):
        try:
            return self.state.datastore_info(image_id)
        except Exception:
            return {}

    # ---- step 2 ----------------------------------------------------------------------
    def train_segmentation(self, volumes, request) -> dict:
        config = self.state.config
        annotated = self.state.registry.annotated()
        items, fit, used = [], [], {}
        for v in volumes:
            slices = annotated.get(v.image_id)
            path = merged_label_path(config.labels_dir, v.image_id)
            if not slices or not path.is_file():
                continue
            label = read_label(path, v.shape)
            resized = self.state.volumes.resize_label(label)
            for z in slices:
                items.append({"image": torch.as_tensor(v.image[..., z]),
                              "label": torch.as_tensor(resized[None, ..., z].astype(np.int64))})
            # The volume's annotated slices as a validation "volume" (VolumeDataset items).
            fit.append({"id": v.image_id, "image": torch.as_tensor(v.image[..., slices]),
                        "label_original": label[..., slices], "spatial_shape": tuple(v.shape[:2])})
            used[v.image_id] = slices
        if not items:
            return {"skipped": True, "reason": "no annotated slice yet: save a label for the served slices first"}

        parts = config.segmentation_components()
        total = sum(v.num_slices for v in volumes)
        iterations = int(request.get("iterations") or config.option("iterations", int, 0) or
                         iterations_for(len(items) / total, parts["iterations_scale"], parts["min_iterations"]))
        batch_size = int(request.get("batch_size", parts["batch_size"]))
        trainer = RoundTrainer(
            parts["network_def"], parts["loss"], parts["optimizer"], parts["lr_scheduler"], parts["train_transforms"],
            label_key="label", batch_size=min(batch_size, len(items)), models_per_round=1,
            # One validation, after the last iteration: the last weights are the ones kept.
            train_handlers=[functools.partial(IterationValidationHandler, interval=iterations)],
            val_handlers=[BestCheckpointSaver], device=config.device, amp=parts["amp"], num_workers=0)
        config.model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="segmentation-", dir=config.state_dir) as work:
            result = trainer.train(items, fit, work, config.num_classes, iterations, config.seed)
        torch_save_atomic({k: v.detach().cpu() for k, v in result.model.state_dict().items()}, config.segmentation_path)
        summary = {"iterations": iterations, "slices": len(items), "volumes": len(used), "annotated": used,
                   "image_size": config.image_size, "num_classes": config.num_classes,
                   "fit_dice": round(result.best_val_dice, 5), "seconds": round(result.seconds, 2),
                   "ts": int(time.time())}
        atomic_write_json(config.segmentation_summary_path, summary)
        return summary
